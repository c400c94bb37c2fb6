"""Reconciliation runs: planted drift of every kind is found, its look-alikes are not, later
runs resolve what is gone and verify executed work, and bad input changes nothing."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from governance.access.models import Grant
from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import DomainError, PermissionDenied
from governance.lifecycle.models import ProvisioningTask
from governance.reconciliation import imports, services
from governance.reconciliation.models import (
    DriftSnapshot,
    Finding,
    ObservedAccount,
    ObservedGrant,
    ReconciliationRun,
)
from tests.factories import UserFactory
from tests.reconciliation.helpers import MAPPING, build_world, import_csv, summary

pytestmark = pytest.mark.django_db

FIRST_RUN = {
    ("excess", "alice holds Admin", "open"),
    ("missing", "bob lacks Clerk", "open"),
    ("stale", "carol", "open"),
    ("orphan", "temp", "open"),
    ("orphan", "ghost", "open"),
    ("nhi_human_use", "svc-bot", "open"),
    ("dormant", "erin", "open"),
    ("shared", "ap.shared", "open"),
    ("excess", "gina holds Admin", "in_flight"),
    ("excess", "hank holds Admin", "suppressed"),
}


@pytest.fixture
def world():
    return build_world()


def test_planted_drift_is_found_and_look_alikes_are_not(world, django_capture_on_commit_callbacks):
    """Every kind of drift is a finding with its severity and owner; the renamed account
    (matched by external id), the NHI's account, the request and review-approved grants are
    not; the change within its lag budget is in flight; the exception-covered grant is
    accepted (suppressed), not open."""
    run = import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    assert run.status == ReconciliationRun.Status.COMPLETED, run.error
    assert summary(world.app) == FIRST_RUN
    assert (run.accounts_seen, run.grants_seen, run.findings_opened) == (12, 6, 10)
    findings = Finding.objects.filter(application=world.app)
    assert set(findings.values_list("owner", flat=True)) == {world.owner.pk}
    alice = findings.get(subject__startswith="alice")
    assert alice.severity == "high" and alice.entitlement == world.ents["admin"]
    assert alice.account == world.accounts["alice"]
    assert alice.evidence["value"] == "admin" and alice.evidence["username"] == "alice"
    assert findings.get(kind="missing").severity == "low"
    assert findings.get(kind="stale").identity == world.accounts["carol"].identity
    assert findings.get(kind="nhi_human_use").nhi == world.accounts["bot"].nhi
    hank = findings.get(subject__startswith="hank")
    assert hank.suppressed_by is not None
    # The renamed account is Steward's dave.old, not an orphan.
    dave = ObservedAccount.objects.get(run=run, username="dave.new")
    assert dave.account == world.accounts["dave"]
    assert run.counts_by_kind == {
        "orphan": 2,
        "stale": 1,
        "excess": 2,
        "missing": 1,
        "dormant": 1,
        "shared": 1,
        "nhi_human_use": 1,
    }
    assert DriftSnapshot.objects.filter(run=run).count() == 7
    assert AuditEvent.objects.filter(action="reconciliation_run.completed").count() == 1


def test_a_later_clean_run_resolves_drift_that_is_gone(world, django_capture_on_commit_callbacks):
    import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    first_ids = set(Finding.objects.values_list("pk", flat=True))
    second = import_csv(
        world,
        world.csv(drop=("ghost", "carol"), change={"alice": {"Roles": "clerk"}}),
        django_capture_on_commit_callbacks,
    )
    assert second.findings_closed == 3 and second.findings_opened == 0
    resolved = Finding.objects.filter(status="resolved")
    assert {f.subject.split(" @ ")[0] for f in resolved} == {
        "ghost",
        "carol",
        "alice holds Admin",
    }
    assert all(f.resolved_at for f in resolved)
    # What is still there is the same finding, seen again (no duplicate).
    assert set(Finding.objects.values_list("pk", flat=True)) == first_ids
    assert Finding.objects.filter(status="open", last_seen_run=second).count() == 5
    # Only the latest run keeps its observations.
    assert set(ObservedAccount.objects.values_list("run", flat=True)) == {second.pk}


def test_in_flight_drift_opens_once_the_lag_budget_has_passed(
    world, django_capture_on_commit_callbacks
):
    import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    gina = Finding.objects.get(subject__startswith="gina")
    assert gina.status == "in_flight"
    Grant.objects.filter(account=world.accounts["gina"]).update(
        revoked_at=timezone.now() - timedelta(hours=2)
    )
    import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    gina.refresh_from_db()
    assert gina.status == "open"


def test_false_positive_is_not_raised_again(world, django_capture_on_commit_callbacks):
    import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    erin = Finding.objects.get(kind="dormant")
    services.finding_mark_false_positive(
        actor=Actor.for_user(world.owner), finding=erin, reason="Seasonal user."
    )
    import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    assert Finding.objects.filter(kind="dormant").count() == 1
    assert Finding.objects.get(kind="dormant").status == "false_positive"


def _executed(world, operation, account_key, entitlement=None):
    account = world.accounts[account_key]
    return ProvisioningTask.objects.create(
        application=world.app,
        identity=account.identity,
        account=account,
        entitlement=entitlement,
        operation=operation,
        channel="manual",
        state="executed",
        executed_at=timezone.now() - timedelta(hours=3),
        dedupe_key=f"test:{operation}:{account.pk}",
    )


def test_a_run_verifies_executed_removals_it_confirms(world, django_capture_on_commit_callbacks):
    """An executed manual revocation becomes verified when the run shows the entitlement
    gone; one the run still shows stays executed; a disable is verified by the account
    showing disabled."""
    revoke = _executed(world, "revoke", "alice", world.ents["admin"])
    still = _executed(world, "revoke", "ivan", world.ents["approver"])
    disable = _executed(world, "disable_account", "carol")
    run = import_csv(
        world,
        world.csv(change={"alice": {"Roles": "clerk"}, "carol": {"Enabled": "no"}}),
        django_capture_on_commit_callbacks,
    )
    assert run.tasks_verified == 2
    for task, state in ((revoke, "verified"), (still, "executed"), (disable, "verified")):
        task.refresh_from_db()
        assert task.state == state
    revoke.refresh_from_db()
    assert revoke.evidence["reconciliation_run"] == run.pk
    assert AuditEvent.objects.filter(action="provisioning_task.verified").count() == 2


def test_a_failed_run_verifies_nothing_and_compares_nothing(
    world, django_capture_on_commit_callbacks
):
    revoke = _executed(world, "revoke", "alice", world.ents["admin"])
    data = world.csv(change={"alice": {"Roles": "clerk"}})
    data += b"u-50,broken,,,maybe,,,,\n"  # "maybe" is not yes/no: the whole import fails
    run = services.run_upload_csv(
        actor=Actor.for_user(world.owner),
        application=world.app,
        upload=io.BytesIO(data),
        name="export.csv",
    )
    ReconciliationRun.objects.filter(pk=run.pk).update(
        status="queued", column_mapping={"headers": services.run_headers(run), "fields": MAPPING}
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "line 14" in run.error
    assert run.row_errors == [{"line": 14, "message": "active: 'maybe' is not yes/no"}]
    revoke.refresh_from_db()
    assert revoke.state == "executed"
    assert not Finding.objects.exists()
    assert not ObservedAccount.objects.exists() and not ObservedGrant.objects.exists()
    assert not DriftSnapshot.objects.exists()


def test_a_retried_run_applies_once(world, django_capture_on_commit_callbacks):
    run = import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    assert services.run_execute(run.pk) is None  # a duplicated message: already claimed
    assert Finding.objects.count() == len(FIRST_RUN)
    assert DriftSnapshot.objects.count() == 7


def test_preview_writes_nothing_and_guesses_columns(world):
    data = world.csv() + b"u-50,broken,,,maybe,,,,\n"
    run = services.run_upload_csv(
        actor=Actor.for_user(world.owner),
        application=world.app,
        upload=io.BytesIO(data),
        name="export.csv",
    )
    assert run.status == "preview"
    fields = services.run_fields(run)
    assert fields["username"] == "Login" and fields["entitlements"] == "Roles"
    assert fields["external_id"] == "User ID" and fields["used_by"] == "Used by"
    rows, errors = services.run_preview(run, MAPPING)
    assert [r.username for _line, r in rows][:3] == ["alice", "bob", "carol"]
    assert rows[0][1].entitlements == ["clerk", "admin"]
    assert [e.as_dict() for e in errors] == [
        {"line": 14, "message": "active: 'maybe' is not yes/no"}
    ]
    with pytest.raises(DomainError, match="Line 14"):
        services.run_confirm(actor=Actor.for_user(world.owner), run=run, mapping=MAPPING)
    run.refresh_from_db()
    assert run.status == "preview"
    assert not ObservedAccount.objects.exists() and not Finding.objects.exists()


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        ("Login,Roles\nzoë,\xe9".encode("latin-1"), "not UTF-8"),
        (b",,\nalice,,\n", "no header"),
        (b"Login,Login\nalice,bob\n", "same name"),
    ],
    ids=["empty", "not-utf8", "no-header", "duplicate-columns"],
)
def test_a_bad_file_is_refused_and_changes_nothing(world, data, message):
    with pytest.raises(DomainError, match=message):
        services.run_upload_csv(
            actor=Actor.for_user(world.owner),
            application=world.app,
            upload=io.BytesIO(data),
            name="bad.csv",
        )
    assert not ReconciliationRun.objects.exists()


def test_a_file_too_large_is_refused(world, monkeypatch):
    monkeypatch.setattr(imports, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(DomainError, match="larger than"):
        services.run_upload_csv(
            actor=Actor.for_user(world.owner),
            application=world.app,
            upload=io.BytesIO(world.csv()),
            name="big.csv",
        )
    assert not ReconciliationRun.objects.exists()


def test_confirm_needs_the_required_columns(world):
    run = services.run_upload_csv(
        actor=Actor.for_user(world.owner),
        application=world.app,
        upload=io.BytesIO(world.csv()),
        name="export.csv",
    )
    for mapping, message in (
        ({"external_id": "User ID"}, "Username"),
        ({"username": "Nope"}, "no column Nope"),
        ({"username": "Login", "email": "Login"}, "only one"),
    ):
        with pytest.raises(DomainError, match=message):
            services.run_confirm(actor=Actor.for_user(world.owner), run=run, mapping=mapping)
    run.refresh_from_db()
    assert run.status == "preview"


def test_only_owners_and_security_admins_import(world):
    colleague = UserFactory(username="colleague", roles=["App owner"])
    with pytest.raises(PermissionDenied):
        services.run_upload_csv(
            actor=Actor.for_user(colleague),
            application=world.app,
            upload=io.BytesIO(world.csv()),
            name="export.csv",
        )
    run = services.run_upload_csv(
        actor=Actor.for_user(world.security),
        application=world.app,
        upload=io.BytesIO(world.csv()),
        name="export.csv",
    )
    with pytest.raises(PermissionDenied):
        services.run_confirm(actor=Actor.for_user(colleague), run=run, mapping=MAPPING)


def test_dormancy_follows_the_application_setting(world, django_capture_on_commit_callbacks):
    from governance.reconciliation.models import ReconciliationSettings

    ReconciliationSettings.objects.create(application=world.app, dormant_after_days=5000)
    import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    assert not Finding.objects.filter(kind="dormant").exists()
    ReconciliationSettings.objects.filter(application=world.app).update(dormant_after_days=1)
    import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    dormant = {f.subject.split(" @ ")[0] for f in Finding.objects.filter(kind="dormant")}
    assert "erin" in dormant and "alice" in dormant  # two days without a sign-in
    assert "ghost" not in dormant  # an orphan is reported as one, not twice


def test_an_export_without_entitlements_concludes_nothing_about_them(
    world, django_capture_on_commit_callbacks
):
    """Without an entitlements column there is no excess or missing entitlement, and no
    revocation is verified (nothing showed the entitlement gone)."""
    revoke = _executed(world, "revoke", "alice", world.ents["admin"])
    disable = _executed(world, "disable_account", "carol")
    actor = Actor.for_user(world.owner)
    run = services.run_upload_csv(
        actor=actor,
        application=world.app,
        upload=io.BytesIO(world.csv(change={"carol": {"Enabled": "no"}})),
        name="accounts-only.csv",
    )
    mapping = {k: v for k, v in MAPPING.items() if k != "entitlements"}
    with django_capture_on_commit_callbacks(execute=True):
        services.run_confirm(actor=actor, run=run, mapping=mapping)
    run.refresh_from_db()
    assert run.status == "completed" and run.grants_seen == 0
    kinds = set(Finding.objects.values_list("kind", flat=True))
    assert kinds == {"orphan", "nhi_human_use", "dormant", "shared"}
    revoke.refresh_from_db()
    disable.refresh_from_db()
    assert (revoke.state, disable.state) == ("executed", "verified")
