from django.contrib import admin

from governance.core.admin_base import AuditedModelAdmin
from governance.nhi.models import NonHumanIdentity


class OwnerStateFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner_state"

    def lookups(self, request, model_admin):
        return [("departed", "Owner departed"), ("none", "No owner"), ("active", "Owner active")]

    def queryset(self, request, queryset):
        if self.value() == "departed":
            return queryset.filter(owner__active=False)
        if self.value() == "none":
            return queryset.filter(owner__isnull=True)
        if self.value() == "active":
            return queryset.filter(owner__active=True)
        return queryset


@admin.register(NonHumanIdentity)
class NonHumanIdentityAdmin(AuditedModelAdmin):
    app_owner_lookup = "application__owners"
    list_display = ("name", "kind", "environment", "owner", "backup_owner", "application", "status")
    list_filter = ("status", "kind", "environment", OwnerStateFilter, "application")
    search_fields = ("name", "description", "owner__user_name", "owner__display_name")
    list_select_related = ("owner", "backup_owner", "application")
    autocomplete_fields = ("owner", "backup_owner", "application")
