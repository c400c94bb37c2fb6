"""Non-human identities: service accounts, API clients, bots, AI agents, workloads.

An NHI always has an accountable human owner (OWASP NHI1:2025 Improper Offboarding). When
the owner leaves, the NHI is orphaned and handed off (``Handoff``) to a successor; its
credentials (metadata only, never the secret) are rotated (``RotationTask``) because the
person who left knew them. ``OwnershipChange`` is the history of who was accountable when.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"
    DEVELOPMENT = "development", "Development"


class NonHumanIdentity(models.Model):
    """An NHI always has an accountable human owner; it is orphaned when that owner leaves
    (OWASP NHI1:2025 Improper Offboarding)."""

    class Kind(models.TextChoices):
        SERVICE_ACCOUNT = "service_account", "Service account"
        API_CLIENT = "api_client", "API client / key"
        OAUTH_APP = "oauth_app", "OAuth app"
        INTEGRATION = "integration", "Integration"
        BOT = "bot", "Bot"
        AI_AGENT = "ai_agent", "AI agent"
        WORKLOAD = "workload", "Workload"

    Environment = Environment

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ORPHANED = "orphaned", "Orphaned (owner departed)"
        DISABLED = "disabled", "Disabled"
        RETIRED = "retired", "Retired"

    class AuthMethod(models.TextChoices):
        STATIC_SECRET = "static_secret", "Static secret (password, API key, token)"
        CERTIFICATE = "certificate", "Certificate"
        OIDC_FEDERATION = "oidc_federation", "OIDC federation (workload identity)"
        OAUTH_CLIENT_CREDENTIALS = "oauth_client_credentials", "OAuth client credentials"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField(blank=True)
    purpose = models.TextField(blank=True, help_text="What it does and why it is needed.")
    owner = models.ForeignKey(
        "identities.Identity",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="owned_nhis",
    )
    backup_owner = models.ForeignKey(
        "identities.Identity",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="backup_owned_nhis",
    )
    owning_team = models.CharField(max_length=150, blank=True, db_index=True)
    application = models.ForeignKey(
        "access.Application",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="nhis",
    )
    platform = models.CharField(
        max_length=100,
        blank=True,
        help_text="Where it runs or authenticates, e.g. GitHub Actions, AWS, Kubernetes.",
    )
    consumers = models.JSONField(
        default=list,
        blank=True,
        help_text="The systems or jobs that use it, one name each (several: NHI9 reuse).",
    )
    environment = models.CharField(
        max_length=12, choices=Environment.choices, default=Environment.PRODUCTION
    )
    auth_method = models.CharField(
        "authentication method", max_length=30, choices=AuthMethod.choices, blank=True
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    source_created_at = models.DateTimeField("created in source system", null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    attested_at = models.DateTimeField(
        "last attested", null=True, blank=True, help_text="When the owner confirmed it is needed."
    )
    attested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    human_use_observed_at = models.DateTimeField(
        "interactive login seen",
        null=True,
        blank=True,
        help_text="Last time a person was seen logging in interactively with it (NHI10).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "non-human identity"
        verbose_name_plural = "non-human identities"
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(owner=models.F("backup_owner")),
                name="nhi_backup_differs_from_owner",
                violation_error_message="The backup owner must be someone other than the owner.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Credential(models.Model):
    """Metadata of one secret of an NHI. The secret itself is never stored here."""

    class Type(models.TextChoices):
        PASSWORD = "password", "Password"
        API_KEY = "api_key", "API key"
        CERTIFICATE = "certificate", "Certificate"
        OAUTH_SECRET = "oauth_secret", "OAuth client secret"
        SSH_KEY = "ssh_key", "SSH key"
        TOKEN = "token", "Token"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    nhi = models.ForeignKey(
        NonHumanIdentity,
        on_delete=models.PROTECT,
        related_name="credentials",
        verbose_name="non-human identity",
    )
    name = models.CharField(max_length=200, help_text="How people refer to it, e.g. 'deploy key'.")
    type = models.CharField(max_length=20, choices=Type.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    in_vault = models.BooleanField("stored in a vault", default=False)
    location = models.CharField(
        max_length=300, blank=True, help_text="Vault path or where else it is kept."
    )
    issued_at = models.DateTimeField("created", default=timezone.now)
    last_rotated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    used_in_production = models.BooleanField(default=False)
    used_in_staging = models.BooleanField(default=False)
    used_in_development = models.BooleanField(default=False)
    known_by = models.ManyToManyField(
        "identities.Identity",
        blank=True,
        related_name="known_credentials",
        help_text="People who know the secret (a shared secret is rotated when one leaves).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["nhi__name", "name"]
        constraints = [
            models.UniqueConstraint("nhi", Lower("name"), name="credential_name_per_nhi"),
            models.CheckConstraint(condition=~Q(name=""), name="credential_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.nhi.name}: {self.name}"

    @property
    def environments(self) -> list[str]:
        return [
            env
            for env, used in (
                (Environment.PRODUCTION, self.used_in_production),
                (Environment.STAGING, self.used_in_staging),
                (Environment.DEVELOPMENT, self.used_in_development),
            )
            if used
        ]

    @property
    def age_base(self):
        """Rotation age counts from the last rotation, else from creation."""
        return self.last_rotated_at or self.issued_at


class CredentialPolicy(models.Model):
    """How old a credential may get. The most specific row wins: kind and environment, then
    kind, then environment, then the row with neither; with no row at all, the built-in
    default (see ``selectors.DEFAULT_MAX_AGE_DAYS``)."""

    nhi_kind = models.CharField(
        "NHI kind",
        max_length=20,
        choices=NonHumanIdentity.Kind.choices,
        blank=True,
        help_text="Empty: any kind.",
    )
    environment = models.CharField(
        max_length=12, choices=Environment.choices, blank=True, help_text="Empty: any environment."
    )
    max_age_days = models.PositiveIntegerField(
        "maximum age (days)", help_text="Rotate at least this often."
    )
    warn_days = models.PositiveIntegerField(
        "warn ahead (days)", default=14, help_text="Flag as expiring soon this many days ahead."
    )
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "credential policy"
        verbose_name_plural = "credential policies"
        ordering = ["nhi_kind", "environment"]
        constraints = [
            models.UniqueConstraint(
                fields=["nhi_kind", "environment"],
                name="credential_policy_one_per_scope",
                violation_error_message="A policy for this kind and environment already exists.",
            ),
            models.CheckConstraint(
                condition=Q(max_age_days__gte=1), name="credential_policy_max_age_positive"
            ),
        ]

    def __str__(self) -> str:
        kind = self.get_nhi_kind_display() if self.nhi_kind else "any kind"
        env = self.get_environment_display() if self.environment else "any environment"
        return f"{kind}, {env}: {self.max_age_days} days"


class OwnershipChange(models.Model):
    """One change of who is accountable for an NHI, and why."""

    class Kind(models.TextChoices):
        REGISTERED = "registered", "Registered with an owner"
        ASSIGNED = "assigned", "Owner assigned"
        BULK = "bulk", "Owner assigned in bulk"
        ORPHANED = "orphaned", "Orphaned: owner left"
        HANDOFF = "handoff", "Hand-off accepted"

    nhi = models.ForeignKey(
        NonHumanIdentity, on_delete=models.CASCADE, related_name="ownership_changes"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    from_owner = models.ForeignKey(
        "identities.Identity", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_owner = models.ForeignKey(
        "identities.Identity", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    changed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-changed_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.nhi}: {self.get_kind_display()} ({self.changed_at:%Y-%m-%d})"


class Handoff(models.Model):
    """The proposal that a successor takes over an NHI whose owner left."""

    class State(models.TextChoices):
        PROPOSED = "proposed", "Waiting for an answer"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        CLOSED = "closed", "Closed (owner assigned otherwise)"

    class Route(models.TextChoices):
        BACKUP_OWNER = "backup_owner", "Backup owner"
        MANAGER = "manager", "Leaver's manager"
        APP_OWNER = "app_owner", "Application owner"
        SECURITY = "security", "Security admins (no candidate left)"

    nhi = models.ForeignKey(NonHumanIdentity, on_delete=models.CASCADE, related_name="handoffs")
    from_owner = models.ForeignKey(
        "identities.Identity", on_delete=models.PROTECT, related_name="+", verbose_name="leaver"
    )
    proposed_to = models.ForeignKey(
        "identities.Identity",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="proposed_handoffs",
        help_text="Empty: security admins assign an owner.",
    )
    route = models.CharField(max_length=15, choices=Route.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PROPOSED)
    event = models.ForeignKey(
        "lifecycle.LifecycleEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    proposed_at = models.DateTimeField(default=timezone.now, db_index=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(
        "candidate last told", null=True, blank=True, help_text="Last reminder mail."
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decline_reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "hand-off"
        ordering = ["-proposed_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["nhi"],
                condition=Q(state="proposed"),
                name="handoff_one_open_per_nhi",
            ),
            models.CheckConstraint(
                condition=Q(route="security", proposed_to__isnull=True)
                | (~Q(route="security") & Q(proposed_to__isnull=False)),
                name="handoff_candidate_matches_route",
            ),
        ]

    def __str__(self) -> str:
        to = self.proposed_to or "security admins"
        return f"{self.nhi}: hand-off to {to}"


class RotationTask(models.Model):
    """A credential that must be rotated, and why; closed with evidence of the rotation."""

    class Reason(models.TextChoices):
        OWNER_LEFT = "owner_left", "Owner of the NHI left"
        KNOWER_LEFT = "knower_left", "Someone who knows it left"
        OVERDUE = "overdue", "Older than policy or expired"
        EXPIRING = "expiring", "Expires soon"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Rotated"
        CANCELLED = "cancelled", "Cancelled"

    credential = models.ForeignKey(
        Credential, on_delete=models.CASCADE, related_name="rotation_tasks"
    )
    reason = models.CharField(max_length=15, choices=Reason.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    leaver = models.ForeignKey(
        "identities.Identity", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    event = models.ForeignKey(
        "lifecycle.LifecycleEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    detail = models.CharField(max_length=300, blank=True)
    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    due_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(
        "owner last told", null=True, blank=True, help_text="Last digest mail that listed it."
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence_note = models.TextField(blank=True)
    evidence_reference = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-raised_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["credential"],
                condition=Q(state="open"),
                name="rotation_one_open_per_credential",
            )
        ]

    def __str__(self) -> str:
        return f"Rotate {self.credential} ({self.get_reason_display().lower()})"
