from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from governance.portal.models import User


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

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("identity").prefetch_related("groups")

    @admin.display(description="Roles")
    def roles(self, obj):
        return ", ".join(sorted(g.name for g in obj.groups.all())) or "—"
