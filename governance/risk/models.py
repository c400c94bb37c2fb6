"""Risk acceptance: time-boxed, four-eyes approved exceptions and the compensating controls
(with evidence on a cadence) that stand in where automation is missing."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from governance.core.choices import RiskLevel


class CompensatingControl(models.Model):
    """What is done instead where automation is missing, owned by a person, on a cadence."""

    class Kind(models.TextChoices):
        PERIODIC_RECONCILIATION = "periodic_reconciliation", "Periodic manual reconciliation"
        MANUAL_DEPROVISIONING = "manual_deprovisioning", "Manual deprovisioning within N hours"
        PERIODIC_REVIEW = "periodic_review", "Periodic access review"
        MFA = "mfa", "MFA enforced"
        NETWORK_RESTRICTION = "network_restriction", "Network restriction"
        SESSION_MONITORING = "session_monitoring", "Session monitoring"
        READ_ONLY_SCOPE = "read_only_scope", "Read-only scope"
        OTHER = "other", "Other"

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        SEMIANNUAL = "semiannual", "Every six months"
        ANNUAL = "annual", "Annually"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        RETIRED = "retired", "Retired"

    class Result(models.TextChoices):
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"
        PARTIAL = "partial", "Partial"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    description = models.TextField(blank=True)
    application = models.ForeignKey(
        "access.Application",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="compensating_controls",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_controls"
    )
    frequency = models.CharField(max_length=12, choices=Frequency.choices)
    within_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="For manual deprovisioning: the promised turnaround."
    )
    next_due_on = models.DateField(db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    last_performed_at = models.DateTimeField(null=True, blank=True)
    last_result = models.CharField(max_length=10, choices=Result.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["next_due_on", "name"]

    def __str__(self) -> str:
        return self.name


class ControlEvidence(models.Model):
    """One performance of a control, with its result and (optionally) a file as proof."""

    control = models.ForeignKey(
        CompensatingControl, on_delete=models.PROTECT, related_name="evidence"
    )
    performed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    performed_at = models.DateTimeField()
    result = models.CharField(max_length=10, choices=CompensatingControl.Result.choices)
    note = models.TextField(blank=True)
    file = models.FileField(upload_to="control-evidence/%Y/%m/", blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    file_size = models.PositiveIntegerField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-performed_at"]
        verbose_name_plural = "control evidence"

    def __str__(self) -> str:
        return f"{self.control} — {self.get_result_display()} on {self.performed_at:%Y-%m-%d}"


class AccessException(models.Model):
    """A time-boxed, approved acceptance of a deviation; never approved by its requester."""

    class Type(models.TextChoices):
        NO_SCIM = "no_scim", "Application lacks SCIM"
        SCIM_PARTIAL = "scim_partial", "SCIM partial (e.g. create/deactivate only)"
        SHARED_ACCOUNT = "shared_account", "Shared account"
        RETAINED_ACCESS = "retained_access", "Access retained after role change"
        SOD_CONFLICT = "sod_conflict", "Separation-of-duties conflict"
        ROTATION_OVERDUE = "rotation_overdue", "Credential rotation overdue"
        ORPHAN_RETAINED = "orphan_retained", "Orphan account retained"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    title = models.CharField(max_length=200)
    exception_type = models.CharField("type", max_length=20, choices=Type.choices)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    # Scope: the application is always known (it decides who may register and see it);
    # narrower scopes name one entitlement, account, NHI or finding inside it.
    application = models.ForeignKey(
        "access.Application", on_delete=models.PROTECT, related_name="access_exceptions"
    )
    entitlement = models.ForeignKey(
        "access.Entitlement", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    account = models.ForeignKey(
        "access.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    nhi = models.ForeignKey(
        "nhi.NonHumanIdentity",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="access_exceptions",
        verbose_name="non-human identity",
    )
    finding = models.ForeignKey(
        "reconciliation.Finding",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    justification = models.TextField()
    risk_rating = models.CharField(max_length=10, choices=RiskLevel.choices)
    controls = models.ManyToManyField(CompensatingControl, blank=True, related_name="exceptions")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requested_exceptions"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decided_exceptions",
        help_text="The security admin who approved or rejected it.",
    )
    decision_comment = models.TextField(blank=True)
    expires_on = models.DateField(db_index=True)
    renewal_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="renewals"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Expired or revoked.")
    end_comment = models.TextField(
        blank=True, help_text="Why it ended early: the revocation reason or the renewal."
    )
    expiry_notices_sent = models.JSONField(
        default=list, blank=True, help_text="Days-before-expiry notices already sent (30, 7, 1)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["expires_on", "pk"]
        verbose_name = "access exception"
        constraints = [
            models.CheckConstraint(
                condition=~Q(approver=F("requested_by")),
                name="access_exception_four_eyes",
                violation_error_message="The requester of an exception cannot decide it.",
            ),
            models.CheckConstraint(
                condition=Q(approver__isnull=False) | ~Q(status__in=["approved", "rejected"]),
                name="access_exception_decided_has_approver",
                violation_error_message="An approved or rejected exception names its approver.",
            ),
        ]

    def __str__(self) -> str:
        return self.title
