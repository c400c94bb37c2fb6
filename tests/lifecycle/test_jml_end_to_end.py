"""Joiner -> mover -> leaver driven through Steward's inbound SCIM API, provisioned into a real
SCIM server on loopback, for each provisioning mode; then the targets that lie, the targets
that are down, and the identity provider that repeats itself or speaks out of order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.utils import timezone

from governance.access.models import Account, Entitlement, Grant
from governance.access.services import entitlement_create, policy_create
from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import DomainError
from governance.identities.models import DirectoryGroup, Identity
from governance.lifecycle.models import LifecycleEvent, ProvisioningProfile, ProvisioningTask
from governance.lifecycle.selectors import leaver_clock
from governance.lifecycle.services import MAX_ATTEMPTS, task_mark_executed, task_retry
from governance.lifecycle.tasks import execute_provisioning_task, sweep_provisioning
from tests.factories import UserFactory
from tests.lifecycle.conftest import ENTERPRISE, GROUP, USER, connect_application

pytestmark = pytest.mark.django_db

Op = ProvisioningTask.Operation
State = ProvisioningTask.State
Kind = LifecycleEvent.Kind
ACTIVE = Grant.Status.ACTIVE


@dataclass
class Northwind:
    """One application, three entitlements and the birthright policies that grant them:
    ``org`` to members of the directory group GH-Users, ``eng`` to Engineering and
    ``sales`` to Sales Ops. ``groups`` maps each entitlement to its target group id."""

    app: object
    entitlements: dict[str, Entitlement]
    groups: dict[str, str]
    directory_group: str


def northwind(entra, name, mode, *, target=None, url=None) -> Northwind:
    app = connect_application(
        name, mode, url=url or (target.base_url if target else ""), deprovisioning_sla_hours=4
    )
    app.owners.add(UserFactory(username="grace.liu"))  # she closes its work items
    actor = Actor.system("tests")
    groups = {
        key: target.create_group(f"{name}-{key}") if target else f"{name}-{key}"
        for key in ("org", "eng", "sales")
    }
    ents = {
        key: entitlement_create(actor=actor, application=app, name=key, external_value=value)
        for key, value in groups.items()
    }
    response = entra.post("/Groups", {"schemas": [GROUP], "displayName": f"{name} users"})
    assert response.status_code == 201, response.content
    group = DirectoryGroup.objects.get(pk=response.json()["id"])
    policy_create(
        actor=actor,
        name=f"{name}: org",
        entitlements=[ents["org"]],
        directory_group=group,
    )
    for key, department in (("eng", "Engineering"), ("sales", "Sales Ops")):
        policy_create(
            actor=actor,
            name=f"{name}: {key}",
            entitlements=[ents[key]],
            attribute="department",
            attribute_value=department,
        )
    return Northwind(app, ents, groups, str(group.pk))


def daniel(**overrides):
    body = {
        "schemas": [USER, ENTERPRISE],
        "externalId": "7f1e2d3c-entra-daniel",
        "userName": "daniel.okafor@northwind.example",
        "active": True,
        "name": {"givenName": "Daniel", "familyName": "Okafor"},
        "displayName": "Daniel Okafor",
        "emails": [{"value": "daniel.okafor@northwind.example", "type": "work", "primary": True}],
        ENTERPRISE: {"department": "Engineering", "employeeNumber": "4711"},
    }
    body.update(overrides)
    return body


def replace(path, value):
    return {"op": "replace", "path": path, "value": value}


def member_add(identity):
    return {"op": "add", "path": "members", "value": [{"value": str(identity.pk)}]}


def tasks_of(event) -> set[tuple[str, str | None, str]]:
    """(operation, entitlement name, state) of each task of an event."""
    return {
        (t.operation, t.entitlement.name if t.entitlement else None, t.state)
        for t in event.tasks.select_related("entitlement")
    }


def last_event(identity, kind) -> LifecycleEvent:
    return LifecycleEvent.objects.filter(identity=identity, kind=kind).latest("occurred_at")


def held(identity) -> set[str]:
    return set(
        Grant.objects.filter(account__identity=identity, status=ACTIVE).values_list(
            "entitlement__name", flat=True
        )
    )


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what a request enqueued once its transaction committed (tasks run eagerly)."""

    def run(send, *args):
        with django_capture_on_commit_callbacks(execute=True):
            response = send(*args)
        assert response.status_code in (200, 201, 204), response.content
        return response

    return run


@pytest.fixture
def grace():
    return Actor.for_user(UserFactory(username="grace.liu"))


def close_work_items(event, actor, reference):
    """The application's admin does each work item and records the evidence, creates first."""
    order = [Op.CREATE_ACCOUNT, Op.GRANT, Op.REVOKE, Op.DISABLE_ACCOUNT]
    items = event.tasks.filter(state=State.AWAITING_MANUAL)
    for task in sorted(items, key=lambda t: order.index(t.operation)):
        task_mark_executed(actor=actor, task=task, reference=reference)


# --------------------------------------------------------------------------------- scim


def test_scim_joiner_mover_leaver(entra, scim_target, run_on_commit):
    """GitHub Enterprise (full SCIM): every change is pushed, read back and verified."""
    nw = northwind(entra, "GitHub", "scim", target=scim_target)

    response = run_on_commit(entra.post, "/Users", daniel())

    identity = Identity.objects.get(pk=response.json()["id"])
    joiner = last_event(identity, Kind.JOINER)
    assert tasks_of(joiner) == {
        (Op.CREATE_ACCOUNT, None, State.VERIFIED),
        (Op.GRANT, "eng", State.VERIFIED),
    }
    user = scim_target.user_named("daniel.okafor@northwind.example")
    assert user["externalId"] == str(identity.pk)
    assert user["active"] is True
    assert user["name"] == {"givenName": "Daniel", "familyName": "Okafor"}
    uid = user["id"]
    assert scim_target.members(nw.groups["eng"]) == {uid}
    account = Account.objects.get(application=nw.app, identity=identity)
    assert (account.username, account.external_id, account.status) == (
        user["userName"],
        uid,
        Account.Status.ACTIVE,
    )
    assert held(identity) == {"eng"}
    joiner.refresh_from_db()
    assert joiner.completed_at is not None

    # Mover 1: the identity provider adds him to the directory group GH-Users.
    run_on_commit(entra.patch, f"/Groups/{nw.directory_group}", member_add(identity))

    assert tasks_of(last_event(identity, Kind.MOVER)) == {(Op.GRANT, "org", State.VERIFIED)}
    assert scim_target.members(nw.groups["org"]) == {uid}

    # Mover 2: Engineering -> Sales Ops.
    run_on_commit(
        entra.patch, f"/Users/{identity.pk}", replace(f"{ENTERPRISE}:department", "Sales Ops")
    )

    mover = last_event(identity, Kind.MOVER)
    assert mover.changes["department"] == {"from": "Engineering", "to": "Sales Ops"}
    assert tasks_of(mover) == {
        (Op.GRANT, "sales", State.VERIFIED),
        (Op.REVOKE, "eng", State.VERIFIED),
    }
    assert scim_target.members(nw.groups["sales"]) == {uid}
    assert scim_target.members(nw.groups["eng"]) == set()
    assert held(identity) == {"org", "sales"}

    # Leaver: Entra deactivates him.
    run_on_commit(entra.patch, f"/Users/{identity.pk}", replace("active", False))

    leaver = last_event(identity, Kind.LEAVER)
    assert tasks_of(leaver) == {
        (Op.REVOKE, "org", State.VERIFIED),
        (Op.REVOKE, "sales", State.VERIFIED),
        (Op.DISABLE_ACCOUNT, None, State.VERIFIED),
    }
    assert scim_target.user(uid)["active"] is False
    assert all(scim_target.members(g) == set() for g in nw.groups.values())
    account.refresh_from_db()
    assert account.status == Account.Status.DISABLED
    assert held(identity) == set()
    disable = leaver.tasks.get(operation=Op.DISABLE_ACCOUNT)
    assert disable.evidence["read_back"]["active"] is False
    assert leaver.occurred_at <= disable.started_at <= disable.executed_at <= disable.verified_at
    clock = leaver_clock(leaver)
    assert clock.done and not clock.breached
    assert [(a.application, a.open) for a in clock.per_app] == [(nw.app, 0)]
    assert scim_target.writes("POST") == [("POST", "/Users")]


# ------------------------------------------------------------------------- scim_partial


def test_scim_partial_joiner_mover_leaver(entra, scim_target, run_on_commit, grace):
    """Ledgerly (create/deactivate only): the account is created and disabled over SCIM;
    every entitlement change becomes a manual work item and is never pushed."""
    nw = northwind(entra, "Ledgerly", "scim_partial", target=scim_target)

    response = run_on_commit(entra.post, "/Users", daniel())

    identity = Identity.objects.get(pk=response.json()["id"])
    joiner = last_event(identity, Kind.JOINER)
    assert tasks_of(joiner) == {
        (Op.CREATE_ACCOUNT, None, State.VERIFIED),
        (Op.GRANT, "eng", State.AWAITING_MANUAL),
    }
    work_item = joiner.tasks.get(operation=Op.GRANT)
    assert work_item.channel == ProvisioningTask.Channel.MANUAL
    assert "manual because the application's SCIM cannot do this" in work_item.reason
    uid = scim_target.user_named("daniel.okafor@northwind.example")["id"]
    assert Account.objects.get(identity=identity).external_id == uid
    assert scim_target.members(nw.groups["eng"]) == set()

    close_work_items(joiner, grace, "LEDG-101")

    work_item.refresh_from_db()
    assert (work_item.state, work_item.evidence_reference) == (State.EXECUTED, "LEDG-101")
    assert held(identity) == {"eng"}

    run_on_commit(
        entra.patch, f"/Users/{identity.pk}", replace(f"{ENTERPRISE}:department", "Sales Ops")
    )

    mover = last_event(identity, Kind.MOVER)
    assert tasks_of(mover) == {
        (Op.GRANT, "sales", State.AWAITING_MANUAL),
        (Op.REVOKE, "eng", State.AWAITING_MANUAL),
    }
    assert all(scim_target.members(g) == set() for g in nw.groups.values())

    run_on_commit(entra.patch, f"/Users/{identity.pk}", replace("active", False))

    leaver = last_event(identity, Kind.LEAVER)
    assert tasks_of(leaver) == {(Op.DISABLE_ACCOUNT, None, State.VERIFIED)}
    assert scim_target.user(uid)["active"] is False
    assert Account.objects.get(identity=identity).status == Account.Status.DISABLED
    # The mover's open work: the grant is superseded, the revoke still waits (once, not twice).
    assert tasks_of(mover) == {
        (Op.GRANT, "sales", State.CANCELLED),
        (Op.REVOKE, "eng", State.AWAITING_MANUAL),
    }
    assert ProvisioningTask.objects.filter(identity=identity, operation=Op.REVOKE).count() == 1
    assert scim_target.writes() == [
        ("POST", "/Users"),
        ("PATCH", f"/Users/{uid}"),
    ]


# ------------------------------------------------------------------------------- manual


def test_manual_joiner_mover_leaver(entra, run_on_commit, grace):
    """VaultFin (no SCIM): everything is a work item; closing one needs evidence and leaves
    it executed, not verified, until a reconciliation confirms it."""
    nw = northwind(entra, "VaultFin", "manual")
    assert not ProvisioningProfile.objects.filter(application=nw.app).exists()

    response = run_on_commit(entra.post, "/Users", daniel())

    identity = Identity.objects.get(pk=response.json()["id"])
    joiner = last_event(identity, Kind.JOINER)
    assert tasks_of(joiner) == {
        (Op.CREATE_ACCOUNT, None, State.AWAITING_MANUAL),
        (Op.GRANT, "eng", State.AWAITING_MANUAL),
    }
    assert {t.channel for t in joiner.tasks.all()} == {ProvisioningTask.Channel.MANUAL}
    with pytest.raises(DomainError, match="needs evidence"):
        task_mark_executed(actor=grace, task=joiner.tasks.get(operation=Op.CREATE_ACCOUNT))

    close_work_items(joiner, grace, "VF-1001")

    assert tasks_of(joiner) == {
        (Op.CREATE_ACCOUNT, None, State.EXECUTED),
        (Op.GRANT, "eng", State.EXECUTED),
    }
    created = joiner.tasks.get(operation=Op.CREATE_ACCOUNT)
    assert created.executed_by == grace.user
    assert created.verified_at is None
    assert held(identity) == {"eng"}
    joiner.refresh_from_db()
    assert joiner.completed_at is None  # executed is not verified

    run_on_commit(
        entra.patch, f"/Users/{identity.pk}", replace(f"{ENTERPRISE}:department", "Sales Ops")
    )
    mover = last_event(identity, Kind.MOVER)
    assert tasks_of(mover) == {
        (Op.GRANT, "sales", State.AWAITING_MANUAL),
        (Op.REVOKE, "eng", State.AWAITING_MANUAL),
    }
    close_work_items(mover, grace, "VF-1002")
    assert held(identity) == {"sales"}

    run_on_commit(entra.patch, f"/Users/{identity.pk}", replace("active", False))

    leaver = last_event(identity, Kind.LEAVER)
    assert tasks_of(leaver) == {
        (Op.REVOKE, "sales", State.AWAITING_MANUAL),
        (Op.DISABLE_ACCOUNT, None, State.AWAITING_MANUAL),
    }
    close_work_items(leaver, grace, "VF-1003")
    assert tasks_of(leaver) == {
        (Op.REVOKE, "sales", State.EXECUTED),
        (Op.DISABLE_ACCOUNT, None, State.EXECUTED),
    }
    assert Account.objects.get(identity=identity).status == Account.Status.DISABLED
    assert held(identity) == set()
    leaver.refresh_from_db()
    assert leaver.completed_at is None
    assert not leaver_clock(leaver).done


# ----------------------------------------------------------------- targets that misbehave


def test_a_target_that_answers_2xx_and_changes_nothing_fails_the_tasks(
    entra, scim_target, run_on_commit
):
    nw = northwind(entra, "Salesforce", "scim", target=scim_target)
    scim_target.app.ignore_writes = True  # POST works, PATCH/PUT say 200 and do nothing

    response = run_on_commit(entra.post, "/Users", daniel())

    identity = Identity.objects.get(pk=response.json()["id"])
    joiner = last_event(identity, Kind.JOINER)
    assert tasks_of(joiner) == {
        (Op.CREATE_ACCOUNT, None, State.VERIFIED),
        (Op.GRANT, "eng", State.FAILED),
    }
    grant_task = joiner.tasks.get(operation=Op.GRANT)
    failure = grant_task.evidence["last_failure"]
    assert failure["unverified"] is True
    assert failure["read_back"] == {"member_present": False}
    assert [(r["method"], r["status"]) for r in failure["requests"]] == [
        ("PATCH", 200),
        ("GET", 200),
    ]
    assert "does not show the change" in grant_task.last_error
    assert held(identity) == set()
    assert scim_target.members(nw.groups["eng"]) == set()
    joiner.refresh_from_db()
    assert joiner.completed_at is None
    assert AuditEvent.objects.filter(
        action="provisioning_task.failed", target_id=str(grant_task.pk)
    ).exists()

    run_on_commit(entra.patch, f"/Users/{identity.pk}", replace("active", False))

    disable = last_event(identity, Kind.LEAVER).tasks.get(operation=Op.DISABLE_ACCOUNT)
    assert disable.state == State.FAILED
    assert disable.evidence["last_failure"]["read_back"]["active"] is True
    assert Account.objects.get(identity=identity).status == Account.Status.ACTIVE


def test_a_target_that_is_down_retries_then_fails_and_loses_nothing(
    entra, down_url, scim_target, run_on_commit, grace, django_capture_on_commit_callbacks
):
    nw = northwind(entra, "Datadog", "scim", url=down_url)
    for key in nw.groups:  # the groups exist in the target that will come back
        nw.groups[key] = scim_target.create_group(f"datadog-{key}")
        Entitlement.objects.filter(pk=nw.entitlements[key].pk).update(external_value=nw.groups[key])

    before = timezone.now()
    response = run_on_commit(entra.post, "/Users", daniel())

    identity = Identity.objects.get(pk=response.json()["id"])
    joiner = last_event(identity, Kind.JOINER)
    create = joiner.tasks.get(operation=Op.CREATE_ACCOUNT)
    grant = joiner.tasks.get(operation=Op.GRANT)
    assert (create.state, create.attempts) == (State.PENDING, 1)
    assert "cannot reach the target" in create.last_error
    assert 15 - 1 <= (create.next_attempt_at - before).total_seconds() <= 30 + 1
    assert (grant.state, grant.attempts) == (State.PENDING, 0)  # waiting costs no attempt
    assert "Waiting for the account" in grant.last_error

    # Time passes; the periodic sweep sends each due task again, until they give up.
    for _ in range(MAX_ATTEMPTS - 1):
        ProvisioningTask.objects.filter(event=joiner, state=State.PENDING).update(
            next_attempt_at=timezone.now()
        )
        assert sweep_provisioning() == 2

    create.refresh_from_db()
    grant.refresh_from_db()
    assert (create.state, create.attempts) == (State.FAILED, MAX_ATTEMPTS)
    # The grant keeps waiting for its account instead of burning its own retries.
    assert (grant.state, grant.attempts) == (State.PENDING, 0)
    assert create.failed_at is not None
    assert AuditEvent.objects.filter(
        action="provisioning_task.retry_scheduled", target_id=str(create.pk)
    ).count() == (MAX_ATTEMPTS - 1)
    joiner.refresh_from_db()
    assert joiner.completed_at is None
    assert sweep_provisioning() == 0  # failed tasks wait for a person

    # The application is back (at a new address); a person retries: nothing was lost.
    profile = ProvisioningProfile.objects.get(application=nw.app)
    profile.scim_base_url = scim_target.base_url
    profile.save()
    with django_capture_on_commit_callbacks(execute=True):
        task_retry(actor=grace, task=create)
    ProvisioningTask.objects.filter(pk=grant.pk).update(next_attempt_at=timezone.now())
    assert sweep_provisioning() == 1

    assert tasks_of(joiner) == {
        (Op.CREATE_ACCOUNT, None, State.VERIFIED),
        (Op.GRANT, "eng", State.VERIFIED),
    }
    uid = scim_target.user_named("daniel.okafor@northwind.example")["id"]
    assert scim_target.members(nw.groups["eng"]) == {uid}
    joiner.refresh_from_db()
    assert joiner.completed_at is not None


# ----------------------------------------------------- an identity provider that repeats


def test_duplicate_and_out_of_order_scim_events_never_apply_twice(
    entra, scim_target, run_on_commit
):
    nw = northwind(entra, "GitHub", "scim", target=scim_target)
    response = run_on_commit(entra.post, "/Users", daniel())
    identity = Identity.objects.get(pk=response.json()["id"])
    uid = scim_target.user_named("daniel.okafor@northwind.example")["id"]

    # The same joiner POSTed again is refused; nothing new is planned.
    duplicate = entra.post("/Users", daniel())
    assert duplicate.status_code == 409

    run_on_commit(entra.patch, f"/Users/{identity.pk}", replace("active", False))
    tasks_after_leaver = ProvisioningTask.objects.count()
    writes_after_leaver = list(scim_target.writes())

    # Entra sends the same deactivation again.
    run_on_commit(entra.patch, f"/Users/{identity.pk}", replace("active", False))

    assert LifecycleEvent.objects.filter(identity=identity, kind=Kind.LEAVER).count() == 1
    assert ProvisioningTask.objects.count() == tasks_after_leaver

    # Late events from before the deactivation arrive after it.
    run_on_commit(entra.patch, f"/Groups/{nw.directory_group}", member_add(identity))
    run_on_commit(
        entra.patch, f"/Users/{identity.pk}", replace(f"{ENTERPRISE}:department", "Sales Ops")
    )

    assert LifecycleEvent.objects.filter(identity=identity).count() == 2  # joiner, leaver
    assert ProvisioningTask.objects.count() == tasks_after_leaver
    assert all(scim_target.members(g) == set() for g in nw.groups.values())
    assert scim_target.user(uid)["active"] is False

    # The broker delivers every task message again.
    for task_id in ProvisioningTask.objects.values_list("pk", flat=True):
        execute_provisioning_task.delay(task_id)

    assert scim_target.writes() == writes_after_leaver
    assert set(ProvisioningTask.objects.values_list("state", flat=True)) == {State.VERIFIED}
    assert set(ProvisioningTask.objects.values_list("attempts", flat=True)) == {1}
    assert Account.objects.filter(identity=identity).count() == 1
    assert scim_target.writes("POST") == [("POST", "/Users")]
