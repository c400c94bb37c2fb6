"""Northwind demo rows for this app, called by ``seed_demo`` (idempotent).

VaultFin (no SCIM) is reconciled from monthly CSV exports: three completed runs a month
apart, then this month's export uploaded and waiting for confirmation. Salesforce is read
back over SCIM (simulated here: the demo has no Salesforce to call) twice. The planted drift
covers every kind; triage has started on some of it.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from governance.access.models import Account, Grant
from governance.core.actor import Actor
from governance.reconciliation import services
from governance.reconciliation.imports import ObservedRow
from governance.reconciliation.models import (
    DriftSnapshot,
    Finding,
    ReconciliationRun,
    ReconciliationSettings,
)

HEADER = ["Login", "User ID", "Full name", "E-mail", "Status", "Last logon", "Roles", "Used by"]


def seed(*, people: dict[str, Any], apps: dict[str, Any], leavers: list[Any], result: Any) -> None:
    """Create this app's demo rows unless they exist."""
    for app in apps.values():
        _, created = ReconciliationSettings.objects.get_or_create(
            application=app,
            defaults={
                "dormant_after_days": 60 if app.name == "VaultFin" else 90,
                "scheduled": app.provisioning_mode != "manual",
            },
        )
        if created:
            result.bump("reconciliation settings")
    vaultfin, salesforce = apps.get("VaultFin"), apps.get("Salesforce")
    if vaultfin is None or salesforce is None:
        return
    if ReconciliationRun.objects.filter(application__in=[vaultfin, salesforce]).exists():
        return
    now = timezone.now()
    # The accounts existed long before the first reconciliation (the seed created them just
    # now); without this every finding would be inside the lag budget.
    Account.objects.filter(
        application__in=[vaultfin, salesforce], created_at__gte=now - timedelta(days=1)
    ).update(created_at=F("created_at") - timedelta(days=400))
    _vaultfin(vaultfin, people, result, now)
    _salesforce(salesforce, people, result, now)


def _holdings(app) -> dict[int, list[str]]:
    held: dict[int, list[str]] = {}
    for account_id, value in Grant.objects.filter(
        account__application=app, status=Grant.Status.ACTIVE
    ).values_list("account_id", "entitlement__external_value"):
        held.setdefault(account_id, []).append(value)
    return held


def _vaultfin_rows(app, now, month: int) -> list[list[str]]:
    """VaultFin's user export ``month`` months ago (0 = this month)."""
    held = _holdings(app)
    rows = []
    accounts = Account.objects.filter(application=app).exclude(status="deleted").order_by("pk")
    for index, account in enumerate(accounts):
        roles = list(held.get(account.pk, []))
        last = now - timedelta(days=3 + index % 20)
        if index == 1:
            roles.append("payment-release")  # granted in VaultFin, never requested
        if index == 2:
            last = now - timedelta(days=170)  # dormant
        rows.append(
            [
                account.username,
                account.external_id or f"VF{1000 + account.pk}",
                account.username.split("@")[0].replace(".", " ").title(),
                account.username if "@" in account.username else "",
                "Active" if account.status == "active" else "Disabled",
                f"{last:%Y-%m-%d}",
                ";".join(roles),
                "",
            ]
        )
    rows.append(
        [
            "ap.shared",
            "VF0999",
            "AP team",
            "",
            "Active",
            f"{now:%Y-%m-%d}",
            "invoice-clerk",
            "ana.ruiz;ben.cole;li.wang",
        ]
    )
    if month >= 2:
        rows.append(
            ["old.admin", "VF0001", "Old admin", "", "Active", "2025-12-01", "payment-release", ""]
        )
    return rows


def _csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def _backdate(run: ReconciliationRun, when) -> None:
    ReconciliationRun.objects.filter(pk=run.pk).update(
        created_at=when, started_at=when, finished_at=when + timedelta(seconds=4)
    )
    DriftSnapshot.objects.filter(run=run).update(taken_at=when + timedelta(seconds=4))
    Finding.objects.filter(first_seen_run=run).update(opened_at=when + timedelta(seconds=4))


def _vaultfin(app, people, result, now) -> None:
    from governance.portal.models import User

    grace = Actor.for_user(User.objects.get(username="grace.liu"))
    for month in (2, 1, 0):
        upload = io.BytesIO(_csv_bytes(_vaultfin_rows(app, now, month)))
        run = services.run_upload_csv(
            actor=grace, application=app, upload=upload, name=f"vaultfin-users-m{month}.csv"
        )
        if month == 0:
            result.bump("reconciliation runs")  # this month's export: awaiting confirmation
            break
        services.run_confirm(actor=grace, run=run, mapping=services.run_fields(run))
        services.run_execute(run.pk)  # seed_demo is one transaction: run it in-process
        _backdate(run, now - timedelta(days=30 * month))
        result.bump("reconciliation runs")
    findings = Finding.objects.filter(application=app)
    dormant = findings.filter(kind=Finding.Kind.DORMANT, status=Finding.Status.OPEN).first()
    if dormant is not None:
        services.finding_mark_false_positive(
            actor=grace,
            finding=dormant,
            reason="Seasonal year-end approver: signs in only in December.",
        )
    orphan = findings.filter(
        kind=Finding.Kind.ORPHAN, status=Finding.Status.OPEN, subject__startswith="contractor"
    ).first()
    if orphan is not None:
        services.finding_remediate(actor=grace, finding=orphan)  # a manual work item
    result.bump("findings", findings.count())


def _salesforce(app, people, result, now) -> None:
    from governance.portal.models import User

    omar = Actor.for_user(User.objects.get(username="omar.haddad"))
    held = _holdings(app)
    accounts = list(
        Account.objects.filter(application=app, status="active")
        .select_related("identity", "nhi")
        .order_by("pk")
    )
    for weeks_ago in (1, 0):
        rows = []
        people_seen = 0
        for account in accounts:
            roles = list(held.get(account.pk, []))
            interactive = False
            if account.identity_id:
                people_seen += 1
                if people_seen == 2:
                    roles.append("sysadmin")  # made admin directly in Salesforce
                if people_seen == 4 and roles:
                    roles = roles[1:]  # a birthright role Salesforce never got
            if account.nhi_id and account.nhi.name == "sf-dataloader-staging":
                interactive = True  # somebody signs in with the service account
            rows.append(
                ObservedRow(
                    username=account.username,
                    external_id=account.external_id or f"005{account.pk:09d}",
                    display_name=str(account.identity or account.nhi or account.username),
                    active=True,
                    last_login_at=account.last_login_at,
                    entitlements=roles,
                    interactive_login=interactive,
                )
            )
        if weeks_ago:
            rows.append(
                ObservedRow(
                    username="integration.user@northwind.example",
                    external_id="005INTEG01",
                    entitlements=["sysadmin"],
                )
            )
        run = ReconciliationRun.objects.create(
            application=app,
            source=ReconciliationRun.Source.SCIM,
            status=ReconciliationRun.Status.RUNNING,
            started_at=now,
            column_mapping={"entitlements_observed": True},
        )
        writer = services._Writer(run)
        for row in rows:
            writer.add(row)
        writer.flush()
        ReconciliationRun.objects.filter(pk=run.pk).update(
            rows_total=writer.accounts_seen,
            accounts_seen=writer.accounts_seen,
            grants_seen=writer.grants_seen,
        )
        services._complete(run)
        _backdate(run, now - timedelta(days=7 * weeks_ago, minutes=5))
        result.bump("reconciliation runs")
    excess = Finding.objects.filter(
        application=app, kind=Finding.Kind.EXCESS, status=Finding.Status.OPEN
    ).first()
    if excess is not None:
        services.finding_send_to_review(actor=omar, finding=excess)
    result.bump("findings", Finding.objects.filter(application=app).count())
