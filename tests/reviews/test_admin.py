"""Access reviews through the admin: "My reviews" seen by the reviewer (owner), a colleague
reviewer and an outsider (staff, no role); bulk and single decisions; delegation; campaign
launch, progress, close, statistics and rubber-stamp signals."""

from __future__ import annotations

from datetime import timedelta
from statistics import median

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.lifecycle.models import ProvisioningTask
from governance.portal.models import Role
from governance.reviews import services
from governance.reviews.models import Campaign, Delegation, ReviewItem
from governance.reviews.selectors import campaign_statistics, rubber_stamp_signals
from tests.factories import (
    AccountFactory,
    ApplicationFactory,
    EntitlementFactory,
    GrantFactory,
    IdentityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
ITEMS = "admin:reviews_reviewitem_changelist"
CAMPAIGNS = "admin:reviews_campaign_changelist"
DELEGATIONS = "admin:reviews_delegation_changelist"


class World:
    """Hannah manages Daniel and Priya, Kim (her colleague) manages Omar; Sam is the security
    admin and fallback reviewer, Alex the auditor; the outsider is staff with no role."""

    def __init__(self):
        self.hannah_p = IdentityFactory(user_name="hannah@x.com", display_name="Hannah Berg")
        self.kim_p = IdentityFactory(user_name="kim@x.com", display_name="Kim Lee")
        self.daniel_p = IdentityFactory(
            user_name="daniel@x.com", display_name="Daniel Ruiz", manager=self.hannah_p
        )
        self.priya_p = IdentityFactory(
            user_name="priya@x.com", display_name="Priya Shah", manager=self.hannah_p
        )
        self.omar_p = IdentityFactory(
            user_name="omar@x.com", display_name="Omar Haddad", manager=self.kim_p, active=False
        )
        self.hannah = UserFactory(username="hannah", identity=self.hannah_p, roles=[Role.REVIEWER])
        self.kim = UserFactory(username="kim", identity=self.kim_p, roles=[Role.REVIEWER])
        self.sam = UserFactory(username="sam", roles=[Role.SECURITY_ADMIN])
        self.alex = UserFactory(username="alex", roles=[Role.AUDITOR])
        self.outsider = UserFactory(username="outsider")
        self.vaultfin = ApplicationFactory(name="VaultFin", provisioning_mode="manual")
        self.approver = EntitlementFactory(
            application=self.vaultfin, name="Invoice Approver", privileged=True, risk="high"
        )
        self.clerk = EntitlementFactory(application=self.vaultfin, name="Invoice Clerk")
        self.grants = {
            "daniel": self.give(self.daniel_p, self.approver, origin="request"),
            "priya": self.give(self.priya_p, self.clerk),
            "hannah": self.give(self.hannah_p, self.clerk),
            "omar": self.give(self.omar_p, self.clerk),
        }
        self.campaign = self.new_campaign("Q4 VaultFin")

    def give(self, person, entitlement, origin="manual"):
        account = AccountFactory(
            application=entitlement.application, identity=person, username=person.user_name[:-6]
        )
        return GrantFactory(account=account, entitlement=entitlement, origin=origin)

    def new_campaign(self, name, **fields):
        fields.setdefault("reviewer_strategy", "manager")
        campaign = Campaign.objects.create(name=name, fallback_reviewer=self.sam, **fields)
        campaign.applications.add(self.vaultfin)
        return campaign

    def launch(self, capture, campaign=None):
        campaign = campaign or self.campaign
        with capture(execute=True):
            services.campaign_launch(actor=Actor.for_user(self.sam), campaign=campaign)
        campaign.refresh_from_db()
        return campaign

    def item(self, account, campaign=None) -> ReviewItem:
        return (campaign or self.campaign).items.get(account_label=account)


@pytest.fixture
def world():
    return World()


@pytest.fixture
def launched(world, django_capture_on_commit_callbacks):
    world.launch(django_capture_on_commit_callbacks)
    return world


def _as(client, user):
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _shown(response) -> set[str]:
    return {item.account_label for item in response.context["cl"].result_list}


def _item_url(item):
    return reverse("admin:reviews_reviewitem_change", args=[item.pk])


def _campaign_url(campaign, name="change"):
    return reverse(f"admin:reviews_campaign_{name}", args=[campaign.pk])


def _action(client, action, items, **data):
    return client.post(
        reverse(ITEMS),
        {"action": action, "_selected_action": [i.pk for i in items], **data},
    )


# ------------------------------------------------------------------------ who sees which item


def test_reviewer_signs_in_and_sees_only_her_items(launched, client):
    page = _as(client, launched.hannah).get(reverse(ITEMS))
    assert page.status_code == 200
    assert _shown(page) == {"daniel", "priya"}
    assert page.context["title"] == "My reviews"
    assert b"2</strong> items to decide" in page.content
    assert client.get(_item_url(launched.item("daniel"))).status_code == 200


def test_reviewer_with_nothing_assigned_sees_a_helpful_empty_state(launched, client):
    rita = UserFactory(username="rita", roles=[Role.REVIEWER])
    page = _as(client, rita).get(reverse(ITEMS))
    assert page.status_code == 200
    assert b"Nothing to review: no items are assigned to you." in page.content


def test_colleague_cannot_see_or_decide_another_reviewers_items(launched, client):
    daniel = launched.item("daniel")
    kim = _as(client, launched.kim)
    assert _shown(kim.get(reverse(ITEMS))) == {"omar"}
    assert kim.get(_item_url(daniel)).status_code == 404
    assert kim.post(_item_url(daniel), {"decision": "approve"}).status_code == 404
    history = reverse("admin:reviews_reviewitem_history", args=[daniel.pk])
    assert kim.get(history).status_code == 404
    # an action POST with someone else's ids changes nothing
    for action in ("approve_selected", "revoke_selected"):
        _action(kim, action, [daniel], post="yes", comment="forged")
    daniel.refresh_from_db()
    assert daniel.decision == "pending" and daniel.decided_by is None
    assert not AuditEvent.objects.filter(action="review_item.decided").exists()


def test_outsider_without_a_role_is_refused_everywhere(launched, client):
    daniel = launched.item("daniel")
    campaign = launched.campaign
    outsider = _as(client, launched.outsider)
    for url in (
        reverse(ITEMS),
        _item_url(daniel),
        reverse(CAMPAIGNS),
        _campaign_url(campaign),
        _campaign_url(campaign, "progress"),
        _campaign_url(campaign, "launch"),
        _campaign_url(campaign, "close"),
        _campaign_url(campaign, "export_csv"),
        _campaign_url(campaign, "export_json"),
        reverse(DELEGATIONS),
        reverse("admin:reviews_delegation_add"),
    ):
        assert outsider.get(url).status_code == 403, url
    assert outsider.post(_item_url(daniel), {"decision": "approve"}).status_code == 403
    assert _action(outsider, "approve_selected", [daniel], post="yes").status_code == 403
    daniel.refresh_from_db()
    assert daniel.decision == "pending"


def test_security_admin_and_auditor_see_every_item_with_an_assigned_to_me_filter(launched, client):
    for user in (launched.sam, launched.alex):
        page = _as(client, user).get(reverse(ITEMS))
        assert _shown(page) == {"daniel", "priya", "hannah", "omar"}
        assert b"Assigned to me" in page.content
    mine = _as(client, launched.sam).get(reverse(ITEMS) + "?assigned=me")
    assert _shown(mine) == {"hannah"}
    assert mine.context["title"] == "My reviews"


def test_auditor_reads_an_item_but_cannot_decide_it(launched, client):
    daniel = launched.item("daniel")
    alex = _as(client, launched.alex)
    page = alex.get(_item_url(daniel))
    assert page.status_code == 200 and b"Record decision" not in page.content
    assert alex.post(_item_url(daniel), {"decision": "approve"}).status_code == 403
    assert _action(alex, "approve_selected", [daniel], post="yes").status_code in (200, 302)
    daniel.refresh_from_db()
    assert daniel.decision == "pending"


def test_filters_and_search(launched, client):
    sam = _as(client, launched.sam)
    assert _shown(sam.get(reverse(ITEMS) + "?privileged__exact=1")) == {"daniel"}
    assert _shown(sam.get(reverse(ITEMS) + "?inactive=yes")) == {"omar"}
    assert _shown(sam.get(reverse(ITEMS) + "?policy=mismatch")) == {
        "daniel",
        "priya",
        "hannah",
        "omar",
    }
    assert _shown(sam.get(reverse(ITEMS) + "?q=Priya")) == {"priya"}
    assert _shown(sam.get(reverse(ITEMS) + "?decided=yes")) == set()
    page = sam.get(reverse(ITEMS) + "?q=nobody-matches")
    assert b"No items match this search or these filters." in page.content


# ------------------------------------------------------------------------------ decisions


def test_bulk_approve_through_the_action_and_its_confirmation_page(launched, client):
    items = [launched.item("daniel"), launched.item("priya")]
    hannah = _as(client, launched.hannah)
    confirm = _action(hannah, "approve_selected", items)
    assert confirm.status_code == 200
    assert b"Approve 2 items" in confirm.content and b"Daniel Ruiz" in confirm.content
    assert not ReviewItem.objects.exclude(decision="pending").exists()
    done = _action(hannah, "approve_selected", items, post="yes")
    assert done.status_code == 302
    assert "Approved 2 items." in _messages(done)
    for item in items:
        item.refresh_from_db()
        assert (item.decision, item.decided_by, item.bulk) == ("approve", launched.hannah, True)
        assert item.on_behalf_of is None and item.decided_at is not None
    assert AuditEvent.objects.filter(action="review_item.decided").count() == 2


def test_single_item_in_the_action_is_not_a_bulk_decision(launched, client):
    daniel = launched.item("daniel")
    _action(_as(client, launched.hannah), "approve_selected", [daniel], post="yes")
    daniel.refresh_from_db()
    assert daniel.decision == "approve" and daniel.bulk is False


def test_revoke_needs_a_comment_when_the_campaign_requires_it(launched, client):
    daniel = launched.item("daniel")
    hannah = _as(client, launched.hannah)
    refused = hannah.post(_item_url(daniel), {"decision": "revoke", "comment": "  "})
    assert refused.status_code == 200
    assert b"This campaign requires a comment to revoke." in refused.content
    refused = _action(hannah, "revoke_selected", [daniel], post="yes", comment="")
    assert refused.status_code == 200
    assert b"This campaign requires a comment to revoke." in refused.content
    daniel.refresh_from_db()
    assert daniel.decision == "pending"
    assert not ProvisioningTask.objects.filter(operation="revoke").exists()

    done = hannah.post(_item_url(daniel), {"decision": "revoke", "comment": "moved to sales"})
    assert done.status_code == 302 and done["Location"] == reverse(ITEMS)
    daniel.refresh_from_db()
    assert (daniel.decision, daniel.comment, daniel.bulk) == ("revoke", "moved to sales", False)
    assert daniel.remediation == "requested"
    assert daniel.provisioning_task.state == "awaiting_manual"
    page = hannah.get(_item_url(daniel))
    assert b"Requested" in page.content and b"Counts as remediated only once verified" in (
        page.content
    )


def test_bulk_revoke_with_a_comment_requests_each_removal(launched, client):
    items = [launched.item("daniel"), launched.item("priya")]
    hannah = _as(client, launched.hannah)
    page = _action(hannah, "revoke_selected", items)
    assert b"Required: the campaign asks for a comment to revoke." in page.content
    done = _action(hannah, "revoke_selected", items, post="yes", comment="left the team")
    assert "Revoked 2 items." in _messages(done)
    assert ProvisioningTask.objects.filter(operation="revoke").count() == 2
    assert set(
        ReviewItem.objects.filter(decision="revoke").values_list("remediation", flat=True)
    ) == {"requested"}


def test_change_of_mind_until_the_removal_is_carried_out(launched, client):
    daniel = launched.item("daniel")
    hannah = _as(client, launched.hannah)
    hannah.post(_item_url(daniel), {"decision": "revoke", "comment": "not needed"})
    hannah.post(_item_url(daniel), {"decision": "approve", "comment": "still approves invoices"})
    daniel.refresh_from_db()
    assert daniel.decision == "approve" and daniel.provisioning_task is None
    assert ProvisioningTask.objects.get(operation="revoke").state == "cancelled"


def test_decisions_of_others_are_reported_as_messages_never_a_500(launched, client):
    """Sam sees every item; the service refuses those not assigned to him, with counts."""
    everything = list(launched.campaign.items.all())
    response = _action(_as(client, launched.sam), "approve_selected", everything, post="yes")
    assert response.status_code == 302
    shown = _messages(response)
    assert "Approved 1 item." in shown
    assert "3 items were not changed: This review item is not assigned to you (3 items)." in shown
    assert ReviewItem.objects.filter(decision="approve").get().account_label == "hannah"


def test_closed_campaign_items_are_read_only(launched, client):
    daniel = launched.item("daniel")
    services.campaign_close(actor=Actor.for_user(launched.sam), campaign=launched.campaign)
    hannah = _as(client, launched.hannah)
    page = hannah.get(_item_url(daniel))
    assert b"The campaign is closed" in page.content and b"Record decision" not in page.content
    assert hannah.post(_item_url(daniel), {"decision": "approve"}).status_code == 403
    response = _action(hannah, "approve_selected", [launched.item("priya")], post="yes")
    assert "1 item was not changed: The campaign is not active; decisions are closed (1 item)." in (
        _messages(response)
    )


def test_reassign_with_a_reason(launched, client):
    priya = launched.item("priya")
    hannah = _as(client, launched.hannah)
    page = _action(hannah, "reassign_selected", [priya])
    assert page.status_code == 200 and b"New reviewer" in page.content
    refused = _action(hannah, "reassign_selected", [priya], post="yes", to=launched.kim.pk)
    assert b"This field is required." in refused.content
    done = _action(
        hannah, "reassign_selected", [priya], post="yes", to=launched.kim.pk, reason="Kim knows"
    )
    assert "Reassigned 1 item." in _messages(done)
    priya.refresh_from_db()
    assert priya.reviewer == launched.kim and "Kim knows" in priya.routed_because
    assert _shown(hannah.get(reverse(ITEMS))) == {"daniel"}


# ------------------------------------------------------------------------ self-review routing


def test_self_review_is_routed_to_the_fallback_and_never_listed(
    world, client, django_capture_on_commit_callbacks
):
    """Hannah is the named reviewer: the item about her own access goes to the fallback."""
    named = world.new_campaign("Named", reviewer_strategy="named", named_reviewer=world.hannah)
    world.launch(django_capture_on_commit_callbacks, named)
    own = world.item("hannah", named)
    assert own.reviewer == world.sam and own.routed_because.startswith("self-review")
    hannah = _as(client, world.hannah)
    assert _shown(hannah.get(reverse(ITEMS))) == {"daniel", "priya", "omar"}
    # even if such an item reached her (a fallback who is the subject), it stays hidden
    ReviewItem.objects.filter(pk=own.pk).update(reviewer=world.hannah)
    assert "hannah" not in _shown(hannah.get(reverse(ITEMS)))
    assert hannah.get(_item_url(own)).status_code == 404
    _action(hannah, "approve_selected", [own], post="yes")
    own.refresh_from_db()
    assert own.decision == "pending"


# ------------------------------------------------------------------------------ delegation


def _delegate(client, user, **data):
    today = timezone.localdate()
    form = {"starts_on": today.isoformat(), "ends_on": (today + timedelta(days=7)).isoformat()}
    form.update(data)
    return _as(client, user).post(reverse("admin:reviews_delegation_add"), form)


def test_delegate_sees_and_decides_recorded_on_behalf_of(launched, client):
    response = _delegate(client, launched.hannah, delegate=launched.kim.pk, reason="holiday")
    assert response.status_code == 302
    delegation = Delegation.objects.get()
    assert (delegation.delegator, delegation.delegate) == (launched.hannah, launched.kim)
    event = AuditEvent.objects.get(action="delegation.created")
    assert event.actor_label == "user:hannah" and event.after["delegate"] == "kim"

    kim = _as(client, launched.kim)
    page = kim.get(reverse(ITEMS))
    assert _shown(page) == {"daniel", "priya", "omar"}
    assert b"You act as a delegate today for" in page.content
    daniel = launched.item("daniel")
    done = kim.post(_item_url(daniel), {"decision": "approve", "comment": "confirmed"})
    assert done.status_code == 302
    daniel.refresh_from_db()
    assert (daniel.decided_by, daniel.on_behalf_of) == (launched.kim, launched.hannah)
    page = _as(client, launched.sam).get(_item_url(daniel))
    assert b"kim, as delegate of hannah" in page.content


def test_a_delegation_that_has_not_started_gives_nothing(launched, client):
    tomorrow = timezone.localdate() + timedelta(days=1)
    _delegate(client, launched.hannah, delegate=launched.kim.pk, starts_on=tomorrow.isoformat())
    assert Delegation.objects.count() == 1
    kim = _as(client, launched.kim)
    assert _shown(kim.get(reverse(ITEMS))) == {"omar"}
    assert kim.get(_item_url(launched.item("daniel"))).status_code == 404


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param({"delegate": "self"}, b"Select a valid choice", id="to-self"),
        pytest.param(
            {"ends_on": "2000-01-01", "starts_on": "1999-12-01"},
            b"The last day is in the past.",
            id="in-the-past",
        ),
        pytest.param(
            {"starts_on": "2999-01-10", "ends_on": "2999-01-01"},
            b"The last day must be on or after the first day.",
            id="dates-reversed",
        ),
    ],
)
def test_delegation_is_validated(launched, client, data, error):
    data = {"delegate": launched.kim.pk, **data}
    if data["delegate"] == "self":
        data["delegate"] = launched.hannah.pk
    response = _delegate(client, launched.hannah, **data)
    assert response.status_code == 200 and error in response.content
    assert not Delegation.objects.exists()


def test_reviewer_delegates_only_her_own_reviews(launched, client):
    """A delegator in the form is ignored for a reviewer: the delegation is always hers."""
    _delegate(client, launched.kim, delegate=launched.sam.pk, delegator=launched.hannah.pk)
    assert Delegation.objects.get().delegator == launched.kim
    hannah = _as(client, launched.hannah)
    assert hannah.get(reverse(DELEGATIONS)).context["cl"].result_count == 0
    security = _delegate(
        client, launched.sam, delegator=launched.hannah.pk, delegate=launched.kim.pk
    )
    assert security.status_code == 302
    assert Delegation.objects.filter(delegator=launched.hannah).exists()


# ------------------------------------------------------------------------------ campaigns


def test_security_admin_creates_a_draft_campaign(world, client):
    sam = _as(client, world.sam)
    form = {
        "name": "Privileged access Q1",
        "description": "",
        "applications": [world.vaultfin.pk],
        "privileged_only": "on",
        "include_people": "on",
        "departments": "Finance, Sales",
        "reviewer_strategy": "named",
        "fallback_reviewer": world.sam.pk,
        "second_stage_strategy": "",
        "reminder_every_days": 7,
        "timeout_action_privileged": "revoke",
        "timeout_action_standard": "leave_open",
        "comment_required_on_revoke": "on",
        "recurrence": "quarterly",
    }
    refused = sam.post(reverse("admin:reviews_campaign_add"), form)
    assert refused.status_code == 200
    assert b"Name the reviewer for the named-reviewer strategy." in refused.content
    form["named_reviewer"] = world.hannah.pk
    assert sam.post(reverse("admin:reviews_campaign_add"), form).status_code == 302
    campaign = Campaign.objects.get(name="Privileged access Q1")
    assert campaign.state == "draft" and campaign.created_by == world.sam
    assert campaign.departments == ["Finance", "Sales"]
    assert AuditEvent.objects.filter(action="campaign.created", target_id=str(campaign.pk))


def test_reviewer_and_auditor_cannot_launch_or_close(world, client):
    campaign = world.campaign
    assert _as(client, world.hannah).get(reverse(CAMPAIGNS)).status_code == 403
    alex = _as(client, world.alex)
    assert alex.get(_campaign_url(campaign)).status_code == 200
    assert alex.get(_campaign_url(campaign, "launch")).status_code == 403
    assert alex.post(_campaign_url(campaign, "launch")).status_code == 403
    assert alex.post(_campaign_url(campaign, "close")).status_code == 403
    campaign.refresh_from_db()
    assert campaign.state == "draft"


def test_launch_through_the_admin_with_progress(world, client, django_capture_on_commit_callbacks):
    sam = _as(client, world.sam)
    campaign = world.campaign
    confirm = sam.get(_campaign_url(campaign, "launch"))
    assert confirm.status_code == 200
    assert confirm.context["population_count"] == 4
    assert b'<strong id="rv-population">4</strong>' in confirm.content
    # the snapshot has not run yet: the page shows the progress bar, the endpoint its numbers
    with django_capture_on_commit_callbacks(execute=False) as pending:
        assert sam.post(_campaign_url(campaign, "launch")).status_code == 302
    assert len(pending) == 1
    progress = sam.get(_campaign_url(campaign, "progress")).json()
    assert progress == {"state": "launching", "launch_done": 0, "launch_total": 4, "percent": 0}
    page = sam.get(_campaign_url(campaign))
    assert b'<progress id="rv-launch-bar" max="4" value="0">' in page.content
    assert b"0 of 4 grants (0%)" in page.content
    # Celery runs eagerly in tests
    pending[0]()
    progress = sam.get(_campaign_url(campaign, "progress")).json()
    assert progress == {"state": "active", "launch_done": 4, "launch_total": 4, "percent": 100}
    campaign.refresh_from_db()
    assert campaign.items.count() == campaign.population_count == 4
    page = sam.get(_campaign_url(campaign))
    assert b"rv-launch-bar" not in page.content and campaign.population_hash.encode() in (
        page.content
    )
    # configuration is frozen once launched
    assert b'name="_save"' not in page.content
    assert sam.post(_campaign_url(campaign), {"name": "renamed"}).status_code == 403
    again = sam.post(_campaign_url(campaign, "launch"))
    assert "only a draft can be launched" in " ".join(_messages(again))


def test_close_through_the_admin_applies_timeout_actions(launched, client):
    sam = _as(client, launched.sam)
    campaign = launched.campaign
    confirm = sam.get(_campaign_url(campaign, "close"))
    assert confirm.status_code == 200
    assert confirm.context["pending_total"] == 4 and confirm.context["revocations"] == 1
    assert b"1</strong> removal will be requested" in confirm.content
    assert sam.post(_campaign_url(campaign, "close")).status_code == 302
    campaign.refresh_from_db()
    assert campaign.state == "closed"
    daniel = launched.item("daniel")
    assert daniel.decision == "revoke" and daniel.decided_by_policy
    assert launched.item("priya").decision == "pending"


def test_statistics_and_rubber_stamp_signals_match_hand_computed_values(launched, client):
    """Hannah bulk-approves both her items (one privileged, no comment); Kim revokes Omar
    (inactive) with a comment; Sam approves Hannah's access alone."""
    hannah, kim, sam = (Actor.for_user(u) for u in (launched.hannah, launched.kim, launched.sam))
    for name in ("daniel", "priya"):
        services.review_decide(
            actor=hannah, item=launched.item(name), decision="approve", bulk=True
        )
    services.review_decide(actor=kim, item=launched.item("omar"), decision="revoke", comment="gone")
    services.review_decide(actor=sam, item=launched.item("hannah"), decision="approve")

    page = _as(client, launched.alex).get(_campaign_url(launched.campaign))
    assert page.status_code == 200
    stats = page.context["stats"]
    assert (stats.total, stats.pending, stats.approved, stats.revoked) == (4, 0, 3, 1)
    assert (stats.percent_decided, stats.remediation_requested, stats.overdue) == (100.0, 1, 0)
    signals = {s.username: s for s in page.context["signals"]}
    assert set(signals) == {"hannah", "kim", "sam"}
    h = signals["hannah"]
    assert (h.decisions, h.approvals, h.bulk_approvals, h.bulk_share) == (2, 2, 2, 100.0)
    assert (h.privileged_approvals_without_comment, h.inactive_approvals, h.flagged) == (
        1,
        0,
        True,
    )
    seconds = sorted(
        ReviewItem.objects.filter(decided_by=launched.hannah).values_list(
            "seconds_to_decide", flat=True
        )
    )
    assert h.median_seconds == round(median(seconds), 1)
    k = signals["kim"]
    assert (k.decisions, k.revocations, k.approvals, k.bulk_share, k.flagged) == (
        1,
        1,
        0,
        0.0,
        False,
    )
    assert signals["sam"].bulk_share == 0.0 and not signals["sam"].flagged
    content = page.content.decode()
    assert '<strong id="rv-percent-decided">100.0%</strong>' in content
    assert 'data-reviewer="hannah"' in content
    assert 'data-signal="bulk">2 (100.0%)</td>' in content
    assert 'data-signal="privileged_no_comment"><strong>1</strong>' in content
    # the selectors agree with the page
    assert campaign_statistics(launched.campaign) == stats
    assert rubber_stamp_signals(launched.campaign) == page.context["signals"]


def test_inactive_person_approval_is_a_signal(launched):
    kim = Actor.for_user(launched.kim)
    services.review_decide(actor=kim, item=launched.item("omar"), decision="approve")
    (signal,) = rubber_stamp_signals(launched.campaign)
    assert (signal.username, signal.inactive_approvals, signal.flagged) == ("kim", 1, True)


def test_campaign_list_shows_state_population_and_progress(launched, client):
    draft = launched.new_campaign("Next quarter")
    page = _as(client, launched.sam).get(reverse(CAMPAIGNS))
    assert page.status_code == 200
    content = page.content.decode()
    assert "rv-state-active" in content and "rv-state-draft" in content
    assert "0% (0 of 4)" in content and "Not launched" in content
    assert draft.name in content


# ------------------------------------------------------------------------------ query counts


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _more_people(world, count, start):
    for n in range(start, start + count):
        person = IdentityFactory(user_name=f"p{n}@x.com", manager=world.hannah_p)
        world.give(person, world.clerk if n % 2 else world.approver)


@pytest.mark.parametrize("user", ["hannah", "sam"])
def test_my_reviews_does_not_query_per_row(
    world, client, user, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    """5 items of Hannah's, then 55: the list (and the campaign page) cost the same."""
    _more_people(world, 3, 0)
    small = world.launch(django_capture_on_commit_callbacks)
    viewer = _as(client, getattr(world, user))
    assert small.items.filter(reviewer=world.hannah).count() == 5
    few = {"list": _queries(viewer, reverse(ITEMS))}
    if user == "sam":
        few["campaign"] = _queries(viewer, _campaign_url(small))
    _more_people(world, 50, 100)
    big = world.new_campaign("Bigger")
    world.launch(django_capture_on_commit_callbacks, big)
    assert big.items.filter(reviewer=world.hannah).count() == 55
    with django_assert_max_num_queries(few["list"]):
        viewer.get(reverse(ITEMS) + f"?campaign__id__exact={big.pk}")
    with django_assert_max_num_queries(few["list"]):
        viewer.get(reverse(ITEMS))
    if user == "sam":
        with django_assert_max_num_queries(few["campaign"]):
            viewer.get(_campaign_url(big))
