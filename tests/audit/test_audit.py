"""The audit log: written by every service, chained, and impossible to edit."""

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from governance.access import services as access
from governance.audit.models import AuditEvent
from governance.audit.selectors import audit_chain_verify
from governance.audit.services import GENESIS_HASH, record
from governance.core.actor import Actor
from governance.identities import services as identities
from governance.nhi import services as nhi
from governance.portal import services as portal
from tests.factories import (
    AccountFactory,
    ApplicationFactory,
    DirectoryGroupFactory,
    EntitlementFactory,
    GrantFactory,
    IdentityFactory,
    NonHumanIdentityFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


SERVICE_CALLS = {
    "identity_source.created": lambda: identities.source_create(actor=ACTOR, name="Okta"),
    "identity.created": lambda: identities.identity_create(
        actor=ACTOR, source=None, user_name="x@x.com"
    ),
    "identity.updated": lambda: identities.identity_update(
        actor=ACTOR, identity=IdentityFactory(), title="New"
    ),
    "identity.deactivated": lambda: identities.identity_deactivate(
        actor=ACTOR, identity=IdentityFactory()
    ),
    "identity.deleted": lambda: identities.identity_delete(actor=ACTOR, identity=IdentityFactory()),
    "group.created": lambda: identities.group_create(actor=ACTOR, source=None, display_name="G"),
    "group.updated": lambda: identities.group_update(
        actor=ACTOR, group=DirectoryGroupFactory(), display_name="Renamed"
    ),
    "group.members_added": lambda: identities.group_members_add(
        actor=ACTOR, group=DirectoryGroupFactory(), identity_ids=[IdentityFactory().pk]
    ),
    "group.deleted": lambda: identities.group_delete(actor=ACTOR, group=DirectoryGroupFactory()),
    "application.created": lambda: access.application_create(actor=ACTOR, name="Ledgerly"),
    "entitlement.created": lambda: access.entitlement_create(
        actor=ACTOR, application=ApplicationFactory(), name="Viewer"
    ),
    "account.created": lambda: access.account_create(
        actor=ACTOR, application=ApplicationFactory(), username="u"
    ),
    "account.disabled": lambda: access.account_disable(actor=ACTOR, account=AccountFactory()),
    "grant.created": lambda: (
        lambda a: access.grant_create(
            actor=ACTOR, account=a, entitlement=EntitlementFactory(application=a.application)
        )
    )(AccountFactory()),
    "grant.revoked": lambda: access.grant_revoke(actor=ACTOR, grant=GrantFactory()),
    "access_policy.created": lambda: access.policy_create(
        actor=ACTOR, name="P", entitlements=[], directory_group=DirectoryGroupFactory()
    ),
    "nhi.created": lambda: nhi.nhi_create(
        actor=ACTOR, name="bot", kind="bot", owner=IdentityFactory()
    ),
    "nhi.owner_assigned": lambda: nhi.nhi_assign_owner(
        actor=ACTOR, nhi=NonHumanIdentityFactory(), owner=IdentityFactory(), reason="handover"
    ),
    "portal_user.created": lambda: portal.portal_user_create(actor=ACTOR, username="new"),
}


@pytest.mark.parametrize("action", list(SERVICE_CALLS), ids=list(SERVICE_CALLS))
def test_every_service_writes_its_audit_event(action):
    """Each state-changing service leaves exactly one event of its action, by its actor."""
    result = SERVICE_CALLS[action]()
    events = AuditEvent.objects.filter(action=action)
    assert events.count() == 1
    event = events.get()
    assert event.actor_label == "system:tests"
    target = result if hasattr(result, "pk") else None
    if target is not None:
        assert event.target_id == str(target.pk)


def test_failed_change_leaves_no_event(source):
    """When the change rolls back, so does its event (same transaction)."""
    identities.identity_create(actor=ACTOR, source=source, user_name="a@x.com")
    before = AuditEvent.objects.count()
    with pytest.raises(Exception):
        identities.identity_create(actor=ACTOR, source=source, user_name="A@X.com")
    assert AuditEvent.objects.count() == before


def test_chain_links_and_verifies():
    first = record(actor=ACTOR, action="x.one", target_type="x", target_id=1, after={"a": 1})
    second = record(actor=ACTOR, action="x.two", target_type="x", target_id=2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert audit_chain_verify() == (2, None)
    call_command("audit_verify")


def _tamper(sql, params):
    """Edit the log behind the application's back, as an attacker with SQL access would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")  # triggers off
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = origin")


def test_audit_verify_names_edited_event():
    record(actor=ACTOR, action="x.one", target_type="x", target_id=1)
    victim = record(actor=ACTOR, action="x.two", target_type="x", target_id=2, after={"ok": 1})
    record(actor=ACTOR, action="x.three", target_type="x", target_id=3)
    _tamper("UPDATE audit_auditevent SET action = %s WHERE id = %s", ["x.forged", victim.id])
    with pytest.raises(CommandError, match=f"broken at event {victim.id}.*edited"):
        call_command("audit_verify")


def test_audit_verify_names_gap_after_deletion():
    record(actor=ACTOR, action="x.one", target_type="x", target_id=1)
    victim = record(actor=ACTOR, action="x.two", target_type="x", target_id=2)
    after = record(actor=ACTOR, action="x.three", target_type="x", target_id=3)
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [victim.id])
    with pytest.raises(CommandError, match=f"broken at event {after.id}.*removed"):
        call_command("audit_verify")


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="trigger is PostgreSQL-only")
def test_database_refuses_update_and_delete():
    event = record(actor=ACTOR, action="x.one", target_type="x", target_id=1)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="x.forged")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_admin_cannot_add_change_or_delete(admin_client):
    """Even a superuser only reads the audit log in the admin."""
    event = record(actor=ACTOR, action="x.one", target_type="x", target_id=1, after={"a": 1})
    change_url = reverse("admin:audit_auditevent_change", args=[event.pk])
    page = admin_client.get(change_url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(change_url, {"action": "x.forged"}).status_code == 403
    delete_url = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    listing = admin_client.get(reverse("admin:audit_auditevent_changelist"))
    assert b"Delete selected" not in listing.content
    event.refresh_from_db()
    assert event.action == "x.one"
    assert audit_chain_verify() == (1, None)


def test_request_id_recorded(admin_client):
    """Changes made in a request carry its id (X-Request-ID echoed back)."""
    app = ApplicationFactory(name="Old")
    response = admin_client.post(
        reverse("admin:access_application_change", args=[app.pk]),
        {
            "name": "Renamed",
            "risk_tier": "high",
            "provisioning_mode": "scim",
            "deprovisioning_sla_hours": 8,
            "review_frequency": "quarterly",
            "entitlements-TOTAL_FORMS": 0,
            "entitlements-INITIAL_FORMS": 0,
        },
        HTTP_X_REQUEST_ID="req-123",
    )
    assert response.status_code == 302, response.content[:2000]
    assert response["X-Request-ID"] == "req-123"
    event = AuditEvent.objects.get(action="application.updated")
    assert event.request_id == "req-123"
    assert event.actor_label == "user:root"
    assert event.before == {"name": "Old", "risk_tier": "medium", "deprovisioning_sla_hours": 24}
    assert event.after == {"name": "Renamed", "risk_tier": "high", "deprovisioning_sla_hours": 8}
