from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from governance.core.actor import Actor
from governance.core.admin_base import AuditedModelAdmin, ReadOnlyAdmin
from governance.core.errors import DomainError
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


class UrgentLeaverForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why this leaver cannot wait for the identity provider, e.g. "
        '"High-risk termination, HR case 2291". Recorded in the audit log.',
    )


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdmin):
    """People come from the identity provider over SCIM; the portal shows them.

    The one change started here is an urgent leaver (security admins only): the leaver's
    deprovisioning starts before the identity provider sends the deactivation.
    """

    actions = ["start_urgent_leaver"]
    change_form_template = "admin/lifecycle/identity_change_form.html"

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
                    "lifecycle_link",
                )
            },
        ),
    )
    readonly_fields = ("groups_link", "lifecycle_link")

    @admin.display(description="Directory groups")
    def groups_link(self, obj):
        count = obj.memberships.count()
        url = reverse("admin:identities_directorygroup_changelist") + f"?members={obj.pk}"
        return format_html('<a href="{}">{} group(s)</a>', url, count)

    @admin.display(description="Lifecycle events")
    def lifecycle_link(self, obj):
        count = obj.lifecycle_events.count()
        if not count:
            return "None yet"
        url = (
            reverse("admin:lifecycle_lifecycleevent_changelist") + f"?identity__id__exact={obj.pk}"
        )
        return format_html('<a href="{}">{} event(s): joiner, mover, leaver</a>', url, count)

    # ---- urgent leaver

    def has_urgent_leaver_permission(self, request) -> bool:
        return bool(getattr(request.user, "is_security_admin", False))

    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/urgent-leaver/",
                self.admin_site.admin_view(self.urgent_leaver_view),
                name="identities_identity_urgent_leaver",
            )
        ]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        if self.has_urgent_leaver_permission(request):
            extra["urgent_leaver_url"] = reverse(
                "admin:identities_identity_urgent_leaver", args=[object_id]
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def _start_urgent_leavers(self, request, people, reason: str) -> int:
        from governance.lifecycle.services import lifecycle_start_urgent_leaver

        actor = Actor.for_user(request.user)
        started = 0
        for person in people:
            try:
                event = lifecycle_start_urgent_leaver(actor=actor, identity=person, reason=reason)
            except DomainError as exc:
                self.message_user(request, f"{person}: {exc.message}", messages.ERROR)
                continue
            started += 1
            url = reverse("admin:lifecycle_lifecycleevent_change", args=[event.pk])
            self.message_user(
                request,
                format_html(
                    "Urgent leaver started for {}: {} provisioning task(s) planned. "
                    '<a href="{}">Follow the deprovisioning</a>.',
                    person,
                    event.tasks.count(),
                    url,
                ),
                messages.SUCCESS,
            )
        return started

    def _render_urgent_leaver(self, request, people, skipped, form, *, single=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Start urgent leaver",
            "subtitle": None,
            "people": people,
            "skipped": skipped,
            "form": form,
            "single": single,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/lifecycle/urgent_leaver.html", context)

    @staticmethod
    def _eligible(selected):
        """(people an urgent leaver can start for, [(person, why not)] for the others)."""
        from governance.lifecycle.models import LifecycleEvent

        pending = set(
            LifecycleEvent.objects.filter(
                identity__in=selected,
                kind=LifecycleEvent.Kind.LEAVER,
                urgent=True,
                completed_at__isnull=True,
            ).values_list("identity_id", flat=True)
        )
        people, skipped = [], []
        for person in selected:
            if not person.active or person.deleted_at is not None:
                skipped.append((person, "already inactive"))
            elif person.pk in pending:
                skipped.append((person, "an urgent leaver is already in progress"))
            else:
                people.append(person)
        return people, skipped

    @admin.action(description="Start urgent leaver", permissions=["urgent_leaver"])
    def start_urgent_leaver(self, request, queryset):
        people, skipped = self._eligible(list(queryset))
        if not people:
            self.message_user(
                request,
                "No urgent leaver can start for the selected people: "
                + "; ".join(f"{p} ({why})" for p, why in skipped),
                messages.WARNING,
            )
            return None
        if request.POST.get("post") == "yes":
            form = UrgentLeaverForm(request.POST)
            if form.is_valid():
                self._start_urgent_leavers(request, people, form.cleaned_data["reason"])
                return None
        else:
            form = UrgentLeaverForm()
        return self._render_urgent_leaver(request, people, skipped, form)

    def urgent_leaver_view(self, request, object_id):
        """The same confirmation for one person, from their page."""
        if not self.has_urgent_leaver_permission(request):
            raise PermissionDenied
        person = self.get_object(request, unquote(object_id))
        if person is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = reverse("admin:identities_identity_change", args=[person.pk])
        people, skipped = self._eligible([person])
        if not people:
            self.message_user(
                request,
                f"No urgent leaver can start for {person}: {skipped[0][1]}.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            form = UrgentLeaverForm(request.POST)
            if form.is_valid():
                self._start_urgent_leavers(request, [person], form.cleaned_data["reason"])
                return HttpResponseRedirect(change_url)
        else:
            form = UrgentLeaverForm()
        return self._render_urgent_leaver(request, [person], [], form, single=person)


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
