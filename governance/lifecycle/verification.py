"""Provisioning work that reconciliation asks for: remove drift an application shows but
Steward never granted (no Grant row to revoke), or disable an account found in the
application. Same task shape, channel choice and dedupe as the lifecycle planner."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from governance.access.models import Account, Entitlement
from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import DomainError
from governance.lifecycle.models import ProvisioningTask
from governance.lifecycle.selectors import channel_for
from governance.lifecycle.services import _due, _enqueue

Op = ProvisioningTask.Operation
State = ProvisioningTask.State


@transaction.atomic
def lifecycle_request_remediation(
    *,
    actor: Actor,
    account: Account,
    operation: str,
    reason: str,
    entitlement: Entitlement | None = None,
    value: str = "",
) -> ProvisioningTask:
    """One task to bring the application in line: disable ``account``, revoke or grant
    ``entitlement`` on it. An entitlement the application names but Steward does not know
    (``value`` only) can only be removed by a person: a manual work item. An open identical
    task is reused."""
    if operation not in (Op.DISABLE_ACCOUNT, Op.REVOKE, Op.GRANT):
        raise DomainError(f"Reconciliation does not request {operation!r}.")
    if operation in (Op.REVOKE, Op.GRANT) and entitlement is None and not value:
        raise DomainError("Name the entitlement to change.")
    if operation == Op.GRANT and entitlement is None:
        raise DomainError("Steward cannot grant an entitlement it does not know.")
    application = account.application
    holder = account.identity_id or f"acct{account.pk}"
    what = entitlement.pk if entitlement is not None else (f"v:{value}" if value else "-")
    key = f"{application.pk}:{holder}:{operation}:{what}"[:200]
    existing = ProvisioningTask.objects.filter(
        dedupe_key=key, state__in=ProvisioningTask.OPEN_STATES
    ).first()
    if existing is not None:
        return existing
    channel, why = channel_for(application, operation)
    if entitlement is None and operation == Op.REVOKE:
        channel, why = ProvisioningTask.Channel.MANUAL, f"Steward does not know {value!r}"
    now = timezone.now()
    task = ProvisioningTask.objects.create(
        application=application,
        identity=account.identity,
        account=account,
        entitlement=entitlement,
        operation=operation,
        channel=channel,
        state=State.PENDING if channel == ProvisioningTask.Channel.SCIM else State.AWAITING_MANUAL,
        reason=(reason + (f"; manual because {why}" if why else ""))[:300],
        due_at=_due(application, now),
        next_attempt_at=now,
        dedupe_key=key,
    )
    record(
        actor=actor,
        action="provisioning_task.remediation_requested",
        target=task,
        after={
            "operation": operation,
            "account": account.pk,
            "entitlement": entitlement.pk if entitlement is not None else value,
            "channel": channel,
            "reason": reason,
        },
    )
    _enqueue([task])
    return task
