"""Tokens of the governance REST API: how a pipeline or script proves which portal user it
acts as. The user's role permissions and application scoping apply to every request."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiToken(models.Model):
    """An API token of one portal user, stored only as its SHA-256.

    The plaintext (``stw_api_`` + 43 URL-safe characters, 256 random bits) is shown once
    when the token is created and never stored. Tokens are revoked, never deleted.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens"
    )
    label = models.CharField(
        max_length=100, blank=True, help_text="What the token is for, e.g. 'deploy pipeline'."
    )
    token_prefix = models.CharField(
        "prefix",
        max_length=32,
        db_index=True,
        editable=False,
        help_text="The start of the token, enough to recognise it; not a secret.",
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=False) | Q(revoked_by__isnull=True),
                name="apitoken_revoked_by_needs_revoked_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.token_prefix}… ({self.label})" if self.label else f"{self.token_prefix}…"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
