from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from governance.core.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from governance.identities.models import (
    DirectoryGroup,
    GroupMembership,
    Identity,
    IdentityEmail,
    IdentitySource,
)


@admin.register(IdentitySource)
class IdentitySourceAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "enabled", "authoritative_for_all", "identity_count")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "description")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_identities=Count("identities"))

    @admin.display(description="Identities", ordering="_identities")
    def identity_count(self, obj):
        return obj._identities


class IdentityEmailInline(admin.TabularInline):
    model = IdentityEmail
    fields = ("value", "type", "primary")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ActiveFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("inactive", "Inactive"), ("deleted", "Deleted over SCIM")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(active=True, deleted_at__isnull=True)
        if self.value() == "inactive":
            return queryset.filter(active=False, deleted_at__isnull=True)
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdmin):
    """People come from the identity provider over SCIM; the portal shows them."""

    list_display = (
        "user_name",
        "display_name",
        "department",
        "title",
        "manager",
        "active",
        "source",
        "updated_at",
    )
    list_filter = (ActiveFilter, "source", "department", "division")
    search_fields = (
        "user_name",
        "display_name",
        "given_name",
        "family_name",
        "external_id",
        "employee_number",
        "emails__value",
    )
    list_select_related = ("manager", "source")
    inlines = [IdentityEmailInline]
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("id", "user_name", "external_id", "source", "active")}),
        (
            "Name",
            {
                "fields": (
                    "display_name",
                    "given_name",
                    "family_name",
                    "middle_name",
                    "formatted_name",
                    "nick_name",
                )
            },
        ),
        (
            "Organisation",
            {
                "fields": (
                    "title",
                    "department",
                    "division",
                    "organization",
                    "cost_center",
                    "employee_number",
                    "manager",
                    "manager_ref",
                    "user_type",
                )
            },
        ),
        ("Locale", {"fields": ("preferred_language", "locale", "timezone")}),
        ("Other SCIM attributes", {"fields": ("attributes",), "classes": ("collapse",)}),
        (
            "History",
            {
                "fields": (
                    "created_at",
                    "updated_at",
                    "deactivated_at",
                    "deleted_at",
                    "version",
                    "groups_link",
                )
            },
        ),
    )
    readonly_fields = ("groups_link",)

    @admin.display(description="Directory groups")
    def groups_link(self, obj):
        count = obj.memberships.count()
        url = reverse("admin:identities_directorygroup_changelist") + f"?members={obj.pk}"
        return format_html('<a href="{}">{} group(s)</a>', url, count)


class MemberFilter(admin.SimpleListFilter):
    title = "member"
    parameter_name = "members"

    def lookups(self, request, model_admin):
        return []

    def has_output(self):
        return False

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(memberships__identity_id=self.value())
        return queryset


@admin.register(DirectoryGroup)
class DirectoryGroupAdmin(ReadOnlyAdmin):
    list_display = ("display_name", "external_id", "source", "member_count", "updated_at")
    list_filter = ("source", MemberFilter)
    search_fields = ("display_name", "external_id")
    list_select_related = ("source",)
    readonly_fields = ("member_count", "members_link")
    exclude = ("members",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("memberships"))

    @admin.display(description="Members", ordering="_members")
    def member_count(self, obj):
        return getattr(obj, "_members", None)

    @admin.display(description="Member list")
    def members_link(self, obj):
        url = reverse("admin:identities_groupmembership_changelist") + f"?group__id__exact={obj.pk}"
        return format_html('<a href="{}">Show members</a>', url)


@admin.register(GroupMembership)
class GroupMembershipAdmin(ReadOnlyAdmin):
    list_display = ("identity", "group", "added_at")
    list_filter = ("group",)
    search_fields = ("identity__user_name", "identity__display_name", "group__display_name")
    list_select_related = ("identity", "group")
    autocomplete_fields = ()
