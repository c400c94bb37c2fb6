"""Exceptions and compensating controls in the admin.

- Application owners register exceptions and controls for the applications they own (the
  forms offer only those), edit drafts and submit them; direct links to other applications'
  rows answer 404. Security admins see everything, work the *exception queue* (submitted,
  oldest first) and approve or reject with a comment on a confirmation page; they also revoke.
  Auditors read. Every change goes through :mod:`governance.risk.services`.
- Expiry is shown everywhere as days left, coloured as it nears; a filter lists what expires
  within 30 days.
- Controls show when they are overdue; their evidence is listed on the control's page and
  recorded through an upload form. Evidence files are served only as downloads.
"""

from __future__ import annotations

import os
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminDateWidget, AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from governance.access.models import Account, Application, Entitlement
from governance.core.actor import Actor
from governance.core.admin_base import sees_everything
from governance.core.errors import DomainError
from governance.core.uploads import ACCEPTED_LABEL, MAX_EVIDENCE_BYTES, content_type_for
from governance.nhi.models import NonHumanIdentity
from governance.portal.models import User
from governance.reconciliation.models import Finding
from governance.risk import services
from governance.risk.models import AccessException, CompensatingControl, ControlEvidence
from governance.risk.selectors import (
    NEEDS_CONTROL_MODES,
    exception_queue,
    is_security_admin,
    linkable_controls,
    manages_application,
    visible_controls,
    visible_exceptions,
)

CSS = {"all": ("steward/risk.css",)}
Status = AccessException.Status
ControlStatus = CompensatingControl.Status
LIVE = (Status.DRAFT, Status.SUBMITTED, Status.APPROVED)


def _today():
    return timezone.localdate()


def _badge(kind: str, value: str, label: str):
    return format_html('<span class="rk-badge rk-{}-{}">{}</span>', kind, value or "none", label)


def _flag(level: str, label: str):
    return format_html('<span class="rk-flag rk-flag-{}">{}</span>', level, label)


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "—"


def days_left_html(exception: AccessException, today=None):
    """Days until expiry, coloured: red within a week (or past), amber within 30 days."""
    if exception.status not in LIVE:
        return format_html('<span class="rk-quiet">{}</span>', exception.get_status_display())
    left = (exception.expires_on - (today or _today())).days
    if left < 0:
        return _flag("bad", f"Expired {-left} day{'s' * (left != -1)} ago")
    if left == 0:
        return _flag("bad", "Last day")
    label = f"{left} day{'s' * (left != 1)}"
    if left <= 7:
        return _flag("bad", label)
    if left <= 30:
        return _flag("warn", label)
    return _flag("ok", label)


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


def _apply_errors(form, exc: DomainError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


# --------------------------------------------------------------------------- exceptions


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [
            ("30", "Expires within 30 days"),
            ("7", "Expires within 7 days"),
            ("past", "Expiry date passed"),
        ]

    def queryset(self, request, queryset):
        today = _today()
        if self.value() in ("30", "7"):
            return queryset.filter(
                status=Status.APPROVED,
                expires_on__gte=today,
                expires_on__lte=today + timedelta(days=int(self.value())),
            )
        if self.value() == "past":
            return queryset.filter(expires_on__lt=today)
        return queryset


class AccessExceptionForm(forms.ModelForm):
    """The draft's fields; every rule is checked by the service before anything is saved."""

    user: User | None = None

    class Meta:
        model = AccessException
        fields = (*services.EXCEPTION_FIELDS, "controls")
        widgets = {
            "expires_on": AdminDateWidget,
            "controls": forms.CheckboxSelectMultiple,
            "justification": forms.Textarea(attrs={"rows": 4, "cols": 80}),
        }
        help_texts = {
            "controls": "What is done instead. Required (at least one active control) for "
            "applications without full SCIM.",
            "expires_on": "Mandatory. Exceptions are time-boxed: at most the configured number "
            "of days ahead.",
            "entitlement": "Optional: narrow the exception to one entitlement of the application.",
            "account": "Optional: narrow it to one account (by number).",
            "nhi": "Optional: narrow it to one non-human identity with an account in the "
            "application.",
            "finding": "Optional: accept exactly one finding.",
        }

    def clean(self):
        data = super().clean()
        if self.errors or self.user is None:
            return data
        values = {name: data.get(name) for name in services.EXCEPTION_FIELDS}
        try:
            services.exception_validate(
                actor=Actor.for_user(self.user),
                values=values,
                controls=list(data.get("controls") or []),
            )
        except DomainError as exc:
            _apply_errors(self, exc)
        return data


@admin.register(AccessException)
class AccessExceptionAdmin(admin.ModelAdmin):
    form = AccessExceptionForm
    list_display = (
        "title",
        "application",
        "type_col",
        "status_col",
        "risk_col",
        "expires_on",
        "days_left_col",
        "requested_by",
        "approver",
    )
    list_filter = (
        "status",
        ExpiryFilter,
        "exception_type",
        "risk_rating",
        ("application", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("title", "justification", "application__name")
    list_select_related = ("application", "requested_by", "approver")
    raw_id_fields = ("account", "nhi", "finding")
    show_full_result_count = False
    ordering = ("expires_on", "pk")
    status_fields = (
        "status_col",
        "days_left_col",
        "requested_by",
        "submitted_at",
        "approver",
        "decided_at",
        "decision_comment",
        "ended_at",
        "end_comment",
        "renewal_col",
    )
    effect_fields = ("controls_col", "suppressed_col")

    class Media:
        css = CSS

    # ---- scoping and permissions

    def get_queryset(self, request):
        return visible_exceptions(request.user).select_related(
            "application", "requested_by", "approver", "renewal_of"
        )

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return obj.status == Status.DRAFT and manages_application(request.user, obj.application)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return self.status_fields + self.effect_fields

    def get_fieldsets(self, request, obj=None):
        main = [*services.EXCEPTION_FIELDS, "controls"]
        if obj is None:
            return [(None, {"fields": main})]
        if not self.has_change_permission(request, obj):
            main = [f for f in main if f != "controls"]
        return [
            ("Exception", {"fields": main}),
            ("Status", {"fields": self.status_fields}),
            ("Effect", {"fields": self.effect_fields}),
        ]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type("ScopedAccessExceptionForm", (form,), {"user": request.user})

    def _apps(self, request):
        if is_security_admin(request.user):
            return Application.objects.all()
        return Application.objects.filter(owners=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        apps = self._apps(request)
        querysets = {
            "application": apps,
            "entitlement": Entitlement.objects.filter(application__in=apps).select_related(
                "application"
            ),
            "account": Account.objects.filter(application__in=apps),
            "nhi": NonHumanIdentity.objects.filter(
                Q(application__in=apps)
                | Q(pk__in=Account.objects.filter(application__in=apps).values("nhi"))
            ),
            "finding": Finding.objects.filter(application__in=apps),
        }
        if db_field.name in querysets:
            kwargs["queryset"] = querysets[db_field.name]
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "controls":
            kwargs["queryset"] = linkable_controls(request.user).select_related("application")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # ---- saving through the services

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data.get(name) for name in services.EXCEPTION_FIELDS}
        controls = list(form.cleaned_data.get("controls") or [])
        try:
            if change:
                saved = services.exception_update(
                    actor=_actor(request), exception=obj, controls=controls, **values
                )
            else:
                saved = services.exception_create(
                    actor=_actor(request), controls=controls, **values
                )
        except DomainError as exc:
            request._risk_error = exc.message
            return
        obj.pk = saved.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        """The service saved the linked controls with the exception."""

    def _failed(self, request):
        error = getattr(request, "_risk_error", None)
        if error:
            self.message_user(request, f"Not saved: {error}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:risk_accessexception_changelist"))
        return None

    def log_addition(self, request, obj, message):
        return (
            None
            if getattr(request, "_risk_error", None)
            else super().log_addition(request, obj, message)
        )

    def log_change(self, request, obj, message):
        return (
            None
            if getattr(request, "_risk_error", None)
            else super().log_change(request, obj, message)
        )

    def response_add(self, request, obj, post_url_continue=None):
        failed = self._failed(request)
        if failed:
            return failed
        self.message_user(
            request,
            f"Draft “{obj}” saved. Submit it for approval when it is complete.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:risk_accessexception_change", args=[obj.pk]))

    def response_change(self, request, obj):
        return self._failed(request) or super().response_change(request, obj)

    # ---- columns

    @admin.display(description="Type", ordering="exception_type")
    def type_col(self, obj):
        return obj.get_exception_type_display()

    @admin.display(description="Status", ordering="status")
    def status_col(self, obj):
        return _badge("status", obj.status, obj.get_status_display())

    @admin.display(description="Risk", ordering="risk_rating")
    def risk_col(self, obj):
        return _badge("risk", obj.risk_rating, obj.get_risk_rating_display())

    @admin.display(description="Days left", ordering="expires_on")
    def days_left_col(self, obj):
        return days_left_html(obj)

    @admin.display(description="Renewal")
    def renewal_col(self, obj):
        parts = []
        if obj.renewal_of_id:
            url = reverse("admin:risk_accessexception_change", args=[obj.renewal_of_id])
            parts.append(format_html('Renews <a href="{}">{}</a>', url, obj.renewal_of))
        for renewal in obj.renewals.order_by("pk"):
            url = reverse("admin:risk_accessexception_change", args=[renewal.pk])
            parts.append(
                format_html(
                    'Renewed by <a href="{}">exception {}</a> ({})',
                    url,
                    renewal.pk,
                    renewal.get_status_display().lower(),
                )
            )
        if not parts:
            return "Not a renewal, not renewed."
        return format_html_join(mark_safe("<br>"), "{}", ((p,) for p in parts))

    @admin.display(description="Compensating controls")
    def controls_col(self, obj):
        controls = list(obj.controls.select_related("application").order_by("name"))
        if not controls:
            if obj.application.provisioning_mode in NEEDS_CONTROL_MODES:
                return _flag("bad", "None linked: approval needs at least one active control")
            return "None linked."
        rows = []
        for control in controls:
            url = reverse("admin:risk_compensatingcontrol_change", args=[control.pk])
            state = (
                _flag("bad", "Overdue")
                if control.status == ControlStatus.ACTIVE and control.next_due_on < _today()
                else _badge("control", control.status, control.get_status_display())
            )
            rows.append((url, control.name, control.get_frequency_display().lower(), state))
        return format_html(
            '<ul class="rk-list">{}</ul>',
            format_html_join("", '<li><a href="{}">{}</a> ({}) {}</li>', rows),
        )

    @admin.display(description="Findings accepted")
    def suppressed_col(self, obj):
        count = obj.suppressed_findings.count()
        if not count:
            return "None suppressed at the moment."
        return f"{count} finding{'s' * (count != 1)} accepted by this exception."

    # ---- pages

    def get_urls(self):
        def view(fn, route, name):
            return path(route, self.admin_site.admin_view(fn), name=f"risk_accessexception_{name}")

        return [
            view(self.queue_view, "queue/", "queue"),
            view(self.submit_view, "<path:object_id>/submit/", "submit"),
            view(self.approve_view, "<path:object_id>/approve/", "approve"),
            view(self.reject_view, "<path:object_id>/reject/", "reject"),
            view(self.revoke_view, "<path:object_id>/revoke/", "revoke"),
            view(self.renew_view, "<path:object_id>/renew/", "renew"),
        ] + super().get_urls()

    def _transitions(self, request, obj) -> list[tuple[str, str, str]]:
        """(label, url, style) of what the signed-in user may do with ``obj`` now."""
        user = request.user
        manages = manages_application(user, obj.application) and self.has_add_permission(request)
        security = is_security_admin(user) and super().has_change_permission(request)
        out = []

        def url(name):
            return reverse(f"admin:risk_accessexception_{name}", args=[obj.pk])

        if obj.status == Status.DRAFT and manages:
            out.append(("Submit for approval", url("submit"), "primary"))
        if obj.status == Status.SUBMITTED and security and obj.requested_by_id != user.pk:
            out.append(("Approve", url("approve"), "primary"))
            out.append(("Reject", url("reject"), "danger"))
        if obj.status == Status.APPROVED and security:
            out.append(("Revoke", url("revoke"), "danger"))
        if (
            obj.status in (Status.APPROVED, Status.EXPIRED)
            and manages
            and all(r.status == Status.REJECTED for r in obj.renewals.all())
        ):
            out.append(("Renew", url("renew"), "plain"))
        return out

    def changelist_view(self, request, extra_context=None):
        extra = {
            "queue_url": reverse("admin:risk_accessexception_queue"),
            "queue_count": exception_queue().count() if is_security_admin(request.user) else None,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        extra = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("There is no exception with this number among those you can see.")
        extra.update(
            exception=obj,
            transitions=self._transitions(request, obj),
            four_eyes=obj.status == Status.SUBMITTED and obj.requested_by_id == request.user.pk,
            days_left=(obj.expires_on - _today()).days,
        )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def history_view(self, request, object_id, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404("There is no exception with this number among those you can see.")
        return super().history_view(request, object_id, extra_context)

    def _context(self, request, title, **extra):
        request.current_app = self.admin_site.name
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "subtitle": None,
            **extra,
        }

    def queue_view(self, request):
        """Submitted exceptions, oldest first, for security admins to decide."""
        if not (is_security_admin(request.user) or sees_everything(request.user)):
            raise PermissionDenied
        page = Paginator(exception_queue(), 50).get_page(request.GET.get("p"))
        rows = [
            (e, (timezone.now() - e.submitted_at).days if e.submitted_at else 0)
            for e in page.object_list
        ]
        context = self._context(
            request,
            "Exception queue",
            rows=rows,
            page_obj=page,
            can_decide=is_security_admin(request.user),
            today=_today(),
            changelist_url=reverse("admin:risk_accessexception_changelist"),
        )
        return TemplateResponse(request, "admin/risk/exception_queue.html", context)

    def _object_or_404(self, request, object_id) -> AccessException:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("There is no exception with this number among those you can see.")
        return obj

    def _transition(
        self,
        request,
        object_id,
        *,
        title,
        intro,
        submit,
        run,
        form_class,
        done,
        allowed,
        from_states,
        danger=False,
        to_queue=False,
    ):
        obj = self._object_or_404(request, object_id)
        change_url = reverse("admin:risk_accessexception_change", args=[obj.pk])
        if not allowed(obj):
            raise PermissionDenied
        if obj.status not in from_states:
            self.message_user(
                request,
                f"The exception is {obj.get_status_display().lower()}: “{title}” is not "
                "possible now.",
                messages.WARNING,
            )
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            form = form_class(request.POST)
            if form.is_valid():
                try:
                    result = run(obj, form.cleaned_data)
                except DomainError as exc:
                    _apply_errors(form, exc)
                else:
                    self.message_user(request, done(result), messages.SUCCESS)
                    if to_queue and exception_queue().exists():
                        return HttpResponseRedirect(reverse("admin:risk_accessexception_queue"))
                    target = result if isinstance(result, AccessException) else obj
                    return HttpResponseRedirect(
                        reverse("admin:risk_accessexception_change", args=[target.pk])
                    )
        else:
            form = form_class()
        context = self._context(
            request,
            title,
            exception=obj,
            intro=intro,
            form=form,
            submit_label=submit,
            danger=danger,
            change_url=change_url,
            days_left=days_left_html(obj),
            controls=list(obj.controls.select_related("application").order_by("name")),
        )
        return TemplateResponse(request, "admin/risk/exception_transition.html", context)

    def _may_manage(self, request):
        return lambda obj: (
            self.has_add_permission(request) and manages_application(request.user, obj.application)
        )

    def _may_decide(self, request):
        return lambda obj: is_security_admin(request.user) and self.has_change_permission(request)

    def submit_view(self, request, object_id):
        return self._transition(
            request,
            object_id,
            title="Submit the exception for approval",
            intro="A security admin other than you will approve or reject it. It can no longer "
            "be edited once submitted.",
            submit="Yes, submit it",
            form_class=NoCommentForm,
            run=lambda obj, _data: services.exception_submit(actor=_actor(request), exception=obj),
            done=lambda e: f"“{e}” is submitted and waits in the security exception queue.",
            allowed=self._may_manage(request),
            from_states=(Status.DRAFT,),
        )

    def approve_view(self, request, object_id):
        return self._transition(
            request,
            object_id,
            title="Approve the exception",
            intro="Approving accepts the deviation until the expiry date: findings it covers are "
            "suppressed and it shows as context on review items of the application.",
            submit="Yes, approve it",
            form_class=ApproveForm,
            run=lambda obj, data: services.exception_approve(
                actor=_actor(request), exception=obj, comment=data.get("comment", "")
            ),
            done=lambda e: f"Approved “{e}” until {e.expires_on:%Y-%m-%d}.",
            allowed=self._may_decide(request),
            from_states=(Status.SUBMITTED,),
            to_queue=True,
        )

    def reject_view(self, request, object_id):
        return self._transition(
            request,
            object_id,
            title="Reject the exception",
            intro="The requester sees your comment; they can file a new request.",
            submit="Yes, reject it",
            form_class=RequiredCommentForm,
            run=lambda obj, data: services.exception_reject(
                actor=_actor(request), exception=obj, comment=data["comment"]
            ),
            done=lambda e: f"Rejected “{e}”.",
            allowed=self._may_decide(request),
            from_states=(Status.SUBMITTED,),
            danger=True,
            to_queue=True,
        )

    def revoke_view(self, request, object_id):
        return self._transition(
            request,
            object_id,
            title="Revoke the exception",
            intro="Revoking ends the exception now: the findings it accepted are open again at "
            "once.",
            submit="Yes, revoke it",
            form_class=RequiredCommentForm,
            run=lambda obj, data: services.exception_revoke(
                actor=_actor(request), exception=obj, comment=data["comment"]
            ),
            done=lambda e: f"Revoked “{e}”.",
            allowed=self._may_decide(request),
            from_states=(Status.APPROVED,),
            danger=True,
        )

    def renew_view(self, request, object_id):
        return self._transition(
            request,
            object_id,
            title="Renew the exception",
            intro="A renewal is a new exception with the same scope and controls and a new "
            "expiry date; it needs approval again. Once approved, it replaces this one.",
            submit="Create the renewal",
            form_class=RenewForm,
            run=lambda obj, data: services.exception_renew(
                actor=_actor(request),
                exception=obj,
                expires_on=data["expires_on"],
                justification=data.get("justification") or None,
                submit=data.get("submit_now", False),
            ),
            done=lambda e: f"Renewal {e.pk} is {e.get_status_display().lower()}.",
            allowed=self._may_manage(request),
            from_states=(Status.APPROVED, Status.EXPIRED),
        )


class NoCommentForm(forms.Form):
    pass


class ApproveForm(forms.Form):
    comment = forms.CharField(
        label="Comment",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Optional: conditions or context for the record.",
    )


class RequiredCommentForm(forms.Form):
    comment = forms.CharField(
        label="Reason",
        required=True,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Required: the requester and the auditors read it.",
        error_messages={"required": "Give a reason."},
    )


class RenewForm(forms.Form):
    expires_on = forms.DateField(
        label="New expiry date",
        widget=AdminDateWidget,
        help_text="Mandatory; not in the past and within the maximum allowed.",
    )
    justification = forms.CharField(
        label="Justification",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Leave blank to keep the current justification.",
    )
    submit_now = forms.BooleanField(label="Submit for approval now", required=False, initial=True)


# --------------------------------------------------------------------------- controls


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        overdue = Q(status=ControlStatus.ACTIVE, next_due_on__lt=_today())
        if self.value() == "yes":
            return queryset.filter(overdue)
        if self.value() == "no":
            return queryset.exclude(overdue)
        return queryset


def _overdue_html(control: CompensatingControl):
    due = f"{control.next_due_on:%Y-%m-%d}"
    if control.status != ControlStatus.ACTIVE:
        return format_html('<span class="rk-quiet">{}</span>', due)
    late = (_today() - control.next_due_on).days
    if late > 0:
        return format_html("{} {}", due, _flag("bad", f"Overdue {late} day{'s' * (late != 1)}"))
    return due


class CompensatingControlForm(forms.ModelForm):
    user: User | None = None

    class Meta:
        model = CompensatingControl
        fields = services.CONTROL_FIELDS
        widgets = {
            "next_due_on": AdminDateWidget,
            "description": forms.Textarea(attrs={"rows": 3, "cols": 80}),
        }
        help_texts = {
            "application": "Leave empty only for an organisation-wide control (security admins).",
            "owner": "The person who performs the control and records its evidence.",
            "next_due_on": "When evidence is next due; each recorded performance moves it on "
            "by the frequency.",
        }

    def clean(self):
        data = super().clean()
        if self.errors or self.user is None:
            return data
        try:
            services.control_validate(
                actor=Actor.for_user(self.user),
                values={name: data.get(name) for name in services.CONTROL_FIELDS},
            )
        except DomainError as exc:
            _apply_errors(self, exc)
        return data


class EvidenceInline(admin.TabularInline):
    model = ControlEvidence
    verbose_name_plural = "Evidence (most recent first)"
    fields = ("performed_at", "result_col", "performed_by", "note", "file_col", "recorded_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("performed_by")

    @admin.display(description="Result")
    def result_col(self, obj):
        return _badge("result", obj.result, obj.get_result_display())

    @admin.display(description="File")
    def file_col(self, obj):
        return evidence_file_link(obj)


def evidence_file_link(evidence: ControlEvidence):
    if not evidence.file:
        return "—"
    url = reverse("admin:risk_controlevidence_download", args=[evidence.pk])
    return format_html(
        '<a href="{}">{}</a> <span class="rk-quiet">(download, {} KB)</span>',
        url,
        evidence.file_name or os.path.basename(evidence.file.name),
        max(1, (evidence.file_size or 0) // 1024),
    )


@admin.register(CompensatingControl)
class CompensatingControlAdmin(admin.ModelAdmin):
    form = CompensatingControlForm
    list_display = (
        "name",
        "application",
        "kind",
        "frequency",
        "owner",
        "due_col",
        "status_col",
        "last_result_col",
        "evidence_count",
    )
    list_filter = (
        OverdueFilter,
        "status",
        "frequency",
        "kind",
        ("application", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("name", "description", "application__name", "owner__username")
    list_select_related = ("application", "owner")
    show_full_result_count = False
    inlines = [EvidenceInline]
    info_fields = (
        "status_col",
        "due_col",
        "last_performed_at",
        "last_result_col",
        "exceptions_col",
    )

    class Media:
        css = CSS

    def get_queryset(self, request):
        return (
            visible_controls(request.user)
            .select_related("application", "owner")
            .annotate(_evidence=Count("evidence", distinct=True))
        )

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return obj.status != ControlStatus.RETIRED and manages_application(
            request.user, obj.application
        )

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.info_fields

    def get_fieldsets(self, request, obj=None):
        fields = list(services.CONTROL_FIELDS)
        if obj is None:
            return [(None, {"fields": fields})]
        return [("Control", {"fields": fields}), ("Schedule", {"fields": self.info_fields})]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type("ScopedControlForm", (form,), {"user": request.user})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "application" and not is_security_admin(request.user):
            kwargs["queryset"] = Application.objects.filter(owners=request.user)
        if db_field.name == "owner":
            kwargs["queryset"] = User.objects.filter(is_active=True, is_staff=True).order_by(
                "username"
            )
            kwargs.setdefault("initial", request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data.get(name) for name in services.CONTROL_FIELDS}
        try:
            if change:
                saved = services.control_update(actor=_actor(request), control=obj, **values)
            else:
                saved = services.control_create(actor=_actor(request), **values)
        except DomainError as exc:
            request._risk_error = exc.message
            return
        obj.pk = saved.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        """Evidence is recorded through its own form, never through the control's page."""

    def _failed(self, request):
        error = getattr(request, "_risk_error", None)
        if error:
            self.message_user(request, f"Not saved: {error}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:risk_compensatingcontrol_changelist"))
        return None

    def log_addition(self, request, obj, message):
        return (
            None
            if getattr(request, "_risk_error", None)
            else super().log_addition(request, obj, message)
        )

    def log_change(self, request, obj, message):
        return (
            None
            if getattr(request, "_risk_error", None)
            else super().log_change(request, obj, message)
        )

    def response_add(self, request, obj, post_url_continue=None):
        return self._failed(request) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        return self._failed(request) or super().response_change(request, obj)

    # ---- columns

    @admin.display(description="Next due", ordering="next_due_on")
    def due_col(self, obj):
        return _overdue_html(obj)

    @admin.display(description="Status", ordering="status")
    def status_col(self, obj):
        return _badge("control", obj.status, obj.get_status_display())

    @admin.display(description="Last result", ordering="last_result")
    def last_result_col(self, obj):
        if not obj.last_result:
            return format_html('<span class="rk-quiet">{}</span>', "Not performed yet")
        return _badge("result", obj.last_result, obj.get_last_result_display())

    @admin.display(description="Evidence", ordering="_evidence")
    def evidence_count(self, obj):
        return getattr(obj, "_evidence", 0)

    @admin.display(description="Exceptions relying on it")
    def exceptions_col(self, obj):
        rows = [
            (
                reverse("admin:risk_accessexception_change", args=[e.pk]),
                e.title,
                e.get_status_display().lower(),
            )
            for e in obj.exceptions.order_by("expires_on")
        ]
        if not rows:
            return "None."
        return format_html(
            '<ul class="rk-list">{}</ul>',
            format_html_join("", '<li><a href="{}">{}</a> ({})</li>', rows),
        )

    # ---- pages

    def get_urls(self):
        def view(fn, route, name):
            return path(
                route, self.admin_site.admin_view(fn), name=f"risk_compensatingcontrol_{name}"
            )

        return [
            view(self.record_evidence_view, "<path:object_id>/record-evidence/", "evidence"),
            view(self.retire_view, "<path:object_id>/retire/", "retire"),
        ] + super().get_urls()

    def _object_or_404(self, request, object_id) -> CompensatingControl:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("There is no control with this number among those you can see.")
        return obj

    def _can_record(self, request, obj) -> bool:
        return (
            obj.status == ControlStatus.ACTIVE
            and request.user.has_perm("risk.add_controlevidence")
            and services.may_record_evidence(request.user, obj)
        )

    def _can_retire(self, request, obj) -> bool:
        return self.has_change_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("There is no control with this number among those you can see.")
        extra = {
            "control": obj,
            "overdue": obj.status == ControlStatus.ACTIVE and obj.next_due_on < _today(),
            "can_record": self._can_record(request, obj),
            "can_retire": self._can_retire(request, obj),
            "record_url": reverse("admin:risk_compensatingcontrol_evidence", args=[obj.pk]),
            "retire_url": reverse("admin:risk_compensatingcontrol_retire", args=[obj.pk]),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def history_view(self, request, object_id, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404("There is no control with this number among those you can see.")
        return super().history_view(request, object_id, extra_context)

    def record_evidence_view(self, request, object_id):
        control = self._object_or_404(request, object_id)
        if not self._can_record(request, control):
            raise PermissionDenied
        change_url = reverse("admin:risk_compensatingcontrol_change", args=[control.pk])
        if request.method == "POST":
            form = ControlEvidenceForm(request.POST, request.FILES, user=request.user)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    evidence = services.control_record_evidence(
                        actor=_actor(request),
                        control=control,
                        performed_by=data["performed_by"],
                        performed_at=data["performed_at"],
                        result=data["result"],
                        note=data.get("note") or "",
                        file=data.get("file") or None,
                    )
                except DomainError as exc:
                    _apply_errors(form, exc)
                else:
                    control.refresh_from_db()
                    self.message_user(
                        request,
                        f"Recorded: {evidence.get_result_display().lower()}. Next due "
                        f"{control.next_due_on:%Y-%m-%d}.",
                        messages.SUCCESS if evidence.result == "pass" else messages.WARNING,
                    )
                    return HttpResponseRedirect(change_url)
        else:
            form = ControlEvidenceForm(user=request.user)
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Record evidence: {control}",
            "subtitle": None,
            "control": control,
            "form": form,
            "change_url": change_url,
            "due": _overdue_html(control),
            "max_mb": MAX_EVIDENCE_BYTES // (1024 * 1024),
        }
        return TemplateResponse(request, "admin/risk/record_evidence.html", context)

    def retire_view(self, request, object_id):
        control = self._object_or_404(request, object_id)
        if not self._can_retire(request, control):
            raise PermissionDenied
        change_url = reverse("admin:risk_compensatingcontrol_change", args=[control.pk])
        if request.method == "POST":
            form = ApproveForm(request.POST)
            if form.is_valid():
                try:
                    services.control_retire(
                        actor=_actor(request), control=control, comment=form.cleaned_data["comment"]
                    )
                except DomainError as exc:
                    _apply_errors(form, exc)
                else:
                    self.message_user(request, f"Retired “{control}”.", messages.SUCCESS)
                    return HttpResponseRedirect(change_url)
        else:
            form = ApproveForm()
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Retire the control: {control}",
            "subtitle": None,
            "control": control,
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/risk/retire_control.html", context)


class ControlEvidenceForm(forms.Form):
    performed_by = forms.ModelChoiceField(
        label="Performed by",
        queryset=User.objects.none(),
        help_text="Who carried out the control.",
    )
    performed_at = forms.SplitDateTimeField(
        label="Performed at", widget=AdminSplitDateTime, help_text="Not in the future."
    )
    result = forms.ChoiceField(
        label="Result",
        choices=CompensatingControl.Result.choices,
        widget=forms.RadioSelect,
        help_text="Fail or partial opens a finding for security.",
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        help_text="What was checked and what was found. A note or a file is required.",
    )
    file = forms.FileField(
        label="Evidence file",
        required=False,
        allow_empty_file=True,
        help_text=f"Optional: {ACCEPTED_LABEL}, at most "
        f"{MAX_EVIDENCE_BYTES // (1024 * 1024)} MB. Stored with its SHA-256 checksum.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["performed_by"].queryset = User.objects.filter(
            is_active=True, is_staff=True
        ).order_by("username")
        self.fields["performed_by"].initial = user.pk
        if not self.is_bound:
            self.fields["performed_at"].initial = timezone.localtime().replace(
                second=0, microsecond=0
            )


@admin.register(ControlEvidence)
class ControlEvidenceAdmin(admin.ModelAdmin):
    """Evidence is recorded on the control's page; here it is read, and files downloaded."""

    list_display = (
        "control",
        "application_col",
        "result_col",
        "performed_at",
        "performed_by",
        "file_col",
        "recorded_at",
    )
    list_filter = ("result", ("control__application", admin.RelatedOnlyFieldListFilter))
    search_fields = ("control__name", "note", "file_name", "control__application__name")
    list_select_related = ("control__application", "performed_by")
    show_full_result_count = False
    fields = (
        "control_link",
        "result_col",
        "performed_by",
        "performed_at",
        "note",
        "file_col",
        "file_sha256",
        "recorded_at",
    )
    readonly_fields = fields

    class Media:
        css = CSS

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(control__in=visible_controls(request.user))
            .select_related("control__application", "performed_by")
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="risk_controlevidence_download",
            )
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404("There is no evidence with this number among what you can see.")
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Application", ordering="control__application__name")
    def application_col(self, obj):
        return obj.control.application or "Organisation-wide"

    @admin.display(description="Result", ordering="result")
    def result_col(self, obj):
        return _badge("result", obj.result, obj.get_result_display())

    @admin.display(description="File")
    def file_col(self, obj):
        return evidence_file_link(obj)

    @admin.display(description="Control")
    def control_link(self, obj):
        url = reverse("admin:risk_compensatingcontrol_change", args=[obj.control_id])
        return format_html('<a href="{}">{}</a>', url, obj.control)

    def download_view(self, request, object_id):
        """The file, always as a download: never rendered by the browser."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        evidence = self.get_object(request, unquote(object_id))
        if evidence is None or not evidence.file:
            raise Http404("No evidence file here.")
        name = evidence.file_name or os.path.basename(evidence.file.name)
        try:
            handle = evidence.file.open("rb")
        except FileNotFoundError:
            raise Http404("The evidence file is missing from storage.") from None
        response = FileResponse(
            handle, as_attachment=True, filename=name, content_type=content_type_for(name)
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response
