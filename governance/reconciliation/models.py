"""Reconciliation: what applications actually grant (observed state, kept apart from what
Steward intends) and the drift found between the two."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from governance.core.choices import RiskLevel


class ReconciliationRun(models.Model):
    """One import of an application's actual state and the comparison that followed."""

    class Source(models.TextChoices):
        SCIM = "scim", "Outbound SCIM read"
        CSV = "csv", "CSV upload"

    class Status(models.TextChoices):
        PREVIEW = "preview", "Uploaded, awaiting confirmation"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    application = models.ForeignKey(
        "access.Application", on_delete=models.CASCADE, related_name="reconciliation_runs"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty when the schedule started it.",
    )
    upload = models.FileField(upload_to="reconciliation/%Y/%m/", blank=True)
    upload_name = models.CharField(max_length=255, blank=True)
    column_mapping = models.JSONField(default=dict, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    row_errors = models.JSONField(default=list, blank=True)
    accounts_seen = models.PositiveIntegerField(default=0)
    grants_seen = models.PositiveIntegerField(default=0)
    findings_opened = models.PositiveIntegerField(default=0)
    findings_closed = models.PositiveIntegerField(default=0)
    tasks_verified = models.PositiveIntegerField(default=0)
    counts_by_kind = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.application} — {self.get_source_display()} {self.created_at:%Y-%m-%d %H:%M}"


class ObservedAccount(models.Model):
    """An account as the application reports it in the latest run (never what we intend)."""

    # Observations are a per-run scratch copy written in bulk (COPY) and deleted by run: no
    # database-level foreign keys and no single-column indexes the composite ones cover, so
    # 100,000 accounts and 300,000 grants go in within seconds. Deletes of runs,
    # applications and accounts still cascade (Django's collector) and the services delete
    # observations by run.
    run = models.ForeignKey(
        ReconciliationRun,
        on_delete=models.CASCADE,
        related_name="accounts",
        db_constraint=False,
        db_index=False,
    )
    application = models.ForeignKey(
        "access.Application",
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    external_id = models.CharField(max_length=255, blank=True)
    username = models.CharField(max_length=255)
    display_name = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(default=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    interactive_login = models.BooleanField(
        default=False, help_text="The application saw an interactive (human) sign-in."
    )
    used_by = models.JSONField(
        default=list, blank=True, help_text="People seen using this account (shared use)."
    )
    used_by_count = models.PositiveIntegerField(
        default=0, help_text="How many different people were seen using it (set at import)."
    )
    account = models.ForeignKey(
        "access.Account",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    class Meta:
        indexes = [
            models.Index(fields=["run", "account"]),
            models.Index(fields=["application", "external_id"]),
        ]

    def __str__(self) -> str:
        return self.username


class ObservedGrant(models.Model):
    """One entitlement an observed account holds, as the application reports it."""

    # See ObservedAccount: scratch rows, no database-level foreign keys.
    run = models.ForeignKey(
        ReconciliationRun,
        on_delete=models.CASCADE,
        related_name="grants",
        db_constraint=False,
        db_index=False,
    )
    observed_account = models.ForeignKey(
        ObservedAccount, on_delete=models.CASCADE, related_name="grants", db_constraint=False
    )
    value = models.CharField(max_length=255, help_text="The entitlement as the app names it.")
    entitlement = models.ForeignKey(
        "access.Entitlement",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    class Meta:
        indexes = [models.Index(fields=["run", "entitlement"])]

    def __str__(self) -> str:
        return self.value


class Finding(models.Model):
    """One difference between actual and desired state (or a control gone wrong) that a
    person owns until it is remediated, accepted, or shown gone by a later run."""

    class Kind(models.TextChoices):
        ORPHAN = "orphan", "Orphan account"
        STALE = "stale", "Stale account"
        EXCESS = "excess", "Excess entitlement"
        MISSING = "missing", "Missing entitlement"
        DORMANT = "dormant", "Dormant account"
        SHARED = "shared", "Shared account"
        NHI_HUMAN_USE = "nhi_human_use", "NHI showing human use"
        CONTROL_OVERDUE = "control_overdue", "Compensating control overdue"
        CONTROL_FAILED = "control_failed", "Compensating control failed"
        EXCEPTION_EXPIRED = "exception_expired", "Exception expired"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_FLIGHT = "in_flight", "In flight (within lag budget)"
        REMEDIATING = "remediating", "Remediation requested"
        IN_REVIEW = "in_review", "Sent to review"
        SUPPRESSED = "suppressed", "Accepted by exception"
        FALSE_POSITIVE = "false_positive", "False positive"
        RESOLVED = "resolved", "Resolved"

    OPEN_STATUSES = ("open", "in_flight", "remediating", "in_review", "suppressed")

    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    severity = models.CharField(max_length=10, choices=RiskLevel.choices)
    status = models.CharField(
        max_length=15, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    fingerprint = models.CharField(
        max_length=200, help_text="Stable key of the drift, so a later run finds it again."
    )
    subject = models.CharField(max_length=300)
    application = models.ForeignKey(
        "access.Application",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="findings",
    )
    account = models.ForeignKey(
        "access.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    identity = models.ForeignKey(
        "identities.Identity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    nhi = models.ForeignKey(
        "nhi.NonHumanIdentity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    entitlement = models.ForeignKey(
        "access.Entitlement", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    control = models.ForeignKey(
        "risk.CompensatingControl",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="findings",
    )
    exception = models.ForeignKey(
        "risk.AccessException",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="findings",
        help_text="For exception-expired findings: the exception that lapsed.",
    )
    suppressed_by = models.ForeignKey(
        "risk.AccessException",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="suppressed_findings",
    )
    evidence = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_seen_run = models.ForeignKey(
        ReconciliationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_seen_run = models.ForeignKey(
        ReconciliationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task = models.ForeignKey(
        "lifecycle.ProvisioningTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    review_item = models.ForeignKey(
        "reviews.ReviewItem", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.TextField(blank=True)
    triaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    triaged_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "fingerprint"],
                condition=Q(
                    status__in=["open", "in_flight", "remediating", "in_review", "suppressed"]
                ),
                name="finding_one_open_per_fingerprint",
            )
        ]
        indexes = [models.Index(fields=["application", "status", "kind"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class DriftSnapshot(models.Model):
    """Open findings per application and kind after each run: drift over time."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="snapshots")
    application = models.ForeignKey(
        "access.Application", on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=Finding.Kind.choices)
    open_count = models.PositiveIntegerField()
    taken_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["run", "kind"], name="drift_snapshot_once_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.application_id} {self.kind}: {self.open_count}"


class ReconciliationSettings(models.Model):
    """How one application is reconciled: dormancy threshold and the schedule of SCIM reads."""

    application = models.OneToOneField(
        "access.Application", on_delete=models.CASCADE, related_name="reconciliation_settings"
    )
    dormant_after_days = models.PositiveIntegerField(
        default=90, help_text="An active account with no sign-in for this many days is dormant."
    )
    scheduled = models.BooleanField(
        default=True,
        help_text="Read the application's actual state over SCIM on a schedule (SCIM "
        "applications with a connector only).",
    )
    every_hours = models.PositiveIntegerField(
        default=24, help_text="Hours between scheduled reads."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "reconciliation settings"
        verbose_name_plural = "reconciliation settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(dormant_after_days__gte=1) & Q(every_hours__gte=1),
                name="reconciliation_settings_positive",
            )
        ]

    def __str__(self) -> str:
        return f"Reconciliation of {self.application}"


class ExpectedGrant(models.Model):
    """Working rows of one run: what Steward intends an observed account to hold, and why
    (policy, approved request, exception grant, review approval). Deleted when the run ends."""

    # Scratch rows written with INSERT … SELECT: no database-level foreign keys.
    run = models.ForeignKey(
        ReconciliationRun,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    account = models.ForeignKey(
        "access.Account",
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    entitlement = models.ForeignKey(
        "access.Entitlement",
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    by_policy = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["run", "account", "entitlement"])]

    def __str__(self) -> str:
        return f"run {self.run_id}: account {self.account_id} should hold {self.entitlement_id}"


class FindingCandidate(models.Model):
    """Working rows of one run: every drift the run sees, before it is merged into the
    findings (deduplicated by fingerprint). Deleted when the run ends."""

    # Scratch rows written with INSERT … SELECT: no database-level foreign keys.
    run = models.ForeignKey(
        ReconciliationRun,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    kind = models.CharField(max_length=20, choices=Finding.Kind.choices)
    fingerprint = models.CharField(max_length=200)
    severity = models.CharField(max_length=10, choices=RiskLevel.choices)
    subject = models.CharField(max_length=300)
    account = models.ForeignKey(
        "access.Account",
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    identity = models.ForeignKey(
        "identities.Identity",
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    nhi = models.ForeignKey(
        "nhi.NonHumanIdentity",
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    entitlement = models.ForeignKey(
        "access.Entitlement",
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    evidence = models.JSONField(default=dict)
    in_flight = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["run", "kind", "fingerprint"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}"
