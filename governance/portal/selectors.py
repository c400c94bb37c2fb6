"""Reads for the portal's home page: the numbers a governance team starts its day with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from governance.access.models import Account, Application
from governance.access.selectors import excess_privileged_grants, orphan_accounts, stale_accounts
from governance.identities.models import Identity
from governance.lifecycle.selectors import open_leavers, open_tasks
from governance.nhi.selectors import unowned_nhis
from governance.reconciliation.models import Finding
from governance.risk.models import AccessException, CompensatingControl


@dataclass(frozen=True)
class Signal:
    label: str
    count: int
    url: str
    help: str
    severity: str  # "ok" | "warn" | "bad"


def _severity(count: int, *, bad: bool = True) -> str:
    if count == 0:
        return "ok"
    return "bad" if bad else "warn"


def governance_overview(user) -> dict:
    """Counts for the admin home, narrowed to the user's applications unless they see all."""
    from governance.core.admin_base import sees_everything

    everything = sees_everything(user)
    apps = Application.objects.all() if everything else Application.objects.filter(owners=user)
    orphans = orphan_accounts().filter(application__in=apps)
    stale = stale_accounts().filter(application__in=apps)
    excess = excess_privileged_grants().filter(account__application__in=apps)
    nhis = unowned_nhis()
    if not everything:
        nhis = nhis.filter(application__in=apps)
    leavers = open_leavers()
    work = open_tasks().filter(application__in=apps)
    if not everything:
        leavers = leavers.filter(tasks__application__in=apps).distinct()
    today = timezone.localdate()
    exceptions = AccessException.objects.filter(application__in=apps).aggregate(
        submitted=Count("pk", filter=Q(status=AccessException.Status.SUBMITTED)),
        expiring=Count(
            "pk",
            filter=Q(
                status=AccessException.Status.APPROVED,
                expires_on__gte=today,
                expires_on__lte=today + timedelta(days=30),
            ),
        ),
    )
    controls_overdue = CompensatingControl.objects.filter(
        status=CompensatingControl.Status.ACTIVE, next_due_on__lt=today
    )
    findings = Finding.objects.filter(status=Finding.Status.OPEN)
    if not everything:
        controls_overdue = controls_overdue.filter(
            Q(application__in=apps) | Q(owner=user)
        ).distinct()
        findings = findings.filter(application__in=apps)
    drift = dict(
        findings.order_by().values_list("kind").annotate(n=Count("pk")).values_list("kind", "n")
    )
    open_findings = sum(drift.values())
    people = Identity.objects.filter(deleted_at__isnull=True).aggregate(
        active_people=Count("pk", filter=Q(active=True)),
        inactive_people=Count("pk", filter=Q(active=False)),
    )
    account_url = reverse("admin:access_account_changelist")
    signals = [
        Signal(
            "Orphan accounts",
            orphans.count(),
            f"{account_url}?holder=orphan",
            "Accounts that belong to no person and no NHI (AC-2(3)(b)).",
            _severity(orphans.count()),
        ),
        Signal(
            "Active accounts of departed people",
            stale.count(),
            f"{account_url}?holder=departed&status__exact=active",
            "The person left; the account is still active (PS-4).",
            _severity(stale.count()),
        ),
        Signal(
            "Privileged grants no policy justifies",
            excess.count(),
            reverse("admin:access_grant_changelist")
            + "?entitlement__privileged__exact=1&status__exact=active&origin__in=manual,request",
            "Privileged access held outside any birthright policy (AC-2(7)).",
            _severity(excess.count(), bad=False),
        ),
        Signal(
            "NHIs without an active owner",
            nhis.count(),
            reverse("admin:nhi_nonhumanidentity_changelist") + "?owner_state=departed",
            "Service accounts, keys and agents whose owner left (OWASP NHI1:2025).",
            _severity(nhis.count()),
        ),
        Signal(
            "Open leavers",
            leavers.count(),
            reverse("admin:lifecycle_open_leavers"),
            "Departures with access not yet removed and verified (PS-4, AC-2(3)).",
            _severity(leavers.count(), bad=False),
        ),
        Signal(
            "Open provisioning work",
            work.count(),
            reverse("admin:lifecycle_provisioningtask_changelist")
            + "?state__in=pending,in_progress,awaiting_manual",
            "Changes still to be carried out in applications, by SCIM or by hand.",
            _severity(work.count(), bad=False),
        ),
        Signal(
            "Open drift findings",
            open_findings,
            reverse("admin:reconciliation_finding_changelist") + "?status__exact=open",
            "Differences between what applications grant and what they should (CM-3, AC-2(4)).",
            _severity(open_findings, bad=False),
        ),
        Signal(
            "Exceptions awaiting approval",
            exceptions["submitted"],
            reverse("admin:risk_accessexception_changelist") + "?status__exact=submitted",
            "Submitted risk acceptances waiting for a security decision (four-eyes).",
            _severity(exceptions["submitted"], bad=False),
        ),
        Signal(
            "Exceptions expiring within 30 days",
            exceptions["expiring"],
            reverse("admin:risk_accessexception_changelist") + "?expiry=30",
            "Approved exceptions to renew or let lapse; their findings re-open on expiry.",
            _severity(exceptions["expiring"], bad=False),
        ),
        Signal(
            "Compensating controls overdue",
            controls_overdue.count(),
            reverse("admin:risk_compensatingcontrol_changelist") + "?overdue=yes",
            "Controls whose evidence is late: the promise behind an exception is unproven.",
            _severity(controls_overdue.count()),
        ),
    ]
    kind_labels = dict(Finding.Kind.choices)
    top = max(drift.values(), default=0) or 1
    drift_rows = [
        {
            "kind": kind,
            "label": kind_labels.get(kind, kind),
            "count": count,
            "percent": max(2, round(100 * count / top)),
        }
        for kind, count in sorted(drift.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    by_mode = dict(
        apps.values_list("provisioning_mode")
        .annotate(n=Count("pk"))
        .values_list("provisioning_mode", "n")
    )
    short = {"scim": "SCIM", "scim_partial": "SCIM partial", "manual": "Manual"}
    modes = [
        {"label": short.get(value, label), "count": by_mode.get(value, 0)}
        for value, label in Application.ProvisioningMode.choices
    ]
    total_apps = sum(m["count"] for m in modes) or 1
    for mode in modes:
        mode["percent"] = round(100 * mode["count"] / total_apps)
    return {
        "signals": signals,
        "people": people,
        "applications": sum(by_mode.values()),
        "accounts": Account.objects.filter(application__in=apps).count(),
        "modes": modes,
        "drift": drift_rows,
        "findings_url": reverse("admin:reconciliation_finding_changelist"),
        "scoped": not everything,
    }
