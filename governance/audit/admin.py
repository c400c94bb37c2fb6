"""The audit log in the admin: readable and filterable, never editable or deletable."""

from django.contrib import admin

from governance.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "actor_label", "action", "target_type", "target_repr")
    list_filter = (
        "actor_type",
        "action",
        "target_type",
        ("occurred_at", admin.DateFieldListFilter),
    )
    search_fields = ("actor_label", "action", "target_id", "target_repr", "request_id")
    date_hierarchy = "occurred_at"
    list_select_related = ()
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}
