"""Access-review campaigns and their items (snapshots of grants for one reviewer each)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Campaign(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        LAUNCHING = "launching", "Launching"
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"

    class Kind(models.TextChoices):
        CAMPAIGN = "campaign", "Access review campaign"
        MICRO = "micro", "Mover micro-review"

    class Strategy(models.TextChoices):
        MANAGER = "manager", "The person's manager"
        APP_OWNER = "app_owner", "The application owner"
        ENTITLEMENT_OWNER = "entitlement_owner", "The entitlement owner"
        NHI_OWNER = "nhi_owner", "The NHI owner"
        NAMED = "named", "A named reviewer"

    class TimeoutAction(models.TextChoices):
        REVOKE = "revoke", "Revoke"
        KEEP = "keep", "Keep (approve)"
        LEAVE_OPEN = "leave_open", "Leave open"

    class Recurrence(models.TextChoices):
        NONE = "", "One-off"
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        SEMIANNUAL = "semiannual", "Every six months"
        ANNUAL = "annual", "Annually"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CAMPAIGN)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    # Scope
    applications = models.ManyToManyField(
        "access.Application", blank=True, related_name="+", help_text="Empty: every application."
    )
    entitlements = models.ManyToManyField(
        "access.Entitlement", blank=True, related_name="+", help_text="Empty: every entitlement."
    )
    privileged_only = models.BooleanField(default=False)
    include_people = models.BooleanField(default=True)
    include_nhis = models.BooleanField("include non-human identities", default=False)
    departments = models.JSONField(
        default=list, blank=True, help_text="Only people in these departments (empty: all)."
    )
    # Reviewers
    reviewer_strategy = models.CharField(
        max_length=20, choices=Strategy.choices, default=Strategy.MANAGER
    )
    named_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    fallback_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Reviews items with no reviewer, and items that would be self-reviews.",
    )
    second_stage_strategy = models.CharField(
        max_length=20,
        choices=Strategy.choices,
        blank=True,
        help_text="Optional second stage (for example the application owner after managers).",
    )
    second_stage_privileged_only = models.BooleanField(default=True)
    # Schedule and rules
    starts_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    reminder_every_days = models.PositiveSmallIntegerField(default=7)
    escalate_after_days = models.PositiveSmallIntegerField(null=True, blank=True)
    escalation_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: the reviewer's manager.",
    )
    timeout_action_privileged = models.CharField(
        max_length=12, choices=TimeoutAction.choices, default=TimeoutAction.REVOKE
    )
    timeout_action_standard = models.CharField(
        max_length=12, choices=TimeoutAction.choices, default=TimeoutAction.LEAVE_OPEN
    )
    comment_required_on_approve = models.BooleanField(default=False)
    comment_required_on_revoke = models.BooleanField(default=True)
    recurrence = models.CharField(
        max_length=12, choices=Recurrence.choices, default=Recurrence.NONE, blank=True
    )
    # Launch and outcome
    population_count = models.PositiveIntegerField(default=0)
    population_hash = models.CharField(max_length=64, blank=True)
    launch_total = models.PositiveIntegerField(default=0)
    launch_done = models.PositiveIntegerField(default=0)
    launched_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    source_event = models.ForeignKey(
        "lifecycle.LifecycleEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="micro_reviews",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(due_at__isnull=True)
                | Q(starts_at__isnull=True)
                | Q(due_at__gt=F("starts_at")),
                name="campaign_due_after_start",
                violation_error_message="The due date must be after the start date.",
            ),
            models.CheckConstraint(
                condition=~Q(reviewer_strategy="named") | Q(named_reviewer__isnull=False),
                name="campaign_named_reviewer_set",
                violation_error_message="Name the reviewer for the named-reviewer strategy.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ReviewItem(models.Model):
    """One grant, as it was at launch, for one reviewer to approve or revoke."""

    class Decision(models.TextChoices):
        PENDING = "pending", "Not decided"
        APPROVE = "approve", "Approve"
        REVOKE = "revoke", "Revoke"

    class Remediation(models.TextChoices):
        NONE = "", "—"
        REQUESTED = "requested", "Removal requested"
        EXECUTED = "executed", "Removal executed, not verified"
        VERIFIED = "verified", "Removal verified"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    stage = models.PositiveSmallIntegerField(default=1)
    grant = models.ForeignKey(
        "access.Grant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Snapshot at launch: later changes to the grant do not alter it.
    subject_identity = models.ForeignKey(
        "identities.Identity", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    subject_nhi = models.ForeignKey(
        "nhi.NonHumanIdentity", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    subject_label = models.CharField(max_length=300)
    account_label = models.CharField(max_length=255)
    application = models.ForeignKey(
        "access.Application", on_delete=models.PROTECT, related_name="+"
    )
    entitlement = models.ForeignKey(
        "access.Entitlement", on_delete=models.PROTECT, related_name="+"
    )
    entitlement_label = models.CharField(max_length=300)
    granted_via = models.CharField(max_length=20)
    policy_justified = models.BooleanField(default=False)
    last_login_at = models.DateTimeField(null=True, blank=True)
    privileged = models.BooleanField(default=False)
    risk = models.CharField(max_length=10, blank=True)
    open_exceptions = models.JSONField(default=list, blank=True)
    person_inactive = models.BooleanField(default=False)
    # Decision
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_items"
    )
    routed_because = models.CharField(max_length=200, blank=True)
    decision = models.CharField(
        max_length=10, choices=Decision.choices, default=Decision.PENDING, db_index=True
    )
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Set when a delegate decided for the reviewer.",
    )
    decided_by_policy = models.BooleanField(
        default=False, help_text="Decided by the campaign's timeout rule, not by a person."
    )
    bulk = models.BooleanField(default=False)
    seconds_to_decide = models.FloatField(null=True, blank=True)
    remediation = models.CharField(
        max_length=10, choices=Remediation.choices, default=Remediation.NONE, blank=True
    )
    provisioning_task = models.ForeignKey(
        "lifecycle.ProvisioningTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="review_items",
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "subject_label", "entitlement_label"]
        indexes = [
            models.Index(fields=["reviewer", "decision"], name="item_reviewer_idx"),
            models.Index(fields=["campaign", "decision"], name="item_campaign_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(decided_by=F("reviewer")) | Q(on_behalf_of__isnull=True),
                name="item_delegate_is_not_reviewer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject_label}: {self.entitlement_label}"


class Delegation(models.Model):
    """A reviewer lets someone act for them between two dates; decisions record both."""

    delegator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations_given"
    )
    delegate = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations_received"
    )
    starts_on = models.DateField()
    ends_on = models.DateField()
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_on"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(delegator=F("delegate")), name="delegation_not_to_self"
            ),
            models.CheckConstraint(
                condition=Q(ends_on__gte=F("starts_on")), name="delegation_dates_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delegate} for {self.delegator} ({self.starts_on} to {self.ends_on})"
