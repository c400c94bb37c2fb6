"""Reads over the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from governance.audit.models import AuditEvent
from governance.audit.services import GENESIS_HASH, compute_hash


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


def audit_chain_verify(*, batch_size: int = 2000) -> tuple[int, ChainBreak | None]:
    """Walk the chain in id order; return (events checked, first break or None)."""
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return checked, None
        for event in batch:
            if event.prev_hash != expected_prev:
                return checked, ChainBreak(
                    event.id,
                    "previous-hash link does not match (an event was removed or reordered)",
                )
            if compute_hash(event) != event.hash:
                return checked, ChainBreak(event.id, "content does not match its hash (edited)")
            expected_prev = event.hash
            checked += 1
            last_id = event.id


def audit_events_for(obj) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type=obj._meta.label_lower, target_id=str(obj.pk)))
