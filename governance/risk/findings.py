"""Findings raised by the risk app itself: a compensating control overdue or failed, and an
exception that lapsed without renewal.

Each has a stable fingerprint, so opening it again while it is open changes nothing (the
``finding_one_open_per_fingerprint`` constraint backs this up under concurrency). Callers run
inside their own transaction and record the audit event of the change that caused it; these
functions record the finding's own event.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.choices import RiskLevel
from governance.reconciliation.models import Finding
from governance.risk.models import AccessException, CompensatingControl

Kind = Finding.Kind
OPEN = Finding.OPEN_STATUSES
_ORDER = [RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL]


def overdue_fingerprint(control: CompensatingControl) -> str:
    return f"control:{control.pk}:overdue:{control.next_due_on.isoformat()}"


def failed_fingerprint(control: CompensatingControl) -> str:
    return f"control:{control.pk}:failed"


def expired_fingerprint(exception: AccessException) -> str:
    return f"exception:{exception.pk}:expired:{exception.expires_on.isoformat()}"


def _lower(level: str) -> str:
    index = _ORDER.index(RiskLevel(level)) if level in RiskLevel.values else 1
    return _ORDER[max(index - 1, 0)]


def control_severity(control: CompensatingControl) -> str:
    """As serious as the riskiest approved exception that relies on the control; otherwise
    the application's risk tier (medium for organisation-wide controls)."""
    ratings = list(
        control.exceptions.filter(status=AccessException.Status.APPROVED).values_list(
            "risk_rating", flat=True
        )
    )
    if ratings:
        return max(ratings, key=lambda r: _ORDER.index(RiskLevel(r)))
    if control.application_id is not None:
        return control.application.risk_tier
    return RiskLevel.MEDIUM


def control_finding_owner(control: CompensatingControl):
    """The security admin who most recently approved an exception relying on the control:
    they accepted the risk on the strength of it. None (security's triage queue) otherwise."""
    exception = (
        control.exceptions.filter(status=AccessException.Status.APPROVED, approver__isnull=False)
        .select_related("approver")
        .order_by("-decided_at", "-pk")
        .first()
    )
    return exception.approver if exception is not None else None


def _open(
    *,
    actor: Actor,
    kind: str,
    fingerprint: str,
    severity: str,
    subject: str,
    owner,
    application_id: int | None,
    control: CompensatingControl | None = None,
    exception: AccessException | None = None,
    evidence: dict | None = None,
) -> tuple[Finding, bool]:
    existing = Finding.objects.filter(kind=kind, fingerprint=fingerprint, status__in=OPEN).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            finding = Finding.objects.create(
                kind=kind,
                fingerprint=fingerprint,
                severity=severity,
                subject=subject[:300],
                owner=owner,
                application_id=application_id,
                control=control,
                exception=exception,
                evidence=evidence or {},
                opened_at=timezone.now(),
            )
    except IntegrityError:  # opened by a concurrent run a moment ago
        return Finding.objects.get(kind=kind, fingerprint=fingerprint, status__in=OPEN), False
    record(
        actor=actor,
        action="finding.opened",
        target=finding,
        after={
            "kind": kind,
            "fingerprint": fingerprint,
            "severity": severity,
            "owner": owner.pk if owner is not None else None,
        },
    )
    return finding, True


def open_control_overdue(*, actor: Actor, control: CompensatingControl) -> tuple[Finding, bool]:
    where = f"{control.application}: " if control.application_id else ""
    return _open(
        actor=actor,
        kind=Kind.CONTROL_OVERDUE,
        fingerprint=overdue_fingerprint(control),
        severity=control_severity(control),
        subject=f"{where}control “{control.name}” overdue since {control.next_due_on:%Y-%m-%d}",
        owner=control_finding_owner(control),
        application_id=control.application_id,
        control=control,
        evidence={"next_due_on": control.next_due_on.isoformat(), "owner": control.owner_id},
    )


def open_control_failed(
    *, actor: Actor, control: CompensatingControl, evidence_id: int, result: str
) -> tuple[Finding, bool]:
    severity = control_severity(control)
    if result == CompensatingControl.Result.PARTIAL:
        severity = _lower(severity)
    where = f"{control.application}: " if control.application_id else ""
    label = "partly failed" if result == CompensatingControl.Result.PARTIAL else "failed"
    return _open(
        actor=actor,
        kind=Kind.CONTROL_FAILED,
        fingerprint=failed_fingerprint(control),
        severity=severity,
        subject=f"{where}control “{control.name}” {label}",
        owner=control_finding_owner(control),
        application_id=control.application_id,
        control=control,
        evidence={"control_evidence": evidence_id, "result": result},
    )


def open_exception_expired(*, actor: Actor, exception: AccessException) -> tuple[Finding, bool]:
    return _open(
        actor=actor,
        kind=Kind.EXCEPTION_EXPIRED,
        fingerprint=expired_fingerprint(exception),
        severity=exception.risk_rating,
        subject=(
            f"{exception.application}: exception “{exception.title}” expired on "
            f"{exception.expires_on:%Y-%m-%d} without renewal"
        ),
        owner=exception.requested_by,
        application_id=exception.application_id,
        exception=exception,
        evidence={"expires_on": exception.expires_on.isoformat()},
    )


def _resolve(*, actor: Actor, findings: QuerySet[Finding], resolution: str) -> int:
    ids = list(findings.filter(status__in=OPEN).values_list("pk", flat=True))
    if not ids:
        return 0
    now = timezone.now()
    Finding.objects.filter(pk__in=ids).update(
        status=Finding.Status.RESOLVED, resolved_at=now, resolution=resolution, updated_at=now
    )
    for finding in Finding.objects.filter(pk__in=ids):
        record(
            actor=actor,
            action="finding.resolved",
            target=finding,
            after={"status": finding.status, "resolution": resolution},
        )
    return len(ids)


def resolve_control_findings(
    *, actor: Actor, control: CompensatingControl, resolution: str, kinds=None
) -> int:
    """Close the control's open overdue/failed findings (a passing performance, retirement)."""
    kinds = kinds or (Kind.CONTROL_OVERDUE, Kind.CONTROL_FAILED)
    return _resolve(
        actor=actor,
        findings=Finding.objects.filter(control=control, kind__in=kinds),
        resolution=resolution,
    )


def resolve_exception_expired(*, actor: Actor, exception: AccessException, resolution: str) -> int:
    """Close the lapsed exception's finding (an approved renewal replaced it)."""
    return _resolve(
        actor=actor,
        findings=Finding.objects.filter(exception=exception, kind=Kind.EXCEPTION_EXPIRED),
        resolution=resolution,
    )
