"""The append-only, hash-chained audit log (NIST 800-53 AC-2(4))."""

from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    """One change and who or what made it.

    Each event stores the SHA-256 of its own canonical content plus the previous event's hash,
    so editing or deleting any row breaks the chain (``manage.py audit_verify``). On
    PostgreSQL a trigger also refuses UPDATE and DELETE on this table.
    """

    class ActorType(models.TextChoices):
        USER = "user", "Portal user"
        SCIM = "scim", "SCIM source"
        SYSTEM = "system", "System task"

    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_source = models.ForeignKey(
        "identities.IdentitySource",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"
