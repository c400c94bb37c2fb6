"""Reconciliation runs and finding triage. Every state change is audited in its transaction.

A run moves ``preview -> queued -> running -> completed | failed`` (or ``preview ->
cancelled``). The Celery task claims a queued run with a conditional UPDATE, writes the
observations, then compares, merges findings, verifies executed work and takes the drift
snapshot in one transaction: a retry or a duplicated message never applies twice, and a run
that failed (did not observe the application) verifies nothing.

Storage: only the latest completed run of an application keeps its observed accounts and
grants; a completed run deletes the observations of the application's earlier runs, and a
failed run deletes its own. Findings and drift snapshots keep the history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import IO, Any

from django.core.files.base import File
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from governance.access.models import Account, Application, Grant
from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError, InvalidTransition, PermissionDenied
from governance.lifecycle.models import ProvisioningTask
from governance.reconciliation import engine, imports
from governance.reconciliation.models import (
    DriftSnapshot,
    Finding,
    ObservedAccount,
    ObservedGrant,
    ReconciliationRun,
)

log = logging.getLogger(__name__)

Status = ReconciliationRun.Status
FS = Finding.Status
K = Finding.Kind
WRITE_BATCH = 5000
MAX_ROW_ERRORS = 50
SCIM_MODES = (Application.ProvisioningMode.SCIM, Application.ProvisioningMode.SCIM_PARTIAL)


class ImportRejected(Exception):
    """The actual state could not be read completely; the run observed nothing."""


# --------------------------------------------------------------------------- permissions


def may_manage(user, application: Application) -> bool:
    """Security admins, and owners of the application."""
    if user is None or not user.is_active:
        return False
    if user.is_security_admin:
        return True
    return application.owners.filter(pk=user.pk).exists()


def _require(actor: Actor, application: Application) -> None:
    user = actor.user if actor.kind == "user" else None
    if actor.kind == "user" and not may_manage(user, application):
        raise PermissionDenied("Only an owner of the application or a security admin can do this.")


# --------------------------------------------------------------------------- runs


@transaction.atomic
def run_upload_csv(
    *, actor: Actor, application: Application, upload: IO[bytes], name: str
) -> ReconciliationRun:
    """A CSV export of the application, kept for preview: nothing is observed until the run
    is confirmed. A bad file (too large, not UTF-8, no header) is refused and nothing is kept."""
    _require(actor, application)
    headers = imports.read_headers(upload)
    mapping = imports.guess_mapping(headers)
    run = ReconciliationRun(
        application=application,
        source=ReconciliationRun.Source.CSV,
        status=Status.PREVIEW,
        started_by=actor.user if actor.kind == "user" else None,
        upload_name=(name or "upload.csv")[:255],
        column_mapping={"headers": headers, "fields": mapping},
    )
    upload.seek(0)
    run.upload.save(f"{application.pk}-{timezone.now():%Y%m%d%H%M%S}.csv", File(upload), save=False)
    run.save()
    record(
        actor=actor,
        action="reconciliation_run.uploaded",
        target=run,
        after={"application": application.pk, "file": run.upload_name, "headers": headers},
    )
    return run


def run_headers(run: ReconciliationRun) -> list[str]:
    return list((run.column_mapping or {}).get("headers") or [])


def run_fields(run: ReconciliationRun) -> dict[str, str]:
    return dict((run.column_mapping or {}).get("fields") or {})


def run_preview(run: ReconciliationRun, mapping: dict[str, str] | None = None):
    """The first rows of the run's file parsed with ``mapping`` (default: the run's), and the
    row errors among them. Reads only."""
    mapping = run_fields(run) if mapping is None else mapping
    with run.upload.open("rb") as handle:
        return imports.preview(handle, mapping)


@transaction.atomic
def run_set_mapping(
    *, actor: Actor, run: ReconciliationRun, mapping: dict[str, str]
) -> ReconciliationRun:
    locked = ReconciliationRun.objects.select_for_update().get(pk=run.pk)
    _require(actor, locked.application)
    if locked.status != Status.PREVIEW:
        raise InvalidTransition("Only a run awaiting confirmation can change its columns.")
    headers = run_headers(locked)
    fields = imports.validate_mapping(mapping, headers)
    before = run_fields(locked)
    locked.column_mapping = {"headers": headers, "fields": fields}
    locked.save(update_fields=["column_mapping"])
    record(
        actor=actor,
        action="reconciliation_run.mapping_changed",
        target=locked,
        before={"fields": before},
        after={"fields": fields},
    )
    return locked


@transaction.atomic
def run_confirm(
    *, actor: Actor, run: ReconciliationRun, mapping: dict[str, str]
) -> ReconciliationRun:
    """Queue the import with the chosen columns. Refused while the preview shows row errors."""
    Application.objects.select_for_update().filter(pk=run.application_id).first()
    locked = run_set_mapping(actor=actor, run=run, mapping=mapping)
    _rows, errors = run_preview(locked)
    if errors:
        raise DomainError(
            f"Line {errors[0].line}: {errors[0].message}. Fix the file (or the columns) "
            "and upload it again.",
            field="mapping",
        )
    _no_run_in_progress(locked.application, exclude=locked.pk)
    locked.status = Status.QUEUED
    locked.save(update_fields=["status"])
    record(
        actor=actor, action="reconciliation_run.confirmed", target=locked, after=run_fields(locked)
    )
    _enqueue(locked.pk)
    return locked


@transaction.atomic
def run_cancel(*, actor: Actor, run: ReconciliationRun) -> ReconciliationRun:
    locked = ReconciliationRun.objects.select_for_update().get(pk=run.pk)
    _require(actor, locked.application)
    if locked.status != Status.PREVIEW:
        raise InvalidTransition("Only a run awaiting confirmation can be cancelled.")
    locked.status = Status.CANCELLED
    locked.finished_at = timezone.now()
    locked.save(update_fields=["status", "finished_at"])
    record(actor=actor, action="reconciliation_run.cancelled", target=locked)
    return locked


def _no_run_in_progress(application: Application, exclude: int | None = None) -> None:
    busy = ReconciliationRun.objects.filter(
        application=application, status__in=[Status.QUEUED, Status.RUNNING]
    )
    if exclude is not None:
        busy = busy.exclude(pk=exclude)
    if busy.exists():
        raise Conflict(f"A reconciliation of {application} is already queued or running.")


@transaction.atomic
def run_start_scim(*, actor: Actor, application: Application) -> ReconciliationRun:
    """Queue a read of the application's actual state over its SCIM connector."""
    from governance.lifecycle.selectors import profile_for

    _require(actor, application)
    if application.provisioning_mode not in SCIM_MODES:
        raise DomainError(f"{application} has no SCIM: upload a CSV export instead.")
    if not profile_for(application).connected:
        raise DomainError(f"{application} has no SCIM connector configured.")
    Application.objects.select_for_update().filter(pk=application.pk).first()
    _no_run_in_progress(application)
    run = ReconciliationRun.objects.create(
        application=application,
        source=ReconciliationRun.Source.SCIM,
        status=Status.QUEUED,
        started_by=actor.user if actor.kind == "user" else None,
    )
    record(actor=actor, action="reconciliation_run.queued", target=run, after={"source": "scim"})
    _enqueue(run.pk)
    return run


def _enqueue(run_id: int) -> None:
    from governance.reconciliation.tasks import execute_run

    transaction.on_commit(lambda: execute_run.delay(run_id))


# --------------------------------------------------------------------------- executing


def run_execute(run_id: int) -> ReconciliationRun | None:
    """Claim a queued run (conditional UPDATE), read the application, compare. None when the
    run is gone or another worker has it."""
    now = timezone.now()
    claimed = ReconciliationRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, rows_processed=0, error=""
    )
    if claimed != 1:
        return None
    run = ReconciliationRun.objects.select_related("application").get(pk=run_id)
    try:
        _delete_observations([run.pk])
        if run.source == ReconciliationRun.Source.CSV:
            _observe_csv(run)
        else:
            _observe_scim(run)
        with transaction.atomic():
            _complete(run)
    except ImportRejected as exc:
        _fail(run, str(exc))
    except DomainError as exc:
        _fail(run, exc.message)
    except Exception as exc:
        from governance.lifecycle.connectors import ConnectorFailure

        if isinstance(exc, ConnectorFailure):
            _fail(run, exc.message)
        else:
            log.exception("Reconciliation run %s failed", run_id)
            _fail(run, f"Unexpected error ({type(exc).__name__}); see the worker log.")
    run.refresh_from_db()
    return run


def _fail(run: ReconciliationRun, message: str) -> None:
    with transaction.atomic():
        _delete_observations([run.pk])
        updated = ReconciliationRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
            status=Status.FAILED, error=message[:4000], finished_at=timezone.now()
        )
        if updated:
            run.refresh_from_db()
            record(
                actor=Actor.system("reconciliation"),
                action="reconciliation_run.failed",
                target=run,
                after={"error": run.error},
            )


def _delete_observations(run_ids: Iterable[int]) -> None:
    """Bulk delete (no per-row cascade collection in Python)."""
    ids = list(run_ids)
    if not ids:
        return
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        for model in (ObservedGrant, ObservedAccount):
            sql = f"DELETE FROM {engine._table(model)} WHERE run_id IN ({marks})"  # noqa: S608
            cursor.execute(sql, ids)


class _Writer:
    """Writes observations in batches, recording progress after each. On PostgreSQL rows go
    in with ``COPY`` (ids reserved from the sequence first, so grants can name their
    account); elsewhere with ``bulk_create``."""

    def __init__(self, run: ReconciliationRun):
        self.run = run
        self.pending: list[imports.ObservedRow] = []
        self.ids: dict[str, int] = {}  # external id -> observed account id (SCIM)
        self.accounts_seen = 0
        self.grants_seen = 0
        self.copy = connection.vendor == "postgresql"
        self.entitlements = engine.entitlement_lookup(run.application_id)

    def add(self, row: imports.ObservedRow) -> None:
        self.pending.append(row)
        if len(self.pending) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        ids = self._copy_accounts(batch) if self.copy else self._create_accounts(batch)
        grants = [
            (pk, value) for pk, row in zip(ids, batch, strict=True) for value in row.entitlements
        ]
        self._write_grants(grants)
        for pk, row in zip(ids, batch, strict=True):
            if row.external_id:
                self.ids[row.external_id] = pk
        self.accounts_seen += len(batch)
        ReconciliationRun.objects.filter(pk=self.run.pk).update(
            rows_processed=F("rows_processed") + len(batch)
        )

    def _create_accounts(self, batch: list[imports.ObservedRow]) -> list[int]:
        objs = [
            ObservedAccount(
                run=self.run,
                application_id=self.run.application_id,
                external_id=row.external_id,
                username=row.username,
                display_name=row.display_name,
                email=row.email,
                active=row.active,
                last_login_at=row.last_login_at,
                interactive_login=row.interactive_login,
                used_by=row.used_by,
                used_by_count=len(set(row.used_by)),
            )
            for row in batch
        ]
        ObservedAccount.objects.bulk_create(objs, batch_size=WRITE_BATCH)
        return [o.pk for o in objs]

    def _copy_accounts(self, batch: list[imports.ObservedRow]) -> list[int]:
        table = ObservedAccount._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, len(batch)],
            )
            ids = [r[0] for r in cursor.fetchall()]
            columns = (
                "id, run_id, application_id, external_id, username, display_name, email, "
                "active, last_login_at, interactive_login, used_by, used_by_count, account_id"
            )
            run_id, app_id = self.run.pk, self.run.application_id
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for pk, row in zip(ids, batch, strict=True):
                    copy.write_row(
                        (
                            pk,
                            run_id,
                            app_id,
                            row.external_id,
                            row.username,
                            row.display_name,
                            row.email,
                            row.active,
                            row.last_login_at,
                            row.interactive_login,
                            json.dumps(row.used_by),
                            len(set(row.used_by)),
                            None,
                        )
                    )
        return ids

    def _write_grants(self, grants: list[tuple[int, str]]) -> None:
        if not grants:
            return
        lookup = self.entitlements
        if self.copy:
            table = ObservedGrant._meta.db_table
            columns = "run_id, observed_account_id, value, entitlement_id"
            with connection.cursor() as cursor:
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for account_id, value in grants:
                        copy.write_row((self.run.pk, account_id, value, lookup(value)))
        else:
            ObservedGrant.objects.bulk_create(
                [
                    ObservedGrant(
                        run=self.run,
                        observed_account_id=pk,
                        value=value,
                        entitlement_id=lookup(value),
                    )
                    for pk, value in grants
                ],
                batch_size=WRITE_BATCH,
            )
        self.grants_seen += len(grants)

    def add_grants(self, pairs: Iterator[tuple[str, str]]) -> None:
        batch: list[tuple[int, str]] = []
        seen: set[tuple[int, str]] = set()
        for value, member in pairs:
            account_id = self.ids.get(member)
            if account_id is None or (account_id, value) in seen:
                continue
            seen.add((account_id, value))
            batch.append((account_id, value[:255]))
            if len(batch) >= WRITE_BATCH:
                self._write_grants(batch)
                batch = []
        self._write_grants(batch)


def _observe_csv(run: ReconciliationRun) -> None:
    mapping = imports.validate_mapping(run_fields(run), run_headers(run))
    writer = _Writer(run)
    errors: list[dict[str, Any]] = []
    total = 0
    with run.upload.open("rb") as handle:
        # An estimate for the progress bar (quoted line breaks aside); exact at the end.
        estimate = max(sum(1 for _ in handle) - 1, 0)
        handle.seek(0)
        ReconciliationRun.objects.filter(pk=run.pk).update(rows_total=estimate)
        for _line, row, error in imports.iter_csv(handle, mapping):
            total += 1
            if error is not None:
                if len(errors) < MAX_ROW_ERRORS:
                    errors.append(error.as_dict())
                continue
            if not errors:
                writer.add(row)
    if not errors:
        writer.flush()
    ReconciliationRun.objects.filter(pk=run.pk).update(
        rows_total=total,
        row_errors=errors,
        accounts_seen=writer.accounts_seen,
        grants_seen=writer.grants_seen,
    )
    if errors:
        raise ImportRejected(
            f"{len(errors)}{'+' if len(errors) >= MAX_ROW_ERRORS else ''} row(s) could not be "
            f"read (first: line {errors[0]['line']}, {errors[0]['message']}); nothing was "
            "compared."
        )


def _observe_scim(run: ReconciliationRun) -> None:
    from governance.lifecycle.connectors import ConnectorFailure, ScimTarget
    from governance.lifecycle.crypto import UndecryptableSecret
    from governance.lifecycle.selectors import profile_for

    profile = profile_for(run.application)
    base_url, token = profile.scim_base_url, profile.scim_token
    if isinstance(base_url, UndecryptableSecret) or isinstance(token, UndecryptableSecret):
        raise ImportRejected(
            "The stored connector secrets cannot be decrypted with the current key."
        )
    if not (base_url and token):
        raise ImportRejected("No SCIM connector is configured.")
    writer = _Writer(run)
    seen: set[str] = set()
    with ScimTarget(base_url=base_url, token=token) as target:
        for row in imports.scim_users(target):
            if row.username.lower() in seen:
                raise ConnectorFailure(
                    f"The application lists user {row.username!r} twice.", transient=False
                )
            seen.add(row.username.lower())
            writer.add(row)
        writer.flush()
        # Group memberships are the entitlements (Entitlement.external_value = group id);
        # an application whose SCIM has no groups is read for accounts only.
        groups = profile.supports_entitlements or run.application.provisioning_mode == "scim"
        if groups:
            writer.add_grants((group, member) for group, member in imports.scim_memberships(target))
    ReconciliationRun.objects.filter(pk=run.pk).update(
        column_mapping={"entitlements_observed": groups},
        rows_total=writer.accounts_seen,
        accounts_seen=writer.accounts_seen,
        grants_seen=writer.grants_seen,
    )


def _complete(run: ReconciliationRun) -> None:
    """Compare, merge, verify and snapshot: all or nothing (the caller's transaction)."""
    from governance.lifecycle.services import task_record_verified
    from governance.reviews.models import ReviewItem
    from governance.reviews.services import refresh_remediation
    from governance.risk.coverage import suppress_for_application

    locked = ReconciliationRun.objects.select_for_update().get(pk=run.pk)
    if locked.status != Status.RUNNING:
        return
    now = timezone.now()
    result = engine.compare(locked, now=now)
    actor = Actor.system("reconciliation")
    verified = 0
    for task in engine.confirmed_tasks(locked).select_related("application"):
        task_record_verified(
            actor=actor,
            task=task,
            evidence={"reconciliation_run": locked.pk, "verified_by": "reconciliation"},
        )
        verified += 1
    if verified:
        refresh_remediation(
            ReviewItem.objects.filter(
                provisioning_task__state=ProvisioningTask.State.VERIFIED,
                provisioning_task__verified_at__gte=now,
            ).values_list("pk", flat=True)
        )
    suppress_for_application(application_id=locked.application_id)
    counts = engine.counts_by_kind(locked.application)
    DriftSnapshot.objects.bulk_create(
        [
            DriftSnapshot(
                run=locked,
                application_id=locked.application_id,
                kind=kind,
                open_count=count,
                taken_at=now,
            )
            for kind, count in counts.items()
        ]
    )
    older = ReconciliationRun.objects.filter(application_id=locked.application_id).exclude(
        pk=locked.pk
    )
    _delete_observations(
        older.filter(accounts__isnull=False).distinct().values_list("pk", flat=True)
    )
    locked.refresh_from_db()
    locked.status = Status.COMPLETED
    locked.finished_at = timezone.now()
    locked.findings_opened = result["opened"]
    locked.findings_closed = result["resolved"]
    locked.tasks_verified = verified
    locked.counts_by_kind = counts
    locked.rows_processed = locked.accounts_seen
    locked.save()
    record(
        actor=actor,
        action="reconciliation_run.completed",
        target=locked,
        after={
            "accounts": locked.accounts_seen,
            "grants": locked.grants_seen,
            "opened": locked.findings_opened,
            "resolved": locked.findings_closed,
            "verified": verified,
            "open_by_kind": counts,
        },
    )


def fail_stuck_runs(*, older_than_minutes: int = 120) -> int:
    """Runs a dead worker left running: failed (they observed nothing usable)."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    stuck = list(ReconciliationRun.objects.filter(status=Status.RUNNING, started_at__lt=cutoff))
    for run in stuck:
        _fail(run, "The run stopped without finishing (worker lost); start it again.")
    return len(stuck)


def due_scim_applications(now: datetime | None = None) -> list[Application]:
    """SCIM applications with a connector whose scheduled read is due."""
    from governance.lifecycle.selectors import profile_for
    from governance.reconciliation.models import ReconciliationSettings

    now = now or timezone.now()
    due = []
    apps = Application.objects.filter(
        provisioning_mode__in=SCIM_MODES, provisioning_profile__isnull=False
    ).select_related("provisioning_profile")
    settings = {s.application_id: s for s in ReconciliationSettings.objects.all()}
    for app in apps:
        conf = settings.get(app.pk)
        if conf is not None and not conf.scheduled:
            continue
        try:
            if not profile_for(app).connected:
                continue
        except DomainError:
            continue
        every = timedelta(hours=conf.every_hours if conf else 24)
        latest = (
            ReconciliationRun.objects.filter(application=app, source=ReconciliationRun.Source.SCIM)
            .exclude(status=Status.CANCELLED)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if latest is None or latest <= now - every:
            due.append(app)
    return due


def dispatch_scheduled() -> int:
    """Queue the scheduled SCIM reads that are due; returns how many were queued."""
    fail_stuck_runs()
    queued = 0
    for app in due_scim_applications():
        try:
            run_start_scim(actor=Actor.system("reconciliation schedule"), application=app)
        except (Conflict, DomainError) as exc:
            log.info("Scheduled reconciliation of %s skipped: %s", app, exc)
            continue
        queued += 1
    return queued


# --------------------------------------------------------------------------- triage

TRIAGEABLE = (FS.OPEN, FS.IN_FLIGHT)
DISABLE_KINDS = (K.ORPHAN, K.STALE, K.DORMANT, K.SHARED, K.NHI_HUMAN_USE)


def _lock_finding(finding: Finding) -> Finding:
    return (
        Finding.objects.select_for_update(of=("self",))
        .select_related("application", "account__application", "entitlement")
        .get(pk=finding.pk)
    )


def _triaged(locked: Finding, actor: Actor, status: str) -> None:
    locked.status = status
    locked.triaged_by = actor.user if actor.kind == "user" else None
    locked.triaged_at = timezone.now()


def _account_for(actor: Actor, locked: Finding) -> Account:
    """The finding's account; an application account Steward did not know is recorded first
    (imported, no holder) so the work item can name it."""
    from governance.access.services import account_create

    if locked.account_id is not None:
        return locked.account
    username = str(locked.evidence.get("username") or "").strip()
    if not username:
        raise DomainError("The finding names no account to act on.")
    existing = Account.objects.filter(
        application=locked.application, username__iexact=username
    ).first()
    account = existing or account_create(
        actor=actor,
        application=locked.application,
        username=username,
        external_id=str(locked.evidence.get("external_id") or ""),
        origin=Account.Origin.IMPORTED,
    )
    locked.account = account
    return account


@transaction.atomic
def finding_remediate(*, actor: Actor, finding: Finding) -> Finding:
    """Ask the lifecycle to remove the drift: disable the account, revoke the excess
    entitlement or grant the missing one; over SCIM where the application can, else a manual
    work item. The finding waits (remediating) for a later run to show the drift gone."""
    from governance.lifecycle.services import lifecycle_request_revocation
    from governance.lifecycle.verification import lifecycle_request_remediation

    locked = _lock_finding(finding)
    if locked.application is None:
        raise DomainError("This finding has no application to remediate in.")
    _require(actor, locked.application)
    if locked.status not in TRIAGEABLE:
        raise InvalidTransition(f"The finding is {locked.get_status_display().lower()}.")
    if locked.kind not in engine.DRIFT_KINDS:
        raise DomainError("Control and exception findings are remediated in Risk.")
    account = _account_for(actor, locked)
    reason = f"reconciliation finding #{locked.pk}: {locked.get_kind_display().lower()}"
    Op = ProvisioningTask.Operation
    if locked.kind in DISABLE_KINDS:
        task = lifecycle_request_remediation(
            actor=actor, account=account, operation=Op.DISABLE_ACCOUNT, reason=reason
        )
    elif locked.kind == K.EXCESS:
        grant = (
            Grant.objects.filter(
                account=account, entitlement=locked.entitlement, status=Grant.Status.ACTIVE
            ).first()
            if locked.entitlement_id
            else None
        )
        if grant is not None:
            task = lifecycle_request_revocation(actor=actor, grant=grant, reason=reason)
        else:
            task = lifecycle_request_remediation(
                actor=actor,
                account=account,
                operation=Op.REVOKE,
                entitlement=locked.entitlement,
                value=str(locked.evidence.get("value") or ""),
                reason=reason,
            )
    else:  # missing
        task = lifecycle_request_remediation(
            actor=actor,
            account=account,
            operation=Op.GRANT,
            entitlement=locked.entitlement,
            reason=reason,
        )
    before = {"status": locked.status}
    _triaged(locked, actor, FS.REMEDIATING)
    locked.task = task
    locked.save()
    record(
        actor=actor,
        action="finding.remediation_requested",
        target=locked,
        before=before,
        after={"status": locked.status, "task": task.pk, "channel": task.channel},
    )
    return locked


@transaction.atomic
def finding_mark_false_positive(*, actor: Actor, finding: Finding, reason: str) -> Finding:
    """Not drift after all; the reason is required. Later runs do not raise it again."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why this is a false positive.", field="reason")
    locked = _lock_finding(finding)
    if locked.application is not None:
        _require(actor, locked.application)
    if locked.status not in (FS.OPEN, FS.IN_FLIGHT, FS.IN_REVIEW):
        raise InvalidTransition(f"The finding is {locked.get_status_display().lower()}.")
    before = {"status": locked.status}
    _triaged(locked, actor, FS.FALSE_POSITIVE)
    locked.resolution = reason
    locked.resolved_at = timezone.now()
    locked.save()
    record(
        actor=actor,
        action="finding.false_positive",
        target=locked,
        before=before,
        after={"status": locked.status, "reason": reason},
    )
    return locked


@transaction.atomic
def finding_send_to_review(*, actor: Actor, finding: Finding) -> Finding:
    """A one-item review for the application owner: keep (approve) or remove (revoke)."""
    from governance.reviews.services import review_single_item_for_finding

    locked = _lock_finding(finding)
    if locked.application is None:
        raise DomainError("This finding has no application to review.")
    _require(actor, locked.application)
    if locked.status not in TRIAGEABLE:
        raise InvalidTransition(f"The finding is {locked.get_status_display().lower()}.")
    if locked.entitlement_id is None:
        raise DomainError(
            "Only findings about a known entitlement can go to an access review; remediate or "
            "accept account findings."
        )
    item = review_single_item_for_finding(finding=locked, actor=actor)
    before = {"status": locked.status}
    _triaged(locked, actor, FS.IN_REVIEW)
    locked.review_item = item
    locked.save()
    record(
        actor=actor,
        action="finding.sent_to_review",
        target=locked,
        before=before,
        after={"status": locked.status, "review_item": item.pk, "reviewer": item.reviewer_id},
    )
    return locked
