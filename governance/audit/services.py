"""``record(...)``: the one way an audit event is written.

Call it inside the transaction of the change it describes; if the change rolls back, so does
its event. Events are chained: the hash covers the event's content and the previous hash. On
PostgreSQL a transaction-scoped advisory lock serialises writers so the chain has no forks.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.middleware import current_request_id
from governance.core.snapshot import to_json_safe

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 0x5354_4557  # "STEW"


def compute_hash(event: AuditEvent) -> str:
    payload = {
        "occurred_at": event.occurred_at.isoformat(),
        "actor_type": event.actor_type,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_repr": event.target_repr,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


@transaction.atomic
def record(
    *,
    actor: Actor,
    action: str,
    target: models.Model | None = None,
    target_type: str | None = None,
    target_id: Any = None,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Append one event. ``target`` may be a model instance or given as type and id."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target.pk if target_id is None else target_id
        target_repr = str(target)[:300]
    else:
        target_repr = ""
    _lock_chain()
    last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_type=actor.kind,
        actor_user=actor.user if actor.kind == "user" else None,
        actor_source=actor.source if actor.kind == "scim" else None,
        actor_label=actor.label,
        action=action,
        target_type=target_type or "",
        target_id=str(target_id if target_id is not None else ""),
        target_repr=target_repr,
        before=to_json_safe(before),
        after=to_json_safe(after),
        request_id=current_request_id(),
        prev_hash=last or GENESIS_HASH,
    )
    event.hash = compute_hash(event)
    event.save(force_insert=True)
    return event
