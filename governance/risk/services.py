"""Exceptions and compensating controls: every state change, with its audit event.

Exception lifecycle::

    draft -> submitted -> approved -> expired   (daily job, the day after ``expires_on``)
                       |           -> revoked   (a security admin, findings re-open at once)
                       -> rejected

- Application owners register and edit drafts for the applications they own; security admins
  for any application. Only security admins decide, and never on their own request (four-eyes,
  also a database constraint), so a security admin's request needs another security admin.
- Expiry is mandatory, not in the past and at most ``STEWARD_EXCEPTION_MAX_DAYS`` ahead.
- An application without full SCIM (manual or create/deactivate-only) gets an exception only
  with at least one active compensating control linked to it.
- Approval suppresses the findings the exception covers (see :mod:`governance.risk.coverage`);
  expiry and revocation re-open them.
- Renewal: a new exception with ``renewal_of`` pointing at the old one, copying its scope and
  controls. Approving the renewal ends the old one at once as *expired, superseded by the
  renewal* (``end_comment`` says so); its findings move to the renewal and no
  ``exception_expired`` finding is opened. An old exception that lapsed before its renewal
  was approved does open that finding, and approving the renewal resolves it.

Controls are performed on a cadence; each performance is recorded as evidence (optionally a
file), which moves ``next_due_on`` forward by the frequency. A failed or partial result opens a
``control_failed`` finding (partial one severity lower: part of the control was not done); a
passing result resolves the control's open overdue and failed findings.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from governance.access.models import Account, Application
from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.choices import RiskLevel
from governance.core.errors import Conflict, DomainError, InvalidTransition, PermissionDenied
from governance.core.snapshot import changed, snapshot
from governance.core.uploads import check_evidence_upload
from governance.risk import findings as risk_findings
from governance.risk.coverage import reopen_findings, suppress_covered_findings
from governance.risk.models import AccessException, CompensatingControl, ControlEvidence
from governance.risk.selectors import NEEDS_CONTROL_MODES, is_security_admin, manages_application

Status = AccessException.Status
ControlStatus = CompensatingControl.Status
Frequency = CompensatingControl.Frequency
Result = CompensatingControl.Result

#: Fields an exception's requester sets while it is a draft.
EXCEPTION_FIELDS = (
    "title",
    "exception_type",
    "application",
    "entitlement",
    "account",
    "nhi",
    "finding",
    "justification",
    "risk_rating",
    "expires_on",
)
CONTROL_FIELDS = (
    "name",
    "kind",
    "description",
    "application",
    "owner",
    "frequency",
    "within_hours",
    "next_due_on",
)
_MONTHS = {
    Frequency.MONTHLY: 1,
    Frequency.QUARTERLY: 3,
    Frequency.SEMIANNUAL: 6,
    Frequency.ANNUAL: 12,
}
# Clock skew tolerated on "performed at" (a browser clock a little ahead of the server's).
_FUTURE_SKEW = timedelta(minutes=5)


# --------------------------------------------------------------------------- helpers


def _person(actor: Actor):
    if actor.kind != "user" or actor.user is None:
        raise PermissionDenied("This change is made by a signed-in person.")
    return actor.user


def _require_manager(actor: Actor, application: Application | None, what: str) -> None:
    user = _person(actor)
    if application is None:
        if not is_security_admin(user):
            raise PermissionDenied(
                f"Only a security admin can {what} without an application.", field="application"
            )
        return
    if not manages_application(user, application):
        raise PermissionDenied(
            f"Only an owner of {application} or a security admin can {what}.",
            field="application",
        )


def _require_security(actor: Actor, what: str):
    user = _person(actor)
    if not is_security_admin(user):
        raise PermissionDenied(f"Only a security admin can {what}.")
    return user


def _four_eyes(user, exception: AccessException) -> None:
    if exception.requested_by_id == user.pk:
        raise PermissionDenied(
            "You requested this exception: another security admin must decide it (four-eyes).",
            code="four_eyes",
        )


def max_expiry(today: date | None = None) -> date:
    return (today or timezone.localdate()) + timedelta(days=settings.STEWARD_EXCEPTION_MAX_DAYS)


def _check_expiry(expires_on: Any, *, today: date | None = None) -> None:
    today = today or timezone.localdate()
    if not isinstance(expires_on, date) or isinstance(expires_on, datetime):
        raise DomainError("An exception needs an expiry date.", field="expires_on")
    if expires_on < today:
        raise DomainError("The expiry date is in the past.", field="expires_on")
    limit = max_expiry(today)
    if expires_on > limit:
        raise DomainError(
            f"An exception may run at most {settings.STEWARD_EXCEPTION_MAX_DAYS} days: choose "
            f"{limit:%Y-%m-%d} or earlier.",
            field="expires_on",
        )


def _check_scope(values: dict[str, Any]) -> None:
    """The narrower scopes must lie inside the exception's application."""
    app = values.get("application")
    if app is None:
        raise DomainError("Choose the application the exception is for.", field="application")
    for name in ("entitlement", "finding"):
        obj = values.get(name)
        if obj is not None and obj.application_id != app.pk:
            raise DomainError(f"The {name} chosen does not belong to {app}.", field=name)
    account = values.get("account")
    if account is not None and account.application_id != app.pk:
        raise DomainError(f"The account chosen does not belong to {app}.", field="account")
    nhi = values.get("nhi")
    if nhi is not None and nhi.application_id != app.pk:
        if not Account.objects.filter(application=app, nhi=nhi).exists():
            raise DomainError(
                f"The non-human identity chosen has no account in {app}.", field="nhi"
            )


def _check_controls(controls, application: Application) -> None:
    for control in controls:
        if control.application_id not in (None, application.pk):
            raise DomainError(
                f"The control “{control}” belongs to another application.", field="controls"
            )
        if control.status == ControlStatus.RETIRED:
            raise DomainError(f"The control “{control}” is retired.", field="controls")


def exception_validate(*, actor: Actor, values: dict[str, Any], controls=None) -> None:
    """Every rule on an exception's fields, for forms to show before anything is written."""
    if values.get("application") is None:
        raise DomainError("Choose the application the exception is for.", field="application")
    _require_manager(actor, values["application"], "register exceptions for it")
    _check_scope(values)
    if not (values.get("title") or "").strip():
        raise DomainError("Give the exception a title.", field="title")
    if values.get("exception_type") not in AccessException.Type.values:
        raise DomainError("Choose the type of deviation.", field="exception_type")
    if not (values.get("justification") or "").strip():
        raise DomainError(
            "Explain why the deviation is accepted and what is done instead.",
            field="justification",
        )
    if values.get("risk_rating") not in RiskLevel.values:
        raise DomainError("Rate the risk.", field="risk_rating")
    _check_expiry(values.get("expires_on"))
    if controls is not None:
        _check_controls(controls, values["application"])


def _values(exception: AccessException) -> dict[str, Any]:
    return {name: getattr(exception, name) for name in EXCEPTION_FIELDS}


def _audit_state(exception: AccessException, **extra) -> dict[str, Any]:
    return {"status": exception.status, **extra}


# --------------------------------------------------------------------------- exceptions


@transaction.atomic
def exception_create(
    *,
    actor: Actor,
    application: Application,
    title: str,
    exception_type: str,
    justification: str,
    risk_rating: str,
    expires_on: date,
    entitlement=None,
    account=None,
    nhi=None,
    finding=None,
    controls=(),
    renewal_of: AccessException | None = None,
) -> AccessException:
    """A draft exception, requested by the person creating it."""
    user = _person(actor)
    values = {
        "application": application,
        "title": (title or "").strip(),
        "exception_type": exception_type,
        "justification": (justification or "").strip(),
        "risk_rating": risk_rating,
        "expires_on": expires_on,
        "entitlement": entitlement,
        "account": account,
        "nhi": nhi,
        "finding": finding,
    }
    controls = list(controls)
    exception_validate(actor=actor, values=values, controls=controls)
    exception = AccessException.objects.create(
        **values, requested_by=user, status=Status.DRAFT, renewal_of=renewal_of
    )
    exception.controls.set(controls)
    record(
        actor=actor,
        action="access_exception.created",
        target=exception,
        after=snapshot(exception),
    )
    return exception


@transaction.atomic
def exception_update(
    *, actor: Actor, exception: AccessException, controls=None, **changes: Any
) -> AccessException:
    """Edit a draft (its requester, an owner of its application or a security admin)."""
    unknown = set(changes) - set(EXCEPTION_FIELDS)
    if unknown:
        raise DomainError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    locked = AccessException.objects.select_for_update().get(pk=exception.pk)
    if locked.status != Status.DRAFT:
        raise InvalidTransition(
            f"The exception is {locked.get_status_display().lower()}: only drafts can be edited."
        )
    _require_manager(actor, locked.application, "edit its exceptions")
    before = snapshot(locked)
    values = {**_values(locked), **changes}
    for text in ("title", "justification"):
        values[text] = (values.get(text) or "").strip()
    linked = list(controls) if controls is not None else list(locked.controls.all())
    exception_validate(actor=actor, values=values, controls=linked)
    for name, value in values.items():
        setattr(locked, name, value)
    locked.save()
    if controls is not None:
        locked.controls.set(linked)
    old, new = changed(before, snapshot(locked))
    if old or new:
        record(actor=actor, action="access_exception.updated", target=locked, before=old, after=new)
    return locked


@transaction.atomic
def exception_submit(*, actor: Actor, exception: AccessException) -> AccessException:
    """Send a draft to security for a decision."""
    locked = AccessException.objects.select_for_update().get(pk=exception.pk)
    if locked.status != Status.DRAFT:
        raise InvalidTransition(
            f"The exception is {locked.get_status_display().lower()}: only drafts are submitted."
        )
    _require_manager(actor, locked.application, "submit its exceptions")
    exception_validate(actor=actor, values=_values(locked), controls=list(locked.controls.all()))
    locked.status = Status.SUBMITTED
    locked.submitted_at = timezone.now()
    locked.save(update_fields=["status", "submitted_at", "updated_at"])
    record(
        actor=actor,
        action="access_exception.submitted",
        target=locked,
        before={"status": Status.DRAFT},
        after=_audit_state(locked),
    )
    return locked


def _check_controls_for_approval(exception: AccessException) -> None:
    if exception.application.provisioning_mode not in NEEDS_CONTROL_MODES:
        return
    if not exception.controls.filter(status=ControlStatus.ACTIVE).exists():
        mode = exception.application.get_provisioning_mode_display()
        raise DomainError(
            f"{exception.application} is provisioned “{mode}”: an exception for it needs at "
            "least one active compensating control linked to it. Ask the requester to link "
            "one (or reject the request).",
            field="controls",
            code="control_required",
        )


def _end_superseded(actor: Actor, old: AccessException, renewal: AccessException) -> None:
    """The renewal is approved: the exception it renews ends now (or, when it already lapsed,
    its expiry finding is closed)."""
    old = AccessException.objects.select_for_update().get(pk=old.pk)
    if old.status == Status.APPROVED:
        old.status = Status.EXPIRED
        old.ended_at = timezone.now()
        old.end_comment = f"Superseded by its approved renewal (exception {renewal.pk})."
        old.save(update_fields=["status", "ended_at", "end_comment", "updated_at"])
        reopened = reopen_findings(exception=old)
        record(
            actor=actor,
            action="access_exception.superseded",
            target=old,
            before={"status": Status.APPROVED},
            after={"status": old.status, "renewal": renewal.pk, "findings_moved": reopened},
        )
    risk_findings.resolve_exception_expired(
        actor=actor,
        exception=old,
        resolution=f"Renewed: exception {renewal.pk} was approved on "
        f"{timezone.localdate():%Y-%m-%d}.",
    )


@transaction.atomic
def exception_approve(
    *, actor: Actor, exception: AccessException, comment: str = ""
) -> AccessException:
    """A security admin other than the requester accepts the deviation until its expiry."""
    user = _require_security(actor, "approve exceptions")
    locked = (
        AccessException.objects.select_for_update()
        .select_related("application")
        .get(pk=exception.pk)
    )
    _four_eyes(user, locked)
    if locked.status != Status.SUBMITTED:
        raise InvalidTransition(
            f"The exception is {locked.get_status_display().lower()}: only submitted "
            "exceptions are approved."
        )
    if locked.expires_on < timezone.localdate():
        raise DomainError(
            "Its expiry date has passed while it waited: reject it and ask for a new request.",
            field="expires_on",
        )
    _check_controls_for_approval(locked)
    locked.status = Status.APPROVED
    locked.approver = user
    locked.decided_at = timezone.now()
    locked.decision_comment = (comment or "").strip()
    locked.save(
        update_fields=["status", "approver", "decided_at", "decision_comment", "updated_at"]
    )
    if locked.renewal_of_id:
        _end_superseded(actor, locked.renewal_of, locked)
    suppressed = suppress_covered_findings(exception=locked)
    record(
        actor=actor,
        action="access_exception.approved",
        target=locked,
        before={"status": Status.SUBMITTED},
        after=_audit_state(
            locked,
            approver=user.pk,
            comment=locked.decision_comment,
            expires_on=locked.expires_on,
            findings_suppressed=suppressed,
        ),
    )
    return locked


@transaction.atomic
def exception_reject(*, actor: Actor, exception: AccessException, comment: str) -> AccessException:
    """A security admin other than the requester refuses it, saying why."""
    user = _require_security(actor, "reject exceptions")
    comment = (comment or "").strip()
    locked = AccessException.objects.select_for_update().get(pk=exception.pk)
    _four_eyes(user, locked)
    if locked.status != Status.SUBMITTED:
        raise InvalidTransition(
            f"The exception is {locked.get_status_display().lower()}: only submitted "
            "exceptions are rejected."
        )
    if not comment:
        raise DomainError("Say why the exception is rejected.", field="comment")
    locked.status = Status.REJECTED
    locked.approver = user
    locked.decided_at = timezone.now()
    locked.decision_comment = comment
    locked.save(
        update_fields=["status", "approver", "decided_at", "decision_comment", "updated_at"]
    )
    record(
        actor=actor,
        action="access_exception.rejected",
        target=locked,
        before={"status": Status.SUBMITTED},
        after=_audit_state(locked, approver=user.pk, comment=comment),
    )
    return locked


@transaction.atomic
def exception_revoke(*, actor: Actor, exception: AccessException, comment: str) -> AccessException:
    """A security admin withdraws an approved exception before its expiry; the findings it
    suppressed are open again at once."""
    _require_security(actor, "revoke exceptions")
    comment = (comment or "").strip()
    locked = AccessException.objects.select_for_update().get(pk=exception.pk)
    if locked.status != Status.APPROVED:
        raise InvalidTransition(
            f"The exception is {locked.get_status_display().lower()}: only approved "
            "exceptions are revoked."
        )
    if not comment:
        raise DomainError("Say why the exception is revoked.", field="comment")
    locked.status = Status.REVOKED
    locked.ended_at = timezone.now()
    locked.end_comment = comment
    locked.save(update_fields=["status", "ended_at", "end_comment", "updated_at"])
    reopened = reopen_findings(exception=locked)
    record(
        actor=actor,
        action="access_exception.revoked",
        target=locked,
        before={"status": Status.APPROVED},
        after=_audit_state(locked, comment=comment, findings_reopened=reopened),
    )
    return locked


@transaction.atomic
def exception_expire(
    *, actor: Actor, exception: AccessException, today: date | None = None
) -> AccessException | None:
    """End an approved exception whose expiry date has passed: its findings re-open and,
    unless an approved renewal replaced it, the lapse itself becomes an open finding owned
    by the requester. Returns None when there is nothing to do (idempotent)."""
    today = today or timezone.localdate()
    locked = (
        AccessException.objects.select_for_update()
        .select_related("application", "requested_by")
        .filter(pk=exception.pk)
        .first()
    )
    if locked is None or locked.status != Status.APPROVED or locked.expires_on >= today:
        return None
    locked.status = Status.EXPIRED
    locked.ended_at = timezone.now()
    locked.save(update_fields=["status", "ended_at", "updated_at"])
    reopened = reopen_findings(exception=locked)
    finding = None
    if not locked.renewals.filter(status=Status.APPROVED).exists():
        finding, _created = risk_findings.open_exception_expired(actor=actor, exception=locked)
    record(
        actor=actor,
        action="access_exception.expired",
        target=locked,
        before={"status": Status.APPROVED},
        after=_audit_state(
            locked,
            findings_reopened=reopened,
            finding=finding.pk if finding is not None else None,
        ),
    )
    return locked


def exceptions_expire_due(*, today: date | None = None) -> int:
    """Daily: expire every approved exception past its expiry date. A second run finds
    nothing left to do."""
    today = today or timezone.localdate()
    actor = Actor.system("exception expiry")
    due = AccessException.objects.filter(status=Status.APPROVED, expires_on__lt=today)
    count = 0
    for exception in due.order_by("expires_on", "pk"):
        if exception_expire(actor=actor, exception=exception, today=today) is not None:
            count += 1
    return count


@transaction.atomic
def exception_renew(
    *,
    actor: Actor,
    exception: AccessException,
    expires_on: date,
    justification: str | None = None,
    submit: bool = True,
) -> AccessException:
    """A new exception continuing an approved (or lapsed) one: same scope and controls, a new
    expiry, and ``renewal_of`` keeping the history. Submitted at once unless ``submit`` is
    False (then it is a draft to edit first)."""
    old = (
        AccessException.objects.select_for_update()
        .select_related("application")
        .get(pk=exception.pk)
    )
    if old.status not in (Status.APPROVED, Status.EXPIRED):
        raise InvalidTransition(
            f"The exception is {old.get_status_display().lower()}: only approved or expired "
            "exceptions are renewed."
        )
    _require_manager(actor, old.application, "renew its exceptions")
    later = old.renewals.filter(
        status__in=[Status.APPROVED, Status.EXPIRED, Status.REVOKED]
    ).first()
    if later is not None:
        raise InvalidTransition(
            f"This exception was already renewed: renew exception {later.pk} instead."
        )
    pending = old.renewals.filter(status__in=[Status.DRAFT, Status.SUBMITTED]).first()
    if pending is not None:
        raise Conflict(
            f"A renewal is already {pending.get_status_display().lower()} (exception {pending.pk})."
        )
    controls = list(old.controls.exclude(status=ControlStatus.RETIRED))
    renewal = exception_create(
        actor=actor,
        application=old.application,
        title=old.title,
        exception_type=old.exception_type,
        justification=justification if justification is not None else old.justification,
        risk_rating=old.risk_rating,
        expires_on=expires_on,
        entitlement=old.entitlement,
        account=old.account,
        nhi=old.nhi,
        finding=old.finding,
        controls=controls,
        renewal_of=old,
    )
    record(
        actor=actor,
        action="access_exception.renewal_requested",
        target=old,
        after={"renewal": renewal.pk, "expires_on": expires_on},
    )
    if submit:
        renewal = exception_submit(actor=actor, exception=renewal)
    return renewal


# --------------------------------------------------------------------------- controls


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def advance(day: date, frequency: str) -> date:
    """The next due date one period after ``day``."""
    if frequency == Frequency.DAILY:
        return day + timedelta(days=1)
    if frequency == Frequency.WEEKLY:
        return day + timedelta(days=7)
    return add_months(day, _MONTHS[Frequency(frequency)])


def next_due_after(current: date, frequency: str, performed_on: date) -> date:
    """Move the due date forward by at least one period, and past the day it was performed
    (a late performance does not leave the control overdue); the anchor day is kept."""
    nxt = advance(current, frequency)
    while nxt <= performed_on:
        nxt = advance(nxt, frequency)
    return nxt


def control_validate(*, actor: Actor, values: dict[str, Any]) -> None:
    _require_manager(actor, values.get("application"), "manage compensating controls")
    if not (values.get("name") or "").strip():
        raise DomainError("Name the control.", field="name")
    if values.get("kind") not in CompensatingControl.Kind.values:
        raise DomainError("Choose what kind of control it is.", field="kind")
    if values.get("frequency") not in Frequency.values:
        raise DomainError("Choose how often the control is performed.", field="frequency")
    due = values.get("next_due_on")
    if not isinstance(due, date) or isinstance(due, datetime):
        raise DomainError("Say when the control is next due.", field="next_due_on")
    owner = values.get("owner")
    if owner is None or not owner.is_active:
        raise DomainError("The control needs an active person who performs it.", field="owner")
    hours = values.get("within_hours")
    if values.get("kind") == CompensatingControl.Kind.MANUAL_DEPROVISIONING and not hours:
        raise DomainError(
            "Manual deprovisioning promises a turnaround: give it in hours.", field="within_hours"
        )


@transaction.atomic
def control_create(
    *,
    actor: Actor,
    name: str,
    kind: str,
    frequency: str,
    next_due_on: date,
    application: Application | None = None,
    owner=None,
    description: str = "",
    within_hours: int | None = None,
) -> CompensatingControl:
    """Register a control (owners for their applications; security admins for any and for
    organisation-wide ones). The person performing it defaults to its creator."""
    values = {
        "name": (name or "").strip(),
        "kind": kind,
        "frequency": frequency,
        "next_due_on": next_due_on,
        "application": application,
        "owner": owner or _person(actor),
        "description": (description or "").strip(),
        "within_hours": within_hours,
    }
    control_validate(actor=actor, values=values)
    control = CompensatingControl.objects.create(**values)
    record(
        actor=actor, action="compensating_control.created", target=control, after=snapshot(control)
    )
    return control


@transaction.atomic
def control_update(
    *, actor: Actor, control: CompensatingControl, **changes: Any
) -> CompensatingControl:
    unknown = set(changes) - set(CONTROL_FIELDS)
    if unknown:
        raise DomainError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    locked = CompensatingControl.objects.select_for_update().get(pk=control.pk)
    if locked.status == ControlStatus.RETIRED:
        raise InvalidTransition("The control is retired: it can no longer be changed.")
    _require_manager(actor, locked.application, "change its controls")
    before = snapshot(locked)
    values = {name: getattr(locked, name) for name in CONTROL_FIELDS}
    values.update(changes)
    values["name"] = (values.get("name") or "").strip()
    control_validate(actor=actor, values=values)
    if values["application"] != locked.application:
        linked = locked.exceptions.exclude(application=values["application"])
        if values["application"] is not None and linked.exists():
            raise DomainError(
                "Exceptions of another application rely on this control; it cannot move.",
                field="application",
            )
    for name, value in values.items():
        setattr(locked, name, value)
    locked.save()
    old, new = changed(before, snapshot(locked))
    if old or new:
        record(
            actor=actor,
            action="compensating_control.updated",
            target=locked,
            before=old,
            after=new,
        )
    return locked


@transaction.atomic
def control_retire(
    *, actor: Actor, control: CompensatingControl, comment: str = ""
) -> CompensatingControl:
    """Stop a control. Refused while it is the only active control of an approved exception
    that needs one; its open overdue and failed findings are closed."""
    locked = CompensatingControl.objects.select_for_update().get(pk=control.pk)
    if locked.status == ControlStatus.RETIRED:
        raise InvalidTransition("The control is already retired.")
    _require_manager(actor, locked.application, "retire its controls")
    relying = [
        exception
        for exception in locked.exceptions.filter(
            status=Status.APPROVED, application__provisioning_mode__in=NEEDS_CONTROL_MODES
        )
        if not exception.controls.filter(status=ControlStatus.ACTIVE).exclude(pk=locked.pk).exists()
    ]
    if relying:
        names = ", ".join(f"“{e.title}”" for e in relying)
        raise DomainError(
            f"Approved exceptions rely on this control alone: {names}. Link another active "
            "control to them or have them revoked first."
        )
    previous = locked.status
    locked.status = ControlStatus.RETIRED
    locked.save(update_fields=["status", "updated_at"])
    closed = risk_findings.resolve_control_findings(
        actor=actor, control=locked, resolution="The control was retired."
    )
    record(
        actor=actor,
        action="compensating_control.retired",
        target=locked,
        before={"status": previous},
        after={"status": locked.status, "comment": (comment or "").strip(), "closed": closed},
    )
    return locked


def may_record_evidence(user, control: CompensatingControl) -> bool:
    return bool(
        user is not None
        and user.is_active
        and (control.owner_id == user.pk or manages_application(user, control.application))
    )


@transaction.atomic
def control_record_evidence(
    *,
    actor: Actor,
    control: CompensatingControl,
    performed_at: datetime,
    result: str,
    performed_by=None,
    note: str = "",
    file=None,
) -> ControlEvidence:
    """Record one performance of a control: who did it, when (not in the future), the result,
    a note and/or a file (type- and size-checked, stored with its SHA-256). The due date moves
    on by the frequency; the result opens or resolves the control's findings."""
    user = _person(actor)
    locked = (
        CompensatingControl.objects.select_for_update(of=("self",))
        .select_related("application")
        .get(pk=control.pk)
    )
    if not may_record_evidence(user, locked):
        raise PermissionDenied(
            "Only the person performing the control, an owner of its application or a "
            "security admin can record its evidence."
        )
    if locked.status != ControlStatus.ACTIVE:
        raise InvalidTransition(
            f"The control is {locked.get_status_display().lower()}: evidence is recorded only "
            "for active controls."
        )
    if result not in Result.values:
        raise DomainError("Choose the result: pass, fail or partial.", field="result")
    if not isinstance(performed_at, datetime):
        raise DomainError("Say when the control was performed.", field="performed_at")
    if timezone.is_naive(performed_at):
        performed_at = timezone.make_aware(performed_at)
    if performed_at > timezone.now() + _FUTURE_SKEW:
        raise DomainError(
            "The control cannot have been performed in the future.", field="performed_at"
        )
    performer = performed_by or user
    if not performer.is_active:
        raise DomainError(
            "The person who performed it must be an active user.", field="performed_by"
        )
    note = (note or "").strip()
    checked = check_evidence_upload(file, field="file") if file else None
    if not note and checked is None:
        raise DomainError(
            "Evidence needs a note or a file: say what was checked and what was found.",
            field="note",
        )
    evidence = ControlEvidence(
        control=locked, performed_by=performer, performed_at=performed_at, result=result, note=note
    )
    if checked is not None:
        evidence.file = file
        evidence.file_name = checked.name
        evidence.file_size = checked.size
        evidence.file_sha256 = checked.sha256
    evidence.save()
    before = {
        "next_due_on": locked.next_due_on,
        "last_result": locked.last_result,
        "last_performed_at": locked.last_performed_at,
    }
    performed_on = timezone.localdate(performed_at)
    locked.next_due_on = next_due_after(locked.next_due_on, locked.frequency, performed_on)
    if locked.last_performed_at is None or performed_at >= locked.last_performed_at:
        locked.last_performed_at = performed_at
        locked.last_result = result
    locked.save(update_fields=["next_due_on", "last_performed_at", "last_result", "updated_at"])
    finding_id = None
    closed = 0
    if result == Result.PASS:
        closed = risk_findings.resolve_control_findings(
            actor=actor,
            control=locked,
            resolution=f"Performed with a passing result on {performed_on:%Y-%m-%d} "
            f"(evidence {evidence.pk}).",
        )
    else:
        finding, _created = risk_findings.open_control_failed(
            actor=actor, control=locked, evidence_id=evidence.pk, result=result
        )
        finding_id = finding.pk
    record(
        actor=actor,
        action="control_evidence.recorded",
        target=evidence,
        before=before,
        after={
            "control": locked.pk,
            "performed_by": performer.pk,
            "performed_at": performed_at,
            "result": result,
            "note": note,
            "file": evidence.file.name if evidence.file else "",
            "file_sha256": evidence.file_sha256,
            "next_due_on": locked.next_due_on,
            "findings_resolved": closed,
            "finding_opened": finding_id,
        },
    )
    return evidence


def controls_flag_overdue(*, today: date | None = None) -> int:
    """Daily: open a ``control_overdue`` finding for each active control past its due date
    (one per control and due date, however often it runs). Returns findings opened."""
    today = today or timezone.localdate()
    actor = Actor.system("control schedule")
    opened = 0
    overdue = CompensatingControl.objects.filter(
        status=ControlStatus.ACTIVE, next_due_on__lt=today
    ).select_related("application")
    for control in overdue.order_by("next_due_on", "pk"):
        with transaction.atomic():
            _finding, created = risk_findings.open_control_overdue(actor=actor, control=control)
        opened += int(created)
    return opened
