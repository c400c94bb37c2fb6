"""Directory services: every change is validated, applied atomically and audited."""

import pytest
from django.db import IntegrityError, transaction

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError, InvalidTransition
from governance.identities import services
from governance.identities.models import GroupMembership, Identity
from tests.factories import DirectoryGroupFactory, IdentityFactory

pytestmark = pytest.mark.django_db


def _events(action):
    return list(AuditEvent.objects.filter(action=action))


def test_identity_create_records_event(source):
    """A joiner is created with its e-mails and one audit event attributed to the source."""
    person = services.identity_create(
        actor=Actor.for_source(source),
        source=source,
        user_name="Priya.Shah@northwind.example",
        emails=[{"value": "priya@northwind.example", "type": "work", "primary": True}],
    )
    assert person.emails.get().value == "priya@northwind.example"
    (event,) = _events("identity.created")
    assert event.actor_label == "scim:Test Entra"
    assert event.actor_source == source
    assert event.target_id == str(person.pk)
    assert event.after["user_name"] == "Priya.Shah@northwind.example"


@pytest.mark.parametrize("taken", ["PRIYA@x.com", "priya@X.COM", "Priya@x.com"])
def test_user_name_unique_case_insensitively(source, taken):
    """userName is unique whatever its case (the service answers Conflict)."""
    services.identity_create(actor=Actor.system("t"), source=source, user_name="priya@x.com")
    with pytest.raises(Conflict):
        services.identity_create(actor=Actor.system("t"), source=source, user_name=taken)
    assert Identity.objects.count() == 1
    assert _events("identity.created").__len__() == 1


def test_user_name_uniqueness_enforced_by_database(source):
    """Even bypassing the service, the database refuses a case-variant duplicate."""
    IdentityFactory(user_name="dup@x.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        IdentityFactory(user_name="DUP@x.com")


def test_deleted_identity_frees_its_user_name(source):
    """A soft-deleted person no longer blocks a new person with the same userName."""
    actor = Actor.system("t")
    first = services.identity_create(actor=actor, source=source, user_name="a@x.com")
    services.identity_delete(actor=actor, identity=first)
    second = services.identity_create(actor=actor, source=source, user_name="A@x.com")
    assert second.pk != first.pk


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_empty_user_name_refused(source, bad):
    with pytest.raises(DomainError):
        services.identity_create(actor=Actor.system("t"), source=source, user_name=bad)
    assert Identity.objects.count() == 0


def test_unknown_field_refused(source):
    with pytest.raises(DomainError, match="Unknown identity fields"):
        services.identity_create(
            actor=Actor.system("t"), source=source, user_name="a@x.com", password="x"
        )


def test_update_records_only_changes_and_bumps_version(source):
    person = IdentityFactory(department="Accounts Payable", title="Clerk")
    updated = services.identity_update(
        actor=Actor.system("t"), identity=person, department="Sales Ops", title="Clerk"
    )
    assert updated.department == "Sales Ops"
    assert updated.version == 2
    (event,) = _events("identity.updated")
    assert event.before == {"department": "Accounts Payable"}
    assert event.after == {"department": "Sales Ops"}


def test_update_without_change_records_nothing(source):
    person = IdentityFactory(title="Clerk")
    services.identity_update(actor=Actor.system("t"), identity=person, title="Clerk")
    assert not _events("identity.updated")
    person.refresh_from_db()
    assert person.version == 1


def test_deactivate_and_reactivate(source):
    """active=false is the offboarding signal; reactivation clears deactivated_at."""
    person = IdentityFactory()
    off = services.identity_deactivate(actor=Actor.system("t"), identity=person)
    assert off.active is False and off.deactivated_at is not None
    on = services.identity_update(actor=Actor.system("t"), identity=person, active=True)
    assert on.active is True and on.deactivated_at is None
    assert [
        e.action for e in AuditEvent.objects.filter(action__startswith="identity.").order_by("id")
    ] == [
        "identity.deactivated",
        "identity.reactivated",
    ]


def test_delete_is_soft_and_leaves_groups(source):
    person = IdentityFactory()
    group = DirectoryGroupFactory()
    GroupMembership.objects.create(group=group, identity=person)
    services.identity_delete(actor=Actor.system("t"), identity=person)
    person.refresh_from_db()
    assert person.deleted_at is not None and person.active is False
    assert not GroupMembership.objects.filter(identity=person).exists()
    assert _events("identity.deleted")
    with pytest.raises(InvalidTransition):
        services.identity_update(actor=Actor.system("t"), identity=person, title="x")


def test_manager_resolved_when_manager_arrives_later(source):
    """A report whose manager is provisioned afterwards is linked when the manager arrives."""
    actor = Actor.system("t")
    report = services.identity_create(
        actor=actor, source=source, user_name="r@x.com", manager_ref="mgr-ext-1"
    )
    assert report.manager is None
    manager = services.identity_create(
        actor=actor, source=source, user_name="m@x.com", external_id="mgr-ext-1"
    )
    report.refresh_from_db()
    assert report.manager == manager


def test_manager_resolved_by_id(source):
    actor = Actor.system("t")
    manager = IdentityFactory()
    report = services.identity_create(
        actor=actor, source=source, user_name="r@x.com", manager_ref=str(manager.pk)
    )
    assert report.manager == manager


def test_group_membership_changes_are_audited_and_idempotent(source):
    actor = Actor.system("t")
    a, b, c = IdentityFactory(), IdentityFactory(), IdentityFactory()
    group = services.group_create(
        actor=actor, source=source, display_name="AP-Clerks", member_ids=[a.pk]
    )
    assert services.group_members_add(actor=actor, group=group, identity_ids=[a.pk, b.pk]) == [b.pk]
    assert services.group_members_add(actor=actor, group=group, identity_ids=[b.pk]) == []
    assert services.group_members_remove(actor=actor, group=group, identity_ids=[a.pk]) == [a.pk]
    added, removed = services.group_members_replace(actor=actor, group=group, identity_ids=[c.pk])
    assert (added, removed) == ([c.pk], [b.pk])
    assert list(group.members.all()) == [c]
    actions = list(
        AuditEvent.objects.filter(action__startswith="group.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "group.created",
        "group.members_added",
        "group.members_removed",
        "group.members_replaced",
    ]
    group.refresh_from_db()
    assert group.version == 4


def test_group_unknown_member_refused_and_nothing_changes(source):
    actor = Actor.system("t")
    group = services.group_create(actor=actor, source=source, display_name="G")
    with pytest.raises(DomainError, match="Unknown member ids"):
        services.group_members_add(
            actor=actor, group=group, identity_ids=["7f4b4a4e-0000-0000-0000-000000000000"]
        )
    assert group.memberships.count() == 0


def test_group_name_unique_case_insensitively(source):
    actor = Actor.system("t")
    services.group_create(actor=actor, source=source, display_name="Finance")
    with pytest.raises(Conflict):
        services.group_create(actor=actor, source=source, display_name="FINANCE")
    other = services.group_create(actor=actor, source=source, display_name="Sales")
    with pytest.raises(Conflict):
        services.group_update(actor=actor, group=other, display_name="finance")


def test_group_delete_is_soft(source):
    actor = Actor.system("t")
    person = IdentityFactory()
    group = services.group_create(
        actor=actor, source=source, display_name="G", member_ids=[person.pk]
    )
    services.group_delete(actor=actor, group=group)
    group.refresh_from_db()
    assert group.deleted_at is not None
    assert group.memberships.count() == 0
    # the name can be reused
    services.group_create(actor=actor, source=source, display_name="g")
