"""State changes of applications, accounts and grants; each writes its audit event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.access.models import AccessPolicy, Account, Application, Entitlement, Grant
from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError, InvalidTransition
from governance.core.snapshot import snapshot


def _validated_save(instance, *, conflict_message: str) -> None:
    try:
        instance.full_clean()
    except ValidationError as exc:
        if any(
            "unique" in str(msg).lower() or "already" in str(msg).lower() for msg in exc.messages
        ):
            raise Conflict(conflict_message) from None
        raise DomainError("; ".join(exc.messages)) from None
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        raise Conflict(conflict_message) from None


@transaction.atomic
def application_create(
    *, actor: Actor, name: str, owners: Iterable[Any] = (), **fields: Any
) -> Application:
    app = Application(name=name, **fields)
    _validated_save(app, conflict_message=f"An application named {name!r} already exists.")
    app.owners.set(list(owners))
    record(actor=actor, action="application.created", target=app, after=snapshot(app))
    return app


@transaction.atomic
def entitlement_create(
    *, actor: Actor, application: Application, name: str, external_value: str = "", **fields: Any
) -> Entitlement:
    ent = Entitlement(
        application=application, name=name, external_value=external_value or name, **fields
    )
    _validated_save(
        ent, conflict_message=f"{application} already has an entitlement {ent.external_value!r}."
    )
    record(actor=actor, action="entitlement.created", target=ent, after=snapshot(ent))
    return ent


@transaction.atomic
def account_create(
    *,
    actor: Actor,
    application: Application,
    username: str,
    identity=None,
    nhi=None,
    **fields: Any,
) -> Account:
    if identity is not None and nhi is not None:
        raise DomainError("An account belongs to a person or an NHI, not both.")
    account = Account(
        application=application, username=username, identity=identity, nhi=nhi, **fields
    )
    _validated_save(account, conflict_message=f"{application} already has an account {username!r}.")
    record(actor=actor, action="account.created", target=account, after=snapshot(account))
    return account


@transaction.atomic
def account_disable(*, actor: Actor, account: Account) -> Account:
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if locked.status != Account.Status.ACTIVE:
        raise InvalidTransition(f"Account {locked} is {locked.get_status_display().lower()}.")
    locked.status = Account.Status.DISABLED
    locked.save(update_fields=["status", "updated_at"])
    record(
        actor=actor,
        action="account.disabled",
        target=locked,
        before={"status": Account.Status.ACTIVE},
        after={"status": locked.status},
    )
    return locked


@transaction.atomic
def account_enable(*, actor: Actor, account: Account) -> Account:
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if locked.status != Account.Status.DISABLED:
        raise InvalidTransition(f"Account {locked} is {locked.get_status_display().lower()}.")
    locked.status = Account.Status.ACTIVE
    locked.save(update_fields=["status", "updated_at"])
    record(
        actor=actor,
        action="account.enabled",
        target=locked,
        before={"status": Account.Status.DISABLED},
        after={"status": locked.status},
    )
    return locked


@transaction.atomic
def grant_create(
    *,
    actor: Actor,
    account: Account,
    entitlement: Entitlement,
    origin: str = Grant.Origin.MANUAL,
    policy: AccessPolicy | None = None,
    granted_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Grant:
    if entitlement.application_id != account.application_id:
        raise DomainError("The entitlement belongs to another application than the account.")
    if origin == Grant.Origin.POLICY and policy is None:
        raise DomainError("A policy grant must name its policy.", field="policy")
    grant = Grant(
        account=account,
        entitlement=entitlement,
        origin=origin,
        policy=policy,
        granted_at=granted_at or timezone.now(),
        expires_at=expires_at,
    )
    _validated_save(grant, conflict_message=f"{account} already holds {entitlement.name}.")
    record(actor=actor, action="grant.created", target=grant, after=snapshot(grant))
    return grant


@transaction.atomic
def grant_revoke(*, actor: Actor, grant: Grant, reason: str = "") -> Grant:
    locked = Grant.objects.select_for_update().get(pk=grant.pk)
    if locked.status == Grant.Status.REVOKED:
        raise InvalidTransition("This grant is already revoked.")
    locked.status = Grant.Status.REVOKED
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["status", "revoked_at"])
    record(
        actor=actor,
        action="grant.revoked",
        target=locked,
        before={"status": Grant.Status.ACTIVE},
        after={"status": locked.status, "revoked_at": locked.revoked_at, "reason": reason},
    )
    return locked


@transaction.atomic
def policy_create(
    *,
    actor: Actor,
    name: str,
    entitlements: Iterable[Entitlement],
    directory_group=None,
    attribute: str = "",
    attribute_value: str = "",
    description: str = "",
) -> AccessPolicy:
    policy = AccessPolicy(
        name=name,
        description=description,
        directory_group=directory_group,
        attribute=attribute,
        attribute_value=attribute_value,
    )
    _validated_save(policy, conflict_message=f"A policy named {name!r} already exists.")
    policy.entitlements.set(list(entitlements))
    record(actor=actor, action="access_policy.created", target=policy, after=snapshot(policy))
    return policy
