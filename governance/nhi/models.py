"""Non-human identities: service accounts, API clients, bots, AI agents, workloads."""

from __future__ import annotations

from django.db import models


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

    class Environment(models.TextChoices):
        PRODUCTION = "production", "Production"
        STAGING = "staging", "Staging"
        DEVELOPMENT = "development", "Development"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ORPHANED = "orphaned", "Orphaned (owner departed)"
        DISABLED = "disabled", "Disabled"
        RETIRED = "retired", "Retired"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField(blank=True)
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
    application = models.ForeignKey(
        "access.Application",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="nhis",
    )
    environment = models.CharField(
        max_length=12, choices=Environment.choices, default=Environment.PRODUCTION
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
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
