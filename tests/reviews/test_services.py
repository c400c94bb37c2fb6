"""Campaign launch snapshot, decisions, revocation through the lifecycle, timeouts."""

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied  # noqa: F401
from django.utils import timezone

from governance.access.models import Grant
from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition, PermissionDenied
from governance.identities import services as directory
from governance.lifecycle.models import ProvisioningTask
from governance.reviews import services
from governance.reviews.models import Campaign, Delegation, ReviewItem
from tests.factories import (
    AccountFactory,
    ApplicationFactory,
    EntitlementFactory,
    GrantFactory,
    IdentityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    """Hannah manages Daniel and Priya; Sam is the fallback; VaultFin is manual."""
    hannah_p = IdentityFactory(user_name="hannah@x.com")
    daniel_p = IdentityFactory(user_name="daniel@x.com", manager=hannah_p)
    priya_p = IdentityFactory(user_name="priya@x.com", manager=hannah_p)
    hannah = UserFactory(username="hannah", identity=hannah_p, roles=["Reviewer"])
    daniel = UserFactory(username="daniel", identity=daniel_p, roles=["Reviewer"])
    sam = UserFactory(username="sam", roles=["Security admin"])
    vaultfin = ApplicationFactory(name="VaultFin", provisioning_mode="manual")
    approver = EntitlementFactory(application=vaultfin, name="Invoice Approver", privileged=True)
    clerk = EntitlementFactory(application=vaultfin, name="Invoice Clerk")
    grants = {
        "daniel-approver": GrantFactory(
            account=AccountFactory(application=vaultfin, identity=daniel_p, username="daniel"),
            entitlement=approver,
            origin="request",
        ),
        "priya-clerk": GrantFactory(
            account=AccountFactory(application=vaultfin, identity=priya_p, username="priya"),
            entitlement=clerk,
        ),
        "hannah-clerk": GrantFactory(
            account=AccountFactory(application=vaultfin, identity=hannah_p, username="hannah"),
            entitlement=clerk,
        ),
    }
    campaign = Campaign.objects.create(
        name="Q4 VaultFin", fallback_reviewer=sam, reviewer_strategy="manager"
    )
    campaign.applications.add(vaultfin)
    return {
        "hannah": hannah,
        "daniel": daniel,
        "sam": sam,
        "grants": grants,
        "campaign": campaign,
        "vaultfin": vaultfin,
    }


def _launch(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(actor=Actor.for_user(world["sam"]), campaign=world["campaign"])
    world["campaign"].refresh_from_db()
    return world["campaign"]


def test_launch_snapshots_population_with_hash(world, django_capture_on_commit_callbacks):
    campaign = _launch(world, django_capture_on_commit_callbacks)
    assert campaign.state == "active"
    assert campaign.population_count == 3 == campaign.launch_done == campaign.launch_total
    ids = sorted(g.pk for g in world["grants"].values())
    assert campaign.population_hash == services.population_hash(ids)
    items = {i.account_label: i for i in campaign.items.all()}
    assert items["daniel"].reviewer == world["hannah"]
    assert items["daniel"].privileged is True and items["daniel"].granted_via == "request"
    # Hannah's manager is unknown: fallback, and never herself
    assert items["hannah"].reviewer == world["sam"]
    # the snapshot does not follow later changes to the grant
    Grant.objects.filter(pk=world["grants"]["daniel-approver"].pk).update(origin="manual")
    items["daniel"].refresh_from_db()
    assert items["daniel"].granted_via == "request"
    assert AuditEvent.objects.filter(action="campaign.launched").exists()


def test_launch_twice_is_refused(world, django_capture_on_commit_callbacks):
    _launch(world, django_capture_on_commit_callbacks)
    with pytest.raises(InvalidTransition):
        services.campaign_launch(actor=Actor.for_user(world["sam"]), campaign=world["campaign"])
    services.build_population(world["campaign"].pk)  # a duplicate message does nothing
    assert world["campaign"].items.count() == 3


def test_revoke_requests_removal_and_change_of_mind(world, django_capture_on_commit_callbacks):
    campaign = _launch(world, django_capture_on_commit_callbacks)
    item = campaign.items.get(account_label="daniel")
    hannah = Actor.for_user(world["hannah"])
    with pytest.raises(DomainError, match="comment"):
        services.review_decide(actor=hannah, item=item, decision="revoke")
    item = services.review_decide(actor=hannah, item=item, decision="revoke", comment="moved")
    assert item.remediation == "requested"
    task = item.provisioning_task
    assert (task.operation, task.channel, task.state) == ("revoke", "manual", "awaiting_manual")
    item = services.review_decide(actor=hannah, item=item, decision="approve")
    task.refresh_from_db()
    assert task.state == "cancelled" and item.provisioning_task is None
    assert item.remediation == ""


def test_only_reviewer_or_delegate_decides(world, django_capture_on_commit_callbacks):
    campaign = _launch(world, django_capture_on_commit_callbacks)
    item = campaign.items.get(account_label="priya")
    colleague = UserFactory(username="colleague", roles=["Reviewer"])
    with pytest.raises(PermissionDenied):
        services.review_decide(actor=Actor.for_user(colleague), item=item, decision="approve")
    today = timezone.localdate()
    Delegation.objects.create(
        delegator=world["hannah"], delegate=colleague, starts_on=today, ends_on=today
    )
    item = services.review_decide(actor=Actor.for_user(colleague), item=item, decision="approve")
    assert item.on_behalf_of == world["hannah"] and item.decided_by == colleague


def test_nobody_decides_on_their_own_access(world, django_capture_on_commit_callbacks):
    campaign = _launch(world, django_capture_on_commit_callbacks)
    item = campaign.items.get(account_label="daniel")
    services.review_reassign(
        actor=Actor.for_user(world["sam"]), item=item, to=world["sam"], reason="rebalance"
    )
    with pytest.raises(DomainError):
        services.review_reassign(
            actor=Actor.for_user(world["sam"]), item=item, to=world["daniel"], reason="x"
        )


def test_close_applies_timeout_rules_to_the_policy(world, django_capture_on_commit_callbacks):
    campaign = _launch(world, django_capture_on_commit_callbacks)
    services.campaign_close(actor=Actor.for_user(world["sam"]), campaign=campaign)
    items = {i.account_label: i for i in campaign.items.all()}
    assert items["daniel"].decision == "revoke" and items["daniel"].decided_by_policy
    assert items["daniel"].decided_by is None
    assert items["priya"].decision == "pending"  # standard items are left open
    assert ProvisioningTask.objects.filter(operation="revoke").count() == 1
    with pytest.raises(InvalidTransition):
        services.review_decide(
            actor=Actor.for_user(world["hannah"]), item=items["priya"], decision="approve"
        )


def test_mover_with_retained_privilege_gets_micro_review(world):
    """Daniel moves; his requested privileged grant is kept and goes to his manager."""
    source = None
    person = world["grants"]["daniel-approver"].account.identity
    directory.identity_update(actor=Actor.system("scim"), identity=person, department="Sales Ops")
    review = Campaign.objects.get(kind="micro")
    item = review.items.get()
    assert item.reviewer == world["hannah"] and item.entitlement_label.endswith("Invoice Approver")
    assert review.state == "active" and source is None
    assert ReviewItem.objects.count() == 1


def test_second_stage_for_privileged_items(world, django_capture_on_commit_callbacks):
    """Managers first; the application owner then reviews privileged items they approved."""
    owner = UserFactory(username="grace", roles=["App owner"])
    world["vaultfin"].owners.add(owner)
    campaign = world["campaign"]
    campaign.second_stage_strategy = "app_owner"
    campaign.save()
    campaign = _launch(world, django_capture_on_commit_callbacks)
    hannah = Actor.for_user(world["hannah"])
    privileged = campaign.items.get(account_label="daniel")
    standard = campaign.items.get(account_label="priya")
    services.review_decide(actor=hannah, item=privileged, decision="approve")
    services.review_decide(actor=hannah, item=standard, decision="approve")
    second = campaign.items.get(stage=2)
    assert second.reviewer == owner and second.grant_id == privileged.grant_id
    services.review_decide(actor=hannah, item=privileged, decision="revoke", comment="no")
    assert not campaign.items.filter(stage=2).exists()


def test_retained_privilege_is_not_asked_about_twice(world):
    """A second mover event while the micro-review is open creates no second review."""
    person = world["grants"]["daniel-approver"].account.identity
    directory.identity_update(actor=Actor.system("scim"), identity=person, department="Sales Ops")
    directory.identity_update(actor=Actor.system("scim"), identity=person, title="Analyst")
    assert Campaign.objects.filter(kind="micro").count() == 1
