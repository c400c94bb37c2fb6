"""Which findings an approved exception covers: the one rule shared by exception approval,
expiry and revocation (risk) and by every reconciliation run (reconciliation).

An approved, unexpired exception covers a finding when both concern the same application,
the finding's kind is one the exception's type accepts, and every narrower scope the
exception names (entitlement, account, NHI, finding) matches the finding. ``other``
exceptions accept any kind but only when narrowed to something.
"""

from __future__ import annotations

from datetime import date

from django.db.models import Q, QuerySet
from django.utils import timezone

from governance.reconciliation.models import Finding
from governance.risk.models import AccessException

K = Finding.Kind
T = AccessException.Type

COVERED_KINDS: dict[str, frozenset[str]] = {
    T.NO_SCIM: frozenset({K.EXCESS, K.MISSING}),
    T.SCIM_PARTIAL: frozenset({K.EXCESS, K.MISSING}),
    T.SHARED_ACCOUNT: frozenset({K.SHARED}),
    T.RETAINED_ACCESS: frozenset({K.EXCESS}),
    T.SOD_CONFLICT: frozenset({K.EXCESS}),
    T.ROTATION_OVERDUE: frozenset(),
    T.ORPHAN_RETAINED: frozenset({K.ORPHAN}),
    T.OTHER: frozenset(
        {K.ORPHAN, K.STALE, K.EXCESS, K.MISSING, K.DORMANT, K.SHARED, K.NHI_HUMAN_USE}
    ),
}

SUPPRESSIBLE = (Finding.Status.OPEN, Finding.Status.IN_FLIGHT)


def active_exceptions(*, on: date | None = None) -> QuerySet[AccessException]:
    """Approved exceptions whose expiry date has not passed (valid through ``expires_on``)."""
    today = on or timezone.localdate()
    return AccessException.objects.filter(
        status=AccessException.Status.APPROVED, expires_on__gte=today
    )


def _is_narrowed(exception: AccessException) -> bool:
    return any(
        getattr(exception, f"{name}_id") is not None
        for name in ("entitlement", "account", "nhi", "finding")
    )


def coverage_q(exception: AccessException) -> Q | None:
    """The findings ``exception`` covers as a ``Q`` on Finding, or None when it covers none."""
    kinds = COVERED_KINDS.get(exception.exception_type, frozenset())
    if not kinds or (exception.exception_type == T.OTHER and not _is_narrowed(exception)):
        return None
    q = Q(application_id=exception.application_id, kind__in=sorted(kinds))
    if exception.entitlement_id is not None:
        q &= Q(entitlement_id=exception.entitlement_id)
    if exception.account_id is not None:
        q &= Q(account_id=exception.account_id)
    if exception.nhi_id is not None:
        q &= Q(nhi_id=exception.nhi_id)
    if exception.finding_id is not None:
        q &= Q(pk=exception.finding_id)
    return q


def covers(exception: AccessException, finding: Finding) -> bool:
    """Whether ``exception`` (if active) covers ``finding``; pure, for one pair."""
    if exception.status != AccessException.Status.APPROVED:
        return False
    if exception.expires_on < timezone.localdate():
        return False
    kinds = COVERED_KINDS.get(exception.exception_type, frozenset())
    if finding.kind not in kinds or finding.application_id != exception.application_id:
        return False
    if exception.exception_type == T.OTHER and not _is_narrowed(exception):
        return False
    for name in ("entitlement", "account", "nhi"):
        wanted = getattr(exception, f"{name}_id")
        if wanted is not None and getattr(finding, f"{name}_id") != wanted:
            return False
    return exception.finding_id is None or exception.finding_id == finding.pk


def suppress_covered_findings(*, exception: AccessException) -> int:
    """Mark the open findings ``exception`` covers as accepted by it (one UPDATE). The caller
    records the audit event."""
    q = coverage_q(exception)
    if q is None or exception.status != AccessException.Status.APPROVED:
        return 0
    return Finding.objects.filter(q, status__in=SUPPRESSIBLE).update(
        status=Finding.Status.SUPPRESSED, suppressed_by=exception, updated_at=timezone.now()
    )


def suppress_for_application(*, application_id: int) -> int:
    """Apply every active exception of one application to its open findings (after a run)."""
    total = 0
    for exception in active_exceptions().filter(application_id=application_id):
        total += suppress_covered_findings(exception=exception)
    return total


def reopen_findings(*, exception: AccessException) -> int:
    """Findings ``exception`` suppressed become open again (it expired or was revoked), unless
    another active exception still covers them. The caller records the audit event."""
    suppressed = Finding.objects.filter(suppressed_by=exception, status=Finding.Status.SUPPRESSED)
    application_ids = set(suppressed.values_list("application_id", flat=True))
    count = suppressed.update(
        status=Finding.Status.OPEN, suppressed_by=None, updated_at=timezone.now()
    )
    for application_id in application_ids:
        if application_id is not None:
            suppress_for_application(application_id=application_id)
    return count
