"""State changes of non-human identities; each writes its audit event."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError
from governance.core.snapshot import changed, snapshot
from governance.identities.models import Identity
from governance.nhi.models import NonHumanIdentity


def _check_owner(owner: Identity | None, *, field: str) -> None:
    if owner is not None and (not owner.active or owner.deleted_at is not None):
        raise DomainError(f"{owner} is not an active person and cannot own an NHI.", field=field)


@transaction.atomic
def nhi_create(
    *,
    actor: Actor,
    name: str,
    kind: str,
    owner: Identity | None,
    backup_owner: Identity | None = None,
    **fields: Any,
) -> NonHumanIdentity:
    """Register an NHI. An owner is required unless the NHI is registered as orphaned."""
    status = fields.get("status", NonHumanIdentity.Status.ACTIVE)
    if owner is None and status == NonHumanIdentity.Status.ACTIVE:
        raise DomainError("An active NHI needs an accountable owner.", field="owner")
    if status == NonHumanIdentity.Status.ACTIVE:
        _check_owner(owner, field="owner")
    if backup_owner is not None and owner is not None and backup_owner.pk == owner.pk:
        raise DomainError("The backup owner must differ from the owner.", field="backup_owner")
    if NonHumanIdentity.objects.filter(name=name).exists():
        raise Conflict(f"An NHI named {name!r} already exists.", field="name")
    nhi = NonHumanIdentity(name=name, kind=kind, owner=owner, backup_owner=backup_owner, **fields)
    nhi.full_clean()
    nhi.save()
    record(actor=actor, action="nhi.created", target=nhi, after=snapshot(nhi))
    return nhi


@transaction.atomic
def nhi_assign_owner(
    *, actor: Actor, nhi: NonHumanIdentity, owner: Identity, reason: str
) -> NonHumanIdentity:
    """Make ``owner`` accountable for ``nhi``; an orphaned NHI becomes active again."""
    if not (reason or "").strip():
        raise DomainError("Say why the owner changes.", field="reason")
    _check_owner(owner, field="owner")
    locked = NonHumanIdentity.objects.select_for_update().get(pk=nhi.pk)
    if locked.backup_owner_id == owner.pk:
        raise DomainError("The new owner is the backup owner; pick another backup first.")
    before = snapshot(locked, fields=["owner", "status"])
    locked.owner = owner
    if locked.status == NonHumanIdentity.Status.ORPHANED:
        locked.status = NonHumanIdentity.Status.ACTIVE
    locked.save(update_fields=["owner", "status", "updated_at"])
    old, new = changed(before, snapshot(locked, fields=["owner", "status"]))
    record(
        actor=actor,
        action="nhi.owner_assigned",
        target=locked,
        before=old,
        after={**new, "reason": reason},
    )
    return locked
