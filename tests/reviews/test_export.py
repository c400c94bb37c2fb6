"""Evidence export of a campaign (CSV and JSON): contents match the database, the population
hash can be recomputed from the export, every download is audited, and only auditors and
security admins may export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.lifecycle import services as lifecycle
from governance.reviews import exports, services
from governance.reviews.exports import CAMPAIGN_FIELDS, ITEM_FIELDS
from governance.reviews.models import Delegation, ReviewItem
from tests.reviews.test_admin import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(django_capture_on_commit_callbacks):
    """Launched; Hannah revokes Daniel (the removal is executed with a ticket, not yet
    verified), Kim approves Omar; Priya's item and Hannah's own stay open."""
    world = World()
    world.launch(django_capture_on_commit_callbacks)
    hannah = Actor.for_user(world.hannah)
    daniel = services.review_decide(
        actor=hannah, item=world.item("daniel"), decision="revoke", comment="moved, see HR-88"
    )
    lifecycle.task_mark_executed(
        actor=Actor.for_user(world.sam), task=daniel.provisioning_task, reference="CHG-4411"
    )
    services.refresh_remediation()
    services.review_decide(
        actor=Actor.for_user(world.kim), item=world.item("omar"), decision="approve"
    )
    return world


def _download(client, user, campaign, fmt):
    client.force_login(user)
    url = reverse(f"admin:reviews_campaign_export_{fmt}", args=[campaign.pk])
    return client.get(url)


def _parse_csv(body: str) -> tuple[dict, list[dict]]:
    head, _, table = body.partition("\r\n\r\n")
    header = dict(csv.reader(io.StringIO(head)))
    return header, list(csv.DictReader(io.StringIO(table)))


def _expected(item: ReviewItem) -> dict:
    task = item.provisioning_task
    return {
        "item_id": item.pk,
        "grant_id": item.grant_id,
        "subject": item.subject_label,
        "account": item.account_label,
        "application": "VaultFin",
        "entitlement": item.entitlement.name,
        "granted_via": item.granted_via,
        "privileged": item.privileged,
        "person_inactive": item.person_inactive,
        "reviewer": item.reviewer.username,
        "decided_by": item.decided_by.username if item.decided_by else None,
        "on_behalf_of": item.on_behalf_of.username if item.on_behalf_of else None,
        "decision": item.decision,
        "comment": item.comment,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
        "bulk": item.bulk,
        "remediation": item.remediation,
        "task_id": task.pk if task else None,
        "task_state": task.state if task else None,
        "task_evidence_reference": task.evidence_reference if task else None,
    }


def test_json_export_matches_the_database(world, client):
    campaign = world.campaign
    response = _download(client, world.alex, campaign, "json")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="campaign-{campaign.pk}-evidence.json"'
    )
    document = json.loads(b"".join(response.streaming_content))
    head = document["campaign"]
    assert set(head) == set(CAMPAIGN_FIELDS)
    assert (head["campaign_id"], head["name"], head["state"]) == (
        campaign.pk,
        "Q4 VaultFin",
        "active",
    )
    assert head["population_count"] == campaign.population_count == len(document["items"]) == 4
    assert head["population_hash"] == campaign.population_hash
    assert head["launched_at"] == campaign.launched_at.isoformat()
    assert head["scope"]["applications"] == ["VaultFin"]
    # the auditor can recompute the population hash from the export itself
    grant_ids = sorted(row["grant_id"] for row in document["items"])
    assert services.population_hash(grant_ids) == campaign.population_hash

    by_id = {row["item_id"]: row for row in document["items"]}
    items = campaign.items.select_related("provisioning_task", "entitlement")
    for item in items:
        row = by_id[item.pk]
        assert set(row) == set(ITEM_FIELDS)
        assert {k: row[k] for k in _expected(item)} == _expected(item)
    daniel = by_id[world.item("daniel").pk]
    assert (daniel["decision"], daniel["remediation"], daniel["task_state"]) == (
        "revoke",
        "executed",
        "executed",
    )
    assert daniel["task_evidence_reference"] == "CHG-4411" and daniel["task_executed_at"]
    assert daniel["task_verified_at"] is None
    assert (daniel["privileged"], daniel["risk"], daniel["granted_via"]) == (
        True,
        "high",
        "request",
    )
    hannah_own = by_id[world.item("hannah").pk]
    assert (hannah_own["reviewer"], hannah_own["decision"]) == ("sam", "pending")
    # the streamed document is the one export_json builds
    assert document["items"] == exports.export_json(campaign)["items"]


def test_csv_export_matches_the_database(world, client):
    campaign = world.campaign
    response = _download(client, world.sam, campaign, "csv")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="campaign-{campaign.pk}-evidence.csv"'
    )
    header, rows = _parse_csv(b"".join(response.streaming_content).decode())
    assert list(header) == list(CAMPAIGN_FIELDS)
    assert header["population_count"] == "4" and header["population_hash"] == (
        campaign.population_hash
    )
    assert json.loads(header["scope"])["applications"] == ["VaultFin"]
    assert len(rows) == campaign.items.count() == 4
    assert list(rows[0]) == list(ITEM_FIELDS)
    assert services.population_hash(sorted(int(r["grant_id"]) for r in rows)) == (
        campaign.population_hash
    )
    for row in rows:
        item = ReviewItem.objects.select_related("provisioning_task", "entitlement").get(
            pk=row["item_id"]
        )
        for key, value in _expected(item).items():
            if value is None:
                value = ""
            elif isinstance(value, bool):
                value = "true" if value else "false"
            assert row[key] == str(value), key
    omar = next(r for r in rows if r["account"] == "omar")
    assert (omar["decided_by"], omar["person_inactive"], omar["comment"]) == ("kim", "true", "")


def test_delegated_decision_is_exported_with_both_people(world, client):
    today = timezone.localdate()
    Delegation.objects.create(
        delegator=world.hannah, delegate=world.kim, starts_on=today, ends_on=today
    )
    services.review_decide(
        actor=Actor.for_user(world.kim), item=world.item("priya"), decision="approve"
    )
    document = json.loads(
        b"".join(_download(client, world.alex, world.campaign, "json").streaming_content)
    )
    priya = next(r for r in document["items"] if r["account"] == "priya")
    assert (priya["reviewer"], priya["decided_by"], priya["on_behalf_of"]) == (
        "hannah",
        "kim",
        "hannah",
    )


def test_every_export_is_audited(world, client):
    _download(client, world.alex, world.campaign, "csv")
    _download(client, world.alex, world.campaign, "json")
    events = AuditEvent.objects.filter(action="campaign.exported").order_by("pk")
    assert [e.after["format"] for e in events] == ["csv", "json"]
    assert {e.actor_label for e in events} == {"user:alex"}
    assert events[0].after["population_hash"] == world.campaign.population_hash
    assert events[0].after["items"] == 4


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_only_auditors_and_security_admins_export(world, client, fmt):
    """The reviewer (owner of items), a colleague reviewer and an outsider cannot export."""
    for user in (world.hannah, world.kim, world.outsider):
        assert _download(client, user, world.campaign, fmt).status_code == 403, user
    assert not AuditEvent.objects.filter(action="campaign.exported").exists()
    draft = world.new_campaign("Draft")
    assert _download(client, world.alex, draft, fmt).status_code == 404


def test_export_streams_without_loading_all_items(world, django_assert_max_num_queries):
    """The CSV rows come from one iterated query (plus the header's scope queries)."""
    with django_assert_max_num_queries(4):
        lines = list(exports.export_csv(world.campaign))
    assert len(lines) == len(CAMPAIGN_FIELDS) + 2 + 4
