"""Delegations: a reviewer lets a colleague decide for them between two dates. Audited."""

from __future__ import annotations

from datetime import date

from django.db import transaction
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import DomainError, PermissionDenied
from governance.portal.models import User
from governance.reviews.models import Delegation


def delegation_validate(
    *, delegator: User | None, delegate: User | None, starts_on: date | None, ends_on: date | None
) -> None:
    """The rules of a delegation, each failure naming its field (forms show them in place)."""
    if delegator is None:
        raise DomainError("Say whose reviews are delegated.", field="delegator")
    if delegate is None:
        raise DomainError("Choose who acts for the reviewer.", field="delegate")
    if delegate.pk == delegator.pk:
        raise DomainError("A reviewer cannot delegate to themselves.", field="delegate")
    if not (delegate.is_active and delegate.is_staff):
        raise DomainError(
            "The delegate must be an active portal user who can sign in to the portal.",
            field="delegate",
        )
    if starts_on is None:
        raise DomainError("Give the first day of the delegation.", field="starts_on")
    if ends_on is None:
        raise DomainError("Give the last day of the delegation.", field="ends_on")
    if ends_on < starts_on:
        raise DomainError("The last day must be on or after the first day.", field="ends_on")
    if ends_on < timezone.localdate():
        raise DomainError("The last day is in the past.", field="ends_on")


@transaction.atomic
def delegation_create(
    *,
    actor: Actor,
    delegator: User,
    delegate: User,
    starts_on: date,
    ends_on: date,
    reason: str = "",
) -> Delegation:
    """Record that ``delegate`` may decide ``delegator``'s review items from ``starts_on`` to
    ``ends_on`` (inclusive). People delegate their own reviews; security admins may record a
    delegation for anyone. Decisions made under it record both people."""
    user = actor.user if actor.kind == "user" else None
    if user is None:
        raise DomainError("Delegations are recorded by a person.")
    if delegator is not None and delegator.pk != user.pk and not user.is_security_admin:
        raise PermissionDenied("You can only delegate your own reviews.", field="delegator")
    delegation_validate(
        delegator=delegator, delegate=delegate, starts_on=starts_on, ends_on=ends_on
    )
    delegation = Delegation.objects.create(
        delegator=delegator,
        delegate=delegate,
        starts_on=starts_on,
        ends_on=ends_on,
        reason=(reason or "").strip()[:200],
    )
    record(
        actor=actor,
        action="delegation.created",
        target=delegation,
        after={
            "delegator": delegator.username,
            "delegate": delegate.username,
            "starts_on": starts_on.isoformat(),
            "ends_on": ends_on.isoformat(),
            "reason": delegation.reason,
        },
    )
    return delegation
