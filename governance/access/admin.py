from django.contrib import admin
from django.db.models import Count, Q

from governance.access.models import AccessPolicy, Account, Application, Entitlement, Grant
from governance.core.admin_base import AuditedModelAdmin
from governance.lifecycle.admin import ProvisioningProfileInline


class EntitlementInline(admin.TabularInline):
    model = Entitlement
    fields = ("name", "external_value", "privileged", "risk", "owner")
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(AuditedModelAdmin):
    app_owner_lookup = "owners"
    list_display = (
        "name",
        "provisioning_mode",
        "risk_tier",
        "deprovisioning_sla_hours",
        "review_frequency",
        "account_count",
        "orphan_count",
    )
    list_filter = ("provisioning_mode", "risk_tier", "review_frequency")
    search_fields = ("name", "description")
    filter_horizontal = ("owners",)
    inlines = [EntitlementInline, ProvisioningProfileInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _accounts=Count("accounts", distinct=True),
                _orphans=Count(
                    "accounts",
                    filter=Q(accounts__identity__isnull=True, accounts__nhi__isnull=True)
                    & ~Q(accounts__status="deleted"),
                    distinct=True,
                ),
            )
        )

    @admin.display(description="Accounts", ordering="_accounts")
    def account_count(self, obj):
        return obj._accounts

    @admin.display(description="Orphan accounts", ordering="_orphans")
    def orphan_count(self, obj):
        return obj._orphans


@admin.register(Entitlement)
class EntitlementAdmin(AuditedModelAdmin):
    app_owner_lookup = "application__owners"
    list_display = ("name", "application", "external_value", "privileged", "risk", "owner")
    list_filter = ("privileged", "risk", "application")
    search_fields = ("name", "external_value", "description", "application__name")
    list_select_related = ("application", "owner")
    autocomplete_fields = ("application",)


class OrphanFilter(admin.SimpleListFilter):
    title = "holder"
    parameter_name = "holder"

    def lookups(self, request, model_admin):
        return [
            ("person", "A person"),
            ("nhi", "A non-human identity"),
            ("orphan", "Nobody (orphan)"),
            ("departed", "A departed person"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "person":
            return queryset.filter(identity__isnull=False)
        if value == "nhi":
            return queryset.filter(nhi__isnull=False)
        if value == "orphan":
            return queryset.filter(identity__isnull=True, nhi__isnull=True)
        if value == "departed":
            return queryset.filter(identity__active=False)
        return queryset


class GrantInline(admin.TabularInline):
    model = Grant
    fields = ("entitlement", "origin", "status", "granted_at", "expires_at", "last_reviewed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(AuditedModelAdmin):
    app_owner_lookup = "application__owners"
    list_display = (
        "username",
        "application",
        "identity",
        "nhi",
        "status",
        "origin",
        "last_login_at",
    )
    list_filter = (OrphanFilter, "status", "origin", "application")
    search_fields = (
        "username",
        "external_id",
        "identity__user_name",
        "identity__display_name",
        "nhi__name",
    )
    list_select_related = ("application", "identity", "nhi")
    autocomplete_fields = ("application", "identity", "nhi")
    inlines = [GrantInline]
    show_full_result_count = False


@admin.register(Grant)
class GrantAdmin(AuditedModelAdmin):
    app_owner_lookup = "account__application__owners"
    list_display = (
        "account",
        "entitlement",
        "origin",
        "status",
        "granted_at",
        "expires_at",
        "last_reviewed_at",
    )
    list_filter = ("status", "origin", "entitlement__privileged", "account__application")
    search_fields = ("account__username", "entitlement__name", "account__identity__user_name")
    list_select_related = ("account__application", "entitlement__application")
    autocomplete_fields = ("account", "entitlement", "policy")
    date_hierarchy = "granted_at"
    show_full_result_count = False


@admin.register(AccessPolicy)
class AccessPolicyAdmin(AuditedModelAdmin):
    list_display = ("name", "condition", "enabled", "entitlement_count")
    list_filter = ("enabled", "attribute")
    search_fields = ("name", "description", "attribute_value", "directory_group__display_name")
    filter_horizontal = ("entitlements",)
    list_select_related = ("directory_group",)
    autocomplete_fields = ("directory_group",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_ents=Count("entitlements"))

    @admin.display(description="Condition")
    def condition(self, obj):
        return obj.condition_label

    @admin.display(description="Entitlements", ordering="_ents")
    def entitlement_count(self, obj):
        return obj._ents
