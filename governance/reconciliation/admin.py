"""Reconciliation in the admin: import an application's actual state (CSV with column mapping
and a dry-run preview, or a SCIM read), follow the runs and the drift over time, and triage
findings. Every change is a service call; app owners see only their applications."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join

from governance.access.models import Application
from governance.core.actor import Actor
from governance.core.admin_base import AuditedModelAdmin, ReadOnlyAdmin, sees_everything
from governance.core.errors import DomainError
from governance.reconciliation import imports, selectors, services
from governance.reconciliation.models import (
    DriftSnapshot,
    Finding,
    ReconciliationRun,
    ReconciliationSettings,
)

CSS = {"all": ("steward/reconciliation.css",)}
FS = Finding.Status


def _badge(css: str, label: str):
    return format_html('<span class="rc-badge {}">{}</span>', css, label)


def _applications_for(user):
    apps = Application.objects.order_by("name")
    if user.is_security_admin:
        return apps
    return apps.filter(owners=user)


def _context(model_admin, request, **extra):
    request.current_app = model_admin.admin_site.name
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "subtitle": None,
        **extra,
    }


# --------------------------------------------------------------------------- forms


class UploadForm(forms.Form):
    application = forms.ModelChoiceField(queryset=Application.objects.none())
    file = forms.FileField(
        label="CSV export",
        help_text=f"UTF-8 CSV with a header row, at most "
        f"{imports.MAX_UPLOAD_BYTES // (1024 * 1024)} MB. One row per account; entitlements "
        "separated by “;”.",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["application"].queryset = _applications_for(user)


class ScimStartForm(forms.Form):
    application = forms.ModelChoiceField(queryset=Application.objects.none())

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["application"].queryset = _applications_for(user).filter(
            provisioning_mode__in=services.SCIM_MODES
        )


class MappingForm(forms.Form):
    """Which column of the file holds each of our fields."""

    def __init__(self, *args, headers: list[str], initial_fields: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "— not in the file —")] + [(h, h) for h in headers]
        for key, label, required in imports.FIELDS:
            self.fields[key] = forms.ChoiceField(
                label=label + (" (required)" if required else ""),
                choices=choices,
                required=False,
                initial=initial_fields.get(key, ""),
            )

    def mapping(self) -> dict[str, str]:
        return {k: v for k, v in self.cleaned_data.items() if v}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Why is this a false positive?",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=2000,
    )


# --------------------------------------------------------------------------- runs


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(AuditedModelAdmin):
    app_owner_lookup = "application__owners"
    list_display = (
        "run_col",
        "application",
        "source",
        "status_col",
        "accounts_seen",
        "grants_seen",
        "findings_opened",
        "findings_closed",
        "tasks_verified",
        "created_at",
    )
    list_display_links = ("run_col",)
    list_filter = ("status", "source", ("application", admin.RelatedOnlyFieldListFilter))
    search_fields = ("application__name", "upload_name", "error")
    list_select_related = ("application",)
    show_full_result_count = False
    actions = None
    readonly_fields = (
        "application",
        "source",
        "status_col",
        "started_by",
        "upload_name",
        "progress",
        "accounts_seen",
        "grants_seen",
        "findings_opened",
        "findings_closed",
        "tasks_verified",
        "counts_display",
        "row_errors_display",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
    fieldsets = (
        (None, {"fields": ("application", "source", "status_col", "started_by", "upload_name")}),
        (
            "Progress and results",
            {
                "fields": (
                    "progress",
                    "accounts_seen",
                    "grants_seen",
                    "findings_opened",
                    "findings_closed",
                    "tasks_verified",
                    "counts_display",
                )
            },
        ),
        ("Problems", {"fields": ("error", "row_errors_display")}),
        ("Timeline", {"fields": ("created_at", "started_at", "finished_at")}),
    )

    class Media:
        css = CSS

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="reconciliation_reconciliationrun_preview",
            ),
            path(
                "read-scim/",
                self.admin_site.admin_view(self.scim_view),
                name="reconciliation_reconciliationrun_scim",
            ),
        ]
        return custom + super().get_urls()

    @admin.display(description="Run", ordering="pk")
    def run_col(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="Status", ordering="status")
    def status_col(self, obj):
        return _badge(f"rc-run-{obj.status}", obj.get_status_display())

    @admin.display(description="Progress")
    def progress(self, obj):
        pct = selectors.progress_percent(obj)
        if obj.status in (ReconciliationRun.Status.PREVIEW, ReconciliationRun.Status.QUEUED):
            return "Not started"
        if pct is None:
            return f"{obj.rows_processed:,} rows read"
        return format_html(
            '<div class="rc-progress" title="{}%"><span style="width:{}%"></span></div> '
            "{} of {} rows",
            pct,
            pct,
            f"{obj.rows_processed:,}",
            f"{obj.rows_total:,}",
        )

    @admin.display(description="Unaccepted findings by kind after the run")
    def counts_display(self, obj):
        if not obj.counts_by_kind:
            return "—"
        labels = dict(Finding.Kind.choices)
        return (
            ", ".join(
                f"{labels.get(k, k)}: {n}" for k, n in sorted(obj.counts_by_kind.items()) if n
            )
            or "none"
        )

    @admin.display(description="Rows that could not be read")
    def row_errors_display(self, obj):
        if not obj.row_errors:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>Line {}: {}</li>",
                ((e.get("line"), e.get("message")) for e in obj.row_errors),
            ),
        )

    # ---- pages

    def changelist_view(self, request, extra_context=None):
        extra = dict(extra_context or {})
        extra["scim_url"] = reverse("admin:reconciliation_reconciliationrun_scim")
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        run = self.get_object(request, unquote(object_id))
        if run is not None:
            extra.update(
                run=run,
                chart=selectors.drift_chart(run.application_id),
                preview_url=reverse(
                    "admin:reconciliation_reconciliationrun_preview", args=[run.pk]
                ),
                findings_url=reverse("admin:reconciliation_finding_changelist")
                + f"?application__id__exact={run.application_id}",
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def add_view(self, request, form_url="", extra_context=None):
        """Upload a CSV export: kept for a dry-run preview, nothing observed yet."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES, user=request.user)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    run = services.run_upload_csv(
                        actor=Actor.for_user(request.user),
                        application=form.cleaned_data["application"],
                        upload=upload,
                        name=upload.name,
                    )
                except DomainError as exc:
                    form.add_error(exc.field if exc.field in form.fields else None, exc.message)
                else:
                    return HttpResponseRedirect(
                        reverse("admin:reconciliation_reconciliationrun_preview", args=[run.pk])
                    )
        else:
            form = UploadForm(user=request.user, initial=request.GET.dict())
        context = _context(self, request, title="Import a CSV export", form=form)
        return TemplateResponse(request, "admin/reconciliation/upload.html", context)

    def preview_view(self, request, object_id):
        """Map the file's columns, see the first rows parsed, then confirm (or cancel)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = self.get_object(request, unquote(object_id))
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
        if run.status != ReconciliationRun.Status.PREVIEW:
            self.message_user(
                request,
                f"This run is {run.get_status_display().lower()}; only an upload awaiting "
                "confirmation has a preview.",
                messages.WARNING,
            )
            return HttpResponseRedirect(change_url)
        can_act = self.has_add_permission(request) and services.may_manage(
            request.user, run.application
        )
        headers = services.run_headers(run)
        fields = services.run_fields(run)
        actor = Actor.for_user(request.user)
        if request.method == "POST":
            if not can_act:
                raise PermissionDenied
            if "cancel" in request.POST:
                services.run_cancel(actor=actor, run=run)
                self.message_user(request, "The upload was cancelled; nothing was imported.")
                return HttpResponseRedirect(change_url)
            form = MappingForm(request.POST, headers=headers, initial_fields=fields)
            preview_mapping = fields
            if form.is_valid():
                mapping = preview_mapping = form.mapping()
                try:
                    if "confirm" in request.POST:
                        services.run_confirm(actor=actor, run=run, mapping=mapping)
                        self.message_user(
                            request,
                            "Import queued: the run reads the file, compares it with what "
                            "Steward intends and opens findings. Follow its progress here.",
                            messages.SUCCESS,
                        )
                        return HttpResponseRedirect(change_url)
                    run = services.run_set_mapping(actor=actor, run=run, mapping=mapping)
                    fields = services.run_fields(run)
                except DomainError as exc:
                    form.add_error(None, exc.message)
        else:
            form = MappingForm(headers=headers, initial_fields=fields)
            preview_mapping = fields
        rows, errors = services.run_preview(run, preview_mapping)
        mapped = [(key, label) for key, label, _r in imports.FIELDS if preview_mapping.get(key)]
        context = _context(
            self,
            request,
            title=f"Preview: {run.upload_name} for {run.application}",
            run=run,
            form=form,
            rows=rows,
            row_errors=errors,
            mapped=mapped,
            can_act=can_act,
            missing_required=[
                label for key, label, req in imports.FIELDS if req and not preview_mapping.get(key)
            ],
            preview_limit=imports.PREVIEW_ROWS,
        )
        return TemplateResponse(request, "admin/reconciliation/preview.html", context)

    def scim_view(self, request):
        """Start a read of a SCIM application's actual state now."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = ScimStartForm(request.POST, user=request.user)
            if form.is_valid():
                try:
                    run = services.run_start_scim(
                        actor=Actor.for_user(request.user),
                        application=form.cleaned_data["application"],
                    )
                except DomainError as exc:
                    form.add_error("application", exc.message)
                else:
                    self.message_user(
                        request, f"Reading {run.application} over SCIM.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(
                        reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
                    )
        else:
            form = ScimStartForm(user=request.user, initial=request.GET.dict())
        context = _context(self, request, title="Read an application over SCIM", form=form)
        return TemplateResponse(request, "admin/reconciliation/start_scim.html", context)


# --------------------------------------------------------------------------- findings


class FindingAdminForm(forms.ModelForm):
    class Meta:
        model = Finding
        fields: list[str] = []


@admin.register(Finding)
class FindingAdmin(AuditedModelAdmin):
    app_owner_lookup = "application__owners"
    list_display = (
        "severity_col",
        "kind",
        "subject",
        "application",
        "status_col",
        "owner",
        "opened_at",
        "last_seen_run",
    )
    list_display_links = ("subject",)
    list_filter = (
        "kind",
        "severity",
        "status",
        ("application", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("subject", "fingerprint", "account__username", "application__name")
    list_select_related = ("application", "owner", "last_seen_run")
    show_full_result_count = False
    actions = ["remediate", "send_to_review", "mark_false_positive"]
    readonly_fields = (
        "kind",
        "severity_col",
        "status_col",
        "subject",
        "application",
        "owner",
        "account",
        "identity",
        "nhi",
        "entitlement",
        "evidence_display",
        "task",
        "review_item",
        "suppressed_by",
        "control",
        "exception",
        "first_seen_run",
        "last_seen_run",
        "opened_at",
        "resolved_at",
        "resolution",
        "triaged_by",
        "triaged_at",
        "fingerprint",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "kind",
                    "severity_col",
                    "status_col",
                    "subject",
                    "application",
                    "owner",
                )
            },
        ),
        ("What it concerns", {"fields": ("account", "identity", "nhi", "entitlement")}),
        ("Evidence", {"fields": ("evidence_display", "first_seen_run", "last_seen_run")}),
        (
            "Triage",
            {
                "fields": (
                    "task",
                    "review_item",
                    "suppressed_by",
                    "control",
                    "exception",
                    "triaged_by",
                    "triaged_at",
                    "resolution",
                    "opened_at",
                    "resolved_at",
                    "fingerprint",
                )
            },
        ),
    )

    class Media:
        css = CSS

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None:
            return False  # findings change only through their triage actions
        return super().has_change_permission(request)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related(
                "application",
                "owner",
                "account",
                "identity",
                "nhi",
                "entitlement",
                "task",
                "review_item",
                "first_seen_run",
                "last_seen_run",
                "triaged_by",
            )
        )

    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/triage/<str:action>/",
                self.admin_site.admin_view(self.triage_view),
                name="reconciliation_finding_triage",
            )
        ]
        return custom + super().get_urls()

    @admin.display(description="Severity", ordering="severity")
    def severity_col(self, obj):
        return _badge(f"rc-sev-{obj.severity}", obj.get_severity_display())

    @admin.display(description="Status", ordering="status")
    def status_col(self, obj):
        return _badge(f"rc-st-{obj.status}", obj.get_status_display())

    @admin.display(description="Evidence")
    def evidence_display(self, obj):
        if not obj.evidence:
            return "—"
        return format_html(
            '<pre class="rc-pre">{}</pre>', json.dumps(obj.evidence, indent=2, default=str)
        )

    def _exception_url(self, finding: Finding) -> str | None:
        try:
            base = reverse("admin:risk_accessexception_add")
        except NoReverseMatch:
            return None
        params = {
            "application": finding.application_id,
            "finding": finding.pk,
            "account": finding.account_id or "",
            "entitlement": finding.entitlement_id or "",
            "title": f"Accept: {finding.subject}"[:200],
        }
        return base + "?" + urlencode({k: v for k, v in params.items() if v != ""})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        finding = self.get_object(request, unquote(object_id))
        if finding is not None:
            can_triage = (
                super().has_change_permission(request)
                and finding.application is not None
                and services.may_manage(request.user, finding.application)
            )
            triage = {}
            if can_triage and finding.status in services.TRIAGEABLE:
                for action in ("remediate", "review", "false-positive"):
                    if action == "review" and finding.entitlement_id is None:
                        continue
                    triage[action.replace("-", "_")] = reverse(
                        "admin:reconciliation_finding_triage", args=[finding.pk, action]
                    )
                exception_url = self._exception_url(finding)
                if exception_url:
                    triage["exception"] = exception_url
            elif can_triage and finding.status == FS.IN_REVIEW:
                triage["false_positive"] = reverse(
                    "admin:reconciliation_finding_triage", args=[finding.pk, "false-positive"]
                )
            extra.update(finding=finding, triage=triage)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    # ---- triage

    TRIAGE = {
        "remediate": (
            "Remediate",
            "Ask the application to remove the drift: disable the account, revoke the excess "
            "entitlement or grant the missing one — over SCIM where it can, otherwise as a manual "
            "work item for the application's administrator. The finding closes when a later run "
            "shows the drift gone.",
        ),
        "review": (
            "Send to access review",
            "Create a one-item access review for the application owner, who approves (keeps) "
            "or revokes the access.",
        ),
        "false-positive": (
            "Mark as false positive",
            "The finding is closed with your reason; later runs do not raise it again.",
        ),
    }

    def _apply(self, request, action: str, findings, form=None) -> int:
        actor = Actor.for_user(request.user)
        done = 0
        for finding in findings:
            try:
                if action == "remediate":
                    services.finding_remediate(actor=actor, finding=finding)
                elif action == "review":
                    services.finding_send_to_review(actor=actor, finding=finding)
                else:
                    services.finding_mark_false_positive(
                        actor=actor, finding=finding, reason=form.cleaned_data["reason"]
                    )
            except DomainError as exc:
                self.message_user(request, f"{finding}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(
                request,
                f"{self.TRIAGE[action][0]}: done for {done} finding(s).",
                messages.SUCCESS,
            )
        return done

    def _confirm_page(self, request, action, findings, form, *, single=None, action_name=""):
        title, explanation = self.TRIAGE[action]
        context = _context(
            self,
            request,
            title=title,
            explanation=explanation,
            findings=findings,
            form=form,
            single=single,
            action_name=action_name,
            action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        )
        return TemplateResponse(request, "admin/reconciliation/finding_confirm.html", context)

    def _bulk(self, request, queryset, action: str, action_name: str):
        findings = [f for f in queryset if f.status in services.TRIAGEABLE]
        if action == "review":
            findings = [f for f in findings if f.entitlement_id]
        if action == "false-positive":
            findings = [f for f in queryset if f.status in (*services.TRIAGEABLE, FS.IN_REVIEW)]
        if not findings:
            self.message_user(
                request,
                "None of the selected findings can take this action; nothing was changed.",
                messages.WARNING,
            )
            return None
        form = ReasonForm(request.POST) if action == "false-positive" else None
        if request.POST.get("post") == "yes" and (form is None or form.is_valid()):
            self._apply(request, action, findings, form)
            return None
        if form is not None and request.POST.get("post") != "yes":
            form = ReasonForm()
        return self._confirm_page(request, action, findings, form, action_name=action_name)

    @admin.action(description="Remediate (disable, revoke or grant)", permissions=["change"])
    def remediate(self, request, queryset):
        return self._bulk(request, queryset, "remediate", "remediate")

    @admin.action(description="Send to access review", permissions=["change"])
    def send_to_review(self, request, queryset):
        return self._bulk(request, queryset, "review", "send_to_review")

    @admin.action(description="Mark as false positive", permissions=["change"])
    def mark_false_positive(self, request, queryset):
        return self._bulk(request, queryset, "false-positive", "mark_false_positive")

    def triage_view(self, request, object_id, action):
        if action not in self.TRIAGE:
            return HttpResponseRedirect(reverse("admin:reconciliation_finding_changelist"))
        if not self.has_view_permission(request):
            raise PermissionDenied
        finding = self.get_object(request, unquote(object_id))
        if finding is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not super().has_change_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:reconciliation_finding_change", args=[finding.pk])
        form = ReasonForm(request.POST or None) if action == "false-positive" else None
        if request.method == "POST" and (form is None or form.is_valid()):
            self._apply(request, action, [finding], form)
            return HttpResponseRedirect(change_url)
        return self._confirm_page(request, action, [finding], form, single=finding)


# --------------------------------------------------------------------------- snapshots, settings


@admin.register(DriftSnapshot)
class DriftSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("application", "kind", "open_count", "taken_at", "run")
    list_filter = ("kind", ("application", admin.RelatedOnlyFieldListFilter))
    search_fields = ("application__name",)
    list_select_related = ("application", "run__application")
    show_full_result_count = False

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if sees_everything(request.user):
            return qs
        return qs.filter(application__owners=request.user).distinct()


class SettingsForm(forms.ModelForm):
    class Meta:
        model = ReconciliationSettings
        fields = ("application", "dormant_after_days", "scheduled", "every_hours")


@admin.register(ReconciliationSettings)
class ReconciliationSettingsAdmin(AuditedModelAdmin):
    """Per-application thresholds and schedule. Whoever may start runs of an application may
    set them (security admins, the application's owners)."""

    app_owner_lookup = "application__owners"
    form = SettingsForm
    list_display = ("application", "dormant_after_days", "scheduled", "every_hours", "updated_at")
    search_fields = ("application__name",)
    list_select_related = ("application",)

    class Media:
        css = CSS

    def _may(self, request, perm: str) -> bool:
        return request.user.is_active and request.user.has_perm(f"reconciliation.{perm}")

    def has_view_permission(self, request, obj=None):
        return self._may(request, "view_reconciliationrun")

    def has_add_permission(self, request):
        return self._may(request, "add_reconciliationrun")

    def has_change_permission(self, request, obj=None):
        if not self._may(request, "add_reconciliationrun"):
            return False
        return obj is None or services.may_manage(request.user, obj.application)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_readonly_fields(self, request, obj=None):
        return ("application",) if obj is not None else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "application":
            kwargs["queryset"] = _applications_for(request.user).exclude(
                reconciliation_settings__isnull=False
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra["chart"] = selectors.drift_chart(obj.application_id)
        return super().change_view(request, object_id, form_url, extra_context=extra)
