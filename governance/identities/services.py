"""State changes of the directory. Every function writes its audit event in the same
transaction; the SCIM adapter and the admin only translate and call these."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError, InvalidTransition
from governance.core.snapshot import changed, snapshot
from governance.identities.models import (
    DirectoryGroup,
    GroupMembership,
    Identity,
    IdentityEmail,
    IdentitySource,
)

# Fields of Identity a caller may set directly.
IDENTITY_FIELDS = frozenset(
    {
        "user_name",
        "external_id",
        "given_name",
        "family_name",
        "middle_name",
        "honorific_prefix",
        "honorific_suffix",
        "formatted_name",
        "display_name",
        "nick_name",
        "title",
        "user_type",
        "preferred_language",
        "locale",
        "timezone",
        "profile_url",
        "employee_number",
        "cost_center",
        "organization",
        "division",
        "department",
        "manager_ref",
        "attributes",
        "active",
    }
)
# Audit summaries list at most this many member ids; the count is always exact.
_MEMBER_IDS_IN_AUDIT = 200


def _identity_snapshot(identity: Identity) -> dict[str, Any]:
    data = snapshot(identity, fields=[*IDENTITY_FIELDS, "manager", "deleted_at", "source"])
    data["emails"] = [
        {"value": e.value, "type": e.type, "primary": e.primary} for e in identity.emails.all()
    ]
    return data


def _lifecycle_view(identity: Identity) -> dict[str, Any]:
    """The attributes that make a change a joiner, mover, leaver or rehire."""
    return {
        "active": identity.active and identity.deleted_at is None,
        "department": identity.department,
        "title": identity.title,
        "division": identity.division,
        "manager": str(identity.manager_id) if identity.manager_id else None,
    }


def _derive(actor, identity, before, after, *, groups_changed=False, plan=True) -> None:
    from governance.lifecycle.services import lifecycle_record_change

    lifecycle_record_change(
        actor=actor,
        identity=identity,
        before=before,
        after=after,
        groups_changed=groups_changed,
        plan=plan,
    )


def _derive_membership(actor, identity_ids, enabled: bool, group: DirectoryGroup) -> None:
    """A membership change is a mover event for each person concerned (O(k)); its access is
    planned only when an enabled policy uses the group (otherwise nothing it should hold
    changed)."""
    if not enabled or not identity_ids:
        return
    plan = group.policies.filter(enabled=True).exists()
    for identity in Identity.objects.filter(pk__in=list(identity_ids)):
        view = _lifecycle_view(identity)
        _derive(actor, identity, view, view, groups_changed=True, plan=plan)


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - IDENTITY_FIELDS
    if unknown:
        raise DomainError(f"Unknown identity fields: {', '.join(sorted(unknown))}")
    if "user_name" in fields and not str(fields["user_name"] or "").strip():
        raise DomainError("userName is required and cannot be empty.", field="user_name")


def _user_name_taken(user_name: str, *, exclude: uuid.UUID | None = None) -> bool:
    qs = Identity.objects.filter(user_name__iexact=user_name, deleted_at__isnull=True)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.exists()


def _resolve_manager(identity: Identity) -> None:
    """Point ``manager`` at the person ``manager_ref`` names (by id, else externalId)."""
    ref = (identity.manager_ref or "").strip()
    if not ref:
        identity.manager = None
        return
    candidates = Identity.objects.filter(deleted_at__isnull=True).exclude(pk=identity.pk)
    manager = None
    try:
        manager = candidates.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        pass
    if manager is None:
        manager = candidates.filter(external_id=ref).first()
    identity.manager = manager


def _adopt_waiting_reports(identity: Identity) -> None:
    """People whose manager arrived before this one can now be linked to it."""
    refs = [str(identity.pk)] + ([identity.external_id] if identity.external_id else [])
    Identity.objects.filter(manager__isnull=True, manager_ref__in=refs).exclude(
        pk=identity.pk
    ).update(manager=identity)


def _replace_emails(identity: Identity, emails: Sequence[dict[str, Any]]) -> None:
    identity.emails.all().delete()
    IdentityEmail.objects.bulk_create(
        IdentityEmail(
            identity=identity,
            value=str(e.get("value") or ""),
            type=str(e.get("type") or ""),
            primary=bool(e.get("primary")),
            display=str(e.get("display") or ""),
            position=i,
        )
        for i, e in enumerate(emails)
        if e.get("value")
    )


@transaction.atomic
def source_create(
    *, actor: Actor, name: str, kind: str = "generic", **extra: Any
) -> IdentitySource:
    if IdentitySource.objects.filter(name=name).exists():
        raise Conflict(f"An identity source named {name!r} already exists.", field="name")
    source = IdentitySource(name=name, kind=kind, **extra)
    source.full_clean()
    source.save()
    record(actor=actor, action="identity_source.created", target=source, after=snapshot(source))
    return source


@transaction.atomic
def identity_create(
    *,
    actor: Actor,
    source: IdentitySource | None,
    emails: Sequence[dict[str, Any]] = (),
    derive_lifecycle: bool = True,
    **fields: Any,
) -> Identity:
    """A joiner arrives. userName must be unique case-insensitively among live identities."""
    _check_fields(fields)
    if "user_name" not in fields:
        raise DomainError("userName is required.", field="user_name")
    if _user_name_taken(fields["user_name"]):
        raise Conflict(f"userName {fields['user_name']!r} is already in use.", field="user_name")
    identity = Identity(source=source, **fields)
    if not identity.active:
        identity.deactivated_at = timezone.now()
    _resolve_manager(identity)
    try:
        with transaction.atomic():
            identity.save(force_insert=True)
    except IntegrityError:
        raise Conflict(
            f"userName {fields['user_name']!r} is already in use.", field="user_name"
        ) from None
    _replace_emails(identity, emails)
    _adopt_waiting_reports(identity)
    record(
        actor=actor,
        action="identity.created",
        target=identity,
        after=_identity_snapshot(identity),
    )
    if derive_lifecycle:
        _derive(actor, identity, None, _lifecycle_view(identity))
    return identity


@transaction.atomic
def identity_update(
    *,
    actor: Actor,
    identity: Identity,
    emails: Sequence[dict[str, Any]] | None = None,
    derive_lifecycle: bool = True,
    **fields: Any,
) -> Identity:
    """Change a person's attributes. ``active`` changes are recorded as (de)activation."""
    _check_fields(fields)
    locked = Identity.objects.select_for_update().get(pk=identity.pk)
    if locked.deleted_at is not None:
        raise InvalidTransition("This identity was deleted and cannot be changed.")
    before = _identity_snapshot(locked)
    lifecycle_before = _lifecycle_view(locked)
    if "user_name" in fields and _user_name_taken(fields["user_name"], exclude=locked.pk):
        raise Conflict(f"userName {fields['user_name']!r} is already in use.", field="user_name")
    was_active = locked.active
    for name, value in fields.items():
        setattr(locked, name, value)
    if "manager_ref" in fields:
        _resolve_manager(locked)
    if was_active and not locked.active:
        locked.deactivated_at = timezone.now()
    elif not was_active and locked.active:
        locked.deactivated_at = None
    if emails is not None:
        _replace_emails(locked, emails)
    after = _identity_snapshot(locked)
    old, new = changed(before, after)
    if not old and not new:
        if fields.get("active") is False and not was_active:
            # A repeated or late offboarding signal: evidence that it arrived, nothing to do.
            record(
                actor=actor,
                action="identity.deactivation_repeated",
                target=locked,
                after={"active": False, "already_since": locked.deactivated_at},
            )
        return locked
    locked.version = F("version") + 1
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise Conflict("userName is already in use.", field="user_name") from None
    locked.refresh_from_db()
    if "external_id" in fields:
        _adopt_waiting_reports(locked)
    action = "identity.updated"
    if was_active != locked.active:
        action = "identity.deactivated" if not locked.active else "identity.reactivated"
    record(actor=actor, action=action, target=locked, before=old, after=new)
    if derive_lifecycle:
        _derive(actor, locked, lifecycle_before, _lifecycle_view(locked))
    return locked


def identity_deactivate(
    *, actor: Actor, identity: Identity, derive_lifecycle: bool = True
) -> Identity:
    """The offboarding signal: the person stays readable, with ``active`` false."""
    return identity_update(
        actor=actor, identity=identity, active=False, derive_lifecycle=derive_lifecycle
    )


@transaction.atomic
def identity_delete(*, actor: Actor, identity: Identity) -> Identity:
    """Soft delete: deactivate, leave every group, keep the row and its history."""
    locked = Identity.objects.select_for_update().get(pk=identity.pk)
    if locked.deleted_at is not None:
        raise InvalidTransition("This identity is already deleted.")
    before = _identity_snapshot(locked)
    lifecycle_before = _lifecycle_view(locked)
    groups = list(
        GroupMembership.objects.filter(identity=locked).values_list("group_id", flat=True)
    )
    GroupMembership.objects.filter(identity=locked).delete()
    DirectoryGroup.objects.filter(pk__in=groups).update(
        version=F("version") + 1, updated_at=timezone.now()
    )
    now = timezone.now()
    if locked.active:
        locked.active = False
        locked.deactivated_at = now
    locked.deleted_at = now
    locked.version = F("version") + 1
    locked.save()
    locked.refresh_from_db()
    record(
        actor=actor,
        action="identity.deleted",
        target=locked,
        before=before,
        after={"active": False, "deleted_at": now, "left_groups": [str(g) for g in groups]},
    )
    _derive(actor, locked, lifecycle_before, _lifecycle_view(locked))
    return locked


def _group_name_taken(name: str, *, exclude: uuid.UUID | None = None) -> bool:
    qs = DirectoryGroup.objects.filter(display_name__iexact=name, deleted_at__isnull=True)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.exists()


def _live_identity_ids(identity_ids: Iterable[Any]) -> list[uuid.UUID]:
    wanted = set()
    for raw in identity_ids:
        try:
            wanted.add(uuid.UUID(str(raw)))
        except ValueError:
            raise DomainError(f"Unknown member id: {str(raw)[:64]!r}", field="members") from None
    found = set(
        Identity.objects.filter(pk__in=wanted, deleted_at__isnull=True).values_list("pk", flat=True)
    )
    missing = wanted - found
    if missing:
        raise DomainError(
            "Unknown member ids: " + ", ".join(sorted(str(m) for m in missing)[:10]),
            field="members",
        )
    return sorted(found)


@transaction.atomic
def group_create(
    *,
    actor: Actor,
    source: IdentitySource | None,
    display_name: str,
    external_id: str = "",
    description: str = "",
    member_ids: Iterable[Any] = (),
    derive_lifecycle: bool = True,
    displays: dict[str, str] | None = None,
) -> DirectoryGroup:
    if not (display_name or "").strip():
        raise DomainError("displayName is required.", field="display_name")
    if _group_name_taken(display_name):
        raise Conflict(f"A group named {display_name!r} already exists.", field="display_name")
    group = DirectoryGroup(
        source=source, display_name=display_name, external_id=external_id, description=description
    )
    try:
        with transaction.atomic():
            group.save(force_insert=True)
    except IntegrityError:
        raise Conflict(
            f"A group named {display_name!r} already exists.", field="display_name"
        ) from None
    ids = _live_identity_ids(member_ids)
    by_id = _displays_by_id(displays)
    GroupMembership.objects.bulk_create(
        [GroupMembership(group=group, identity_id=i, display=by_id.get(i, "")) for i in ids],
        ignore_conflicts=True,
    )
    record(
        actor=actor,
        action="group.created",
        target=group,
        after={
            **snapshot(group, fields=["display_name", "external_id", "source"]),
            "member_count": len(ids),
            "members": [str(i) for i in ids[:_MEMBER_IDS_IN_AUDIT]],
        },
    )
    _derive_membership(actor, ids, derive_lifecycle, group)
    return group


def _lock_group(group: DirectoryGroup) -> DirectoryGroup:
    locked = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
    if locked.deleted_at is not None:
        raise InvalidTransition("This group was deleted and cannot be changed.")
    return locked


def _bump(group: DirectoryGroup) -> None:
    DirectoryGroup.objects.filter(pk=group.pk).update(
        version=F("version") + 1, updated_at=timezone.now()
    )
    group.refresh_from_db(fields=["version", "updated_at"])


@transaction.atomic
def group_update(*, actor: Actor, group: DirectoryGroup, **fields: Any) -> DirectoryGroup:
    allowed = {"display_name", "external_id", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise DomainError(f"Unknown group fields: {', '.join(sorted(unknown))}")
    locked = _lock_group(group)
    if "display_name" in fields:
        if not (fields["display_name"] or "").strip():
            raise DomainError("displayName cannot be empty.", field="display_name")
        if _group_name_taken(fields["display_name"], exclude=locked.pk):
            raise Conflict(
                f"A group named {fields['display_name']!r} already exists.", field="display_name"
            )
    before = snapshot(locked, fields=list(allowed))
    for name, value in fields.items():
        setattr(locked, name, value)
    after = snapshot(locked, fields=list(allowed))
    old, new = changed(before, after)
    if not old and not new:
        return locked
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise Conflict("A group with this displayName already exists.") from None
    _bump(locked)
    record(actor=actor, action="group.updated", target=locked, before=old, after=new)
    return locked


def _displays_by_id(displays: dict[str, str] | None) -> dict[uuid.UUID, str]:
    """The display texts sent with members, keyed by identity id (unparseable ids dropped:
    the id check itself reports them)."""
    result: dict[uuid.UUID, str] = {}
    for raw, text in (displays or {}).items():
        try:
            result[uuid.UUID(str(raw))] = text
        except ValueError:
            continue
    return result


def _update_displays(
    group: DirectoryGroup, by_id: dict[uuid.UUID, str], existing: Iterable[uuid.UUID]
) -> None:
    """Keep new display texts for members who already were in the group (new rows get theirs
    when created): one UPDATE per member whose text was sent, O(k) in the members named."""
    for identity_id in existing:
        if identity_id in by_id:
            GroupMembership.objects.filter(group=group, identity_id=identity_id).exclude(
                display=by_id[identity_id]
            ).update(display=by_id[identity_id])


def _member_audit(ids: Sequence[Any]) -> dict[str, Any]:
    return {"count": len(ids), "members": [str(i) for i in list(ids)[:_MEMBER_IDS_IN_AUDIT]]}


@transaction.atomic
def group_members_add(
    *,
    actor: Actor,
    group: DirectoryGroup,
    identity_ids: Iterable[Any],
    displays: dict[str, str] | None = None,
) -> list[uuid.UUID]:
    """Add members; cost is O(k) in the ids given, whatever the group's size. Returns the ids
    that were not members before."""
    locked = _lock_group(group)
    ids = _live_identity_ids(identity_ids)
    if not ids:
        return []
    by_id = _displays_by_id(displays)
    already = set(
        GroupMembership.objects.filter(group=locked, identity_id__in=ids).values_list(
            "identity_id", flat=True
        )
    )
    _update_displays(locked, by_id, already)
    new_ids = [i for i in ids if i not in already]
    if new_ids:
        GroupMembership.objects.bulk_create(
            [
                GroupMembership(group=locked, identity_id=i, display=by_id.get(i, ""))
                for i in new_ids
            ],
            ignore_conflicts=True,
        )
        _bump(locked)
        record(
            actor=actor,
            action="group.members_added",
            target=locked,
            after=_member_audit(new_ids),
        )
        _derive_membership(actor, new_ids, True, locked)
    return new_ids


@transaction.atomic
def group_members_remove(
    *, actor: Actor, group: DirectoryGroup, identity_ids: Iterable[Any]
) -> list[uuid.UUID]:
    """Remove only the listed members (O(k)); ids that are not members are ignored."""
    locked = _lock_group(group)
    wanted = []
    for raw in identity_ids:
        try:
            wanted.append(uuid.UUID(str(raw)))
        except ValueError:
            continue
    if not wanted:
        return []
    removed = list(
        GroupMembership.objects.filter(group=locked, identity_id__in=wanted).values_list(
            "identity_id", flat=True
        )
    )
    if removed:
        GroupMembership.objects.filter(group=locked, identity_id__in=removed).delete()
        _bump(locked)
        record(
            actor=actor,
            action="group.members_removed",
            target=locked,
            before=_member_audit(removed),
        )
        _derive_membership(actor, removed, True, locked)
    return removed


@transaction.atomic
def group_members_replace(
    *,
    actor: Actor,
    group: DirectoryGroup,
    identity_ids: Iterable[Any],
    displays: dict[str, str] | None = None,
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Make the member list exactly ``identity_ids``; returns (added, removed)."""
    locked = _lock_group(group)
    target = set(_live_identity_ids(identity_ids))
    current = set(
        GroupMembership.objects.filter(group=locked).values_list("identity_id", flat=True)
    )
    to_add, to_remove = sorted(target - current), sorted(current - target)
    if to_remove:
        GroupMembership.objects.filter(group=locked, identity_id__in=to_remove).delete()
    by_id = _displays_by_id(displays)
    if to_add:
        GroupMembership.objects.bulk_create(
            [
                GroupMembership(group=locked, identity_id=i, display=by_id.get(i, ""))
                for i in to_add
            ],
            ignore_conflicts=True,
        )
    _update_displays(locked, by_id, target & current)
    if to_add or to_remove:
        _bump(locked)
        record(
            actor=actor,
            action="group.members_replaced",
            target=locked,
            before=_member_audit(to_remove),
            after=_member_audit(to_add),
        )
        _derive_membership(actor, to_add + to_remove, True, locked)
    return to_add, to_remove


@transaction.atomic
def group_delete(*, actor: Actor, group: DirectoryGroup) -> DirectoryGroup:
    """Soft delete: the group disappears from SCIM, memberships end, history stays."""
    locked = _lock_group(group)
    former = list(
        GroupMembership.objects.filter(group=locked).values_list("identity_id", flat=True)
    )
    member_count = len(former)
    GroupMembership.objects.filter(group=locked).delete()
    locked.deleted_at = timezone.now()
    locked.version = F("version") + 1
    locked.save()
    locked.refresh_from_db()
    record(
        actor=actor,
        action="group.deleted",
        target=locked,
        before={"display_name": locked.display_name, "member_count": member_count},
        after={"deleted_at": locked.deleted_at},
    )
    _derive_membership(actor, former, True, locked)
    return locked
