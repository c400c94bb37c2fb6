"""Exceptions in force appear as context on review items: the right ones, loaded once per
page whatever its length."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.reviews.models import Campaign, ReviewItem
from governance.risk import services
from governance.risk.selectors import exceptions_in_force_for_items
from tests.factories import AccountFactory, EntitlementFactory, GrantFactory

pytestmark = pytest.mark.django_db
ITEMS = "admin:reviews_reviewitem_changelist"


def _items(world, campaign, entitlement, count, prefix="user"):
    items = []
    for n in range(count):
        account = AccountFactory(application=entitlement.application, username=f"{prefix}{n}")
        grant = GrantFactory(account=account, entitlement=entitlement)
        items.append(
            ReviewItem.objects.create(
                campaign=campaign,
                grant=grant,
                subject_label=f"{prefix} {n}",
                account_label=account.username,
                application=entitlement.application,
                entitlement=entitlement,
                entitlement_label=entitlement.name,
                granted_via="manual",
                reviewer=world.sam,
            )
        )
    return items


@pytest.fixture
def campaign(world):
    return Campaign.objects.create(
        name="Q4", state=Campaign.State.ACTIVE, fallback_reviewer=world.sara
    )


def test_exceptions_in_force_match_application_and_narrower_scope(world, campaign):
    other_role = EntitlementFactory(application=world.ledgerly, name="Viewer")
    admin_item, viewer_item = (
        _items(world, campaign, world.ledgerly_role, 1, "a")[0],
        _items(world, campaign, other_role, 1, "v")[0],
    )
    github_item = _items(world, campaign, world.github_role, 1, "g")[0]
    app_wide = world.approved(title="App-wide")
    narrowed = world.approved(title="Admins only", entitlement=world.ledgerly_role)
    by_account = world.approved(title="One account", account=admin_item.grant.account)
    world.draft(title="Only a draft")
    ended = world.approved(title="Revoked")
    services.exception_revoke(actor=world.actor(world.sam), exception=ended, comment="x")
    found = exceptions_in_force_for_items([admin_item, viewer_item, github_item])
    assert {e.pk for e in found[admin_item.pk]} == {app_wide.pk, narrowed.pk, by_account.pk}
    assert [e.pk for e in found[viewer_item.pk]] == [app_wide.pk]
    assert found[github_item.pk] == []


def test_review_list_shows_exceptions_in_force_with_a_fixed_query_count(world, campaign, client):
    _items(world, campaign, world.ledgerly_role, 3, "first")
    world.approved(
        title="Role changes handled by monthly manual reconciliation",
        expires_on=world.today + timedelta(days=60),
    )
    world.approved(title="One account", account=AccountFactory(application=world.ledgerly))
    client.force_login(world.sam)
    with CaptureQueriesContext(connection) as small:
        page = client.get(reverse(ITEMS))
    assert page.status_code == 200
    assert b"Role changes handled by monthly manual reconciliation" in page.content
    _items(world, campaign, world.ledgerly_role, 27, "more")
    with CaptureQueriesContext(connection) as big:
        assert client.get(reverse(ITEMS)).status_code == 200
    assert len(big.captured_queries) == len(small.captured_queries)
    item = ReviewItem.objects.first()
    detail = client.get(reverse("admin:reviews_reviewitem_change", args=[item.pk]))
    assert b"Exceptions in force" in detail.content
