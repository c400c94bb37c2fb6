"""Access reviews in the admin.

- Campaigns: security admins configure them while draft, launch them (the snapshot is built in
  Celery, with a progress bar) and close them; the page of a launched campaign shows completion
  statistics, rubber-stamp signals per reviewer and the evidence exports. Auditors read and
  export; nobody else sees campaigns.
- "My reviews": a reviewer sees only the items assigned to them, or to someone they act for
  through a delegation active today, and never an item about their own access. They decide one
  at a time on the item's page or in bulk through actions with a confirmation page. Security
  admins and auditors see every item. Every decision goes through ``review_decide`` /
  ``review_reassign``, which enforce the same rules again.
- Delegations: a reviewer delegates their own reviews (security admins anyone's), through the
  audited ``delegation_create``.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from governance.access.models import Grant
from governance.core.actor import Actor
from governance.core.admin_base import AuditedModelAdmin, choice_filter, sees_everything
from governance.core.choices import RiskLevel
from governance.core.errors import DomainError
from governance.lifecycle.models import ProvisioningTask
from governance.portal.models import Role, User
from governance.reviews.delegation_services import delegation_create, delegation_validate
from governance.reviews.exports import campaign_exported, export_csv, iter_json
from governance.reviews.models import Campaign, Delegation, ReviewItem
from governance.reviews.selectors import (
    active_delegations,
    campaign_statistics,
    reviewer_scope,
    rubber_stamp_signals,
)
from governance.reviews.services import (
    acting_for,
    campaign_close,
    campaign_launch,
    population,
    review_decide,
    review_reassign,
)
from governance.risk.selectors import exceptions_in_force_for_items

CSS = {"all": ("steward/reviews.css",)}
State = Campaign.State
Decision = ReviewItem.Decision
Remediation = ReviewItem.Remediation
TaskState = ProvisioningTask.State
#: Items listed on a bulk confirmation page; the rest are counted.
CONFIRM_LIST_LIMIT = 200
DORMANT_AFTER = timedelta(days=90)
DECIDING_ROLES = (Role.REVIEWER, Role.APP_OWNER, Role.SECURITY_ADMIN)


def _sees_all(request) -> bool:
    """Security admins, auditors and superusers see every campaign item (cached per request)."""
    if not hasattr(request, "_rv_sees_all"):
        request._rv_sees_all = sees_everything(request.user)
    return request._rv_sees_all


def _when(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "—"


def _badge(kind: str, value: str, label: str):
    return format_html('<span class="rv-badge rv-{}-{}">{}</span>', kind, value or "none", label)


def _flag(level: str, label: str):
    return format_html('<span class="rv-flag rv-flag-{}">{}</span>', level, label)


def _summarise_errors(errors: Counter) -> str:
    return "; ".join(
        f"{message.rstrip('.')} ({count} item{'s' if count != 1 else ''})"
        for message, count in errors.most_common()
    )


def _people_who_decide():
    """Active staff who may review: the deciding roles and superusers."""
    return (
        User.objects.filter(is_active=True, is_staff=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=DECIDING_ROLES))
        .distinct()
        .order_by("username")
    )


class _UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        full = obj.get_full_name()
        return f"{obj.username} ({full})" if full else obj.username


# -------------------------------------------------------------------------------- campaigns


class DepartmentsField(forms.CharField):
    """A JSON list of departments, typed as comma-separated names."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        text = super().to_python(value) or ""
        seen: list[str] = []
        for part in text.replace("\n", ",").split(","):
            name = part.strip()
            if name and name not in seen:
                seen.append(name)
        return seen


class CampaignForm(forms.ModelForm):
    departments = DepartmentsField(
        required=False,
        label="Departments",
        help_text="Only people in these departments, separated by commas (empty: everyone).",
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = Campaign
        fields = (
            "name",
            "description",
            "applications",
            "entitlements",
            "privileged_only",
            "include_people",
            "include_nhis",
            "departments",
            "reviewer_strategy",
            "named_reviewer",
            "fallback_reviewer",
            "second_stage_strategy",
            "second_stage_privileged_only",
            "starts_at",
            "due_at",
            "reminder_every_days",
            "escalate_after_days",
            "escalation_to",
            "timeout_action_privileged",
            "timeout_action_standard",
            "comment_required_on_approve",
            "comment_required_on_revoke",
            "recurrence",
        )
        labels = {
            "privileged_only": "Privileged access only",
            "include_people": "Include people",
            "reminder_every_days": "Remind every (days)",
            "escalate_after_days": "Escalate after (days)",
            "timeout_action_privileged": "On timeout, privileged items",
            "timeout_action_standard": "On timeout, other items",
            "comment_required_on_approve": "Approving requires a comment",
            "comment_required_on_revoke": "Revoking requires a comment",
            "starts_at": "Starts",
            "due_at": "Due",
        }

    def clean_fallback_reviewer(self):
        user = self.cleaned_data.get("fallback_reviewer")
        if user is not None and not (user.is_active and user.is_staff):
            raise forms.ValidationError("The fallback reviewer must be an active portal user.")
        return user

    def clean(self):
        data = super().clean()
        if not data.get("include_people") and not data.get("include_nhis"):
            self.add_error(
                "include_people", "Include people, non-human identities or both: nothing to review."
            )
        return data


@admin.register(Campaign)
class CampaignAdmin(AuditedModelAdmin):
    """Campaigns: edited while draft, then launched and closed through confirmation pages."""

    form = CampaignForm
    list_display = (
        "name",
        "state_col",
        "kind",
        "population_col",
        "progress_col",
        "decided_col",
        "due_col",
    )
    list_filter = ("state", "kind", "recurrence")
    search_fields = ("name", "description")
    autocomplete_fields = (
        "applications",
        "entitlements",
        "named_reviewer",
        "fallback_reviewer",
        "escalation_to",
    )
    readonly_fields = (
        "state_col",
        "kind",
        "launched_at",
        "closed_at",
        "population_count",
        "population_hash",
        "created_by",
    )
    fieldsets = (
        (None, {"fields": ("name", "description")}),
        (
            "Scope",
            {
                "fields": (
                    "applications",
                    "entitlements",
                    "privileged_only",
                    "include_people",
                    "include_nhis",
                    "departments",
                ),
                "description": "The active grants this campaign reviews. Leave applications and "
                "entitlements empty to cover all of them.",
            },
        ),
        (
            "Reviewers",
            {
                "fields": (
                    "reviewer_strategy",
                    "named_reviewer",
                    "fallback_reviewer",
                    "second_stage_strategy",
                    "second_stage_privileged_only",
                ),
                "description": "Who reviews each item. Items with no reviewer, and items a "
                "reviewer would decide about their own access, go to the fallback reviewer.",
            },
        ),
        (
            "Schedule and rules",
            {
                "fields": (
                    "starts_at",
                    "due_at",
                    "reminder_every_days",
                    "escalate_after_days",
                    "escalation_to",
                    "timeout_action_privileged",
                    "timeout_action_standard",
                    "comment_required_on_approve",
                    "comment_required_on_revoke",
                    "recurrence",
                )
            },
        ),
    )

    class Media:
        css = CSS

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None:
            return fieldsets
        status = ["state_col", "kind", "created_by"]
        if obj.state != State.DRAFT:
            status += ["launched_at", "closed_at", "population_count", "population_hash"]
        return [("Status", {"fields": status}), *fieldsets]

    def get_queryset(self, request):
        decided = Q(items__decision__in=[Decision.APPROVE, Decision.REVOKE])
        return (
            super()
            .get_queryset(request)
            .annotate(_items=Count("items"), _decided=Count("items", filter=decided))
        )

    # ---- permissions: configuration is frozen once the campaign is launched

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.state == State.DRAFT)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and obj is not None and obj.state == State.DRAFT

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def _can_manage(self, request) -> bool:
        """Launch and close: security admins (the campaign change permission)."""
        return request.user.has_perm("reviews.change_campaign")

    def _can_export(self, request) -> bool:
        return self.has_view_permission(request) and _sees_all(request)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    # ---- list columns

    @admin.display(description="State", ordering="state")
    def state_col(self, obj):
        return _badge("state", obj.state, obj.get_state_display())

    @admin.display(description="Population", ordering="population_count")
    def population_col(self, obj):
        if obj.state == State.DRAFT:
            return "—"
        if obj.state == State.LAUNCHING:
            return f"{obj.launch_total} (building)"
        return str(obj.population_count)

    @admin.display(description="Launch progress")
    def progress_col(self, obj):
        if obj.state == State.DRAFT:
            return "Not launched"
        percent = _launch_percent(obj)
        return format_html(
            '<span class="rv-minibar" title="{}%"><span style="width: {}%"></span></span> {}%',
            percent,
            percent,
            percent,
        )

    @admin.display(description="Decided", ordering="_decided")
    def decided_col(self, obj):
        total = getattr(obj, "_items", 0) or 0
        if not total:
            return "—"
        decided = getattr(obj, "_decided", 0) or 0
        return f"{round(100 * decided / total)}% ({decided} of {total})"

    @admin.display(description="Due", ordering="due_at")
    def due_col(self, obj):
        if not obj.due_at:
            return "—"
        if obj.state == State.ACTIVE and obj.due_at < timezone.now():
            return format_html("{} {}", _when(obj.due_at), _flag("bad", "Overdue"))
        return _when(obj.due_at)

    # ---- views

    def get_urls(self):
        def view(fn, name):
            return self.admin_site.admin_view(fn), f"reviews_campaign_{name}"

        custom = []
        for route, fn, name in (
            ("launch/", self.launch_view, "launch"),
            ("close/", self.close_view, "close"),
            ("progress/", self.progress_view, "progress"),
            ("export.csv", self.export_csv_view, "export_csv"),
            ("export.json", self.export_json_view, "export_json"),
        ):
            wrapped, url_name = view(fn, name)
            custom.append(path(f"<path:object_id>/{route}", wrapped, name=url_name))
        return custom + super().get_urls()

    def _campaign(self, request, object_id) -> Campaign:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404("No campaign with this number.")
        return campaign

    def _change_url(self, campaign) -> str:
        return reverse("admin:reviews_campaign_change", args=[campaign.pk])

    def _context(self, request, campaign, title: str, **extra) -> dict:
        request.current_app = self.admin_site.name
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "subtitle": None,
            "campaign": campaign,
            "change_url": self._change_url(campaign),
            **extra,
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_view_or_change_permission(request, obj):
            args = [obj.pk]
            extra.update(
                campaign=obj,
                can_manage=self._can_manage(request),
                can_export=self._can_export(request),
                launch_url=reverse("admin:reviews_campaign_launch", args=args),
                close_url=reverse("admin:reviews_campaign_close", args=args),
                progress_url=reverse("admin:reviews_campaign_progress", args=args),
                export_csv_url=reverse("admin:reviews_campaign_export_csv", args=args),
                export_json_url=reverse("admin:reviews_campaign_export_json", args=args),
                items_url=reverse("admin:reviews_reviewitem_changelist")
                + f"?campaign__id__exact={obj.pk}",
                progress=_progress(obj),
            )
            if obj.state in (State.ACTIVE, State.CLOSED):
                extra.update(stats=campaign_statistics(obj), signals=rubber_stamp_signals(obj))
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def launch_view(self, request, object_id):
        """Confirm, then start the snapshot (``campaign_launch``; the work runs in Celery)."""
        campaign = self._campaign(request, object_id)
        if not self._can_manage(request):
            raise PermissionDenied
        if campaign.state != State.DRAFT:
            self.message_user(
                request,
                f"This campaign is {campaign.get_state_display().lower()}; only a draft can be "
                "launched.",
                messages.ERROR,
            )
            return HttpResponseRedirect(self._change_url(campaign))
        if request.method == "POST":
            try:
                launched = campaign_launch(actor=Actor.for_user(request.user), campaign=campaign)
            except DomainError as exc:
                self.message_user(request, f"Not launched: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Launch started: building the snapshot of {launched.launch_total} grant(s). "
                    "Reviewers see their items once it is complete.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(self._change_url(campaign))
        context = self._context(
            request,
            campaign,
            "Launch campaign",
            population_count=population(campaign).count(),
            applications=list(campaign.applications.order_by("name")),
            entitlements=list(campaign.entitlements.select_related("application").order_by("name")),
        )
        return TemplateResponse(request, "admin/reviews/launch_confirmation.html", context)

    def close_view(self, request, object_id):
        """Confirm, then close: undecided items get the campaign's timeout actions."""
        campaign = self._campaign(request, object_id)
        if not self._can_manage(request):
            raise PermissionDenied
        if campaign.state != State.ACTIVE:
            self.message_user(
                request,
                f"This campaign is {campaign.get_state_display().lower()}; only an active "
                "campaign can be closed.",
                messages.ERROR,
            )
            return HttpResponseRedirect(self._change_url(campaign))
        if request.method == "POST":
            try:
                campaign_close(actor=Actor.for_user(request.user), campaign=campaign)
            except DomainError as exc:
                self.message_user(request, f"Not closed: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    "Campaign closed: undecided items received their timeout action.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(self._change_url(campaign))
        pending = campaign.items.filter(decision=Decision.PENDING).aggregate(
            privileged_items=Count("pk", filter=Q(privileged=True)),
            standard_items=Count("pk", filter=Q(privileged=False)),
        )
        Timeout = Campaign.TimeoutAction
        rows = [
            (
                "Privileged items",
                pending["privileged_items"],
                campaign.timeout_action_privileged,
                Timeout(campaign.timeout_action_privileged).label,
            ),
            (
                "Other items",
                pending["standard_items"],
                campaign.timeout_action_standard,
                Timeout(campaign.timeout_action_standard).label,
            ),
        ]
        context = self._context(
            request,
            campaign,
            "Close campaign",
            rows=rows,
            pending_total=pending["privileged_items"] + pending["standard_items"],
            revocations=sum(count for _, count, action, _ in rows if action == Timeout.REVOKE),
        )
        return TemplateResponse(request, "admin/reviews/close_confirmation.html", context)

    def progress_view(self, request, object_id):
        """The launch progress, polled by the campaign page while the snapshot is built."""
        campaign = self._campaign(request, object_id)
        response = JsonResponse(_progress(campaign))
        response["Cache-Control"] = "no-store"
        return response

    def _export(self, request, object_id, fmt: str):
        campaign = self._campaign(request, object_id)
        if not self._can_export(request):
            raise PermissionDenied
        if campaign.state not in (State.ACTIVE, State.CLOSED):
            raise Http404("Nothing to export until the campaign is launched.")
        campaign_exported(actor=Actor.for_user(request.user), campaign=campaign, fmt=fmt)
        exported_at = timezone.now()
        if fmt == "csv":
            stream, content_type = export_csv(campaign, exported_at), "text/csv; charset=utf-8"
        else:
            stream, content_type = iter_json(campaign, exported_at), "application/json"
        response = StreamingHttpResponse(stream, content_type=content_type)
        response["Content-Disposition"] = (
            f'attachment; filename="campaign-{campaign.pk}-evidence.{fmt}"'
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "no-store"
        return response

    def export_csv_view(self, request, object_id):
        return self._export(request, object_id, "csv")

    def export_json_view(self, request, object_id):
        return self._export(request, object_id, "json")


def _launch_percent(campaign: Campaign) -> int:
    if campaign.state in (State.ACTIVE, State.CLOSED):
        return 100
    if campaign.state == State.LAUNCHING and campaign.launch_total:
        return min(100, round(100 * campaign.launch_done / campaign.launch_total))
    return 0


def _progress(campaign: Campaign) -> dict:
    return {
        "state": campaign.state,
        "launch_done": campaign.launch_done,
        "launch_total": campaign.launch_total,
        "percent": _launch_percent(campaign),
    }


# ------------------------------------------------------------------------------ my reviews


class AssignedToMeFilter(admin.SimpleListFilter):
    """For security admins and auditors, who see every item: only the ones they decide."""

    title = "assigned"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        if not _sees_all(request):
            return []
        return [("me", "Assigned to me (or delegated to me)")]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(reviewer_scope(request.user))
        return queryset


PolicyFilter = choice_filter(
    "policy match",
    "policy",
    {
        "mismatch": ("Not justified by a policy", Q(policy_justified=False)),
        "justified": ("Justified by a policy", Q(policy_justified=True)),
    },
)
InactivePersonFilter = choice_filter(
    "person",
    "inactive",
    {
        "yes": ("Inactive (left or disabled)", Q(person_inactive=True)),
        "no": ("Active", Q(person_inactive=False)),
    },
)


class DecidedFilter(admin.SimpleListFilter):
    title = "decided"
    parameter_name = "decided"

    def lookups(self, request, model_admin):
        return [
            ("no", "Not decided"),
            ("yes", "Decided"),
            ("approve", "Approved"),
            ("revoke", "Revoked"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "no":
            return queryset.filter(decision=Decision.PENDING)
        if value == "yes":
            return queryset.exclude(decision=Decision.PENDING)
        if value in (Decision.APPROVE, Decision.REVOKE):
            return queryset.filter(decision=value)
        return queryset


class RemediationFilter(admin.SimpleListFilter):
    title = "remediation"
    parameter_name = "remediation"

    def lookups(self, request, model_admin):
        return [
            ("open", "Revoked, not yet verified"),
            (Remediation.REQUESTED, "Removal requested"),
            (Remediation.EXECUTED, "Executed, not verified"),
            (Remediation.VERIFIED, "Verified (remediated)"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "open":
            return queryset.filter(decision=Decision.REVOKE).exclude(
                remediation=Remediation.VERIFIED
            )
        if value in (Remediation.REQUESTED, Remediation.EXECUTED, Remediation.VERIFIED):
            return queryset.filter(remediation=value)
        return queryset


class DecisionForm(forms.ModelForm):
    """One item's decision, on its page. The service checks everything again."""

    CHOICES = [
        (Decision.APPROVE, "Approve: the access is still needed"),
        (Decision.REVOKE, "Revoke: remove this access"),
    ]

    class Meta:
        model = ReviewItem
        fields = ("decision", "comment")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "decision" in self.fields:
            self.fields["decision"] = forms.ChoiceField(
                label="Decision", choices=self.CHOICES, widget=forms.RadioSelect
            )
        if "comment" in self.fields:
            campaign = self.instance.campaign
            needs = [
                word
                for word, required in (
                    ("approve", campaign.comment_required_on_approve),
                    ("revoke", campaign.comment_required_on_revoke),
                )
                if required
            ]
            self.fields["comment"].widget = forms.Textarea(attrs={"rows": 3, "cols": 70})
            self.fields["comment"].help_text = (
                f"Required to {' or '.join(needs)} in this campaign."
                if needs
                else "Optional: why the access is still needed, or why it goes."
            )

    def clean(self):
        data = super().clean()
        decision = data.get("decision")
        comment = (data.get("comment") or "").strip()
        campaign = self.instance.campaign
        if not comment and (
            (decision == Decision.APPROVE and campaign.comment_required_on_approve)
            or (decision == Decision.REVOKE and campaign.comment_required_on_revoke)
        ):
            self.add_error("comment", f"This campaign requires a comment to {decision}.")
        return data


class BulkDecisionForm(forms.Form):
    comment = forms.CharField(
        label="Comment",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
    )

    def __init__(self, *args, comment_required: bool, verb: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.comment_required = comment_required
        self.verb = verb
        field = self.fields["comment"]
        field.help_text = (
            f"Required: the campaign asks for a comment to {verb}. It is recorded on every "
            "selected item."
            if comment_required
            else "Optional. It is recorded on every selected item."
        )

    def clean_comment(self):
        comment = (self.cleaned_data.get("comment") or "").strip()
        if self.comment_required and not comment:
            raise forms.ValidationError(f"This campaign requires a comment to {self.verb}.")
        return comment


class ReassignForm(forms.Form):
    to = _UserChoiceField(queryset=User.objects.none(), label="New reviewer")
    reason = forms.CharField(
        label="Reason",
        max_length=150,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
        help_text="Recorded on each item and in the audit log.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to"].queryset = _people_who_decide().exclude(pk=user.pk)


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    """ "My reviews": the signed-in reviewer's items. Never added, edited or deleted here:
    only decided or reassigned through the review services."""

    form = DecisionForm
    list_display = (
        "subject_col",
        "entitlement_col",
        "granted_via_col",
        "policy_col",
        "last_login_col",
        "risk_col",
        "inactive_col",
        "exceptions_in_force_col",
        "decision_col",
        "remediation_col",
        "campaign_col",
    )
    list_display_links = ("subject_col",)
    list_filter = (
        AssignedToMeFilter,
        ("campaign", admin.RelatedOnlyFieldListFilter),
        DecidedFilter,
        ("application", admin.RelatedOnlyFieldListFilter),
        ("entitlement", admin.RelatedOnlyFieldListFilter),
        "privileged",
        PolicyFilter,
        InactivePersonFilter,
        RemediationFilter,
    )
    search_fields = ("subject_label", "account_label", "entitlement_label")
    list_select_related = (
        "campaign",
        "application",
        "entitlement",
        "reviewer",
        "decided_by",
        "on_behalf_of",
    )
    show_full_result_count = False
    actions = ["approve_selected", "revoke_selected", "reassign_selected"]
    readonly_fields = (
        "campaign_link",
        "subject_col",
        "account_col",
        "entitlement_col",
        "granted_via_col",
        "policy_col",
        "last_login_col",
        "risk_col",
        "inactive_col",
        "exceptions_col",
        "exceptions_in_force_col",
        "reviewer_col",
        "routed_col",
        "decided_col",
        "remediation_timeline",
    )
    fieldsets = (
        (
            "Access under review",
            {
                "fields": (
                    "campaign_link",
                    "subject_col",
                    "account_col",
                    "entitlement_col",
                    "granted_via_col",
                    "policy_col",
                    "last_login_col",
                    "risk_col",
                    "inactive_col",
                    "exceptions_col",
                    "exceptions_in_force_col",
                )
            },
        ),
        ("Reviewer", {"fields": ("reviewer_col", "routed_col")}),
        ("Decision", {"fields": ("decision", "comment", "decided_col")}),
        ("Remediation", {"fields": ("remediation_timeline",)}),
    )

    class Media:
        css = CSS

    # ---- scoping and permissions

    def get_queryset(self, request):
        qs = (
            super()
            .get_queryset(request)
            .select_related(
                "campaign",
                "application",
                "entitlement",
                "reviewer",
                "decided_by",
                "on_behalf_of",
                "provisioning_task",
            )
        )
        if _sees_all(request):
            return qs
        return qs.filter(reviewer_scope(request.user))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return self._why_not_decide(request, obj) is None

    def _why_not_decide(self, request, obj: ReviewItem) -> str | None:
        """None when the signed-in user may decide the item now; otherwise why not."""
        cache = request.__dict__.setdefault("_rv_decidable", {})
        if obj.pk not in cache:
            cache[obj.pk] = self._check_decidable(request.user, obj)
        return cache[obj.pk]

    @staticmethod
    def _check_decidable(user, obj: ReviewItem) -> str | None:
        campaign = obj.campaign
        if campaign.state != State.ACTIVE:
            return (
                f"The campaign is {campaign.get_state_display().lower()}: "
                "decisions can no longer be made or changed."
            )
        if obj.subject_identity_id and obj.subject_identity_id == user.identity_id:
            return "This item is about your own access: nobody decides on their own access."
        if obj.reviewer_id != user.pk and not acting_for(user, obj.reviewer):
            return (
                f"This item is assigned to {obj.reviewer.get_username()}: only they, or "
                "someone they delegated to, can decide it."
            )
        task = obj.provisioning_task
        if (
            obj.decision == Decision.REVOKE
            and task is not None
            and task.state not in (TaskState.PENDING, TaskState.AWAITING_MANUAL)
        ):
            return "The removal is already being carried out: the decision is final."
        return None

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if _sees_all(request) or self._acting_for(request):
            columns.insert(1, "reviewer_col")
        return columns

    def _acting_for(self, request) -> list[Delegation]:
        if not hasattr(request, "_rv_acting_for"):
            request._rv_acting_for = list(
                active_delegations(request.user).select_related("delegator").order_by("ends_on")
            )
        return request._rv_acting_for

    # ---- list columns and page fields

    @admin.display(description="Subject", ordering="subject_label")
    def subject_col(self, obj):
        return format_html('{}<div class="rv-quiet">{}</div>', obj.subject_label, obj.account_label)

    @admin.display(description="Entitlement", ordering="entitlement_label")
    def entitlement_col(self, obj):
        return format_html(
            '{}<div class="rv-quiet">{}</div>', obj.entitlement.name, obj.application.name
        )

    @admin.display(description="Granted via", ordering="granted_via")
    def granted_via_col(self, obj):
        try:
            return Grant.Origin(obj.granted_via).label
        except ValueError:
            return obj.granted_via or "—"

    @admin.display(description="Policy", ordering="policy_justified")
    def policy_col(self, obj):
        if obj.policy_justified:
            return _flag("ok", "Justified")
        return _flag("warn", "No policy")

    @admin.display(description="Last login", ordering="last_login_at")
    def last_login_col(self, obj):
        if not obj.last_login_at:
            return format_html('<span class="rv-quiet">{}</span>', "Never / unknown")
        shown = timezone.localtime(obj.last_login_at).strftime("%Y-%m-%d")
        if obj.last_login_at < timezone.now() - DORMANT_AFTER:
            return format_html("{} {}", shown, _flag("warn", "Dormant"))
        return shown

    @admin.display(description="Risk", ordering="privileged")
    def risk_col(self, obj):
        parts = []
        if obj.privileged:
            parts.append(_badge("risk", "privileged", "Privileged"))
        if obj.risk:
            try:
                label = RiskLevel(obj.risk).label
            except ValueError:
                label = obj.risk
            parts.append(_badge("risk", obj.risk, label))
        if not parts:
            return "—"
        return format_html_join(" ", "{}", ((part,) for part in parts))

    @admin.display(description="Person", ordering="person_inactive")
    def inactive_col(self, obj):
        if obj.person_inactive:
            return _flag("bad", "Inactive")
        return format_html('<span class="rv-quiet">{}</span>', "Active")

    @admin.display(description="Decision", ordering="decision")
    def decision_col(self, obj):
        badge = _badge("decision", obj.decision, obj.get_decision_display())
        notes = []
        if obj.decided_by_policy:
            notes.append("by timeout rule")
        elif obj.bulk:
            notes.append("in bulk")
        if obj.on_behalf_of_id:
            notes.append(f"by {obj.decided_by.get_username()} for {obj.on_behalf_of}")
        if notes:
            return format_html('{}<div class="rv-quiet">{}</div>', badge, ", ".join(notes))
        return badge

    @admin.display(description="Remediation", ordering="remediation")
    def remediation_col(self, obj):
        if obj.decision != Decision.REVOKE:
            return "—"
        if not obj.remediation:
            return format_html('<span class="rv-quiet">{}</span>', "No removal needed")
        labels = {
            Remediation.REQUESTED: "Requested",
            Remediation.EXECUTED: "Executed, not verified",
            Remediation.VERIFIED: "Verified",
        }
        return _badge("remediation", obj.remediation, labels.get(obj.remediation, "—"))

    @admin.display(description="Account")
    def account_col(self, obj):
        return obj.account_label

    @admin.display(description="Why this reviewer")
    def routed_col(self, obj):
        return obj.routed_because or "Chosen by the campaign's reviewer strategy."

    @admin.display(description="Campaign", ordering="campaign__name")
    def campaign_col(self, obj):
        return obj.campaign.name

    @admin.display(description="Reviewer", ordering="reviewer__username")
    def reviewer_col(self, obj):
        return obj.reviewer.get_username()

    @admin.display(description="Campaign")
    def campaign_link(self, obj):
        due = f", due {_when(obj.campaign.due_at)}" if obj.campaign.due_at else ""
        return f"{obj.campaign.name} ({obj.campaign.get_state_display().lower()}{due})"

    @admin.display(description="Open exceptions")
    def exceptions_col(self, obj):
        if not obj.open_exceptions:
            return "None"
        return ", ".join(str(e) for e in obj.open_exceptions)

    @admin.display(description="Exceptions in force")
    def exceptions_in_force_col(self, obj):
        """Approved, unexpired exceptions covering the item's application (narrowed, if at all,
        to its entitlement, account or NHI): context, not a decision. Loaded once per page."""
        found = getattr(obj, "_exceptions_in_force", None)
        if found is None:
            found = exceptions_in_force_for_items([obj]).get(obj.pk, [])
        if not found:
            return format_html('<span class="rv-quiet">{}</span>', "None")
        return format_html_join(
            mark_safe("<br>"),
            '<span title="{}">{}</span> <span class="rv-quiet">(until {})</span>',
            (
                (e.title, Truncator(e.title).chars(50), e.expires_on.strftime("%Y-%m-%d"))
                for e in found
            ),
        )

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        page = list(changelist.result_list)  # evaluates the page once; the template reuses it
        in_force = exceptions_in_force_for_items(page)
        for item in page:
            item._exceptions_in_force = in_force.get(item.pk, [])
        return changelist

    @admin.display(description="Decided")
    def decided_col(self, obj):
        if obj.decision == Decision.PENDING:
            return "Not yet."
        if obj.decided_by_policy:
            return f"By the campaign's timeout rule on {_when(obj.decided_at)}."
        who = obj.decided_by.get_username() if obj.decided_by_id else "—"
        if obj.on_behalf_of_id:
            who = f"{who}, as delegate of {obj.on_behalf_of.get_username()}"
        how = " (bulk decision)" if obj.bulk else ""
        return f"By {who} on {_when(obj.decided_at)}{how}."

    @admin.display(description="Removal")
    def remediation_timeline(self, obj):
        if obj.decision != Decision.REVOKE:
            return "Nothing to remove: the access is not revoked."
        task = obj.provisioning_task
        if task is None:
            return "No removal task: the grant was already gone when the item was revoked."
        steps = [
            ("Decided", _when(obj.decided_at)),
            ("Requested", _when(task.created_at)),
            ("Executed", _when(task.executed_at) if task.executed_at else None),
            ("Verified", _when(task.verified_at) if task.verified_at else None),
        ]
        rows = format_html_join(
            "",
            '<li class="rv-step-{}"><strong>{}</strong> {}</li>',
            (("done" if when else "pending", label, when or "not yet") for label, when in steps),
        )
        note = (
            "Remediated: the removal is verified."
            if obj.remediation == Remediation.VERIFIED
            else "Counts as remediated only once verified by a reconciliation."
        )
        return format_html(
            '<ol class="rv-timeline">{}</ol><p class="rv-quiet">{} Task {}: {}.</p>',
            rows,
            note,
            task.pk,
            task.get_state_display().lower(),
        )

    # ---- pages

    def changelist_view(self, request, extra_context=None):
        sees_all = _sees_all(request)
        mine = ReviewItem.objects.filter(reviewer_scope(request.user)).aggregate(
            total=Count("pk"),
            pending=Count("pk", filter=Q(decision=Decision.PENDING)),
            pending_active=Count(
                "pk", filter=Q(decision=Decision.PENDING, campaign__state=State.ACTIVE)
            ),
        )
        filtered = request.GET.get("assigned") == "me"
        extra = {
            "title": "My reviews" if not sees_all or filtered else "Review items: all campaigns",
            "sees_all": sees_all,
            "mine": mine,
            "acting_for": self._acting_for(request),
            "my_pending_url": reverse("admin:reviews_reviewitem_changelist")
            + ("?assigned=me&decided=no" if sees_all else "?decided=no"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("There is no review item with this number in your reviews.")
        extra = {
            "item": obj,
            "cannot_decide": self._why_not_decide(request, obj),
            "title": f"Review: {obj.subject_label}, {obj.entitlement_label}",
            "subtitle": None,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def history_view(self, request, object_id, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404("There is no review item with this number in your reviews.")
        return super().history_view(request, object_id, extra_context)

    def save_model(self, request, obj, form, change):
        """The decision is recorded by ``review_decide``; never a plain save."""
        try:
            review_decide(
                actor=Actor.for_user(request.user),
                item=obj,
                decision=form.cleaned_data["decision"],
                comment=form.cleaned_data.get("comment") or "",
            )
        except DomainError as exc:
            request._rv_error = exc.message

    def save_related(self, request, form, formsets, change):
        pass

    def log_change(self, request, obj, message):
        # The audit log has the decision (review_item.decided); no second admin log entry.
        return None

    def response_change(self, request, obj):
        error = getattr(request, "_rv_error", None)
        if error:
            self.message_user(request, f"Not recorded: {error}", messages.ERROR)
            return HttpResponseRedirect(request.path)
        obj.refresh_from_db()
        self.message_user(
            request,
            f"Recorded: {obj.get_decision_display().lower()} for {obj}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:reviews_reviewitem_changelist"))

    # ---- bulk decisions

    def _confirm(self, request, *, action, items, form, title, intro, submit, danger=False):
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "subtitle": None,
            "intro": intro,
            "items": items[:CONFIRM_LIST_LIMIT],
            "more": max(0, len(items) - CONFIRM_LIST_LIMIT),
            "count": len(items),
            "all_ids": [item.pk for item in items],
            "form": form,
            "action": action,
            "submit": submit,
            "danger": danger,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/reviews/decision_confirmation.html", context)

    def _report(self, request, done: int, errors: Counter, verb: str) -> None:
        if done:
            self.message_user(
                request, f"{verb} {done} item{'s' if done != 1 else ''}.", messages.SUCCESS
            )
        if errors:
            failed = sum(errors.values())
            self.message_user(
                request,
                f"{failed} item{'s were' if failed != 1 else ' was'} not changed: "
                f"{_summarise_errors(errors)}.",
                messages.ERROR,
            )

    def _nothing_selected(self, request) -> None:
        self.message_user(
            request,
            "None of the selected items is in your reviews; nothing was changed.",
            messages.WARNING,
        )

    def _bulk_decide(self, request, queryset, decision: str):
        items = list(queryset)
        if not items:
            return self._nothing_selected(request)
        verb = "approve" if decision == Decision.APPROVE else "revoke"
        campaigns = {item.campaign_id: item.campaign for item in items}
        required = any(
            c.comment_required_on_approve
            if decision == Decision.APPROVE
            else c.comment_required_on_revoke
            for c in campaigns.values()
        )
        if request.POST.get("post") == "yes":
            form = BulkDecisionForm(request.POST, comment_required=required, verb=verb)
            if form.is_valid():
                actor = Actor.for_user(request.user)
                bulk = len(items) > 1
                done, errors = 0, Counter()
                for item in items:
                    try:
                        review_decide(
                            actor=actor,
                            item=item,
                            decision=decision,
                            comment=form.cleaned_data["comment"],
                            bulk=bulk,
                        )
                    except DomainError as exc:
                        errors[exc.message] += 1
                    else:
                        done += 1
                self._report(request, done, errors, "Approved" if verb == "approve" else "Revoked")
                return None
        else:
            form = BulkDecisionForm(comment_required=required, verb=verb)
        if decision == Decision.APPROVE:
            intro = (
                "These people keep the access below. Your approval is recorded on each item "
                "with your name, the time and the comment, as evidence for the auditors."
            )
        else:
            intro = (
                "The access below will be removed: each revocation becomes a removal task in "
                "its application (over SCIM where possible, otherwise a manual work item for "
                "the application owner). You can change your mind until the campaign closes or "
                "the removal is carried out."
            )
        return self._confirm(
            request,
            action=f"{verb}_selected",
            items=items,
            form=form,
            title=f"{verb.capitalize()} {len(items)} item{'s' if len(items) != 1 else ''}",
            intro=intro,
            submit=f"Yes, {verb} {len(items)} item{'s' if len(items) != 1 else ''}",
            danger=decision == Decision.REVOKE,
        )

    @admin.action(description="Approve selected", permissions=["change"])
    def approve_selected(self, request, queryset):
        return self._bulk_decide(request, queryset, Decision.APPROVE)

    @admin.action(description="Revoke selected", permissions=["change"])
    def revoke_selected(self, request, queryset):
        return self._bulk_decide(request, queryset, Decision.REVOKE)

    @admin.action(description="Reassign selected", permissions=["change"])
    def reassign_selected(self, request, queryset):
        items = list(queryset)
        if not items:
            return self._nothing_selected(request)
        if request.POST.get("post") == "yes":
            form = ReassignForm(request.POST, user=request.user)
            if form.is_valid():
                actor = Actor.for_user(request.user)
                done, errors = 0, Counter()
                for item in items:
                    try:
                        review_reassign(
                            actor=actor,
                            item=item,
                            to=form.cleaned_data["to"],
                            reason=form.cleaned_data["reason"],
                        )
                    except DomainError as exc:
                        errors[exc.message] += 1
                    else:
                        done += 1
                self._report(request, done, errors, "Reassigned")
                return None
        else:
            form = ReassignForm(user=request.user)
        return self._confirm(
            request,
            action="reassign_selected",
            items=items,
            form=form,
            title=f"Reassign {len(items)} item{'s' if len(items) != 1 else ''}",
            intro="Hand these items to another reviewer, for example someone who knows the "
            "access better. The reason is recorded on each item and in the audit log.",
            submit="Reassign",
        )


# ------------------------------------------------------------------------------ delegations


class DelegationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active today"), ("upcoming", "Upcoming"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "active":
            return queryset.filter(starts_on__lte=today, ends_on__gte=today)
        if self.value() == "upcoming":
            return queryset.filter(starts_on__gt=today)
        if self.value() == "ended":
            return queryset.filter(ends_on__lt=today)
        return queryset


class DelegationForm(forms.ModelForm):
    #: Set per request by DelegationAdmin.get_form.
    request_user: User | None = None

    class Meta:
        model = Delegation
        fields = ("delegator", "delegate", "starts_on", "ends_on", "reason")
        labels = {"starts_on": "First day", "ends_on": "Last day"}
        help_texts = {
            "delegate": "Who decides your review items while you are away. Their decisions "
            "record both of you.",
            "reason": "For example: parental leave, holiday.",
        }

    def clean(self):
        data = super().clean()
        delegator = data.get("delegator") if "delegator" in self.fields else self.request_user
        try:
            delegation_validate(
                delegator=delegator,
                delegate=data.get("delegate"),
                starts_on=data.get("starts_on"),
                ends_on=data.get("ends_on"),
            )
        except DomainError as exc:
            field = exc.field if exc.field in self.fields else None
            if field is None or field not in self.errors:
                self.add_error(field, exc.message)
        return data


@admin.register(Delegation)
class DelegationAdmin(AuditedModelAdmin):
    """A reviewer delegates their own reviews; delegations are recorded, never edited."""

    form = DelegationForm
    list_display = ("delegator", "delegate", "starts_on", "ends_on", "status_col", "reason")
    list_filter = (DelegationStatusFilter,)
    search_fields = ("delegator__username", "delegate__username", "reason")
    list_select_related = ("delegator", "delegate")

    class Media:
        css = CSS

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("delegator", "delegate")
        if _sees_all(request):
            return qs
        return qs.filter(Q(delegator=request.user) | Q(delegate=request.user))

    def get_fields(self, request, obj=None):
        fields = ["delegator", "delegate", "starts_on", "ends_on", "reason"]
        if obj is None and not request.user.is_security_admin:
            fields.remove("delegator")
        return fields

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.request_user = request.user
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in ("delegator", "delegate"):
            people = _people_who_decide()
            if db_field.name == "delegate" and not request.user.is_security_admin:
                people = people.exclude(pk=request.user.pk)
            kwargs["queryset"] = people
            kwargs["form_class"] = _UserChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if obj is not None:
            return False  # recorded, not edited: add a new delegation instead
        return super().has_change_permission(request)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        created = delegation_create(
            actor=Actor.for_user(request.user),
            delegator=data.get("delegator") or request.user,
            delegate=data["delegate"],
            starts_on=data["starts_on"],
            ends_on=data["ends_on"],
            reason=data.get("reason") or "",
        )
        obj.pk, obj.delegator, obj.created_at = created.pk, created.delegator, created.created_at

    def save_related(self, request, form, formsets, change):
        pass  # no related rows; the service has already written the row and its audit event

    @admin.display(description="Status")
    def status_col(self, obj):
        today = timezone.localdate()
        if obj.starts_on > today:
            return _flag("warn", "Upcoming")
        if obj.ends_on < today:
            return format_html('<span class="rv-quiet">{}</span>', "Ended")
        return _flag("ok", "Active")
