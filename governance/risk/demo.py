"""Northwind demo rows for this app, called by ``seed_demo`` (idempotent).

- Ledgerly (SCIM create/deactivate only): Grace Liu's exception "Role changes handled by
  monthly manual reconciliation", with its compensating control, six months, approved by
  Sam Patel (scenario 3).
- VaultFin (no SCIM): the Finance Controller's monthly user-list review, evidence due the
  5th, with two months of evidence (scenario 2), and an exception that expires within 30 days.
- Salesforce: a request waiting in the security exception queue.
- GitHub Enterprise: a quarterly review whose evidence is overdue (and its finding).

Everything goes through the services, so the audit log has every step.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from governance.core.actor import Actor
from governance.portal.models import User
from governance.risk import services
from governance.risk.models import AccessException, CompensatingControl

LEDGERLY_EXCEPTION = "Role changes handled by monthly manual reconciliation"
LEDGERLY_CONTROL = "Monthly manual reconciliation of Ledgerly roles"
VAULTFIN_CONTROL = (
    "Monthly user-list export reviewed by the Finance Controller; evidence due the 5th"
)
VAULTFIN_EXCEPTION = "VaultFin has no SCIM: joiners and leavers handled as manual work items"
SALESFORCE_EXCEPTION = "Keep System Administrator during the CPQ migration"
GITHUB_CONTROL = "Quarterly review of GitHub organisation owners"


def _latest_fifth(today: date) -> date:
    if today.day >= 5:
        return today.replace(day=5)
    return services.add_months(today.replace(day=5), -1)


def _at(day: date, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def _control(result: Any, key: str, **fields) -> CompensatingControl:
    existing = CompensatingControl.objects.filter(name=fields["name"]).first()
    if existing is not None:
        return existing
    control = services.control_create(**fields)
    result.bump(key)
    return control


def _approved(
    *, result, requester: User, approver: User, comment: str, **fields
) -> AccessException:
    exception = services.exception_create(actor=Actor.for_user(requester), **fields)
    services.exception_submit(actor=Actor.for_user(requester), exception=exception)
    exception = services.exception_approve(
        actor=Actor.for_user(approver), exception=exception, comment=comment
    )
    result.bump("access exceptions")
    return exception


def seed(*, people: dict[str, Any], apps: dict[str, Any], leavers: list[Any], result: Any) -> None:
    """Create this app's demo rows unless they exist."""
    users = {
        u.username: u
        for u in User.objects.filter(
            username__in=["grace.liu", "sam.patel", "lena.fischer", "omar.haddad"]
        )
    }
    grace, sam = users["grace.liu"], users["sam.patel"]
    lena, omar = users["lena.fischer"], users["omar.haddad"]
    today = timezone.localdate()

    ledgerly_control = _control(
        result,
        "compensating controls",
        actor=Actor.for_user(grace),
        name=LEDGERLY_CONTROL,
        kind=CompensatingControl.Kind.PERIODIC_RECONCILIATION,
        frequency=CompensatingControl.Frequency.MONTHLY,
        application=apps["Ledgerly"],
        owner=grace,
        next_due_on=today + timedelta(days=12),
        description="Each month Finance exports Ledgerly roles and compares them with the "
        "people's current jobs; differences become manual work items.",
    )

    vaultfin_control = CompensatingControl.objects.filter(name=VAULTFIN_CONTROL).first()
    if vaultfin_control is None:
        latest = _latest_fifth(today)
        first_due = services.add_months(latest, -1)
        vaultfin_control = _control(
            result,
            "compensating controls",
            actor=Actor.for_user(grace),
            name=VAULTFIN_CONTROL,
            kind=CompensatingControl.Kind.PERIODIC_REVIEW,
            frequency=CompensatingControl.Frequency.MONTHLY,
            application=apps["VaultFin"],
            owner=grace,
            next_due_on=first_due,
            description="VaultFin has no SCIM: every month its user list is exported and the "
            "Finance Controller confirms each account against HR.",
        )
        for due, note in (
            (first_due, "Export of 212 users reviewed; two leavers' accounts disabled (CHG-1187)."),
            (latest, "Export of 209 users reviewed; no differences found."),
        ):
            services.control_record_evidence(
                actor=Actor.for_user(grace),
                control=vaultfin_control,
                performed_at=_at(due - timedelta(days=1)),
                result=CompensatingControl.Result.PASS,
                note=note,
            )
            result.bump("control evidence")

    github_control = CompensatingControl.objects.filter(name=GITHUB_CONTROL).first()
    if github_control is None:
        github_control = _control(
            result,
            "compensating controls",
            actor=Actor.for_user(lena),
            name=GITHUB_CONTROL,
            kind=CompensatingControl.Kind.PERIODIC_REVIEW,
            frequency=CompensatingControl.Frequency.QUARTERLY,
            application=apps["GitHub Enterprise"],
            owner=lena,
            next_due_on=today - timedelta(days=12),
            description="Every quarter the organisation owners are listed and each is confirmed "
            "by the VP Engineering.",
        )
        # Its evidence is late: the daily job raises the overdue finding.
        services.controls_flag_overdue(today=today)

    if not AccessException.objects.filter(title=LEDGERLY_EXCEPTION).exists():
        _approved(
            result=result,
            requester=grace,
            approver=sam,
            comment="Accepted while Ledgerly cannot update roles over SCIM; revisit at renewal.",
            application=apps["Ledgerly"],
            title=LEDGERLY_EXCEPTION,
            exception_type=AccessException.Type.SCIM_PARTIAL,
            justification="Ledgerly's SCIM creates and deactivates accounts but cannot change "
            "roles. Role changes are caught by the monthly manual reconciliation.",
            risk_rating="medium",
            expires_on=services.add_months(today, 6),
            controls=[ledgerly_control],
        )

    if not AccessException.objects.filter(title=VAULTFIN_EXCEPTION).exists():
        _approved(
            result=result,
            requester=grace,
            approver=sam,
            comment="Until the VaultFin upgrade brings SCIM.",
            application=apps["VaultFin"],
            title=VAULTFIN_EXCEPTION,
            exception_type=AccessException.Type.NO_SCIM,
            justification="VaultFin is on-premises and has no provisioning interface. Access "
            "changes are manual work items; the monthly user-list review catches misses.",
            risk_rating="high",
            expires_on=today + timedelta(days=20),
            controls=[vaultfin_control],
        )

    if not AccessException.objects.filter(title=SALESFORCE_EXCEPTION).exists():
        entitlement = apps["Salesforce"].entitlements.filter(name="System Administrator").first()
        exception = services.exception_create(
            actor=Actor.for_user(omar),
            application=apps["Salesforce"],
            title=SALESFORCE_EXCEPTION,
            exception_type=AccessException.Type.RETAINED_ACCESS,
            justification="The CPQ migration needs two Sales Ops analysts to keep System "
            "Administrator until cut-over; removed the day after.",
            risk_rating="high",
            expires_on=today + timedelta(days=45),
            entitlement=entitlement,
        )
        services.exception_submit(actor=Actor.for_user(omar), exception=exception)
        result.bump("access exceptions")
