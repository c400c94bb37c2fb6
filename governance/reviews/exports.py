"""Evidence export of a campaign, as CSV and JSON.

What auditors test (SOX ITGC / SOC 2 CC6.2-6.3): the population as it was at launch (count
and SHA-256 hash of the grant ids, recomputable from the ``grant_id`` column), a named
reviewer per line, who decided and on whose behalf, when, with which comment, and the proof
that each revocation was carried out and verified. Both formats are produced from the same
rows; CSV is streamed so a campaign of hundreds of thousands of items never sits in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.reviews.models import Campaign, ReviewItem

CHUNK = 2000

CAMPAIGN_FIELDS = (
    "campaign_id",
    "name",
    "kind",
    "state",
    "launched_at",
    "closed_at",
    "due_at",
    "population_count",
    "population_hash",
    "population_hash_algorithm",
    "reviewer_strategy",
    "fallback_reviewer",
    "scope",
    "exported_at",
)

ITEM_FIELDS = (
    "item_id",
    "stage",
    "grant_id",
    "subject",
    "account",
    "application",
    "entitlement",
    "granted_via",
    "policy_justified",
    "privileged",
    "risk",
    "person_inactive",
    "last_login_at",
    "reviewer",
    "routed_because",
    "decided_by",
    "on_behalf_of",
    "decision",
    "comment",
    "decided_at",
    "decided_by_policy",
    "bulk",
    "seconds_to_decide",
    "remediation",
    "task_id",
    "task_state",
    "task_channel",
    "task_executed_at",
    "task_verified_at",
    "task_evidence_reference",
)


def _when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def campaign_header(campaign: Campaign, exported_at: datetime | None = None) -> dict[str, Any]:
    """The campaign's identity, its scope and the launch snapshot's count and hash."""
    return {
        "campaign_id": campaign.pk,
        "name": campaign.name,
        "kind": campaign.kind,
        "state": campaign.state,
        "launched_at": _when(campaign.launched_at),
        "closed_at": _when(campaign.closed_at),
        "due_at": _when(campaign.due_at),
        "population_count": campaign.population_count,
        "population_hash": campaign.population_hash,
        "population_hash_algorithm": "sha256 over the sorted grant ids, one per line",
        "reviewer_strategy": campaign.reviewer_strategy,
        "fallback_reviewer": _username(campaign.fallback_reviewer),
        "scope": {
            "applications": sorted(campaign.applications.values_list("name", flat=True)),
            "entitlements": sorted(
                f"{app}: {name}"
                for app, name in campaign.entitlements.values_list("application__name", "name")
            ),
            "privileged_only": campaign.privileged_only,
            "include_people": campaign.include_people,
            "include_nhis": campaign.include_nhis,
            "departments": list(campaign.departments or []),
        },
        "exported_at": _when(exported_at or timezone.now()),
    }


def export_items(campaign: Campaign) -> QuerySet[ReviewItem]:
    return (
        ReviewItem.objects.filter(campaign=campaign)
        .select_related(
            "application",
            "entitlement",
            "reviewer",
            "decided_by",
            "on_behalf_of",
            "provisioning_task",
        )
        .order_by("pk")
    )


def item_row(item: ReviewItem) -> dict[str, Any]:
    task = item.provisioning_task
    return {
        "item_id": item.pk,
        "stage": item.stage,
        "grant_id": item.grant_id,
        "subject": item.subject_label,
        "account": item.account_label,
        "application": item.application.name,
        "entitlement": item.entitlement.name,
        "granted_via": item.granted_via,
        "policy_justified": item.policy_justified,
        "privileged": item.privileged,
        "risk": item.risk,
        "person_inactive": item.person_inactive,
        "last_login_at": _when(item.last_login_at),
        "reviewer": _username(item.reviewer),
        "routed_because": item.routed_because,
        "decided_by": _username(item.decided_by),
        "on_behalf_of": _username(item.on_behalf_of),
        "decision": item.decision,
        "comment": item.comment,
        "decided_at": _when(item.decided_at),
        "decided_by_policy": item.decided_by_policy,
        "bulk": item.bulk,
        "seconds_to_decide": item.seconds_to_decide,
        "remediation": item.remediation,
        "task_id": task.pk if task else None,
        "task_state": task.state if task else None,
        "task_channel": task.channel if task else None,
        "task_executed_at": _when(task.executed_at) if task else None,
        "task_verified_at": _when(task.verified_at) if task else None,
        "task_evidence_reference": task.evidence_reference if task else None,
    }


def iter_item_rows(campaign: Campaign) -> Iterator[dict[str, Any]]:
    for item in export_items(campaign).iterator(chunk_size=CHUNK):
        yield item_row(item)


class _Echo:
    """A file-like object for csv.writer that hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def export_csv(campaign: Campaign, exported_at: datetime | None = None) -> Iterator[str]:
    """CSV lines: the campaign header as ``key,value`` rows, a blank line, then one row per
    item under a header row. A generator: rows are produced as the database yields them."""
    writer = csv.writer(_Echo())
    header = campaign_header(campaign, exported_at)
    for key in CAMPAIGN_FIELDS:
        yield writer.writerow([key, _csv_value(header[key])])
    yield writer.writerow([])
    yield writer.writerow(ITEM_FIELDS)
    for row in iter_item_rows(campaign):
        yield writer.writerow([_csv_value(row[f]) for f in ITEM_FIELDS])


def export_json(campaign: Campaign, exported_at: datetime | None = None) -> dict[str, Any]:
    """The whole export as one document (fine for tests and small campaigns; the admin
    streams the same content with :func:`iter_json`)."""
    return {
        "campaign": campaign_header(campaign, exported_at),
        "items": list(iter_item_rows(campaign)),
    }


def iter_json(campaign: Campaign, exported_at: datetime | None = None) -> Iterator[str]:
    """The document of :func:`export_json`, streamed item by item."""
    header = json.dumps(campaign_header(campaign, exported_at), ensure_ascii=False)
    yield '{"campaign": ' + header + ', "items": ['
    first = True
    for row in iter_item_rows(campaign):
        yield ("" if first else ", ") + json.dumps(row, ensure_ascii=False)
        first = False
    yield "]}\n"


def campaign_exported(*, actor: Actor, campaign: Campaign, fmt: str) -> None:
    """Audit that someone took the campaign's evidence out of the portal."""
    record(
        actor=actor,
        action="campaign.exported",
        target=campaign,
        after={
            "format": fmt,
            "population_count": campaign.population_count,
            "population_hash": campaign.population_hash,
            "items": ReviewItem.objects.filter(campaign=campaign).count(),
        },
    )
