"""Launch over a large population: every grant snapshotted once, in batches of bounded cost."""

import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.access.models import Account, Entitlement, Grant
from governance.core.actor import Actor
from governance.identities.models import Identity
from governance.reviews import services
from governance.reviews.models import Campaign, ReviewItem
from tests.factories import ApplicationFactory, IdentityFactory, IdentitySourceFactory, UserFactory

pytestmark = pytest.mark.django_db

PEOPLE, ENTITLEMENTS, MANAGERS = 2_000, 10, 20
GRANTS = PEOPLE * ENTITLEMENTS


@pytest.fixture
def population(db):
    """20,000 grants (2,000 people x 10 entitlements), bulk-created straight into the tables;
    the people report to 20 managers who have portal accounts."""
    source = IdentitySourceFactory(name="scale")
    managers = [IdentityFactory(source=source, user_name=f"m{i}@x.com") for i in range(MANAGERS)]
    for i, manager in enumerate(managers):
        UserFactory(username=f"manager{i}", identity=manager)
    people = Identity.objects.bulk_create(
        [
            Identity(
                source=source,
                user_name=f"p{i:05d}@x.com",
                external_id=f"p{i}",
                manager=managers[i % MANAGERS],
            )
            for i in range(PEOPLE)
        ],
        batch_size=2000,
    )
    app = ApplicationFactory(name="Big app")
    ents = Entitlement.objects.bulk_create(
        [
            Entitlement(application=app, name=f"Role {i}", external_value=f"r{i}")
            for i in range(ENTITLEMENTS)
        ]
    )
    accounts = Account.objects.bulk_create(
        [Account(application=app, identity=p, username=p.user_name) for p in people],
        batch_size=2000,
    )
    now = timezone.now()
    Grant.objects.bulk_create(
        [Grant(account=a, entitlement=e, granted_at=now) for a in accounts for e in ents],
        batch_size=5000,
    )
    campaign = Campaign.objects.create(
        name="Everything",
        fallback_reviewer=UserFactory(username="sam"),
        reviewer_strategy="manager",
    )
    campaign.applications.add(app)
    return campaign


def _insert_rows_per_statement() -> int:
    """How many items one INSERT carries on this database (SQLite limits parameters)."""
    fields = [f for f in ReviewItem._meta.concrete_fields if not f.primary_key]
    batch = [ReviewItem()] * services.LAUNCH_BATCH
    return min(1000, connection.ops.bulk_batch_size(fields, batch))


def test_launch_of_20000_grants(population, django_capture_on_commit_callbacks):
    """All grants become items once, with the population hash, progress at 100%, and a query
    count per 5,000-item batch that does not depend on the population's size."""
    with CaptureQueriesContext(connection) as ctx:
        with django_capture_on_commit_callbacks(execute=True):
            services.campaign_launch(actor=Actor.system("tests"), campaign=population)
    campaign = Campaign.objects.get(pk=population.pk)
    assert campaign.state == "active"
    assert campaign.population_count == GRANTS == ReviewItem.objects.count()
    assert campaign.launch_done == campaign.launch_total == GRANTS
    ids = sorted(Grant.objects.values_list("pk", flat=True))
    assert campaign.population_hash == services.population_hash(ids)
    assert ReviewItem.objects.filter(reviewer__username="sam").count() == 0

    batches = math.ceil(GRANTS / services.LAUNCH_BATCH)
    inserts_per_batch = math.ceil(services.LAUNCH_BATCH / _insert_rows_per_statement())
    queries = [q["sql"] for q in ctx.captured_queries]
    item_inserts = [q for q in queries if q.startswith('INSERT INTO "reviews_reviewitem"')]
    assert len(item_inserts) <= batches * inserts_per_batch
    other = len(queries) - len(item_inserts)
    # Launch, population, audit and activation are a constant (~30); each batch adds its
    # savepoint, progress count and update, and release.
    assert other <= 35 + 4 * batches, queries[:60]
