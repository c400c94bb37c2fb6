"""Reading an application's actual state over SCIM, from a real SCIM 2.0 server on loopback;
and the schedule that queues those reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from governance.access.models import Account
from governance.core.actor import Actor
from governance.core.errors import DomainError
from governance.lifecycle.models import ProvisioningTask
from governance.reconciliation import imports, services
from governance.reconciliation.models import Finding, ObservedAccount, ReconciliationRun
from tests.factories import AccountFactory, EntitlementFactory, IdentityFactory, UserFactory
from tests.lifecycle.conftest import GROUP, connect_application

pytestmark = pytest.mark.django_db


def _group(target, name: str, members: list[str]) -> str:
    response = target._call(
        "POST",
        "Groups",
        {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members]},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def scim_world(scim_target):
    app = connect_application("Salesforce", "scim", url=scim_target.base_url)
    owner = UserFactory(username="omar", roles=["App owner"])
    app.owners.add(owner)
    users = {
        name: scim_target.create_user(name, active=active)
        for name, active in (
            ("alice", True),
            ("bob", True),
            ("carol", True),
            ("dan", False),
            ("ghost", True),
        )
    }
    admin_group = _group(scim_target, "Admins", [users["alice"]["id"], users["bob"]["id"]])
    admin = EntitlementFactory(
        application=app, name="System Administrator", external_value=admin_group, privileged=True
    )
    accounts = {}
    for name in ("alice", "bob", "carol", "dan"):
        accounts[name] = AccountFactory(
            application=app,
            username=name,
            external_id=users[name]["id"],
            identity=IdentityFactory(user_name=f"{name}@northwind.example"),
        )
    Account.objects.filter(application=app).update(created_at=timezone.now() - timedelta(days=9))
    return app, owner, users, admin, accounts


def test_a_scim_read_pages_through_users_and_groups(
    scim_world, scim_target, monkeypatch, django_capture_on_commit_callbacks
):
    """Users and group memberships are read page by page (startIndex/count); group ids map
    to entitlements; an unknown user is an orphan and an unjustified admin membership is
    excess; a revocation the read-back confirms is verified."""
    app, owner, _users, admin, accounts = scim_world
    monkeypatch.setattr(imports, "SCIM_PAGE_SIZE", 2)
    revoke = ProvisioningTask.objects.create(
        application=app,
        account=accounts["carol"],
        identity=accounts["carol"].identity,
        entitlement=admin,
        operation="revoke",
        channel="scim",
        state="executed",
        executed_at=timezone.now() - timedelta(hours=2),
        dedupe_key="test:carol",
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_start_scim(actor=Actor.for_user(owner), application=app)
    run.refresh_from_db()
    assert run.status == "completed", run.error
    assert (run.accounts_seen, run.grants_seen) == (5, 2)
    gets = [path for method, path in scim_target.app.requests if method == "GET"]
    assert gets.count("/Users") == 3 and gets.count("/Groups") == 1
    found = {(f.kind, f.subject.split(" @ ")[0], f.status) for f in Finding.objects.all()}
    assert found == {
        ("orphan", "ghost", "open"),
        ("excess", "alice holds System Administrator", "open"),
        ("excess", "bob holds System Administrator", "open"),
    }
    dan = ObservedAccount.objects.get(run=run, username="dan")
    assert dan.active is False and dan.account == accounts["dan"]
    revoke.refresh_from_db()
    assert revoke.state == "verified" and run.tasks_verified == 1
    assert "target-bearer" not in str(run.error) + str(revoke.evidence)


def test_an_unreachable_application_fails_the_run_and_verifies_nothing(
    down_url, django_capture_on_commit_callbacks
):
    app = connect_application("Datadog", "scim", url=down_url)
    account = AccountFactory(application=app, username="x")
    task = ProvisioningTask.objects.create(
        application=app,
        account=account,
        operation="disable_account",
        channel="scim",
        state="executed",
        executed_at=timezone.now() - timedelta(hours=2),
        dedupe_key="test:x",
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_start_scim(actor=Actor.system("tests"), application=app)
    run.refresh_from_db()
    assert run.status == "failed" and "cannot reach" in run.error
    task.refresh_from_db()
    assert task.state == "executed"
    assert not Finding.objects.exists() and not ObservedAccount.objects.exists()


def test_a_scim_read_needs_a_scim_application_with_a_connector():
    manual = connect_application("VaultFin", "manual")
    with pytest.raises(DomainError, match="no SCIM"):
        services.run_start_scim(actor=Actor.system("tests"), application=manual)
    unconnected = connect_application("Ledgerly", "scim_partial", url="", token="")
    with pytest.raises(DomainError, match="no SCIM connector"):
        services.run_start_scim(actor=Actor.system("tests"), application=unconnected)
    assert not ReconciliationRun.objects.exists()


def test_the_dispatcher_queues_due_scim_reads_once(scim_target):
    """A beat row runs the dispatcher; it queues connected SCIM applications whose cadence
    has passed, not manual ones, and not twice."""
    assert PeriodicTask.objects.filter(task="reconciliation.dispatch", enabled=True).exists()
    app = connect_application("GitHub", "scim", url=scim_target.base_url)
    connect_application("VaultFin", "manual")
    due = services.due_scim_applications()
    assert due == [app]
    assert services.dispatch_scheduled() == 1  # (the run itself waits for the commit)
    run = ReconciliationRun.objects.get()
    assert run.application == app and run.started_by is None and run.status == "queued"
    assert services.dispatch_scheduled() == 0
    ReconciliationRun.objects.filter(pk=run.pk).update(
        status="completed", created_at=timezone.now() - timedelta(hours=25)
    )
    assert services.due_scim_applications() == [app]


def test_a_run_a_lost_worker_left_running_is_failed():
    app = connect_application("VaultFin", "manual")
    run = ReconciliationRun.objects.create(
        application=app,
        source="csv",
        status="running",
        started_at=timezone.now() - timedelta(hours=5),
    )
    assert services.fail_stuck_runs() == 1
    run.refresh_from_db()
    assert run.status == "failed" and "worker" in run.error
