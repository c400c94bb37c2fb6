"""Joiner-mover-leaver events and the provisioning work they cause."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from governance.lifecycle.crypto import EncryptedTextField


class ProvisioningProfile(models.Model):
    """What an application's SCIM can do, and how to reach it.

    ``scim`` and ``scim_partial`` provisioning modes are presets of these flags; whatever a
    change needs that the application cannot do becomes a manual work item.
    """

    application = models.OneToOneField(
        "access.Application", on_delete=models.CASCADE, related_name="provisioning_profile"
    )
    supports_create = models.BooleanField(default=False)
    supports_update = models.BooleanField("supports attribute updates", default=False)
    supports_deactivate = models.BooleanField(default=False)
    supports_delete = models.BooleanField(default=False)
    supports_entitlements = models.BooleanField(
        "supports group/entitlement push",
        default=False,
        help_text="Entitlements are pushed as SCIM group memberships (entitlement external "
        "value = the target group's id).",
    )
    lag_budget_minutes = models.PositiveIntegerField(
        default=60, help_text="How long a change may take to show in the application."
    )
    scim_base_url = EncryptedTextField(blank=True, help_text="Stored encrypted.")
    scim_token = EncryptedTextField(blank=True, help_text="Stored encrypted; never shown.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "provisioning profile"

    def __str__(self) -> str:
        return f"Provisioning profile of {self.application}"

    @property
    def connected(self) -> bool:
        return bool(self.scim_base_url and self.scim_token)


class LifecycleEvent(models.Model):
    class Kind(models.TextChoices):
        JOINER = "joiner", "Joiner"
        MOVER = "mover", "Mover"
        LEAVER = "leaver", "Leaver"
        REHIRE = "rehire", "Rehire"

    identity = models.ForeignKey(
        "identities.Identity", on_delete=models.PROTECT, related_name="lifecycle_events"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    occurred_at = models.DateTimeField(db_index=True)
    actor_label = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)
    urgent = models.BooleanField(
        default=False, help_text="Started from the portal before the identity provider."
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retained_privileged = models.JSONField(
        default=list,
        blank=True,
        help_text="Privileged grants kept from the old role, for the new manager to review.",
    )
    nhi_handoff_needed = models.BooleanField(default=False)
    completed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last task of this event was verified."
    )

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["kind", "completed_at"], name="event_kind_open_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.identity} ({self.occurred_at:%Y-%m-%d %H:%M})"


class ProvisioningTask(models.Model):
    """One change in one application, carried out over SCIM or by a person, and proven."""

    class Operation(models.TextChoices):
        CREATE_ACCOUNT = "create_account", "Create account"
        UPDATE_ACCOUNT = "update_account", "Update account attributes"
        GRANT = "grant", "Grant entitlement"
        REVOKE = "revoke", "Revoke entitlement"
        DISABLE_ACCOUNT = "disable_account", "Disable account"
        ENABLE_ACCOUNT = "enable_account", "Re-enable account"

    class Channel(models.TextChoices):
        SCIM = "scim", "Outbound SCIM"
        MANUAL = "manual", "Manual work item"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        AWAITING_MANUAL = "awaiting_manual", "Awaiting manual work"
        EXECUTED = "executed", "Executed, not verified"
        VERIFIED = "verified", "Verified"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATES = (State.PENDING, State.IN_PROGRESS, State.AWAITING_MANUAL)
    DONE_STATES = (State.VERIFIED, State.CANCELLED)

    event = models.ForeignKey(
        LifecycleEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    application = models.ForeignKey(
        "access.Application", on_delete=models.PROTECT, related_name="provisioning_tasks"
    )
    identity = models.ForeignKey(
        "identities.Identity",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="provisioning_tasks",
    )
    account = models.ForeignKey(
        "access.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="tasks"
    )
    entitlement = models.ForeignKey(
        "access.Entitlement", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    policy = models.ForeignKey(
        "access.AccessPolicy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    operation = models.CharField(max_length=20, choices=Operation.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    evidence_reference = models.CharField(max_length=200, blank=True)
    evidence_note = models.TextField(blank=True)
    evidence_file = models.FileField(upload_to="evidence/%Y/%m/", blank=True)
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    dedupe_key = models.CharField(max_length=200)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(state__in=["pending", "in_progress", "awaiting_manual"]),
                name="task_one_open_per_change",
            )
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="task_due_idx"),
            models.Index(fields=["application", "state"], name="task_app_state_idx"),
        ]

    def __str__(self) -> str:
        who = self.identity or self.account
        return f"{self.get_operation_display()} for {who} in {self.application}"
