"""The outbound SCIM connector against a real SCIM server on loopback: each operation, its
read-back, idempotence, error classification, and what is never stored or logged."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from governance.access.models import Account, Grant
from governance.audit.models import AuditEvent
from governance.identities.models import IdentityEmail
from governance.lifecycle import connectors
from governance.lifecycle.models import ProvisioningProfile, ProvisioningTask
from governance.lifecycle.services import MAX_ATTEMPTS
from governance.lifecycle.tasks import execute_provisioning_task, sweep_provisioning
from tests.factories import AccountFactory, EntitlementFactory, IdentityFactory
from tests.lifecycle.conftest import TARGET_TOKEN, connect_application

pytestmark = pytest.mark.django_db

Op = ProvisioningTask.Operation
State = ProvisioningTask.State


@pytest.fixture
def app(scim_target):
    return connect_application("GitHub Enterprise", "scim", url=scim_target.base_url)


@pytest.fixture
def priya():
    identity = IdentityFactory(
        user_name="priya.shah@northwind.example",
        given_name="Priya",
        family_name="Shah",
        display_name="Priya Shah",
        title="Platform Engineer",
    )
    IdentityEmail.objects.create(
        identity=identity, value="priya.shah@northwind.example", type="work", primary=True
    )
    return identity


def make_task(app, operation, *, identity=None, account=None, entitlement=None):
    identity = identity or (account.identity if account else None)
    return ProvisioningTask.objects.create(
        application=app,
        identity=identity,
        account=account,
        entitlement=entitlement,
        operation=operation,
        channel=ProvisioningTask.Channel.SCIM,
        next_attempt_at=timezone.now(),
        dedupe_key=f"test:{operation}:{identity.pk if identity else '-'}:"
        f"{entitlement.pk if entitlement else '-'}:{ProvisioningTask.objects.count()}",
    )


def run(task):
    """What the worker does: claim, connect, record one outcome."""
    execute_provisioning_task(task.pk)
    task.refresh_from_db()
    return task


def account_in_target(app, identity, target_user):
    return AccountFactory(
        application=app,
        identity=identity,
        username=target_user["userName"],
        external_id=target_user["id"],
    )


# ----------------------------------------------------------------------------- operations


def test_create_posts_the_user_reads_it_back_and_records_the_account(app, priya, scim_target):
    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == State.VERIFIED, task.last_error
    user = scim_target.user_named("priya.shah@northwind.example")
    assert user["externalId"] == str(priya.pk)
    assert user["active"] is True
    assert user["name"] == {"givenName": "Priya", "familyName": "Shah"}
    assert user["displayName"] == "Priya Shah"
    assert user["title"] == "Platform Engineer"
    assert user["emails"] == [
        {"value": "priya.shah@northwind.example", "type": "work", "primary": True}
    ]
    assert task.evidence["external_id"] == user["id"]
    assert task.evidence["username"] == "priya.shah@northwind.example"
    assert task.evidence["adopted"] is False
    assert task.evidence["read_back"]["active"] is True
    assert [(r["method"], r["status"]) for r in task.evidence["requests"]] == [
        ("GET", 200),
        ("POST", 201),
        ("GET", 200),
    ]
    assert task.attempts == 1
    assert task.started_at <= task.executed_at <= task.verified_at
    account = Account.objects.get(application=app, identity=priya)
    assert (account.username, account.external_id) == (user["userName"], user["id"])
    assert task.account == account
    audit = AuditEvent.objects.get(action="provisioning_task.verified", target_id=str(task.pk))
    assert audit.actor_label == "system:provisioning"


def test_a_retried_create_adopts_the_user_instead_of_creating_it_twice(app, priya, scim_target):
    """The target created the user but its answer was lost: the retry finds the user by
    userName and never POSTs again."""
    scim_target.app.lose_write_answers = True
    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))
    assert task.state == State.PENDING
    assert "502" in task.last_error
    assert len(scim_target.users()) == 1
    scim_target.app.lose_write_answers = False
    ProvisioningTask.objects.filter(pk=task.pk).update(next_attempt_at=timezone.now())

    task = run(task)

    assert task.state == State.VERIFIED
    assert task.attempts == 2
    assert task.evidence["adopted"] is True
    assert task.evidence["external_id"] == scim_target.users()[0]["id"]
    assert len(scim_target.users()) == 1
    assert scim_target.writes("POST") == [("POST", "/Users")]
    assert Account.objects.filter(identity=priya).count() == 1


def test_a_create_that_loses_a_race_adopts_the_winner(app, priya, scim_target, monkeypatch):
    """Two deliveries of the same task raced: the lookup found nothing, then the POST met
    the other's user (409 uniqueness); the loser adopts it."""
    find_user = connectors.ScimTarget.find_user
    calls = []

    def racing_find_user(self, user_name):
        calls.append(user_name)
        if len(calls) == 1:
            scim_target.create_user(user_name, active=True)  # the other delivery wins here
            return None
        return find_user(self, user_name)

    monkeypatch.setattr(connectors.ScimTarget, "find_user", racing_find_user)

    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == State.VERIFIED, task.last_error
    assert task.evidence["adopted"] is True
    assert [(r["method"], r["status"]) for r in task.evidence["requests"]] == [
        ("POST", 409),
        ("GET", 200),
        ("GET", 200),
    ]
    assert len(scim_target.users()) == 1


def test_create_reenables_a_disabled_user_it_adopts(app, priya, scim_target):
    scim_target.create_user("Priya.Shah@northwind.example", active=False)

    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == State.VERIFIED
    assert task.evidence["adopted"] is True
    assert scim_target.user(task.evidence["external_id"])["active"] is True
    assert scim_target.writes("POST") == []


def test_update_replaces_the_attributes_and_checks_them(app, priya, scim_target):
    user = scim_target.create_user(priya.user_name, displayName="Old Name", active=True)
    account = account_in_target(app, priya, user)
    priya.display_name = "Priya S."
    priya.title = "Staff Engineer"
    priya.save()

    task = run(make_task(app, Op.UPDATE_ACCOUNT, account=account))

    assert task.state == State.VERIFIED, task.last_error
    after = scim_target.user(user["id"])
    assert (after["displayName"], after["title"]) == ("Priya S.", "Staff Engineer")
    assert after["name"] == {"givenName": "Priya", "familyName": "Shah"}


def test_disable_then_enable(app, priya, scim_target):
    user = scim_target.create_user(priya.user_name, active=True)
    account = account_in_target(app, priya, user)

    disabled = run(make_task(app, Op.DISABLE_ACCOUNT, account=account))

    assert disabled.state == State.VERIFIED
    assert scim_target.user(user["id"])["active"] is False
    assert disabled.evidence["read_back"]["active"] is False
    assert disabled.evidence["read_back"]["lastModified"]
    account.refresh_from_db()
    assert account.status == Account.Status.DISABLED

    enabled = run(make_task(app, Op.ENABLE_ACCOUNT, account=account))

    assert enabled.state == State.VERIFIED
    assert scim_target.user(user["id"])["active"] is True
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE


def test_an_account_without_external_id_is_found_by_username(app, priya, scim_target):
    user = scim_target.create_user(priya.user_name, active=True)
    account = AccountFactory(application=app, identity=priya, username=priya.user_name)

    task = run(make_task(app, Op.DISABLE_ACCOUNT, account=account))

    assert task.state == State.VERIFIED
    assert task.evidence["external_id"] == user["id"]
    assert scim_target.user(user["id"])["active"] is False


def test_grant_and_revoke_change_the_group_and_are_read_back(app, priya, scim_target):
    group_id = scim_target.create_group("gh-platform")
    ent = EntitlementFactory(application=app, name="platform", external_value=group_id)
    user = scim_target.create_user(priya.user_name, active=True)
    account = account_in_target(app, priya, user)

    granted = run(make_task(app, Op.GRANT, account=account, entitlement=ent))

    assert granted.state == State.VERIFIED, granted.last_error
    assert scim_target.members(group_id) == {user["id"]}
    assert granted.evidence["group_id"] == group_id
    assert granted.evidence["read_back"] == {"member_present": True}
    grant = Grant.objects.get(account=account, entitlement=ent)
    assert grant.status == Grant.Status.ACTIVE

    revoked = run(make_task(app, Op.REVOKE, account=account, entitlement=ent))

    assert revoked.state == State.VERIFIED
    assert scim_target.members(group_id) == set()
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED

    again = run(make_task(app, Op.REVOKE, account=account, entitlement=ent))

    assert again.state == State.VERIFIED  # nothing left to remove is still the desired state
    assert scim_target.members(group_id) == set()


def test_a_grant_before_the_account_exists_waits_for_it(app, priya, scim_target):
    """Out of order: the grant runs before the create of the same joiner; it is retried."""
    group_id = scim_target.create_group("gh-platform")
    ent = EntitlementFactory(application=app, name="platform", external_value=group_id)
    grant_task = make_task(app, Op.GRANT, identity=priya, entitlement=ent)
    create_task = make_task(app, Op.CREATE_ACCOUNT, identity=priya)

    grant_task = run(grant_task)

    assert grant_task.state == State.PENDING
    assert grant_task.attempts == 0  # waiting for another task uses up no attempt
    assert grant_task.next_attempt_at > timezone.now()
    assert "Waiting for the account" in grant_task.last_error
    assert scim_target.writes() == []

    assert run(create_task).state == State.VERIFIED
    ProvisioningTask.objects.filter(pk=grant_task.pk).update(next_attempt_at=timezone.now())
    grant_task = run(grant_task)

    assert grant_task.state == State.VERIFIED
    assert scim_target.members(group_id) == {create_task.evidence["external_id"]}
    assert grant_task.attempts == 1
    assert grant_task.evidence["read_back"] == {"member_present": True}
    assert grant_task.evidence["last_failure"]["attempt"] == 1  # history, not the outcome


def test_a_grant_to_a_group_the_target_does_not_have_fails(app, priya, scim_target):
    user = scim_target.create_user(priya.user_name, active=True)
    account = account_in_target(app, priya, user)
    ent = EntitlementFactory(application=app, external_value="no-such-group")

    task = run(make_task(app, Op.GRANT, account=account, entitlement=ent))

    assert task.state == State.FAILED
    assert task.failed_at is not None
    assert "404" in task.last_error
    failure = task.evidence["last_failure"]
    assert (failure["attempt"], failure["requests"][-1]["status"]) == (1, 404)
    assert "not found" in failure["requests"][-1]["body"]
    assert not Grant.objects.filter(account=account).exists()


# ------------------------------------------------------------------ failures and retries


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        pytest.param(429, True, id="429-too-many-requests"),
        pytest.param(500, True, id="500-server-error"),
        pytest.param(503, True, id="503-unavailable"),
        pytest.param(400, False, id="400-bad-request"),
        pytest.param(401, False, id="401-unauthorized"),
        pytest.param(403, False, id="403-forbidden"),
    ],
)
def test_errors_are_classified_transient_or_permanent(app, priya, scim_target, status, transient):
    scim_target.app.fail_status = status

    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == (State.PENDING if transient else State.FAILED)
    assert str(status) in task.last_error
    [request] = task.evidence["last_failure"]["requests"]
    assert (request["method"], request["path"], request["status"]) == ("GET", "Users", status)
    assert f'"status": "{status}"' in request["body"]  # the target's error, as evidence
    if transient:
        assert task.next_attempt_at > timezone.now()
        assert task.failed_at is None
    else:
        assert task.failed_at is not None
    assert not Account.objects.filter(identity=priya).exists()


def test_a_target_that_is_down_is_retried_with_backoff_until_it_fails(priya, down_url):
    app = connect_application("Datadog", "scim", url=down_url)
    task = make_task(app, Op.CREATE_ACCOUNT, identity=priya)
    delays = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        before = timezone.now()
        task = run(task)
        assert task.attempts == attempt
        assert "cannot reach the target (ConnectError)" in task.last_error
        if task.state == State.PENDING:
            delays.append((task.next_attempt_at - before).total_seconds())
            ProvisioningTask.objects.filter(pk=task.pk).update(next_attempt_at=timezone.now())

    assert task.state == State.FAILED
    assert task.failed_at is not None
    assert len(delays) == MAX_ATTEMPTS - 1
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(3600, 30 * 2 ** (attempt - 1))
        assert ceiling / 2 - 1 <= delay <= ceiling + 1, (attempt, delay)
    assert AuditEvent.objects.filter(
        action="provisioning_task.retry_scheduled", target_id=str(task.pk)
    ).count() == (MAX_ATTEMPTS - 1)


def test_a_target_that_never_answers_times_out_as_transient(priya, silent_url, monkeypatch):
    monkeypatch.setattr(connectors, "TIMEOUT_SECONDS", 0.3)
    app = connect_application("Salesforce", "scim", url=silent_url)

    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == State.PENDING
    assert "did not answer in time (ReadTimeout)" in task.last_error


def test_a_task_that_is_not_due_or_already_done_is_left_alone(app, priya, scim_target):
    task = make_task(app, Op.CREATE_ACCOUNT, identity=priya)
    ProvisioningTask.objects.filter(pk=task.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert run(task).state == State.PENDING
    assert scim_target.app.requests == []

    ProvisioningTask.objects.filter(pk=task.pk).update(next_attempt_at=timezone.now())
    assert run(task).state == State.VERIFIED
    sent = len(scim_target.app.requests)

    assert run(task).state == State.VERIFIED  # a duplicate delivery of the same message
    execute_provisioning_task(task.pk + 1000)  # a task that is gone
    assert len(scim_target.app.requests) == sent
    assert task.attempts == 1


def test_the_sweep_requeues_a_task_stuck_in_progress(app, priya, scim_target):
    """A worker died after claiming: the periodic sweep puts the task back and runs it."""
    task = make_task(app, Op.CREATE_ACCOUNT, identity=priya)
    ProvisioningTask.objects.filter(pk=task.pk).update(
        state=State.IN_PROGRESS, started_at=timezone.now() - timedelta(hours=1), attempts=1
    )

    assert sweep_provisioning() == 1

    task.refresh_from_db()
    assert task.state == State.VERIFIED
    assert task.attempts == 2
    assert len(scim_target.users()) == 1


def test_an_unexpected_error_fails_the_task_instead_of_leaving_it_in_progress(
    app, priya, monkeypatch
):
    def broken(target, task):
        raise RuntimeError("bug")

    monkeypatch.setitem(connectors._OPERATIONS, Op.CREATE_ACCOUNT, broken)

    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == State.FAILED
    assert task.last_error == "Unexpected connector error (RuntimeError); see the worker log."


def test_an_application_without_connector_settings_fails(priya):
    app = connect_application("Half configured", "scim", url="")

    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == State.FAILED
    assert task.last_error == "No SCIM connector is configured."


# ------------------------------------------------------------------ "2xx but nothing changed"


def test_a_2xx_that_changed_nothing_fails_with_the_evidence(app, priya, scim_target):
    user = scim_target.create_user(priya.user_name, active=True)
    account = account_in_target(app, priya, user)
    scim_target.app.ignore_writes = True

    task = run(make_task(app, Op.DISABLE_ACCOUNT, account=account))

    assert task.state == State.FAILED
    assert task.attempts == 1  # permanent: retrying a target that lies does not help
    assert task.last_error == (
        "The target accepted the request but does not show the change: active is True."
    )
    failure = task.evidence["last_failure"]
    assert failure["unverified"] is True
    assert failure["read_back"]["active"] is True
    [patch, get] = failure["requests"]
    assert (patch["method"], patch["status"], get["method"], get["status"]) == (
        "PATCH",
        200,
        "GET",
        200,
    )
    assert '"active": true' in patch["body"]  # the 200 answer itself, as evidence
    assert '"active": true' in get["body"]
    assert scim_target.user(user["id"])["active"] is True
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE  # Steward does not pretend


def test_a_revoke_the_target_ignores_keeps_the_grant(app, priya, scim_target):
    """Scenario 1's negative test: no "revoked" until a read-back shows the membership gone."""
    group_id = scim_target.create_group("gh-org")
    ent = EntitlementFactory(application=app, external_value=group_id)
    user = scim_target.create_user(priya.user_name, active=True)
    account = account_in_target(app, priya, user)
    assert run(make_task(app, Op.GRANT, account=account, entitlement=ent)).state == State.VERIFIED
    scim_target.app.ignore_writes = True

    task = run(make_task(app, Op.REVOKE, account=account, entitlement=ent))

    assert task.state == State.FAILED
    assert task.evidence["last_failure"]["read_back"] == {"member_present": True}
    assert scim_target.members(group_id) == {user["id"]}
    assert Grant.objects.get(account=account, entitlement=ent).status == Grant.Status.ACTIVE


# ------------------------------------------------------------------------------ secrets


def test_the_connector_secrets_are_encrypted_at_rest(app, scim_target):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT scim_base_url, scim_token FROM lifecycle_provisioningprofile "
            "WHERE application_id = %s",
            [app.pk],
        )
        raw_url, raw_token = cursor.fetchone()
    assert TARGET_TOKEN not in raw_token
    assert "127.0.0.1" not in raw_url
    profile = ProvisioningProfile.objects.get(application=app)
    assert (profile.scim_base_url, profile.scim_token) == (scim_target.base_url, TARGET_TOKEN)


def test_the_token_is_sent_as_a_bearer_and_never_stored_or_logged(app, priya, scim_target, caplog):
    caplog.set_level("DEBUG")
    run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))
    assert set(scim_target.app.auth_headers) == {f"Bearer {TARGET_TOKEN}"}
    scim_target.app.fail_status = 401

    task = run(make_task(app, Op.DISABLE_ACCOUNT, account=Account.objects.get(identity=priya)))

    assert task.state == State.FAILED
    stored = json.dumps(
        list(ProvisioningTask.objects.values("last_error", "evidence", "reason"))
        + list(AuditEvent.objects.values("before", "after", "target_repr")),
        default=str,
    )
    assert TARGET_TOKEN not in stored
    assert TARGET_TOKEN not in caplog.text


def test_secrets_that_cannot_be_decrypted_fail_the_task(app, priya, settings):
    settings.STEWARD_ENCRYPTION_KEY = "a-rotated-key-that-does-not-match"

    task = run(make_task(app, Op.CREATE_ACCOUNT, identity=priya))

    assert task.state == State.FAILED
    assert "cannot be decrypted" in task.last_error
