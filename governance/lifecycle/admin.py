"""Joiner-mover-leaver in the admin: events, provisioning work items and capability profiles.

Events come from the directory and are read-only. Provisioning tasks change only through
their transitions (record manual work with evidence, retry a failed SCIM task), each a
service call. Application owners see the events and tasks of their applications only;
security admins and auditors see everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.forms.formsets import INITIAL_FORM_COUNT, TOTAL_FORM_COUNT
from django.forms.models import BaseInlineFormSet
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from governance.access.models import Application
from governance.core.actor import Actor
from governance.core.admin_base import AuditedModelAdmin, ReadOnlyAdmin, sees_everything
from governance.core.errors import DomainError
from governance.core.uploads import (
    ACCEPTED_LABEL,
    MAX_EVIDENCE_BYTES,
    check_evidence_upload,
    content_type_for,
)
from governance.lifecycle.models import LifecycleEvent, ProvisioningProfile, ProvisioningTask
from governance.lifecycle.profile_services import profile_save, validate_connector_url
from governance.lifecycle.selectors import (
    MODE_PRESETS,
    AppDeprovisioning,
    LeaverClock,
    leaver_clock,
    leaver_clocks,
    open_leavers,
)
from governance.lifecycle.services import task_mark_executed, task_retry

State = ProvisioningTask.State
CSS = {"all": ("steward/lifecycle.css",)}
# Not verified and not cancelled: work an event is still waiting for.
NOT_DONE_STATES = [s for s in State.values if s not in ProvisioningTask.DONE_STATES]
OVERDUE_STATES = (*ProvisioningTask.OPEN_STATES, State.FAILED)


def _scoped(request) -> bool:
    """True when the user sees only the rows of the applications they own."""
    return not sees_everything(request.user)


def state_badge(task: ProvisioningTask):
    return format_html(
        '<span class="lc-badge lc-state-{}">{}</span>', task.state, task.get_state_display()
    )


def is_overdue(task: ProvisioningTask, now: datetime | None = None) -> bool:
    return bool(
        task.due_at and task.state in OVERDUE_STATES and task.due_at < (now or timezone.now())
    )


def _hours_since(start: datetime, now: datetime) -> float:
    return round((now - start).total_seconds() / 3600, 1)


# --------------------------------------------------------------------------- leaver clocks


@dataclass
class LeaverRow:
    """One open leaver on the open-leavers page: its clock and what is still open."""

    clock: LeaverClock
    elapsed_hours: float
    still_open: list[tuple[AppDeprovisioning, list[tuple[str, int]]]] = field(default_factory=list)


def _owned_app_ids(user) -> set[int]:
    return set(Application.objects.filter(owners=user).values_list("pk", flat=True))


# ------------------------------------------------------------------------ lifecycle events


class EventStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "Open (work not yet verified)"), ("completed", "Completed")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(completed_at__isnull=True)
        if self.value() == "completed":
            return queryset.filter(completed_at__isnull=False)
        return queryset


class EventTaskInline(admin.TabularInline):
    """The event's provisioning tasks, read-only, each linking to its own page."""

    model = ProvisioningTask
    fk_name = "event"
    verbose_name = "provisioning task"
    verbose_name_plural = "Provisioning tasks of this event"
    classes = ["lc-tasks"]
    fields = ("task", "application", "channel", "state_col", "due", "executed_at", "verified_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        qs = (
            super()
            .get_queryset(request)
            .select_related("application", "identity", "account__application", "entitlement")
            .order_by("application__name", "pk")
        )
        if _scoped(request):
            qs = qs.filter(application__owners=request.user).distinct()
        return qs

    @admin.display(description="Task")
    def task(self, obj):
        url = reverse("admin:lifecycle_provisioningtask_change", args=[obj.pk])
        what = obj.get_operation_display()
        if obj.entitlement_id:
            what = f"{what}: {obj.entitlement.name}"
        return format_html('<a href="{}">{}</a>', url, what)

    @admin.display(description="State")
    def state_col(self, obj):
        return state_badge(obj)

    @admin.display(description="Due")
    def due(self, obj):
        return _due_html(obj)


def _shown(value) -> str:
    """A changed attribute's value as people read it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _due_html(task: ProvisioningTask):
    if not task.due_at:
        return "—"
    when = timezone.localtime(task.due_at).strftime("%Y-%m-%d %H:%M")
    if is_overdue(task):
        return format_html('{} <span class="lc-flag lc-flag-bad">Overdue</span>', when)
    return when


@admin.register(LifecycleEvent)
class LifecycleEventAdmin(ReadOnlyAdmin):
    """Joiner, mover, leaver and rehire events as derived from the directory."""

    list_display = (
        "person_col",
        "kind_col",
        "occurred_at",
        "urgent",
        "open_tasks",
        "completed_col",
    )
    list_filter = ("kind", "urgent", EventStatusFilter)
    search_fields = (
        "identity__user_name",
        "identity__display_name",
        "identity__given_name",
        "identity__family_name",
        "identity__employee_number",
    )
    list_select_related = ("identity",)
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    actions = None
    inlines = [EventTaskInline]
    readonly_fields = (
        "person",
        "kind",
        "occurred_at",
        "actor_label",
        "started_by",
        "urgent",
        "status",
        "changes_display",
        "retained_privileged_display",
        "nhi_handoff_display",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "person",
                    "kind",
                    "occurred_at",
                    "actor_label",
                    "started_by",
                    "urgent",
                    "status",
                )
            },
        ),
        ("What changed", {"fields": ("changes_display",)}),
        ("Follow-up", {"fields": ("retained_privileged_display", "nhi_handoff_display")}),
    )

    class Media:
        css = CSS

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        counted = Q(tasks__state__in=NOT_DONE_STATES)
        if _scoped(request):
            qs = qs.filter(
                Exists(
                    ProvisioningTask.objects.filter(
                        event=OuterRef("pk"), application__owners=request.user
                    )
                )
            )
            counted &= Q(tasks__application__owners=request.user)
        return qs.annotate(_open=Count("tasks", filter=counted, distinct=True))

    def get_urls(self):
        custom = [
            path(
                "open-leavers/",
                self.admin_site.admin_view(self.open_leavers_view),
                name="lifecycle_open_leavers",
            )
        ]
        return custom + super().get_urls()

    # ---- list columns

    @admin.display(description="Person", ordering="identity__display_name")
    def person_col(self, obj):
        return str(obj.identity)

    @admin.display(description="Event", ordering="kind")
    def kind_col(self, obj):
        return format_html(
            '<span class="lc-badge lc-kind-{}">{}</span>', obj.kind, obj.get_kind_display()
        )

    @admin.display(description="Open tasks", ordering="_open")
    def open_tasks(self, obj):
        count = getattr(obj, "_open", 0) or 0
        if not count:
            return "0"
        url = reverse("admin:lifecycle_provisioningtask_changelist") + f"?event__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.display(description="Completed", ordering="completed_at")
    def completed_col(self, obj):
        if obj.completed_at is None:
            return format_html('<span class="lc-flag lc-flag-warn">{}</span>', "Open")
        return timezone.localtime(obj.completed_at).strftime("%Y-%m-%d %H:%M")

    # ---- change page fields

    @admin.display(description="Person")
    def person(self, obj):
        url = reverse("admin:identities_identity_change", args=[obj.identity_id])
        return format_html('<a href="{}">{}</a> ({})', url, obj.identity, obj.identity.user_name)

    @admin.display(description="Status")
    def status(self, obj):
        if obj.completed_at:
            return format_html(
                '<span class="lc-flag lc-flag-ok">Completed</span> {}',
                timezone.localtime(obj.completed_at).strftime("%Y-%m-%d %H:%M"),
            )
        return format_html(
            '<span class="lc-flag lc-flag-warn">Open</span> {}',
            "some provisioning work is not verified yet",
        )

    @admin.display(description="Changes")
    def changes_display(self, obj):
        changes = obj.changes or {}
        if not changes:
            return "—"
        rows = []
        for key, value in changes.items():
            if isinstance(value, dict) and ("from" in value or "to" in value):
                shown = f"{_shown(value.get('from'))} → {_shown(value.get('to'))}"
            elif value is True:
                shown = "changed"
            else:
                shown = str(value)
            rows.append((key.replace("_", " ").capitalize(), shown))
        return format_html(
            '<table class="lc-kv">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.display(description="Retained privileged grants")
    def retained_privileged_display(self, obj):
        items = obj.retained_privileged or []
        if not items:
            return "None: no privileged access was kept from the old role."
        rows = []
        for item in items:
            grant = item.get("grant")
            url = reverse("admin:access_grant_change", args=[grant]) if grant else ""
            rows.append(
                (item.get("application", ""), url, item.get("entitlement", ""), grant or "")
            )
        return format_html(
            '<p class="lc-note">Kept from the old role for the new manager to review.</p>'
            '<table class="lc-kv"><tr><th>Application</th><th>Entitlement</th></tr>{}</table>',
            format_html_join(
                "", '<tr><td>{}</td><td><a href="{}">{}</a> (grant {})</td></tr>', rows
            ),
        )

    @admin.display(description="Non-human identities")
    def nhi_handoff_display(self, obj):
        if not obj.nhi_handoff_needed:
            return "No hand-off needed."
        url = (
            reverse("admin:nhi_nonhumanidentity_changelist")
            + f"?owner__id__exact={obj.identity_id}"
        )
        return format_html(
            '<span class="lc-flag lc-flag-bad">Hand-off needed</span> '
            '{} owns non-human identities that need a new owner. <a href="{}">Show them</a>',
            obj.identity,
            url,
        )

    # ---- views

    def _clock_for(self, request, event: LifecycleEvent, now: datetime):
        """The leaver's clock; an application owner sees only the rows of their apps."""
        if not _scoped(request):
            return leaver_clock(event, now=now), False
        clock, _states = leaver_clocks([event], now=now, app_ids=_owned_app_ids(request.user))[
            event.pk
        ]
        return clock, True

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and obj.kind == LifecycleEvent.Kind.LEAVER:
            now = timezone.now()
            clock, scoped = self._clock_for(request, obj, now)
            extra.update(
                leaver_clock=clock,
                clock_scoped=scoped,
                elapsed_hours=_hours_since(obj.occurred_at, now),
                open_leavers_url=reverse("admin:lifecycle_open_leavers"),
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def changelist_view(self, request, extra_context=None):
        extra = {
            "open_leavers_url": reverse("admin:lifecycle_open_leavers"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    def open_leavers_view(self, request):
        """Leavers whose deprovisioning is not yet verified everywhere, oldest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        events = open_leavers()
        app_ids = None
        if _scoped(request):
            app_ids = _owned_app_ids(request.user)
            events = events.filter(
                Exists(
                    ProvisioningTask.objects.filter(
                        event=OuterRef("pk"), application_id__in=app_ids
                    )
                )
            )
        page = Paginator(events, 50).get_page(request.GET.get("p"))
        shown = list(page.object_list)
        clocks = leaver_clocks(shown, now=now, app_ids=app_ids)
        rows = []
        for event in shown:
            clock, states = clocks[event.pk]
            still_open = [
                (
                    app,
                    [
                        (State(state).label, count)
                        for state, count in sorted(states[app.application.pk].items())
                    ],
                )
                for app in clock.per_app
                if app.open
            ]
            rows.append(LeaverRow(clock, _hours_since(event.occurred_at, now), still_open))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Open leavers",
            "subtitle": None,
            "rows": rows,
            "page_obj": page,
            "scoped": app_ids is not None,
            "breached_count": sum(1 for r in rows if r.clock.breached),
            "changelist_url": reverse("admin:lifecycle_lifecycleevent_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/lifecycle/open_leavers.html", context)


# --------------------------------------------------------------------- provisioning tasks


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        overdue = Q(due_at__lt=timezone.now(), state__in=OVERDUE_STATES)
        if self.value() == "yes":
            return queryset.filter(overdue)
        if self.value() == "no":
            return queryset.exclude(overdue)
        return queryset


class EventFilter(admin.SimpleListFilter):
    """Hidden filter behind the "open tasks" links of the event list."""

    title = "event"
    parameter_name = "event__id__exact"

    def lookups(self, request, model_admin):
        return []

    def has_output(self):
        return False

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(event_id=self.value())
        return queryset


class EvidenceForm(forms.Form):
    """Evidence for closing a manual work item: at least one of the three is required."""

    reference = forms.CharField(
        label="Ticket reference",
        max_length=200,
        required=False,
        help_text="The change or service-desk ticket, e.g. CHG-20431.",
    )
    note = forms.CharField(
        label="Note",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="What was done, where, and how you checked it.",
    )
    evidence_file = forms.FileField(
        label="Evidence file",
        required=False,
        help_text=f"Optional: an export or screenshot showing the change. {ACCEPTED_LABEL}, "
        f"at most {MAX_EVIDENCE_BYTES // (1024 * 1024)} MB.",
    )

    def clean_evidence_file(self):
        upload = self.cleaned_data.get("evidence_file")
        if upload:
            try:
                check_evidence_upload(upload, field="evidence_file")
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from None
        return upload

    def clean(self):
        data = super().clean()
        if not self.errors and not (
            (data.get("reference") or "").strip()
            or (data.get("note") or "").strip()
            or data.get("evidence_file")
        ):
            raise forms.ValidationError(
                "Closing a work item needs evidence: a ticket reference, a note or a file."
            )
        return data


@admin.register(ProvisioningTask)
class ProvisioningTaskAdmin(AuditedModelAdmin):
    """Work items. Never created, edited or deleted here: only moved through transitions."""

    app_owner_lookup = "application__owners"
    list_display = (
        "state_col",
        "operation",
        "person",
        "application",
        "channel",
        "due",
        "created_at",
    )
    list_display_links = ("operation",)
    list_filter = (
        "state",
        OverdueFilter,
        "channel",
        "operation",
        ("application", admin.RelatedOnlyFieldListFilter),
        EventFilter,
    )
    search_fields = (
        "identity__user_name",
        "identity__display_name",
        "account__username",
        "application__name",
        "entitlement__name",
        "evidence_reference",
        "reason",
    )
    list_select_related = ("identity", "application", "account__application", "entitlement")
    show_full_result_count = False
    actions = ["record_manual_work", "retry_failed"]
    readonly_fields = (
        "state_col",
        "operation",
        "channel",
        "application",
        "person",
        "account",
        "entitlement",
        "event_link",
        "policy",
        "reason",
        "due",
        "evidence_display",
        "timeline",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "state_col",
                    "operation",
                    "channel",
                    "application",
                    "person",
                    "account",
                    "entitlement",
                    "event_link",
                    "policy",
                    "reason",
                    "due",
                )
            },
        ),
        ("Evidence", {"fields": ("evidence_display",)}),
        ("Timeline", {"fields": ("timeline",)}),
        (
            "Outbound SCIM attempts",
            {"fields": ("attempts", "next_attempt_at", "last_error"), "classes": ("collapse",)},
        ),
    )

    class Media:
        css = CSS

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and obj.channel == ProvisioningTask.Channel.MANUAL and not obj.attempts:
            fieldsets = [f for f in fieldsets if f[0] != "Outbound SCIM attempts"]
        return fieldsets

    # ---- permissions: tasks move only through their transitions

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None:
            return False  # the task page is read-only; the transitions have their own forms
        return super().has_change_permission(request)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related(
                "identity",
                "application",
                "account__application",
                "entitlement__application",
                "executed_by",
                "event__identity",
                "policy",
            )
        )

    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/record-work/",
                self.admin_site.admin_view(self.record_work_view),
                name="lifecycle_provisioningtask_record_work",
            ),
            path(
                "<path:object_id>/evidence/",
                self.admin_site.admin_view(self.evidence_view),
                name="lifecycle_provisioningtask_evidence",
            ),
        ]
        return custom + super().get_urls()

    # ---- columns and fields

    @admin.display(description="State", ordering="state")
    def state_col(self, obj):
        return state_badge(obj)

    @admin.display(description="Person", ordering="identity__user_name")
    def person(self, obj):
        if obj.identity_id:
            return str(obj.identity)
        if obj.account_id:
            return obj.account.username
        return "—"

    @admin.display(description="Due", ordering="due_at")
    def due(self, obj):
        return _due_html(obj)

    @admin.display(description="Lifecycle event")
    def event_link(self, obj):
        if not obj.event_id:
            return "—"
        url = reverse("admin:lifecycle_lifecycleevent_change", args=[obj.event_id])
        return format_html('<a href="{}">{}</a>', url, obj.event)

    @admin.display(description="Evidence")
    def evidence_display(self, obj):
        parts = []
        if obj.evidence_reference:
            parts.append(
                format_html("<tr><th>Ticket reference</th><td>{}</td></tr>", obj.evidence_reference)
            )
        if obj.evidence_note:
            parts.append(
                format_html('<tr><th>Note</th><td class="lc-pre">{}</td></tr>', obj.evidence_note)
            )
        if obj.evidence_file:
            url = reverse("admin:lifecycle_provisioningtask_evidence", args=[obj.pk])
            parts.append(
                format_html(
                    '<tr><th>File</th><td><a href="{}">{}</a> (download)</td></tr>',
                    url,
                    os.path.basename(obj.evidence_file.name),
                )
            )
        for key, value in sorted((obj.evidence or {}).items()):
            parts.append(format_html("<tr><th>{}</th><td>{}</td></tr>", key, value))
        if not parts:
            if obj.state == State.AWAITING_MANUAL:
                return "None yet: record the manual work with a ticket reference, note or file."
            return "None recorded."
        return format_html(
            '<table class="lc-kv">{}</table>', format_html_join("", "{}", ((p,) for p in parts))
        )

    @admin.display(description="Timeline")
    def timeline(self, obj):
        def when(value):
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else None

        executed = when(obj.executed_at)
        if executed and obj.executed_by_id:
            executed = f"{executed} by {obj.executed_by.get_username()}"
        steps = [
            ("Created", when(obj.created_at)),
            ("Started (outbound SCIM)", when(obj.started_at)),
            ("Executed", executed),
            ("Verified", when(obj.verified_at)),
            ("Failed", when(obj.failed_at)),
        ]
        rows = [
            (
                "done" if value else "pending",
                label,
                value or "—",
            )
            for label, value in steps
            if value or label in ("Created", "Executed", "Verified")
        ]
        return format_html(
            '<ol class="lc-timeline">{}</ol>',
            format_html_join("", '<li class="lc-step-{}"><strong>{}</strong> {}</li>', rows),
        )

    # ---- change page

    def _can_record(self, request, obj) -> bool:
        return obj.state == State.AWAITING_MANUAL and self.has_change_permission(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra.update(
                task=obj,
                can_record_work=self._can_record(request, obj),
                record_work_url=reverse(
                    "admin:lifecycle_provisioningtask_record_work", args=[obj.pk]
                ),
                failed_list_url=reverse("admin:lifecycle_provisioningtask_changelist")
                + "?state__exact=failed",
                overdue=is_overdue(obj),
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    # ---- transitions

    def _record(self, request, tasks, form) -> int:
        """Mark each task executed with the same evidence; errors become messages."""
        actor = Actor.for_user(request.user)
        reference = form.cleaned_data.get("reference") or ""
        note = form.cleaned_data.get("note") or ""
        evidence = form.cleaned_data.get("evidence_file") or None
        done = 0
        for task in tasks:
            try:
                executed = task_mark_executed(
                    actor=actor, task=task, reference=reference, note=note, evidence_file=evidence
                )
            except DomainError as exc:
                self.message_user(request, f"{task}: {exc.message}", messages.ERROR)
                continue
            done += 1
            if evidence is not None and executed.evidence_file:
                # One upload is evidence for every selected task: store it once.
                evidence = executed.evidence_file.name
        return done

    def _render_record_form(self, request, tasks, skipped, form, *, single=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Record manual work done",
            "subtitle": None,
            "tasks": tasks,
            "skipped": skipped,
            "form": form,
            "single": single,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "max_mb": MAX_EVIDENCE_BYTES // (1024 * 1024),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/lifecycle/record_work.html", context)

    @admin.action(description="Record manual work done", permissions=["change"])
    def record_manual_work(self, request, queryset):
        selected = list(queryset)
        tasks = [t for t in selected if t.state == State.AWAITING_MANUAL]
        skipped = [t for t in selected if t.state != State.AWAITING_MANUAL]
        if not tasks:
            self.message_user(
                request,
                "None of the selected tasks is awaiting manual work; nothing was changed.",
                messages.WARNING,
            )
            return None
        if request.POST.get("post") == "yes":
            form = EvidenceForm(request.POST, request.FILES)
            if form.is_valid():
                done = self._record(request, tasks, form)
                if done:
                    self.message_user(
                        request,
                        f"Recorded the manual work on {done} task(s): executed, not verified "
                        "until a reconciliation shows the change.",
                        messages.SUCCESS,
                    )
                return None
        else:
            form = EvidenceForm()
        return self._render_record_form(request, tasks, skipped, form)

    def record_work_view(self, request, object_id):
        """The same evidence form for one task, reached from the task's page."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        task = self.get_object(request, unquote(object_id))
        if task is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:lifecycle_provisioningtask_change", args=[task.pk])
        if task.state != State.AWAITING_MANUAL:
            self.message_user(
                request,
                f"This task is {task.get_state_display().lower()}; only tasks awaiting manual "
                "work can be closed with evidence.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            form = EvidenceForm(request.POST, request.FILES)
            if form.is_valid():
                if self._record(request, [task], form):
                    self.message_user(
                        request,
                        "Recorded: the task is executed, not verified, until a reconciliation "
                        "shows the change.",
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(change_url)
        else:
            form = EvidenceForm()
        return self._render_record_form(request, [task], [], form, single=task)

    @admin.action(description="Retry failed tasks", permissions=["change"])
    def retry_failed(self, request, queryset):
        selected = list(queryset)
        tasks = [t for t in selected if t.state == State.FAILED]
        if not tasks:
            self.message_user(
                request,
                "None of the selected tasks has failed; nothing was retried.",
                messages.WARNING,
            )
            return None
        if request.POST.get("post") == "yes":
            actor = Actor.for_user(request.user)
            done = 0
            for task in tasks:
                try:
                    task_retry(actor=actor, task=task)
                except DomainError as exc:
                    self.message_user(request, f"{task}: {exc.message}", messages.ERROR)
                else:
                    done += 1
            if done:
                self.message_user(
                    request, f"Sent {done} failed task(s) back to the queue.", messages.SUCCESS
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Retry failed tasks",
            "subtitle": None,
            "tasks": tasks,
            "skipped": [t for t in selected if t.state != State.FAILED],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/lifecycle/retry_confirmation.html", context)

    def evidence_view(self, request, object_id):
        """The evidence file, always as a download (never rendered inline by the browser)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        task = self.get_object(request, unquote(object_id))
        if task is None or not task.evidence_file:
            raise Http404("No evidence file for this task.")
        name = os.path.basename(task.evidence_file.name)
        content_type = content_type_for(name)
        try:
            handle = task.evidence_file.open("rb")
        except FileNotFoundError:
            raise Http404("The evidence file is missing from storage.") from None
        response = FileResponse(
            handle, as_attachment=True, filename=name, content_type=content_type
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response


# ------------------------------------------------------------------ provisioning profiles


class ProvisioningProfileForm(forms.ModelForm):
    """Capability flags and connector; the token is write-only and never rendered."""

    scim_base_url = forms.URLField(
        label="SCIM base URL",
        required=False,
        assume_scheme="https",
        max_length=500,
        help_text="The application's SCIM 2.0 endpoint, e.g. https://api.example.com/scim/v2. "
        "Stored encrypted.",
    )
    new_scim_token = forms.CharField(
        label="SCIM bearer token",
        required=False,
        strip=True,
        max_length=4000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: leave blank to keep the stored token. Stored encrypted and never "
        "shown again.",
    )
    clear_scim_token = forms.BooleanField(
        label="Remove the stored token",
        required=False,
        help_text="Disconnects outbound SCIM: changes become manual work items.",
    )

    class Meta:
        model = ProvisioningProfile
        fields = (
            "supports_create",
            "supports_update",
            "supports_deactivate",
            "supports_delete",
            "supports_entitlements",
            "lag_budget_minutes",
            "scim_base_url",
        )
        labels = {"lag_budget_minutes": "Lag budget (minutes)"}

    def clean_scim_base_url(self):
        url = (self.cleaned_data.get("scim_base_url") or "").strip()
        try:
            validate_connector_url(url)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return url

    def clean(self):
        data = super().clean()
        token = data.get("new_scim_token")
        if token and data.get("clear_scim_token"):
            self.add_error(
                "clear_scim_token", "Either enter a new token or remove the stored one, not both."
            )
        if (token or data.get("scim_base_url")) and not settings.STEWARD_ENCRYPTION_KEY:
            raise forms.ValidationError(
                "Connector secrets cannot be stored: STEWARD_ENCRYPTION_KEY is not set on this "
                "server. Ask an operator to set it."
            )
        return data

    def save(self, commit=True):
        profile = super().save(commit=False)
        if self.cleaned_data.get("new_scim_token"):
            profile.scim_token = self.cleaned_data["new_scim_token"]
        elif self.cleaned_data.get("clear_scim_token"):
            profile.scim_token = ""
        if commit:  # the admin saves through the formset, never here
            raise NotImplementedError("Save profiles with profile_save (audited).")
        return profile


class ProvisioningProfileFormSet(BaseInlineFormSet):
    """Saves through :func:`profile_save` so the audit log records the change without the
    secrets. ``actor`` is set per request by the inline."""

    actor: Actor | None = None

    def __init__(self, data=None, *args, prefix=None, **kwargs):
        prefix = prefix or self.get_default_prefix()
        if data is not None and f"{prefix}-{TOTAL_FORM_COUNT}" not in data:
            # An application form posted without its profile section (a script, an older
            # form) leaves the profile as it is instead of failing the whole save.
            data = data.copy()
            data.update(
                {f"{prefix}-{TOTAL_FORM_COUNT}": "0", f"{prefix}-{INITIAL_FORM_COUNT}": "0"}
            )
        super().__init__(data, *args, prefix=prefix, **kwargs)
        app = self.instance
        if app is not None and app.pk and not self.get_queryset().exists():
            # A new profile starts from the preset of the application's provisioning mode.
            self.initial_extra = [dict(MODE_PRESETS[app.provisioning_mode])]

    def save_new(self, form, commit=True):
        setattr(form.instance, self.fk.name, self.instance)
        profile = form.save(commit=False)
        return profile_save(actor=self.actor, profile=profile) if commit else profile

    def save_existing(self, form, obj, commit=True):
        profile = form.save(commit=False)
        return profile_save(actor=self.actor, profile=profile) if commit else profile


class ProvisioningProfileInline(admin.StackedInline):
    """The application's SCIM capability profile, on the application's page."""

    model = ProvisioningProfile
    form = ProvisioningProfileForm
    formset = ProvisioningProfileFormSet
    verbose_name = "SCIM capability profile"
    verbose_name_plural = "SCIM capability profile"
    extra = 1
    max_num = 1
    can_delete = False
    readonly_fields = ("token_status", "residual_risk")
    capability_fields = (
        "supports_create",
        "supports_update",
        "supports_deactivate",
        "supports_delete",
        "supports_entitlements",
        "lag_budget_minutes",
    )

    class Media:
        css = CSS

    def get_fieldsets(self, request, obj=None):
        connector = ["scim_base_url", "token_status"]
        if self.has_change_permission(request, obj) or self.has_add_permission(request, obj):
            connector += ["new_scim_token", "clear_scim_token"]
        return [
            (
                "What the application's SCIM supports",
                {"fields": [*self.capability_fields, "residual_risk"]},
            ),
            ("Outbound SCIM connector", {"fields": connector}),
        ]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.actor = Actor.for_user(request.user)
        return formset

    @admin.display(description="Stored token")
    def token_status(self, obj):
        if obj is None or not obj.pk:
            return "Not set"
        if obj.scim_token:
            return format_html('<span class="lc-flag lc-flag-ok">{}</span>', "Set (hidden)")
        return "Not set"

    @admin.display(description="Residual risk")
    def residual_risk(self, obj):
        if obj is None or not obj.application_id:
            return "Shown once the application is saved."
        if obj.pk:
            flags = {f: getattr(obj, f) for f in self.capability_fields[:5]}
            connected, note = obj.connected, ""
        else:  # no profile yet: the preset of the application's provisioning mode applies
            flags = MODE_PRESETS[obj.application.provisioning_mode]
            connected, note = False, "No profile recorded yet; the mode's preset applies: "
        if not any(flags.values()):
            gaps = ["no SCIM: every change is a manual work item"]
        else:
            gaps = [
                text
                for flag, text in (
                    ("supports_create", "account creation is manual"),
                    ("supports_update", "attribute changes are not propagated"),
                    (
                        "supports_deactivate",
                        "deactivation is manual: leavers depend on a work item",
                    ),
                    ("supports_entitlements", "role changes are not propagated"),
                )
                if not flags[flag]
            ]
            if not connected:
                gaps.append("no connector configured: every change is a manual work item")
        if not gaps:
            return "None: every change is carried out over SCIM."
        return format_html(
            '{}<ul class="lc-risks">{}</ul>',
            note,
            format_html_join("", "<li>{}</li>", ((g,) for g in gaps)),
        )
