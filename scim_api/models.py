"""SCIM bearer tokens: how an identity provider proves which IdentitySource it speaks for."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ScimToken(models.Model):
    """A bearer token of one identity source, stored only as its SHA-256.

    The plaintext (``stw_scim_`` + 43 URL-safe characters, 256 random bits) is shown once
    when the token is created and never stored. Tokens are revoked, never deleted, so the
    audit log keeps pointing at something.
    """

    source = models.ForeignKey(
        "identities.IdentitySource", on_delete=models.PROTECT, related_name="scim_tokens"
    )
    label = models.CharField(
        max_length=100, blank=True, help_text="What the token is for, e.g. 'Okta production'."
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
        verbose_name = "SCIM token"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=False) | Q(revoked_by__isnull=True),
                name="scimtoken_revoked_by_needs_revoked_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.token_prefix}… ({self.label})" if self.label else f"{self.token_prefix}…"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
