"""Admin building blocks: audited saves and role-based scoping.

Every admin save and delete goes through :mod:`governance.core.services` so the audit log
sees it. Querysets are narrowed per role: security admins and auditors see everything, an
application owner sees only rows of the applications they own.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, QuerySet

from governance.core.actor import Actor
from governance.core.services import model_delete, model_save
from governance.core.snapshot import snapshot
from governance.portal.models import Role


def sees_everything(user) -> bool:
    if user.is_superuser:
        return True
    names = {g.name for g in user.groups.all()}
    return bool(names & {Role.SECURITY_ADMIN, Role.AUDITOR})


class AuditedModelAdmin(admin.ModelAdmin):
    """Saves and deletes are written with their audit event in the admin's transaction."""

    #: Lookup from this model to Application.owners, for application-owner scoping.
    app_owner_lookup: str | None = None

    def get_queryset(self, request) -> QuerySet:
        qs = super().get_queryset(request)
        if sees_everything(request.user):
            return qs
        if self.app_owner_lookup:
            return qs.filter(**{self.app_owner_lookup: request.user}).distinct()
        return qs

    def save_model(self, request, obj, form, change):
        # The row is written in save_related, together with its m2m fields and audit event.
        request._steward_before = (
            snapshot(type(obj)._default_manager.get(pk=obj.pk)) if change else None
        )

    def save_related(self, request, form, formsets, change):
        def save_m2m():
            super(AuditedModelAdmin, self).save_related(request, form, formsets, change)

        model_save(
            actor=Actor.for_user(request.user),
            instance=form.instance,
            before=getattr(request, "_steward_before", None),
            save_m2m=save_m2m,
        )

    def delete_model(self, request, obj):
        model_delete(actor=Actor.for_user(request.user), instance=obj)

    def delete_queryset(self, request, queryset):
        actor = Actor.for_user(request.user)
        for obj in queryset:
            model_delete(actor=actor, instance=obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows owned by another system (the identity provider): viewable, not editable here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def choice_filter(title: str, parameter: str, choices: dict[str, tuple[str, Q]]):
    """A list filter from ``{value: (label, Q)}``: one place for the many two- or three-way
    filters the portal's lists need."""

    class ChoiceFilter(admin.SimpleListFilter):
        def lookups(self, request, model_admin):
            return [(value, label) for value, (label, _q) in choices.items()]

        def queryset(self, request, queryset):
            chosen = choices.get(self.value() or "")
            return queryset.filter(chosen[1]) if chosen else queryset

    ChoiceFilter.title = title
    ChoiceFilter.parameter_name = parameter
    return ChoiceFilter
