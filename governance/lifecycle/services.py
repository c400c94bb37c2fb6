"""Joiner-mover-leaver: turn directory changes into provisioning work, and move that work
through its states. Every function writes its audit event in the caller's transaction;
SCIM work is enqueued with ``transaction.on_commit`` so a rolled-back change sends nothing.

State machine of a ProvisioningTask::

    pending -> in_progress -> executed -> verified
                    \\-> pending (transient error, with backoff)   \\-> failed
    awaiting_manual -> executed (evidence required) -> verified (reconciliation)
    any open state -> cancelled (superseded by a later change)
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from governance.access.models import Account, Grant
from governance.access.selectors import policies_for_identity
from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition
from governance.identities.models import Identity
from governance.lifecycle.models import LifecycleEvent, ProvisioningTask
from governance.lifecycle.selectors import channel_for
from governance.nhi.services import nhi_succession_for_leaver

Op = ProvisioningTask.Operation
State = ProvisioningTask.State
MOVER_FIELDS = ("department", "title", "manager", "division")
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
WAIT_LIMIT = timedelta(days=2)


def classify(
    before: dict[str, Any] | None, after: dict[str, Any], *, groups_changed: bool
) -> str | None:
    """Which lifecycle event a change is, or None when it is none of them."""
    if before is None:
        return LifecycleEvent.Kind.JOINER if after.get("active") else None
    if before.get("active") and not after.get("active"):
        return LifecycleEvent.Kind.LEAVER
    if not before.get("active") and after.get("active"):
        return LifecycleEvent.Kind.REHIRE
    if not after.get("active"):
        return None
    if groups_changed or any(before.get(f) != after.get(f) for f in MOVER_FIELDS):
        return LifecycleEvent.Kind.MOVER
    return None


def _desired(identity: Identity) -> dict[int, dict[int, int]]:
    """application id -> {entitlement id: policy id} that policy says the person should hold."""
    desired: dict[int, dict[int, int]] = defaultdict(dict)
    if not identity.active or identity.deleted_at is not None:
        return desired
    for policy in policies_for_identity(identity).prefetch_related("entitlements"):
        for ent in policy.entitlements.all():
            desired[ent.application_id].setdefault(ent.pk, policy.pk)
    return desired


def _due(application, now: datetime) -> datetime:
    return now + timedelta(hours=application.deprovisioning_sla_hours)


class _Planner:
    """Builds the tasks of one event; skips a change that already has an open task."""

    def __init__(self, event: LifecycleEvent, now: datetime):
        self.event = event
        self.now = now
        self.created: list[ProvisioningTask] = []

    def add(
        self, *, application, operation, account=None, entitlement=None, policy_id=None, reason=""
    ):
        identity = self.event.identity
        key = f"{application.pk}:{identity.pk}:{operation}:{entitlement.pk if entitlement else '-'}"
        if ProvisioningTask.objects.filter(
            dedupe_key=key, state__in=ProvisioningTask.OPEN_STATES
        ).exists():
            return None
        channel, why = channel_for(application, operation)
        task = ProvisioningTask(
            event=self.event,
            application=application,
            identity=identity,
            account=account,
            entitlement=entitlement,
            policy_id=policy_id,
            operation=operation,
            channel=channel,
            state=State.PENDING
            if channel == ProvisioningTask.Channel.SCIM
            else State.AWAITING_MANUAL,
            reason=(reason + (f"; manual because {why}" if why else ""))[:300],
            due_at=_due(application, self.now),
            next_attempt_at=self.now,
            dedupe_key=key,
        )
        try:
            with transaction.atomic():
                task.save()
        except IntegrityError:  # a concurrent event planned the same change
            return None
        self.created.append(task)
        return task


def _cancel_superseded(identity: Identity, desired: dict[int, dict[int, int]], kind: str) -> int:
    """Open grant tasks for entitlements no longer wanted (and revokes of wanted ones) go."""
    wanted = {ent for ents in desired.values() for ent in ents}
    # A task a worker holds (in_progress) is never cancelled under it: it finishes, and the
    # leaver plans the undo of an in-flight grant (see _plan).
    open_ = ProvisioningTask.objects.filter(
        identity=identity, state__in=[State.PENDING, State.AWAITING_MANUAL]
    )
    stale = Q(operation=Op.GRANT) & ~Q(entitlement_id__in=wanted)
    if kind == LifecycleEvent.Kind.LEAVER:
        stale = Q(operation__in=[Op.GRANT, Op.CREATE_ACCOUNT, Op.ENABLE_ACCOUNT, Op.UPDATE_ACCOUNT])
    else:
        stale |= Q(operation=Op.REVOKE, entitlement_id__in=wanted) | Q(operation=Op.DISABLE_ACCOUNT)
    cancelled = open_.filter(stale)
    events = set(cancelled.values_list("event_id", flat=True))
    count = cancelled.update(state=State.CANCELLED, last_error="superseded by a later change")
    for event_id in events:
        _check_event_complete(event_id)
    return count


def _plan(event: LifecycleEvent, now: datetime) -> _Planner:
    identity = event.identity
    planner = _Planner(event, now)
    desired = _desired(identity)
    _cancel_superseded(identity, desired, event.kind)
    accounts = {
        a.application_id: a
        for a in Account.objects.filter(identity=identity)
        .exclude(status=Account.Status.DELETED)
        .select_related("application")
    }
    grants = list(
        Grant.objects.filter(account__identity=identity, status=Grant.Status.ACTIVE).select_related(
            "entitlement__application", "account"
        )
    )
    if event.kind == LifecycleEvent.Kind.LEAVER:
        for grant in grants:
            planner.add(
                application=grant.entitlement.application,
                operation=Op.REVOKE,
                account=grant.account,
                entitlement=grant.entitlement,
                reason="leaver: revoke every grant",
            )
        in_flight = ProvisioningTask.objects.filter(
            identity=identity, operation=Op.GRANT, state=State.IN_PROGRESS
        ).select_related("application", "entitlement", "account")
        for task in in_flight:
            planner.add(
                application=task.application,
                operation=Op.REVOKE,
                account=task.account,
                entitlement=task.entitlement,
                reason="leaver: undo a grant that was in flight",
            )
        for account in accounts.values():
            if account.status == Account.Status.ACTIVE:
                planner.add(
                    application=account.application,
                    operation=Op.DISABLE_ACCOUNT,
                    account=account,
                    reason="leaver: disable every account",
                )
        event.nhi_handoff_needed = identity.owned_nhis.exclude(
            status__in=["retired", "disabled"]
        ).exists()
        nhi_succession_for_leaver(identity=identity, event=event)
        return planner

    from governance.access.models import Application, Entitlement

    apps = {a.pk: a for a in Application.objects.filter(pk__in=set(desired) | set(accounts))}
    entitlements = Entitlement.objects.in_bulk([e for ents in desired.values() for e in ents])
    held = {g.entitlement_id for g in grants}
    for app_id, ents in desired.items():
        app = apps[app_id]
        account = accounts.get(app_id)
        if account is None:
            planner.add(
                application=app,
                operation=Op.CREATE_ACCOUNT,
                reason=f"{event.kind}: birthright access",
            )
        elif account.status == Account.Status.DISABLED:
            planner.add(
                application=app,
                operation=Op.ENABLE_ACCOUNT,
                account=account,
                reason=f"{event.kind}: birthright access",
            )
        for ent_id, policy_id in ents.items():
            if ent_id not in held:
                planner.add(
                    application=app,
                    operation=Op.GRANT,
                    account=account,
                    entitlement=entitlements[ent_id],
                    policy_id=policy_id,
                    reason=f"{event.kind}: policy grants it",
                )
    if event.kind == LifecycleEvent.Kind.MOVER:
        wanted = {e for ents in desired.values() for e in ents}
        for grant in grants:
            if grant.entitlement_id in wanted:
                continue
            if grant.entitlement.privileged and grant.origin != Grant.Origin.POLICY:
                event.retained_privileged.append(
                    {
                        "grant": grant.pk,
                        "entitlement": grant.entitlement.name,
                        "application": grant.entitlement.application.name,
                    }
                )
                continue
            if grant.origin in (Grant.Origin.REQUEST, Grant.Origin.EXCEPTION):
                continue  # justified by an approved request or exception
            planner.add(
                application=grant.entitlement.application,
                operation=Op.REVOKE,
                account=grant.account,
                entitlement=grant.entitlement,
                reason="mover: no longer justified by policy",
            )
    return planner


def _open_urgent_leaver(identity: Identity) -> LifecycleEvent | None:
    """The urgent leaver started in the portal, if it is the person's latest event."""
    latest = (
        LifecycleEvent.objects.filter(identity=identity).order_by("-occurred_at", "-pk").first()
    )
    if latest is not None and latest.kind == LifecycleEvent.Kind.LEAVER and latest.urgent:
        return latest
    return None


def _can_work_on(actor: Actor, task: ProvisioningTask) -> bool:
    """Security admins, and owners of the task's application."""
    user = actor.user if actor.kind == "user" else None
    if user is None:
        return False
    return user.is_security_admin or task.application.owners.filter(pk=user.pk).exists()


def _enqueue(tasks: list[ProvisioningTask]) -> None:
    scim_ids = [t.pk for t in tasks if t.channel == ProvisioningTask.Channel.SCIM]
    if not scim_ids:
        return
    from governance.lifecycle.tasks import execute_provisioning_task

    def send():
        for task_id in scim_ids:
            execute_provisioning_task.delay(task_id)

    transaction.on_commit(send)


@transaction.atomic
def lifecycle_record_change(
    *,
    actor: Actor,
    identity: Identity,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    groups_changed: bool = False,
    plan: bool = True,
) -> LifecycleEvent | None:
    """Derive the lifecycle event of one identity change and plan its provisioning work.

    ``plan=False`` records the event without planning: a membership change of a group that no
    enabled policy uses cannot change what the person should hold.

    Called by the directory services inside the transaction of the change itself.
    A SCIM deactivation that follows an urgent leaver started in the portal is recorded as
    already done (no second event, no second set of tasks).
    """
    kind = classify(before, after, groups_changed=groups_changed)
    if kind is None:
        return None
    now = timezone.now()
    urgent = _open_urgent_leaver(identity)
    if urgent is not None and kind in (LifecycleEvent.Kind.LEAVER, LifecycleEvent.Kind.MOVER):
        # The portal already started this leaver; the directory is catching up. A mover in
        # between must not undo it, and the deactivation is recorded as already done.
        action = (
            "lifecycle.leaver_already_started"
            if kind == LifecycleEvent.Kind.LEAVER
            else "lifecycle.change_during_urgent_leaver"
        )
        record(
            actor=actor,
            action=action,
            target=urgent,
            after={"identity": str(identity.pk), "urgent_event": urgent.pk, "kind": kind},
        )
        return urgent
    changes = {
        k: {"from": (before or {}).get(k), "to": after.get(k)}
        for k in ("active", *MOVER_FIELDS)
        if (before or {}).get(k) != after.get(k)
    }
    if groups_changed:
        changes["groups"] = True
    event = LifecycleEvent.objects.create(
        identity=identity,
        kind=kind,
        occurred_at=now,
        actor_label=actor.label,
        changes=changes,
        started_by=actor.user if actor.kind == "user" else None,
    )
    planner = _plan(event, now) if plan else _Planner(event, now)
    event.save(update_fields=["retained_privileged", "nhi_handoff_needed"])
    if not planner.created:
        event.completed_at = now
        event.save(update_fields=["completed_at"])
    if event.retained_privileged:
        from governance.reviews.services import micro_review_for_mover

        micro_review_for_mover(event=event)
    record(
        actor=actor,
        action=f"lifecycle.{kind}",
        target=event,
        after={
            "identity": str(identity.pk),
            "changes": changes,
            "tasks": [t.pk for t in planner.created],
            "retained_privileged": event.retained_privileged,
            "nhi_handoff_needed": event.nhi_handoff_needed,
        },
    )
    _enqueue(planner.created)
    return event


@transaction.atomic
def lifecycle_start_urgent_leaver(
    *, actor: Actor, identity: Identity, reason: str
) -> LifecycleEvent:
    """A security admin starts a leaver before the identity provider catches up (AC-2(13))."""
    if actor.kind != "user" or actor.user is None or not actor.user.is_security_admin:
        raise DomainError("Only a security admin can start an urgent leaver.")
    if not (reason or "").strip():
        raise DomainError("Say why this leaver is urgent.", field="reason")
    locked = Identity.objects.select_for_update().get(pk=identity.pk)
    if not locked.active:
        raise InvalidTransition(f"{locked} is already inactive.")
    if _open_urgent_leaver(locked) is not None:
        raise InvalidTransition(f"An urgent leaver for {locked} is already under way.")
    now = timezone.now()
    event = LifecycleEvent.objects.create(
        identity=locked,
        kind=LifecycleEvent.Kind.LEAVER,
        occurred_at=now,
        actor_label=actor.label,
        changes={"reason": reason},
        urgent=True,
        started_by=actor.user,
    )
    planner = _plan(event, now)
    event.save(update_fields=["retained_privileged", "nhi_handoff_needed"])
    if not planner.created:
        event.completed_at = now
        event.save(update_fields=["completed_at"])
    record(
        actor=actor,
        action="lifecycle.urgent_leaver_started",
        target=event,
        after={
            "identity": str(locked.pk),
            "reason": reason,
            "tasks": [t.pk for t in planner.created],
        },
    )
    _enqueue(planner.created)
    return event


# ----------------------------------------------------------------------- task transitions


def task_claim(task_id: int) -> ProvisioningTask | None:
    """Claim a due pending task with a conditional UPDATE; None when another worker has it,
    it is not due, or it is no longer pending."""
    now = timezone.now()
    updated = (
        ProvisioningTask.objects.filter(pk=task_id, state=State.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(state=State.IN_PROGRESS, started_at=now, attempts=F("attempts") + 1)
    )
    if updated != 1:
        return None
    return ProvisioningTask.objects.select_related(
        "application", "identity", "account", "entitlement"
    ).get(pk=task_id)


def _check_event_complete(event_id: int | None) -> None:
    if event_id is None:
        return
    if (
        not ProvisioningTask.objects.filter(event_id=event_id)
        .exclude(state__in=ProvisioningTask.DONE_STATES)
        .exists()
    ):
        LifecycleEvent.objects.filter(pk=event_id, completed_at__isnull=True).update(
            completed_at=ProvisioningTask.objects.filter(event_id=event_id).aggregate(
                m=__import__("django.db.models", fromlist=["Max"]).Max("verified_at")
            )["m"]
            or timezone.now()
        )


def _apply_outcome(task: ProvisioningTask, actor: Actor) -> None:
    """Bring Steward's own record of accounts and grants in line with what was done."""
    from governance.access import services as access

    if task.operation == Op.CREATE_ACCOUNT and task.account_id is None:
        external_id = str(task.evidence.get("external_id", ""))
        account = Account.objects.filter(
            application=task.application, identity=task.identity
        ).first()
        if account is None:
            account = access.account_create(
                actor=actor,
                application=task.application,
                username=task.evidence.get("username") or task.identity.user_name,
                identity=task.identity,
                external_id=external_id,
            )
        task.account = account
        task.save(update_fields=["account"])
        ProvisioningTask.objects.filter(
            identity=task.identity,
            application=task.application,
            account__isnull=True,
            state__in=ProvisioningTask.OPEN_STATES,
        ).update(account=account)
    elif (
        task.operation == Op.DISABLE_ACCOUNT
        and task.account
        and task.account.status == Account.Status.ACTIVE
    ):
        access.account_disable(actor=actor, account=task.account)
    elif task.operation == Op.ENABLE_ACCOUNT and task.account:
        if task.account.status == Account.Status.DISABLED:
            access.account_enable(actor=actor, account=task.account)
    elif task.operation == Op.GRANT and task.entitlement_id:
        account = (
            task.account
            or Account.objects.filter(application=task.application, identity=task.identity).first()
        )
        if (
            account
            and not Grant.objects.filter(
                account=account, entitlement=task.entitlement, status=Grant.Status.ACTIVE
            ).exists()
        ):
            access.grant_create(
                actor=actor,
                account=account,
                entitlement=task.entitlement,
                origin=Grant.Origin.POLICY if task.policy_id else Grant.Origin.MANUAL,
                policy=task.policy,
            )
    elif task.operation == Op.REVOKE and task.entitlement_id and task.account_id:
        grant = Grant.objects.filter(
            account_id=task.account_id, entitlement=task.entitlement, status=Grant.Status.ACTIVE
        ).first()
        if grant is not None:
            access.grant_revoke(actor=actor, grant=grant, reason=task.reason)


@transaction.atomic
def task_record_verified(
    *, actor: Actor, task: ProvisioningTask, evidence: dict[str, Any]
) -> ProvisioningTask:
    """SCIM: the target accepted the change and a read-back shows it (executed + verified)."""
    locked = ProvisioningTask.objects.select_for_update().get(pk=task.pk)
    if locked.state not in (State.IN_PROGRESS, State.EXECUTED):
        raise InvalidTransition(f"Task {locked.pk} is {locked.get_state_display().lower()}.")
    now = timezone.now()
    locked.evidence = {**locked.evidence, **evidence}
    locked.executed_at = locked.executed_at or now
    locked.verified_at = now
    locked.state = State.VERIFIED
    locked.last_error = ""
    locked.save()
    _apply_outcome(locked, actor)
    record(
        actor=actor,
        action="provisioning_task.verified",
        target=locked,
        after={"state": locked.state, "evidence": evidence},
    )
    _check_event_complete(locked.event_id)
    return locked


def backoff_seconds(attempts: int, *, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform(c/2, c) where c = min(cap, base * 2^(n-1))
    for the n-th attempt, so retries spread out but never come sooner than half the step."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(0, attempts - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


@transaction.atomic
def task_record_failure(
    *,
    actor: Actor,
    task: ProvisioningTask,
    error: str,
    transient: bool,
    evidence: dict | None = None,
    count_attempt: bool = True,
) -> ProvisioningTask:
    """A failed attempt: transient errors retry with backoff until MAX_ATTEMPTS, else failed.

    ``count_attempt=False`` is for waiting on another task (a grant waiting for its account):
    the attempt is given back, for up to WAIT_LIMIT after the task was created.
    """
    locked = ProvisioningTask.objects.select_for_update().get(pk=task.pk)
    if locked.state != State.IN_PROGRESS:
        raise InvalidTransition(f"Task {locked.pk} is {locked.get_state_display().lower()}.")
    now = timezone.now()
    if not count_attempt and transient and now - locked.created_at < WAIT_LIMIT:
        locked.attempts = max(0, locked.attempts - 1)
    locked.last_error = error[:2000]
    if evidence:
        locked.evidence = {**locked.evidence, **evidence}
    if transient and locked.attempts < MAX_ATTEMPTS:
        locked.state = State.PENDING
        locked.next_attempt_at = now + timedelta(seconds=backoff_seconds(locked.attempts))
        action = "provisioning_task.retry_scheduled"
    else:
        locked.state = State.FAILED
        locked.failed_at = now
        action = "provisioning_task.failed"
    locked.save()
    record(
        actor=actor,
        action=action,
        target=locked,
        after={
            "state": locked.state,
            "error": locked.last_error,
            "attempts": locked.attempts,
            "next_attempt_at": locked.next_attempt_at,
        },
    )
    return locked


@transaction.atomic
def task_mark_executed(
    *,
    actor: Actor,
    task: ProvisioningTask,
    reference: str = "",
    note: str = "",
    evidence_file=None,
) -> ProvisioningTask:
    """A person did the manual work: evidence is required (a ticket reference, a note or a
    file). The task is executed, not verified, until a reconciliation shows the change."""
    if not (reference or "").strip() and not (note or "").strip() and not evidence_file:
        raise DomainError(
            "Closing a work item needs evidence: a ticket reference, a note or a file."
        )
    locked = ProvisioningTask.objects.select_for_update().get(pk=task.pk)
    if locked.state != State.AWAITING_MANUAL:
        raise InvalidTransition(f"Task {locked.pk} is {locked.get_state_display().lower()}.")
    if actor.kind != "user" or actor.user is None:
        raise DomainError("Manual work is closed by a person.")
    if not _can_work_on(actor, locked):
        raise DomainError("Only an owner of the application or a security admin can do this.")
    locked.state = State.EXECUTED
    locked.executed_at = timezone.now()
    locked.executed_by = actor.user
    locked.evidence_reference = reference.strip()
    locked.evidence_note = note.strip()
    if evidence_file is not None:
        locked.evidence_file = evidence_file
    locked.save()
    _apply_outcome(locked, actor)
    record(
        actor=actor,
        action="provisioning_task.executed",
        target=locked,
        after={
            "reference": locked.evidence_reference,
            "note": locked.evidence_note,
            "file": locked.evidence_file.name if locked.evidence_file else "",
        },
    )
    return locked


@transaction.atomic
def task_retry(*, actor: Actor, task: ProvisioningTask) -> ProvisioningTask:
    """A person sends a failed SCIM task back to the queue."""
    locked = ProvisioningTask.objects.select_for_update().get(pk=task.pk)
    if not _can_work_on(actor, locked):
        raise DomainError("Only an owner of the application or a security admin can do this.")
    if locked.state != State.FAILED:
        raise InvalidTransition("Only failed tasks can be retried.")
    locked.state = State.PENDING
    locked.attempts = 0
    locked.next_attempt_at = timezone.now()
    locked.save()
    record(
        actor=actor,
        action="provisioning_task.retried",
        target=locked,
        after={"state": locked.state},
    )
    _enqueue([locked])
    return locked


def requeue_stuck(*, older_than: timedelta = timedelta(minutes=15)) -> int:
    """Periodic sweep: tasks stuck in progress (a worker died) go back to pending, and due
    pending tasks are sent again. Returns how many were re-queued."""
    now = timezone.now()
    stuck = ProvisioningTask.objects.filter(
        state=State.IN_PROGRESS, started_at__lt=now - older_than
    )
    stuck.update(state=State.PENDING, next_attempt_at=now)
    due = list(
        ProvisioningTask.objects.filter(state=State.PENDING, channel=ProvisioningTask.Channel.SCIM)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", flat=True)[:1000]
    )
    from governance.lifecycle.tasks import execute_provisioning_task

    for task_id in due:
        execute_provisioning_task.delay(task_id)
    return len(due)


@transaction.atomic
def lifecycle_request_revocation(*, actor: Actor, grant: Grant, reason: str) -> ProvisioningTask:
    """A reviewer's revoke decision: one REVOKE task for the grant, over SCIM when the
    application can, else a manual work item. An open identical task is reused."""
    application = grant.entitlement.application
    identity = grant.account.identity
    key = f"{application.pk}:{identity.pk if identity else grant.account_id}:{Op.REVOKE}:" + str(
        grant.entitlement_id
    )
    existing = ProvisioningTask.objects.filter(
        dedupe_key=key, state__in=ProvisioningTask.OPEN_STATES
    ).first()
    if existing is not None:
        return existing
    channel, why = channel_for(application, Op.REVOKE)
    now = timezone.now()
    task = ProvisioningTask.objects.create(
        application=application,
        identity=identity,
        account=grant.account,
        entitlement=grant.entitlement,
        operation=Op.REVOKE,
        channel=channel,
        state=State.PENDING if channel == ProvisioningTask.Channel.SCIM else State.AWAITING_MANUAL,
        reason=(reason + (f"; manual because {why}" if why else ""))[:300],
        due_at=_due(application, now),
        next_attempt_at=now,
        dedupe_key=key,
    )
    record(
        actor=actor,
        action="provisioning_task.revocation_requested",
        target=task,
        after={"grant": grant.pk, "channel": channel, "reason": reason},
    )
    _enqueue([task])
    return task


@transaction.atomic
def task_cancel(*, actor: Actor, task: ProvisioningTask, reason: str) -> ProvisioningTask:
    """Withdraw work nobody has started (a reviewer changed their mind)."""
    locked = ProvisioningTask.objects.select_for_update().get(pk=task.pk)
    if locked.state not in (State.PENDING, State.AWAITING_MANUAL):
        raise InvalidTransition("The work has started or finished and can no longer be withdrawn.")
    locked.state = State.CANCELLED
    locked.last_error = reason[:2000]
    locked.save(update_fields=["state", "last_error"])
    record(
        actor=actor, action="provisioning_task.cancelled", target=locked, after={"reason": reason}
    )
    _check_event_complete(locked.event_id)
    return locked
