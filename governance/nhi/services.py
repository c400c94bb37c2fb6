"""State changes of non-human identities and their credentials; each writes its audit event.

Succession when an owner leaves (OWASP NHI1:2025)::

    leaver event -> each NHI the person owned: orphaned, OwnershipChange "orphaned"
                 -> Handoff proposed to the backup owner, else the leaver's manager, else an
                    owner of the NHI's application, else security admins
                 -> accepted: the candidate owns the NHI, which is active again
                 -> declined (with reason): the next candidate, finally security admins
                 -> unanswered for N days: escalated to security admins (daily job)
    and a RotationTask for every active credential of those NHIs and every credential the
    person knew (shared secrets), once per credential and leaver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError, InvalidTransition, PermissionDenied
from governance.core.snapshot import changed, snapshot
from governance.identities.models import Identity
from governance.nhi.models import (
    Credential,
    Environment,
    Handoff,
    NonHumanIdentity,
    OwnershipChange,
    RotationTask,
)

Status = NonHumanIdentity.Status
INACTIVE_NHI = (Status.RETIRED, Status.DISABLED)
#: Rotation of a credential a leaver knew is due this soon.
LEAVER_ROTATION_DUE = timedelta(days=3)
#: Rotation of an overdue credential is due this soon.
OVERDUE_ROTATION_DUE = timedelta(days=7)
#: Allowed clock skew for "when was it rotated" given by a pipeline.
CLOCK_SKEW = timedelta(minutes=5)

NHI_FIELDS = (
    "description",
    "purpose",
    "owning_team",
    "application",
    "platform",
    "consumers",
    "environment",
    "auth_method",
    "status",
    "source_created_at",
    "last_used_at",
    "human_use_observed_at",
)
CREDENTIAL_FIELDS = (
    "name",
    "type",
    "status",
    "in_vault",
    "location",
    "issued_at",
    "last_rotated_at",
    "expires_at",
)


def _save_unique(obj, *, conflict: str) -> None:
    """Save in a savepoint: a concurrent request that took the same unique name first turns
    into a clear conflict instead of a server error."""
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        raise Conflict(conflict, field="name") from exc


def escalate_after_days() -> int:
    """Days a hand-off may wait for an answer before security admins are told."""
    return settings.STEWARD_NHI_HANDOFF_ESCALATE_DAYS


def _user_of(actor: Actor):
    return actor.user if actor.kind == "user" else None


def _is_security(actor: Actor) -> bool:
    user = _user_of(actor)
    return user is not None and user.is_security_admin


def _is_active_person(person: Identity | None) -> bool:
    return person is not None and person.active and person.deleted_at is None


def _check_owner(owner: Identity | None, *, field: str) -> None:
    if owner is not None and not _is_active_person(owner):
        raise DomainError(f"{owner} is not an active person and cannot own an NHI.", field=field)


def _full_clean(instance, *, exclude=None) -> None:
    """Model validation as a DomainError naming the first offending field."""
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as exc:
        errors = getattr(exc, "message_dict", {"__all__": exc.messages})
        name, messages = next(iter(errors.items()))
        raise DomainError(" ".join(messages), field=None if name == "__all__" else name) from None


def clean_consumers(value: Any) -> list[str]:
    """A list of distinct, non-empty consumer names (strings of at most 200 characters)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [part for part in value.replace("\n", ";").split(";")]
    if not isinstance(value, list | tuple):
        raise DomainError("Consumers must be a list of names.", field="consumers")
    seen: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise DomainError("Each consumer must be a name.", field="consumers")
        name = item.strip()
        if len(name) > 200:
            raise DomainError("A consumer name is at most 200 characters.", field="consumers")
        if name and name.lower() not in {s.lower() for s in seen}:
            seen.append(name)
    return seen


def _ownership_row(
    *,
    actor: Actor,
    nhi: NonHumanIdentity,
    kind: str,
    from_owner: Identity | None,
    to_owner: Identity | None,
    reason: str,
) -> OwnershipChange:
    return OwnershipChange.objects.create(
        nhi=nhi,
        kind=kind,
        from_owner=from_owner,
        to_owner=to_owner,
        reason=reason,
        changed_by=_user_of(actor),
        actor_label=actor.label,
    )


# -------------------------------------------------------------------------------- NHIs


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
    unknown = set(fields) - set(NHI_FIELDS)
    if unknown:
        raise DomainError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    status = fields.get("status", Status.ACTIVE)
    if owner is None and status == Status.ACTIVE:
        raise DomainError("An active NHI needs an accountable owner.", field="owner")
    if status == Status.ACTIVE:
        _check_owner(owner, field="owner")
    if backup_owner is not None and owner is not None and backup_owner.pk == owner.pk:
        raise DomainError("The backup owner must differ from the owner.", field="backup_owner")
    _check_owner(backup_owner, field="backup_owner")
    if "consumers" in fields:
        fields["consumers"] = clean_consumers(fields["consumers"])
    name = (name or "").strip()
    if NonHumanIdentity.objects.filter(name__iexact=name).exists():
        raise Conflict(f"An NHI named {name!r} already exists.", field="name")
    nhi = NonHumanIdentity(name=name, kind=kind, owner=owner, backup_owner=backup_owner, **fields)
    _full_clean(nhi)
    _save_unique(nhi, conflict=f"An NHI named {name!r} already exists.")
    record(actor=actor, action="nhi.created", target=nhi, after=snapshot(nhi))
    if owner is not None:
        _ownership_row(
            actor=actor,
            nhi=nhi,
            kind=OwnershipChange.Kind.REGISTERED,
            from_owner=None,
            to_owner=owner,
            reason="Registered",
        )
    return nhi


@transaction.atomic
def nhi_update(*, actor: Actor, nhi: NonHumanIdentity, **fields: Any) -> NonHumanIdentity:
    """Change an NHI's descriptive fields and backup owner. The owner changes only through
    :func:`nhi_assign_owner` (with a reason) or a hand-off."""
    allowed = set(NHI_FIELDS) | {"backup_owner", "kind", "name"}
    unknown = set(fields) - allowed
    if "owner" in unknown:
        raise DomainError("Change the owner with a reason (assign owner).", field="owner")
    if unknown:
        raise DomainError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    locked = NonHumanIdentity.objects.select_for_update(of=("self",)).get(pk=nhi.pk)
    before = snapshot(locked)
    if "consumers" in fields:
        fields["consumers"] = clean_consumers(fields["consumers"])
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
        if (
            NonHumanIdentity.objects.filter(name__iexact=fields["name"])
            .exclude(pk=locked.pk)
            .exists()
        ):
            raise Conflict(f"An NHI named {fields['name']!r} already exists.", field="name")
    backup = fields.get("backup_owner", locked.backup_owner)
    if "backup_owner" in fields and backup is not None:
        _check_owner(backup, field="backup_owner")
        if backup.pk == locked.owner_id:
            raise DomainError("The backup owner must differ from the owner.", field="backup_owner")
    if fields.get("status") == Status.ACTIVE and not _is_active_person(locked.owner):
        raise DomainError("An active NHI needs an active owner: assign one first.", field="status")
    for name, value in fields.items():
        setattr(locked, name, value)
    _full_clean(locked)
    _save_unique(locked, conflict=f"An NHI named {locked.name!r} already exists.")
    old, new = changed(before, snapshot(locked))
    if old or new:
        record(actor=actor, action="nhi.updated", target=locked, before=old, after=new)
    return locked


@transaction.atomic
def nhi_assign_owner(
    *,
    actor: Actor,
    nhi: NonHumanIdentity,
    owner: Identity,
    reason: str,
    kind: str = OwnershipChange.Kind.ASSIGNED,
) -> NonHumanIdentity:
    """Make ``owner`` accountable for ``nhi``; an orphaned NHI becomes active again and any
    hand-off still waiting for an answer is closed."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the owner changes.", field="reason")
    if owner is None:
        raise DomainError("Choose the new owner.", field="owner")
    _check_owner(owner, field="owner")
    locked = NonHumanIdentity.objects.select_for_update(of=("self",)).get(pk=nhi.pk)
    if locked.status in INACTIVE_NHI:
        raise InvalidTransition(f"{locked} is {locked.get_status_display().lower()}.")
    if locked.owner_id == owner.pk and locked.status == Status.ACTIVE:
        raise InvalidTransition(f"{owner} already owns {locked}.", field="owner")
    if locked.backup_owner_id == owner.pk:
        raise DomainError(
            "The new owner is the backup owner; pick another backup first.", field="owner"
        )
    previous = locked.owner
    before = snapshot(locked, fields=["owner", "status"])
    locked.owner = owner
    if locked.status == Status.ORPHANED:
        locked.status = Status.ACTIVE
    locked.save(update_fields=["owner", "status", "updated_at"])
    closed = _close_open_handoffs(locked, actor=actor, why=f"Owner assigned: {owner}")
    _ownership_row(
        actor=actor, nhi=locked, kind=kind, from_owner=previous, to_owner=owner, reason=reason
    )
    old, new = changed(before, snapshot(locked, fields=["owner", "status"]))
    record(
        actor=actor,
        action="nhi.owner_assigned",
        target=locked,
        before=old,
        after={**new, "reason": reason, "handoffs_closed": closed},
    )
    return locked


@transaction.atomic
def nhi_bulk_assign_owner(
    *, actor: Actor, nhis: list[NonHumanIdentity], owner: Identity, reason: str
) -> list[NonHumanIdentity]:
    """Assign one owner to several NHIs (a team's or an application's) all or nothing."""
    if not nhis:
        raise DomainError("Select at least one NHI.")
    kind = OwnershipChange.Kind.BULK if len(nhis) > 1 else OwnershipChange.Kind.ASSIGNED
    return [
        nhi_assign_owner(actor=actor, nhi=nhi, owner=owner, reason=reason, kind=kind)
        for nhi in nhis
    ]


@transaction.atomic
def nhi_attest(*, actor: Actor, nhi: NonHumanIdentity) -> NonHumanIdentity:
    """The owner (or a security admin) confirms the NHI is still needed."""
    user = _user_of(actor)
    locked = (
        NonHumanIdentity.objects.select_for_update(of=("self",))
        .select_related("owner")
        .get(pk=nhi.pk)
    )
    is_owner = (
        user is not None and user.identity_id is not None and user.identity_id == locked.owner_id
    )
    if not (is_owner or _is_security(actor)):
        raise PermissionDenied("Only the owner or a security admin attests an NHI.")
    if locked.status != Status.ACTIVE:
        raise InvalidTransition(f"{locked} is not active; assign an owner first.")
    locked.attested_at = timezone.now()
    locked.attested_by = user
    locked.save(update_fields=["attested_at", "attested_by", "updated_at"])
    record(actor=actor, action="nhi.attested", target=locked, after={"at": locked.attested_at})
    return locked


# -------------------------------------------------------------------------------- succession


@dataclass
class SuccessionResult:
    orphaned: list[NonHumanIdentity] = field(default_factory=list)
    handoffs: list[Handoff] = field(default_factory=list)
    rotation_tasks: list[RotationTask] = field(default_factory=list)


def _candidates(nhi: NonHumanIdentity, leaver: Identity) -> list[tuple[str, Identity]]:
    """Successor candidates in order: backup owner, leaver's manager, application owners;
    without the leaver, inactive people and anyone who already declined this NHI."""
    declined = set(
        Handoff.objects.filter(
            nhi=nhi, from_owner=leaver, state=Handoff.State.DECLINED
        ).values_list("proposed_to_id", flat=True)
    )
    found: list[tuple[str, Identity]] = []
    seen = {leaver.pk} | declined

    def add(route: str, person: Identity | None) -> None:
        if person is not None and person.pk not in seen and _is_active_person(person):
            seen.add(person.pk)
            found.append((route, person))

    add(Handoff.Route.BACKUP_OWNER, nhi.backup_owner)
    manager = Identity.objects.filter(pk=leaver.manager_id).first() if leaver.manager_id else None
    add(Handoff.Route.MANAGER, manager)
    if nhi.application_id is not None:
        owners = Identity.objects.filter(
            portal_user__owned_applications=nhi.application_id, portal_user__is_active=True
        ).order_by("portal_user__username")
        for person in owners:
            add(Handoff.Route.APP_OWNER, person)
    return found


def _propose(
    *, actor: Actor, nhi: NonHumanIdentity, leaver: Identity, event=None
) -> Handoff | None:
    """Propose the NHI to the next candidate; None when a hand-off is already open."""
    if Handoff.objects.filter(nhi=nhi, state=Handoff.State.PROPOSED).exists():
        return None
    candidates = _candidates(nhi, leaver)
    route, person = candidates[0] if candidates else (Handoff.Route.SECURITY, None)
    handoff = Handoff(nhi=nhi, from_owner=leaver, proposed_to=person, route=route, event=event)
    try:
        with transaction.atomic():
            handoff.save()
    except IntegrityError:  # a concurrent leaver event proposed it first
        return None
    record(
        actor=actor,
        action="handoff.proposed",
        target=handoff,
        after={
            "nhi": nhi.pk,
            "leaver": str(leaver.pk),
            "proposed_to": str(person.pk) if person else None,
            "route": route,
        },
    )
    return handoff


def _raise_rotation(
    *,
    actor: Actor,
    credential: Credential,
    reason: str,
    due_at: datetime | None,
    leaver: Identity | None = None,
    event=None,
    detail: str = "",
) -> RotationTask | None:
    """One open task per credential; a leaver raises at most one task per credential ever."""
    if RotationTask.objects.filter(credential=credential, state=RotationTask.State.OPEN).exists():
        return None
    if (
        leaver is not None
        and RotationTask.objects.filter(credential=credential, leaver=leaver).exists()
    ):
        return None
    task = RotationTask(
        credential=credential,
        reason=reason,
        leaver=leaver,
        event=event,
        detail=detail[:300],
        due_at=due_at,
    )
    try:
        with transaction.atomic():
            task.save()
    except IntegrityError:
        return None
    record(
        actor=actor,
        action="rotation_task.raised",
        target=task,
        after={"credential": credential.pk, "reason": reason, "due_at": due_at},
    )
    return task


@transaction.atomic
def nhi_succession_for_leaver(
    *, identity: Identity, event=None, actor: Actor | None = None
) -> SuccessionResult:
    """Orphan what ``identity`` owned, propose each NHI to a successor and raise rotation
    of every credential they owned or knew. Idempotent: a repeated leaver event finds the
    open hand-offs and the rotation tasks already raised for this person."""
    actor = actor or Actor.system("leaver succession")
    result = SuccessionResult()
    now = timezone.now()
    owned = list(
        NonHumanIdentity.objects.select_for_update(of=("self",))
        .filter(owner=identity)
        .exclude(status__in=INACTIVE_NHI)
        .select_related("backup_owner", "application")
        .order_by("pk")
    )
    for nhi in owned:
        if nhi.status != Status.ORPHANED:
            nhi.status = Status.ORPHANED
            nhi.save(update_fields=["status", "updated_at"])
            _ownership_row(
                actor=actor,
                nhi=nhi,
                kind=OwnershipChange.Kind.ORPHANED,
                from_owner=identity,
                to_owner=None,
                reason=f"{identity} left",
            )
            record(
                actor=actor,
                action="nhi.orphaned",
                target=nhi,
                before={"status": Status.ACTIVE},
                after={"status": Status.ORPHANED, "leaver": str(identity.pk)},
            )
            result.orphaned.append(nhi)
        handoff = _propose(actor=actor, nhi=nhi, leaver=identity, event=event)
        if handoff is not None:
            result.handoffs.append(handoff)
    credentials = (
        Credential.objects.filter(status=Credential.Status.ACTIVE)
        .filter(pk__in=_credentials_of(identity))
        .select_related("nhi")
        .order_by("pk")
    )
    for credential in credentials:
        owned_it = credential.nhi.owner_id == identity.pk
        task = _raise_rotation(
            actor=actor,
            credential=credential,
            reason=RotationTask.Reason.OWNER_LEFT if owned_it else RotationTask.Reason.KNOWER_LEFT,
            due_at=now + LEAVER_ROTATION_DUE,
            leaver=identity,
            event=event,
            detail=f"{identity} {'owned the NHI' if owned_it else 'knew the secret'} and left",
        )
        if task is not None:
            result.rotation_tasks.append(task)
    return result


def _credentials_of(identity: Identity):
    return Credential.objects.filter(Q(nhi__owner=identity) | Q(known_by=identity)).values("pk")


def _can_decide(actor: Actor, handoff: Handoff) -> bool:
    user = _user_of(actor)
    if user is None:
        return False
    if user.is_security_admin:
        return True
    return handoff.proposed_to_id is not None and user.identity_id == handoff.proposed_to_id


def _lock_open_handoff(actor: Actor, handoff: Handoff) -> Handoff:
    locked = (
        Handoff.objects.select_for_update(of=("self",))
        .select_related("nhi", "proposed_to", "from_owner")
        .get(pk=handoff.pk)
    )
    if locked.state != Handoff.State.PROPOSED:
        raise InvalidTransition(f"This hand-off is already {locked.get_state_display().lower()}.")
    if not _can_decide(actor, locked):
        raise PermissionDenied("Only the proposed person or a security admin answers a hand-off.")
    return locked


@transaction.atomic
def handoff_accept(*, actor: Actor, handoff: Handoff) -> Handoff:
    """The proposed person becomes the owner; the NHI is active again."""
    locked = _lock_open_handoff(actor, handoff)
    if locked.proposed_to is None:
        raise InvalidTransition(
            "No one was proposed: assign an owner on the NHI's page.", field="proposed_to"
        )
    person = locked.proposed_to
    if not _is_active_person(person):
        raise InvalidTransition(f"{person} is no longer active; decline it to move on.")
    nhi = NonHumanIdentity.objects.select_for_update(of=("self",)).get(pk=locked.nhi_id)
    if nhi.status in INACTIVE_NHI:
        raise InvalidTransition(f"{nhi} is {nhi.get_status_display().lower()}.")
    before = snapshot(nhi, fields=["owner", "backup_owner", "status"])
    previous = nhi.owner
    nhi.owner = person
    if nhi.backup_owner_id == person.pk:
        nhi.backup_owner = None
    nhi.status = Status.ACTIVE
    nhi.save(update_fields=["owner", "backup_owner", "status", "updated_at"])
    now = timezone.now()
    locked.state = Handoff.State.ACCEPTED
    locked.decided_at = now
    locked.decided_by = _user_of(actor)
    locked.save(update_fields=["state", "decided_at", "decided_by"])
    _ownership_row(
        actor=actor,
        nhi=nhi,
        kind=OwnershipChange.Kind.HANDOFF,
        from_owner=previous,
        to_owner=person,
        reason=f"Hand-off from {locked.from_owner} accepted",
    )
    old, new = changed(before, snapshot(nhi, fields=["owner", "backup_owner", "status"]))
    record(actor=actor, action="handoff.accepted", target=locked, before=old, after=new)
    return locked


@transaction.atomic
def handoff_decline(*, actor: Actor, handoff: Handoff, reason: str) -> Handoff | None:
    """Decline with a reason; the NHI is proposed to the next candidate (finally security
    admins). Returns the new hand-off."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why you decline.", field="reason")
    locked = _lock_open_handoff(actor, handoff)
    if locked.route == Handoff.Route.SECURITY:
        raise InvalidTransition("Security admins assign an owner; there is no one left to ask.")
    locked.state = Handoff.State.DECLINED
    locked.decided_at = timezone.now()
    locked.decided_by = _user_of(actor)
    locked.decline_reason = reason
    locked.save(update_fields=["state", "decided_at", "decided_by", "decline_reason"])
    record(
        actor=actor,
        action="handoff.declined",
        target=locked,
        before={"state": Handoff.State.PROPOSED},
        after={"state": Handoff.State.DECLINED, "reason": reason},
    )
    nhi = NonHumanIdentity.objects.select_related("backup_owner").get(pk=locked.nhi_id)
    return _propose(actor=actor, nhi=nhi, leaver=locked.from_owner, event=locked.event)


def _close_open_handoffs(nhi: NonHumanIdentity, *, actor: Actor, why: str) -> list[int]:
    ids = list(
        Handoff.objects.filter(nhi=nhi, state=Handoff.State.PROPOSED).values_list("pk", flat=True)
    )
    if ids:
        Handoff.objects.filter(pk__in=ids, state=Handoff.State.PROPOSED).update(
            state=Handoff.State.CLOSED,
            decided_at=timezone.now(),
            decided_by=_user_of(actor),
            decline_reason=why[:500],
        )
    return ids


def handoffs_escalate(*, now: datetime | None = None) -> list[Handoff]:
    """Mark hand-offs unanswered for :func:`escalate_after_days` as escalated, each once,
    and tell security admins in one mail. A second run the same day finds nothing."""
    from governance.nhi.notifications import send_escalation_digest

    now = now or timezone.now()
    cutoff = now - timedelta(days=escalate_after_days())
    escalated: list[Handoff] = []
    actor = Actor.system("hand-off escalation")
    due = Handoff.objects.filter(
        state=Handoff.State.PROPOSED, escalated_at__isnull=True, proposed_at__lte=cutoff
    ).values_list("pk", flat=True)
    for pk in list(due):
        with transaction.atomic():
            claimed = Handoff.objects.filter(
                pk=pk, state=Handoff.State.PROPOSED, escalated_at__isnull=True
            ).update(escalated_at=now)
            if claimed != 1:
                continue
            handoff = Handoff.objects.select_related("nhi", "proposed_to", "from_owner").get(pk=pk)
            record(
                actor=actor,
                action="handoff.escalated",
                target=handoff,
                after={"escalated_at": now, "days": escalate_after_days()},
            )
            escalated.append(handoff)
    if escalated:
        send_escalation_digest(escalated)
    return escalated


# -------------------------------------------------------------------------------- credentials


def _environment_flags(environments: Any) -> dict[str, bool]:
    if environments is None:
        return {}
    if isinstance(environments, str):
        environments = [e for e in environments.replace(";", ",").split(",")]
    if not isinstance(environments, list | tuple | set):
        raise DomainError("Environments must be a list.", field="environments")
    chosen = {str(e).strip().lower() for e in environments if str(e).strip()}
    unknown = chosen - set(Environment.values)
    if unknown:
        raise DomainError(
            f"Unknown environment(s): {', '.join(sorted(unknown))}; use "
            f"{', '.join(Environment.values)}.",
            field="environments",
        )
    return {f"used_in_{env}": env in chosen for env in Environment.values}


def _check_people(people: Any) -> list[Identity]:
    people = list(people or [])
    for person in people:
        if not isinstance(person, Identity):
            raise DomainError("People who know it must be directory identities.", field="known_by")
    return people


def _check_dates(credential: Credential, now: datetime) -> None:
    if credential.issued_at and credential.issued_at > now + CLOCK_SKEW:
        raise DomainError("The creation date is in the future.", field="issued_at")
    if credential.last_rotated_at is not None:
        if credential.last_rotated_at > now + CLOCK_SKEW:
            raise DomainError("The last rotation is in the future.", field="last_rotated_at")
        if credential.issued_at and credential.last_rotated_at < credential.issued_at:
            raise DomainError(
                "The last rotation is before the credential was created.", field="last_rotated_at"
            )


@transaction.atomic
def credential_create(
    *,
    actor: Actor,
    nhi: NonHumanIdentity,
    name: str,
    type: str,
    environments: Any = None,
    known_by: Any = (),
    **fields: Any,
) -> Credential:
    """Register a credential's metadata. The secret itself is never accepted."""
    unknown = set(fields) - set(CREDENTIAL_FIELDS)
    if unknown:
        raise DomainError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    if nhi.status == Status.RETIRED:
        raise InvalidTransition(f"{nhi} is retired.", field="nhi")
    name = (name or "").strip()
    if Credential.objects.filter(nhi=nhi, name__iexact=name).exists():
        raise Conflict(f"{nhi} already has a credential named {name!r}.", field="name")
    people = _check_people(known_by)
    credential = Credential(nhi=nhi, name=name, type=type, **fields)
    for attr, value in _environment_flags(environments).items():
        setattr(credential, attr, value)
    if credential.issued_at is None:
        credential.issued_at = timezone.now()
    _check_dates(credential, timezone.now())
    _full_clean(credential, exclude=["known_by"])
    _save_unique(credential, conflict=f"{nhi} already has a credential named {name!r}.")
    credential.known_by.set(people)
    record(actor=actor, action="credential.created", target=credential, after=snapshot(credential))
    return credential


@transaction.atomic
def credential_update(
    *,
    actor: Actor,
    credential: Credential,
    environments: Any = None,
    known_by: Any = None,
    **fields: Any,
) -> Credential:
    unknown = set(fields) - set(CREDENTIAL_FIELDS)
    if unknown:
        raise DomainError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    locked = (
        Credential.objects.select_for_update(of=("self",))
        .select_related("nhi")
        .get(pk=credential.pk)
    )
    before = snapshot(locked)
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
        if (
            Credential.objects.filter(nhi=locked.nhi, name__iexact=fields["name"])
            .exclude(pk=locked.pk)
            .exists()
        ):
            raise Conflict(
                f"{locked.nhi} already has a credential named {fields['name']!r}.", field="name"
            )
    for attr, value in {**fields, **_environment_flags(environments)}.items():
        setattr(locked, attr, value)
    _check_dates(locked, timezone.now())
    _full_clean(locked, exclude=["known_by"])
    locked.save()
    if known_by is not None:
        locked.known_by.set(_check_people(known_by))
    old, new = changed(before, snapshot(locked))
    if old or new:
        record(actor=actor, action="credential.updated", target=locked, before=old, after=new)
    if locked.status == Credential.Status.REVOKED:
        # A revoked secret needs no rotation any more.
        RotationTask.objects.filter(credential=locked, state=RotationTask.State.OPEN).update(
            state=RotationTask.State.CANCELLED,
            closed_at=timezone.now(),
            closed_by=_user_of(actor),
            evidence_note="Credential revoked",
        )
    return locked


@transaction.atomic
def credential_record_rotation(
    *,
    actor: Actor,
    credential: Credential,
    rotated_at: datetime | None = None,
    evidence_note: str = "",
    evidence_reference: str = "",
    expires_at: datetime | None = None,
) -> Credential:
    """Record that the secret was rotated, with evidence; closes its open rotation tasks.

    People who left no longer know the new secret, so they are taken off ``known_by``.
    """
    evidence_note = (evidence_note or "").strip()
    evidence_reference = (evidence_reference or "").strip()
    if not evidence_note and not evidence_reference:
        raise DomainError(
            "Give evidence of the rotation: a change or ticket reference, or a note.",
            field="evidence_reference",
        )
    if len(evidence_reference) > 200:
        raise DomainError("The reference is at most 200 characters.", field="evidence_reference")
    now = timezone.now()
    rotated_at = rotated_at or now
    locked = (
        Credential.objects.select_for_update(of=("self",))
        .select_related("nhi")
        .get(pk=credential.pk)
    )
    if locked.status != Credential.Status.ACTIVE:
        raise InvalidTransition(f"{locked} is revoked; nothing to rotate.")
    if rotated_at > now + CLOCK_SKEW:
        raise DomainError("The rotation cannot be in the future.", field="rotated_at")
    if rotated_at < locked.issued_at:
        raise DomainError(
            "The rotation cannot be before the credential was created.", field="rotated_at"
        )
    if locked.last_rotated_at is not None and rotated_at < locked.last_rotated_at:
        raise DomainError(
            "A later rotation is already recorded for this credential.", field="rotated_at"
        )
    if expires_at is not None and expires_at <= rotated_at:
        raise DomainError("The new expiry must be after the rotation.", field="expires_at")
    before = snapshot(locked, fields=["last_rotated_at", "expires_at", "known_by"])
    locked.last_rotated_at = rotated_at
    if expires_at is not None:
        locked.expires_at = expires_at
    locked.save(update_fields=["last_rotated_at", "expires_at", "updated_at"])
    departed = list(locked.known_by.filter(active=False))
    if departed:
        locked.known_by.remove(*departed)
    closed = list(
        RotationTask.objects.filter(credential=locked, state=RotationTask.State.OPEN).values_list(
            "pk", flat=True
        )
    )
    RotationTask.objects.filter(pk__in=closed).update(
        state=RotationTask.State.DONE,
        closed_at=now,
        closed_by=_user_of(actor),
        evidence_note=evidence_note,
        evidence_reference=evidence_reference,
    )
    old, new = changed(
        before, snapshot(locked, fields=["last_rotated_at", "expires_at", "known_by"])
    )
    record(
        actor=actor,
        action="credential.rotated",
        target=locked,
        before=old,
        after={
            **new,
            "evidence_note": evidence_note,
            "evidence_reference": evidence_reference,
            "rotation_tasks_closed": closed,
        },
    )
    return locked


def rotation_sweep(*, now: datetime | None = None, notify: bool = True) -> dict[str, int]:
    """Daily: raise rotation tasks for overdue and soon-expiring credentials (once while one
    is open) and send each owner one digest of their credentials needing rotation."""
    from governance.nhi import selectors
    from governance.nhi.notifications import send_owner_digests

    now = now or timezone.now()
    actor = Actor.system("rotation sweep")
    book = selectors.PolicyBook()
    raised = {"overdue": 0, "expiring": 0}
    for reason, q in (
        (RotationTask.Reason.OVERDUE, selectors.overdue_q(now, book)),
        (RotationTask.Reason.EXPIRING, selectors.expiring_q(now, book)),
    ):
        candidates = (
            selectors.credentials_annotated()
            .filter(q)
            .exclude(rotation_tasks__state=RotationTask.State.OPEN)
            .select_related("nhi")
        )
        for credential in candidates:
            rule = book.rule_for(credential)
            policy_due = credential.age_base + timedelta(days=rule.max_age_days)
            due = min(d for d in (policy_due, credential.expires_at) if d is not None)
            if reason == RotationTask.Reason.OVERDUE:
                due = now + OVERDUE_ROTATION_DUE
            with transaction.atomic():
                task = _raise_rotation(
                    actor=actor,
                    credential=credential,
                    reason=reason,
                    due_at=due,
                    detail=f"policy: rotate every {rule.max_age_days} days",
                )
            if task is not None:
                raised[reason] += 1
    raised["mails"] = send_owner_digests(now=now) if notify else 0
    return raised
