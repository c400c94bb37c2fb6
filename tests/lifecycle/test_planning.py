"""Lifecycle derivation and provisioning-task state machine (services, no outbound SCIM)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.access.models import Account, Grant
from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition
from governance.identities import services as directory
from governance.lifecycle import services
from governance.lifecycle.models import LifecycleEvent, ProvisioningTask
from governance.lifecycle.selectors import leaver_clock, open_leavers
from tests.factories import (
    AccessPolicyFactory,
    AccountFactory,
    ApplicationFactory,
    EntitlementFactory,
    GrantFactory,
    NonHumanIdentityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
Op = ProvisioningTask.Operation
State = ProvisioningTask.State
SCIM = Actor.system("scim-test")


@pytest.mark.parametrize(
    ("before", "after", "groups", "expected"),
    [
        (None, {"active": True}, False, "joiner"),
        (None, {"active": False}, False, None),
        ({"active": True}, {"active": False}, False, "leaver"),
        ({"active": False}, {"active": True}, False, "rehire"),
        (
            {"active": True, "department": "AP"},
            {"active": True, "department": "Sales"},
            False,
            "mover",
        ),
        ({"active": True, "title": "a"}, {"active": True, "title": "b"}, False, "mover"),
        ({"active": True, "manager": "1"}, {"active": True, "manager": "2"}, False, "mover"),
        ({"active": True}, {"active": True}, True, "mover"),
        ({"active": True}, {"active": True}, False, None),
        ({"active": False}, {"active": False}, True, None),
    ],
    ids=[
        "joiner",
        "created-inactive",
        "leaver",
        "rehire",
        "department",
        "title",
        "manager",
        "groups",
        "no-change",
        "inactive-groups",
    ],
)
def test_classify(before, after, groups, expected):
    assert services.classify(before, after, groups_changed=groups) == expected


@pytest.fixture
def org(source):
    """Two apps: GitHub (SCIM, no connector configured) and VaultFin (manual)."""
    github = ApplicationFactory(name="GitHub", provisioning_mode="scim", deprovisioning_sla_hours=4)
    vaultfin = ApplicationFactory(
        name="VaultFin", provisioning_mode="manual", deprovisioning_sla_hours=48
    )
    member = EntitlementFactory(application=github, name="Member", external_value="g-member")
    clerk = EntitlementFactory(application=vaultfin, name="Invoice Clerk")
    approver = EntitlementFactory(application=vaultfin, name="Invoice Approver", privileged=True)
    engineering = directory.group_create(actor=SCIM, source=source, display_name="Engineering")
    ap = directory.group_create(actor=SCIM, source=source, display_name="AP-Clerks")
    p1 = AccessPolicyFactory(name="eng", directory_group=engineering)
    p1.entitlements.add(member)
    p2 = AccessPolicyFactory(name="ap", directory_group=ap)
    p2.entitlements.add(clerk)
    return {
        "github": github,
        "vaultfin": vaultfin,
        "member": member,
        "clerk": clerk,
        "approver": approver,
        "engineering": engineering,
        "ap": ap,
        "source": source,
    }


def _tasks(identity, **filters):
    return ProvisioningTask.objects.filter(identity=identity, **filters)


def test_joiner_gets_exactly_policy_access_as_work(org):
    person = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="d@x.com", department="Accounts Payable"
    )
    directory.group_members_add(actor=SCIM, group=org["ap"], identity_ids=[person.pk])
    event = LifecycleEvent.objects.get(identity=person, kind="joiner")
    assert event.completed_at is not None  # nothing to do before the group arrived
    mover = LifecycleEvent.objects.get(identity=person, kind="mover")
    ops = sorted(_tasks(person).values_list("operation", "entitlement__name", "channel", "state"))
    assert ops == [
        ("create_account", None, "manual", "awaiting_manual"),
        ("grant", "Invoice Clerk", "manual", "awaiting_manual"),
    ]
    task = _tasks(person, operation=Op.GRANT).get()
    assert task.event == mover
    assert task.due_at == pytest.approx(
        mover.occurred_at + timedelta(hours=48), abs=timedelta(seconds=5)
    )
    assert "manual because the application has no SCIM" in task.reason
    assert AuditEvent.objects.filter(action="lifecycle.mover", target_id=str(mover.pk)).exists()


def test_scim_app_without_connector_falls_back_to_manual(org):
    person = directory.identity_create(actor=SCIM, source=org["source"], user_name="e@x.com")
    directory.group_members_add(actor=SCIM, group=org["engineering"], identity_ids=[person.pk])
    task = _tasks(person, operation=Op.GRANT).get()
    assert task.channel == "manual" and "no SCIM connector is configured" in task.reason


def _hold(person, app, entitlement, origin=Grant.Origin.POLICY):
    account = Account.objects.filter(application=app, identity=person).first() or AccountFactory(
        application=app, identity=person, username=person.user_name
    )
    return GrantFactory(account=account, entitlement=entitlement, origin=origin)


def test_mover_revokes_unjustified_and_flags_retained_privilege(org):
    """Daniel moves from AP to Sales Ops: the policy grant is revoked, the privileged grant
    he requested is kept and flagged for the new manager's micro-review."""
    daniel = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="daniel@x.com", derive_lifecycle=False
    )
    directory.group_members_add(actor=SCIM, group=org["ap"], identity_ids=[daniel.pk])
    ProvisioningTask.objects.all().delete()
    _hold(daniel, org["vaultfin"], org["clerk"])
    _hold(daniel, org["vaultfin"], org["approver"], origin=Grant.Origin.REQUEST)
    directory.group_members_remove(actor=SCIM, group=org["ap"], identity_ids=[daniel.pk])
    event = LifecycleEvent.objects.filter(identity=daniel, kind="mover").latest("occurred_at")
    revoke = _tasks(daniel, operation=Op.REVOKE).get()
    assert revoke.entitlement == org["clerk"] and revoke.event == event
    assert [r["entitlement"] for r in event.retained_privileged] == ["Invoice Approver"]


def test_leaver_disables_everything_and_flags_nhis(org):
    priya = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="priya@x.com", derive_lifecycle=False
    )
    _hold(priya, org["github"], org["member"])
    _hold(priya, org["vaultfin"], org["clerk"])
    NonHumanIdentityFactory(owner=priya)
    directory.identity_deactivate(actor=SCIM, identity=priya)
    event = LifecycleEvent.objects.get(identity=priya, kind="leaver")
    assert event.nhi_handoff_needed is True
    ops = sorted(_tasks(priya).values_list("application__name", "operation"))
    assert ops == [
        ("GitHub", "disable_account"),
        ("GitHub", "revoke"),
        ("VaultFin", "disable_account"),
        ("VaultFin", "revoke"),
    ]
    assert list(open_leavers()) == [event]


def test_duplicate_and_late_events_create_no_duplicate_work(org):
    priya = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="priya@x.com", derive_lifecycle=False
    )
    _hold(priya, org["vaultfin"], org["clerk"])
    directory.identity_deactivate(actor=SCIM, identity=priya)
    count = ProvisioningTask.objects.count()
    directory.identity_deactivate(actor=SCIM, identity=priya)  # duplicate: no change
    directory.group_members_add(actor=SCIM, group=org["ap"], identity_ids=[priya.pk])  # late
    assert ProvisioningTask.objects.count() == count
    assert LifecycleEvent.objects.filter(identity=priya).count() == 1
    assert AuditEvent.objects.filter(action="identity.deactivation_repeated").count() == 1


def test_rehire_reprovisions_through_policy_only(org):
    """Old manually granted access is not resurrected; policy access is granted again."""
    person = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="r@x.com", derive_lifecycle=False
    )
    directory.group_members_add(actor=SCIM, group=org["engineering"], identity_ids=[person.pk])
    ProvisioningTask.objects.all().delete()
    account = AccountFactory(application=org["github"], identity=person, status="disabled")
    GrantFactory(
        account=account,
        entitlement=EntitlementFactory(application=org["github"]),
        origin=Grant.Origin.MANUAL,
        status="revoked",
    )
    directory.identity_update(actor=SCIM, identity=person, active=True)  # was active: no-op
    directory.identity_deactivate(actor=SCIM, identity=person, derive_lifecycle=False)
    directory.identity_update(actor=SCIM, identity=person, active=True)
    event = LifecycleEvent.objects.get(identity=person, kind="rehire")
    ops = sorted(event.tasks.values_list("operation", "entitlement__name"))
    assert ops == [("enable_account", None), ("grant", "Member")]


def test_urgent_leaver_then_scim_deactivation_is_already_done(org):
    security = UserFactory(username="sam", roles=["Security admin"])
    person = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="u@x.com", derive_lifecycle=False
    )
    _hold(person, org["vaultfin"], org["clerk"])
    event = services.lifecycle_start_urgent_leaver(
        actor=Actor.for_user(security), identity=person, reason="terminated for cause"
    )
    assert event.urgent and event.tasks.count() == 2
    directory.identity_deactivate(actor=SCIM, identity=person)
    assert LifecycleEvent.objects.filter(identity=person).count() == 1
    assert AuditEvent.objects.filter(action="lifecycle.leaver_already_started").exists()
    assert ProvisioningTask.objects.filter(identity=person).count() == 2


def test_urgent_leaver_is_not_undone_by_a_mover_and_not_started_twice(org):
    security = UserFactory(username="sam", roles=["Security admin"])
    person = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="u@x.com", derive_lifecycle=False
    )
    _hold(person, org["vaultfin"], org["clerk"])
    event = services.lifecycle_start_urgent_leaver(
        actor=Actor.for_user(security), identity=person, reason="for cause"
    )
    with pytest.raises(InvalidTransition):
        services.lifecycle_start_urgent_leaver(
            actor=Actor.for_user(security), identity=person, reason="again"
        )
    directory.identity_update(actor=SCIM, identity=person, department="Sales")  # mover first
    assert not event.tasks.filter(state=State.CANCELLED).exists()
    directory.identity_deactivate(actor=SCIM, identity=person)
    assert list(LifecycleEvent.objects.filter(identity=person)) == [event]
    assert AuditEvent.objects.filter(action="lifecycle.change_during_urgent_leaver").exists()


def test_urgent_leaver_with_nothing_to_remove_completes(org):
    security = UserFactory(username="sam", roles=["Security admin"])
    person = directory.identity_create(actor=SCIM, source=org["source"], user_name="n@x.com")
    event = services.lifecycle_start_urgent_leaver(
        actor=Actor.for_user(security), identity=person, reason="for cause"
    )
    assert event.completed_at is not None
    assert not open_leavers().exists()


def test_urgent_leaver_needs_security_admin_and_reason(org):
    person = directory.identity_create(actor=SCIM, source=org["source"], user_name="u@x.com")
    owner = UserFactory(username="grace", roles=["App owner"])
    with pytest.raises(DomainError):
        services.lifecycle_start_urgent_leaver(
            actor=Actor.for_user(owner), identity=person, reason="x"
        )
    security = UserFactory(username="sam", roles=["Security admin"])
    with pytest.raises(DomainError):
        services.lifecycle_start_urgent_leaver(
            actor=Actor.for_user(security), identity=person, reason=" "
        )
    assert not LifecycleEvent.objects.filter(kind="leaver").exists()


def _manual_task(org):
    person = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="m@x.com", derive_lifecycle=False
    )
    _hold(person, org["vaultfin"], org["clerk"])
    directory.identity_deactivate(actor=SCIM, identity=person)
    return _tasks(person, operation=Op.REVOKE).get()


def test_manual_work_needs_evidence_and_a_person(org):
    task = _manual_task(org)
    admin = UserFactory(username="vaultfin-admin", roles=["App owner"])
    colleague = UserFactory(username="other-owner", roles=["App owner"])
    org["vaultfin"].owners.add(admin)
    with pytest.raises(DomainError, match="owner of the application"):
        services.task_mark_executed(actor=Actor.for_user(colleague), task=task, reference="x")
    with pytest.raises(DomainError, match="evidence"):
        services.task_mark_executed(actor=Actor.for_user(admin), task=task)
    with pytest.raises(DomainError):
        services.task_mark_executed(actor=SCIM, task=task, reference="CHG-1")
    done = services.task_mark_executed(actor=Actor.for_user(admin), task=task, reference="CHG-1")
    assert done.state == State.EXECUTED and done.executed_by == admin
    assert not Grant.objects.filter(entitlement=org["clerk"], status="active").exists()
    with pytest.raises(InvalidTransition):
        services.task_mark_executed(actor=Actor.for_user(admin), task=task, reference="again")
    assert AuditEvent.objects.filter(action="provisioning_task.executed").count() == 1


def _scim_task(org, **extra):
    person = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="s@x.com", derive_lifecycle=False
    )
    return ProvisioningTask.objects.create(
        application=org["github"],
        identity=person,
        operation=Op.DISABLE_ACCOUNT,
        channel="scim",
        state=State.PENDING,
        dedupe_key=f"k-{person.pk}",
        **extra,
    )


def test_claim_is_conditional(org):
    task = _scim_task(org)
    assert services.task_claim(task.pk).state == State.IN_PROGRESS
    assert services.task_claim(task.pk) is None  # another worker cannot claim it


def test_claim_respects_next_attempt(org):
    task = _scim_task(org, next_attempt_at=timezone.now() + timedelta(hours=1))
    assert services.task_claim(task.pk) is None


def test_transient_failures_back_off_then_fail(org):
    task = _scim_task(org)
    for attempt in range(1, services.MAX_ATTEMPTS + 1):
        ProvisioningTask.objects.filter(pk=task.pk).update(next_attempt_at=None)
        claimed = services.task_claim(task.pk)
        assert claimed.attempts == attempt
        result = services.task_record_failure(
            actor=SCIM, task=claimed, error="timeout", transient=True
        )
        if attempt < services.MAX_ATTEMPTS:
            assert result.state == State.PENDING and result.next_attempt_at > timezone.now()
    assert result.state == State.FAILED and result.failed_at is not None
    assert AuditEvent.objects.filter(action="provisioning_task.retry_scheduled").count() == (
        services.MAX_ATTEMPTS - 1
    )


@pytest.mark.parametrize("attempts", [1, 2, 5, 20])
def test_backoff_has_jitter_within_cap(attempts):
    import random

    rng = random.Random(1)
    values = {services.backoff_seconds(attempts, rng=rng) for _ in range(20)}
    ceiling = min(services.BACKOFF_CAP_SECONDS, services.BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
    assert all(ceiling / 2 <= v <= ceiling for v in values)
    assert len(values) > 1


def test_leaver_clock_per_app_and_breach(org):
    priya = directory.identity_create(
        actor=SCIM, source=org["source"], user_name="p@x.com", derive_lifecycle=False
    )
    _hold(priya, org["github"], org["member"])
    directory.identity_deactivate(actor=SCIM, identity=priya)
    event = LifecycleEvent.objects.get(identity=priya)
    start = event.occurred_at
    github_tasks = event.tasks.filter(application=org["github"])
    github_tasks.update(state=State.VERIFIED, verified_at=start + timedelta(hours=6))
    clock = leaver_clock(event, now=start + timedelta(hours=7))
    (row,) = clock.per_app
    assert row.hours == 6.0 and row.sla_hours == 4 and row.breached is True
    assert clock.done is True and clock.overall_hours == 6.0 and clock.breached is True


def test_membership_of_a_group_no_policy_uses_records_the_mover_without_planning(
    org, django_assert_max_num_queries
):
    """A mover event for each person, but no planning work: nothing they should hold changed."""
    people = [
        directory.identity_create(
            actor=SCIM, source=org["source"], user_name=f"p{i}@x.com", derive_lifecycle=False
        )
        for i in range(10)
    ]
    social = directory.group_create(actor=SCIM, source=org["source"], display_name="Book club")
    with django_assert_max_num_queries(150):  # PostgreSQL adds the audit-chain lock per event
        directory.group_members_add(actor=SCIM, group=social, identity_ids=[p.pk for p in people])
    events = LifecycleEvent.objects.filter(kind="mover", identity__in=people)
    assert events.count() == 10
    assert not events.filter(completed_at__isnull=True).exists()
    assert not ProvisioningTask.objects.filter(identity__in=people).exists()
