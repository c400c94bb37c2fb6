from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from governance.core.actor import Actor
from governance.portal.models import User
from governance.portal.services import portal_user_roles_recorded, portal_user_save


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    list_display = (
        "username",
        "email",
        "identity",
        "roles",
        "is_staff",
        "is_superuser",
        "is_active",
    )
    list_filter = ("groups", "is_staff", "is_superuser", "is_active")
    search_fields = ("username", "email", "first_name", "last_name", "identity__user_name")
    autocomplete_fields = ("identity",)
    fieldsets = UserAdmin.fieldsets + (("Directory", {"fields": ("identity",)}),)

    def save_model(self, request, obj, form, change):
        request._steward_roles = (
            set(obj.groups.values_list("name", flat=True)) if change and obj.pk else set()
        )
        portal_user_save(
            actor=Actor.for_user(request.user),
            user=obj,
            changed_fields=list(form.changed_data),
            is_new=not change,
        )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        portal_user_roles_recorded(
            actor=Actor.for_user(request.user),
            user=form.instance,
            before=getattr(request, "_steward_roles", set()),
            after=set(form.instance.groups.values_list("name", flat=True)),
        )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("identity").prefetch_related("groups")

    @admin.display(description="Roles")
    def roles(self, obj):
        return ", ".join(sorted(g.name for g in obj.groups.all())) or "—"
