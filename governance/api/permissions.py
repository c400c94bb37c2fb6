"""The token's user's Django model permissions, with reads needing ``view``.

Row scoping (an application owner reaches only their applications' rows) is done by each
view's queryset and checked again by the services.
"""

from __future__ import annotations

from rest_framework.permissions import DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        extra = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if extra is not None:
            return request.user.has_perms(extra)
        return super().has_permission(request, view)
