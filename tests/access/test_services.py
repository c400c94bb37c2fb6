"""Access services and selectors."""

import pytest
from django.db import IntegrityError, transaction

from governance.access import selectors, services
from governance.access.models import Account, Grant
from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError, InvalidTransition
from governance.identities.models import GroupMembership
from tests.factories import (
    AccessPolicyFactory,
    AccountFactory,
    ApplicationFactory,
    DirectoryGroupFactory,
    EntitlementFactory,
    IdentityFactory,
    NonHumanIdentityFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def test_orphan_detection_by_query():
    """Orphans: accounts held by no person and no NHI; deleted accounts are not counted."""
    app = ApplicationFactory()
    orphan = AccountFactory(application=app, identity=None)
    AccountFactory(application=app)  # a person's
    AccountFactory(application=app, identity=None, nhi=NonHumanIdentityFactory())
    AccountFactory(application=app, identity=None, status=Account.Status.DELETED)
    assert list(selectors.orphan_accounts()) == [orphan]
    assert orphan.is_orphan


def test_account_cannot_belong_to_person_and_nhi():
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountFactory(nhi=NonHumanIdentityFactory())
    app = ApplicationFactory()
    with pytest.raises(DomainError):
        services.account_create(
            actor=ACTOR,
            application=app,
            username="x",
            identity=IdentityFactory(),
            nhi=NonHumanIdentityFactory(),
        )


def test_account_username_unique_per_app_case_insensitively():
    app = ApplicationFactory()
    services.account_create(actor=ACTOR, application=app, username="Priya")
    with pytest.raises(Conflict):
        services.account_create(actor=ACTOR, application=app, username="priya")
    services.account_create(actor=ACTOR, application=ApplicationFactory(), username="priya")


def test_stale_accounts():
    leaver = IdentityFactory(active=False)
    stale = AccountFactory(identity=leaver)
    AccountFactory(identity=leaver, status=Account.Status.DISABLED)
    AccountFactory()
    assert list(selectors.stale_accounts()) == [stale]


def test_grant_lifecycle_is_audited():
    account = AccountFactory()
    entitlement = EntitlementFactory(application=account.application, privileged=True)
    grant = services.grant_create(actor=ACTOR, account=account, entitlement=entitlement)
    with pytest.raises(Conflict):
        services.grant_create(actor=ACTOR, account=account, entitlement=entitlement)
    services.grant_revoke(actor=ACTOR, grant=grant, reason="left the team")
    with pytest.raises(InvalidTransition):
        services.grant_revoke(actor=ACTOR, grant=grant)
    # once revoked, the entitlement may be granted again
    services.grant_create(actor=ACTOR, account=account, entitlement=entitlement)
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "grant.created",
        "grant.revoked",
        "grant.created",
    ]
    assert Grant.objects.filter(status="active").count() == 1


def test_grant_entitlement_must_match_account_application():
    account = AccountFactory()
    with pytest.raises(DomainError):
        services.grant_create(actor=ACTOR, account=account, entitlement=EntitlementFactory())


def test_account_disable():
    account = AccountFactory()
    services.account_disable(actor=ACTOR, account=account)
    account.refresh_from_db()
    assert account.status == "disabled"
    with pytest.raises(InvalidTransition):
        services.account_disable(actor=ACTOR, account=account)


def test_policy_needs_exactly_one_condition():
    with pytest.raises(DomainError):
        services.policy_create(actor=ACTOR, name="p", entitlements=[])
    with pytest.raises(DomainError):
        services.policy_create(
            actor=ACTOR,
            name="p",
            entitlements=[],
            directory_group=DirectoryGroupFactory(),
            attribute="department",
            attribute_value="Sales",
        )


def test_desired_entitlements_from_group_and_attribute_policies():
    person = IdentityFactory(department="Sales Ops")
    group = DirectoryGroupFactory()
    GroupMembership.objects.create(group=group, identity=person)
    by_group = EntitlementFactory()
    by_attribute = EntitlementFactory()
    unrelated = EntitlementFactory()
    services.policy_create(actor=ACTOR, name="g", entitlements=[by_group], directory_group=group)
    services.policy_create(
        actor=ACTOR,
        name="a",
        entitlements=[by_attribute],
        attribute="department",
        attribute_value="sales ops",
    )
    services.policy_create(
        actor=ACTOR, name="other", entitlements=[unrelated], directory_group=DirectoryGroupFactory()
    )
    assert set(selectors.desired_entitlements(person)) == {by_group, by_attribute}
    person.active = False
    assert not selectors.desired_entitlements(person).exists()


def test_excess_privileged_grant_detected():
    person = IdentityFactory()
    account = AccountFactory(identity=person)
    privileged = EntitlementFactory(application=account.application, privileged=True)
    grant = services.grant_create(actor=ACTOR, account=account, entitlement=privileged)
    assert list(selectors.excess_privileged_grants()) == [grant]
    policy = AccessPolicyFactory()
    policy.entitlements.add(privileged)
    GroupMembership.objects.create(group=policy.directory_group, identity=person)
    assert not selectors.excess_privileged_grants().exists()


def test_desired_access_says_why():
    """Policy entitlements for people, plus approved requests and exceptions; NHIs too."""
    from governance.access.selectors import desired_access

    person = IdentityFactory()
    group = DirectoryGroupFactory()
    GroupMembership.objects.create(group=group, identity=person)
    by_policy = EntitlementFactory(name="Member")
    services.policy_create(actor=ACTOR, name="eng", entitlements=[by_policy], directory_group=group)
    account = AccountFactory(identity=person)
    requested = EntitlementFactory(application=account.application, name="Approver")
    services.grant_create(actor=ACTOR, account=account, entitlement=requested, origin="request")
    manual = EntitlementFactory(application=account.application, name="Manual")
    services.grant_create(actor=ACTOR, account=account, entitlement=manual, origin="manual")
    got = {(d.entitlement.name, d.reason) for d in desired_access(person)}
    assert got == {("Member", "policy"), ("Approver", "request")}
    nhi = NonHumanIdentityFactory()
    nhi_account = AccountFactory(identity=None, nhi=nhi)
    scope = EntitlementFactory(application=nhi_account.application, name="Scope")
    services.grant_create(actor=ACTOR, account=nhi_account, entitlement=scope, origin="exception")
    assert [(d.entitlement.name, d.reason) for d in desired_access(nhi)] == [("Scope", "exception")]
    person.active = False
    assert desired_access(person) == []
