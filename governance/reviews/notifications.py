"""The schedule around a campaign: reminder digests, escalation of overdue items, closing at
the due date, the next copy of a recurring campaign, and remediation state.

Each function is run periodically by Celery beat (``governance.reviews.tasks``; the schedules
are ``PeriodicTask`` rows editable in the admin). They take ``now`` so tests can move the
clock, claim their work with conditional UPDATEs so a duplicate run does nothing, and audit
every change. A reviewer gets one digest mail per run, never one mail per item.
"""

from __future__ import annotations

import calendar
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Count, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import InvalidTransition
from governance.portal.models import User
from governance.reviews.models import Campaign, ReviewItem
from governance.reviews.services import campaign_close, refresh_remediation

log = logging.getLogger(__name__)

PENDING = ReviewItem.Decision.PENDING
DIGEST_LINES_PER_CAMPAIGN = 25
RECURRENCE_MONTHS = {
    Campaign.Recurrence.MONTHLY: 1,
    Campaign.Recurrence.QUARTERLY: 3,
    Campaign.Recurrence.SEMIANNUAL: 6,
    Campaign.Recurrence.ANNUAL: 12,
}
# Candidates for the "My reviews" page, first match wins: the portal page once it exists,
# else the admin list of review items.
MY_REVIEWS_URL_NAMES = ("reviews:mine", "my_reviews", "admin:reviews_reviewitem_changelist")


# --------------------------------------------------------------------------- digests


def my_reviews_url() -> str:
    for name in MY_REVIEWS_URL_NAMES:
        try:
            path = reverse(name)
        except NoReverseMatch:
            continue
        return f"{settings.STEWARD_BASE_URL}{path}"
    return f"{settings.STEWARD_BASE_URL}/"


def _digest_body(
    reviewer: User, items: list[ReviewItem], pending: dict[int, int], *, intro: str
) -> str:
    by_campaign: dict[int, list[ReviewItem]] = defaultdict(list)
    for item in items:
        by_campaign[item.campaign_id].append(item)
    lines = [f"Hello {reviewer.get_full_name() or reviewer.get_username()},", "", intro, ""]
    for group in sorted(by_campaign.values(), key=lambda g: (_due_key(g[0].campaign), g[0].pk)):
        campaign = group[0].campaign
        due = f"due {campaign.due_at:%Y-%m-%d}" if campaign.due_at else "no due date"
        count = pending.get(campaign.pk, len(group))
        lines.append(f"{campaign.name}: {count} pending, {due}")
        lines.extend(f"  - {item}" for item in group[:DIGEST_LINES_PER_CAMPAIGN])
        if len(group) > DIGEST_LINES_PER_CAMPAIGN:
            lines.append(f"  ... and {len(group) - DIGEST_LINES_PER_CAMPAIGN} more")
        lines.append("")
    lines += [f"My reviews: {my_reviews_url()}", "", "Steward"]
    return "\n".join(lines)


def _due_key(campaign: Campaign) -> datetime:
    return campaign.due_at or datetime.max.replace(tzinfo=timezone.get_current_timezone())


def _send_digest(
    reviewer: User, items: list[ReviewItem], pending: dict[int, int], *, subject: str, intro: str
) -> None:
    EmailMessage(
        subject=subject,
        body=_digest_body(reviewer, items, pending, intro=intro),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[reviewer.email],
    ).send()


def _pending_counts(reviewer_id: int, campaign_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        ReviewItem.objects.filter(
            reviewer_id=reviewer_id, decision=PENDING, campaign_id__in=set(campaign_ids)
        )
        .values("campaign_id")
        .annotate(n=Count("pk"))
    )
    return {row["campaign_id"]: row["n"] for row in rows}


def _due_for_reminder(now: datetime) -> Q:
    """Pending items whose last reminder (or, before the first, the launch) is at least the
    campaign's ``reminder_every_days`` old. ``reminder_every_days=0`` turns reminders off."""
    due = Q(pk__in=[])
    campaigns = Campaign.objects.filter(state=Campaign.State.ACTIVE, reminder_every_days__gt=0)
    for pk, days, launched_at in campaigns.values_list("pk", "reminder_every_days", "launched_at"):
        threshold = now - timedelta(days=days)
        since = Q(last_reminded_at__lte=threshold)
        if launched_at is not None and launched_at <= threshold:
            since |= Q(last_reminded_at__isnull=True)
        due |= Q(campaign_id=pk) & since
    return due


def send_review_reminders(now: datetime | None = None) -> int:
    """One digest per reviewer with pending items due for a reminder; returns mails sent."""
    now = now or timezone.now()
    due = ReviewItem.objects.filter(_due_for_reminder(now), decision=PENDING)
    reviewer_ids = list(due.order_by().values_list("reviewer_id", flat=True).distinct())
    sent = 0
    for reviewer in User.objects.filter(pk__in=reviewer_ids, is_active=True).exclude(email=""):
        with transaction.atomic():
            items = list(
                due.filter(reviewer=reviewer)
                .select_related("campaign")
                .select_for_update(of=("self",))
                .order_by("campaign_id", "subject_label", "entitlement_label")
            )
            if not items:
                continue  # reminded by a concurrent run
            ReviewItem.objects.filter(pk__in=[i.pk for i in items]).update(last_reminded_at=now)
            pending = _pending_counts(reviewer.pk, {i.campaign_id for i in items})
            record(
                actor=Actor.system("review reminders"),
                action="review.reminder_sent",
                target=reviewer,
                after={"items": len(items), "campaigns": sorted(pending)},
            )
            total = sum(pending.values())
            _send_digest(
                reviewer,
                items,
                pending,
                subject=f"Steward: {total} access review item{'s' * (total != 1)} waiting",
                intro="These access review items are waiting for your decision:",
            )
        sent += 1
    return sent


# --------------------------------------------------------------------------- escalation


def _escalation_target(item: ReviewItem, managers: dict[int, User | None]) -> User | None:
    """The named escalation person, else the reviewer's manager; the fallback reviewer when
    that person is missing, inactive, the current reviewer or the subject of the item."""
    campaign = item.campaign
    if campaign.escalation_to_id:
        first = campaign.escalation_to
    else:
        if item.reviewer_id not in managers:
            identity = item.reviewer.identity
            manager = identity.manager if identity is not None else None
            managers[item.reviewer_id] = getattr(manager, "portal_user", None) if manager else None
        first = managers[item.reviewer_id]
    for candidate in (first, campaign.fallback_reviewer):
        if candidate is None or not candidate.is_active or candidate.pk == item.reviewer_id:
            continue
        if item.subject_identity_id and candidate.identity_id == item.subject_identity_id:
            continue
        return candidate
    return None


def escalate_overdue(now: datetime | None = None) -> int:
    """Reassign items pending longer than ``escalate_after_days`` since launch; each item is
    escalated once. Returns the number of items escalated."""
    now = now or timezone.now()
    overdue = Q(pk__in=[])
    campaigns = Campaign.objects.filter(
        state=Campaign.State.ACTIVE, escalate_after_days__isnull=False, launched_at__isnull=False
    )
    for pk, days, launched_at in campaigns.values_list("pk", "escalate_after_days", "launched_at"):
        if launched_at <= now - timedelta(days=days):
            overdue |= Q(campaign_id=pk)
    items = (
        ReviewItem.objects.filter(overdue, decision=PENDING, escalated_at__isnull=True)
        .select_related(
            "campaign__escalation_to",
            "campaign__fallback_reviewer",
            "reviewer__identity__manager__portal_user",
        )
        .order_by("pk")
    )
    actor = Actor.system("review escalation")
    managers: dict[int, User | None] = {}
    escalated: dict[int, list[int]] = defaultdict(list)
    for item in items.iterator(chunk_size=2000):
        target = _escalation_target(item, managers)
        if target is None:
            log.warning("Review item %s: nobody to escalate to", item.pk)
            continue
        why = f"escalated: pending over {item.campaign.escalate_after_days} days"
        with transaction.atomic():
            claimed = ReviewItem.objects.filter(
                pk=item.pk,
                decision=PENDING,
                escalated_at__isnull=True,
                reviewer_id=item.reviewer_id,
            ).update(reviewer=target, escalated_at=now, routed_because=why)
            if claimed != 1:
                continue
            record(
                actor=actor,
                action="review_item.escalated",
                target=item,
                before={"reviewer": item.reviewer.get_username()},
                after={"reviewer": target.get_username(), "reason": why},
            )
        escalated[target.pk].append(item.pk)
    for reviewer in User.objects.filter(pk__in=list(escalated)).exclude(email=""):
        ids = escalated[reviewer.pk]
        with transaction.atomic():
            mine = list(
                ReviewItem.objects.filter(pk__in=ids, reviewer=reviewer, decision=PENDING)
                .select_related("campaign")
                .order_by("campaign_id", "subject_label", "entitlement_label")
            )
            if not mine:
                continue
            ReviewItem.objects.filter(pk__in=[i.pk for i in mine]).update(last_reminded_at=now)
            pending = _pending_counts(reviewer.pk, {i.campaign_id for i in mine})
            _send_digest(
                reviewer,
                mine,
                pending,
                subject=f"Steward: {len(mine)} overdue access review item"
                f"{'s' * (len(mine) != 1)} escalated to you",
                intro="These overdue access review items have been escalated to you:",
            )
    return sum(len(ids) for ids in escalated.values())


# --------------------------------------------------------------------------- schedule


def close_due_campaigns(now: datetime | None = None) -> int:
    """Close active campaigns past their due date; timeout actions go to the policy."""
    now = now or timezone.now()
    closed = 0
    due = Campaign.objects.filter(state=Campaign.State.ACTIVE, due_at__lte=now).order_by("pk")
    for campaign in due:
        try:
            campaign_close(actor=Actor.system("campaign schedule"), campaign=campaign)
        except InvalidTransition:
            continue  # closed meanwhile by a person or a concurrent run
        closed += 1
    return closed


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later, clamped to the month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


_COPIED_FIELDS = (
    "description",
    "kind",
    "privileged_only",
    "include_people",
    "include_nhis",
    "departments",
    "reviewer_strategy",
    "named_reviewer_id",
    "fallback_reviewer_id",
    "second_stage_strategy",
    "second_stage_privileged_only",
    "reminder_every_days",
    "escalate_after_days",
    "escalation_to_id",
    "timeout_action_privileged",
    "timeout_action_standard",
    "comment_required_on_approve",
    "comment_required_on_revoke",
    "recurrence",
)


def start_recurring_campaigns(now: datetime | None = None) -> int:
    """A closed recurring campaign gets its next draft: same scope and rules, dates shifted by
    the period. The next one is found by name and start date, so it is created once, right
    after the close (``now`` is accepted for a uniform task signature)."""
    created = 0
    recurring = Campaign.objects.filter(
        state=Campaign.State.CLOSED, kind=Campaign.Kind.CAMPAIGN
    ).exclude(recurrence="")
    for pk in recurring.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            source = Campaign.objects.select_for_update().get(pk=pk)
            months = RECURRENCE_MONTHS.get(source.recurrence)
            if months is None:
                continue
            base = source.starts_at or source.launched_at or source.created_at
            starts_at = add_months(base, months)
            if Campaign.objects.filter(name=source.name, starts_at=starts_at).exists():
                continue
            nxt = Campaign.objects.create(
                name=source.name,
                state=Campaign.State.DRAFT,
                starts_at=starts_at,
                due_at=add_months(source.due_at, months) if source.due_at else None,
                **{field: getattr(source, field) for field in _COPIED_FIELDS},
            )
            nxt.applications.set(source.applications.all())
            nxt.entitlements.set(source.entitlements.all())
            record(
                actor=Actor.system("campaign recurrence"),
                action="campaign.created",
                target=nxt,
                after={
                    "recurs_from": source.pk,
                    "recurrence": source.recurrence,
                    "starts_at": nxt.starts_at,
                    "due_at": nxt.due_at,
                },
            )
        created += 1
    return created


def sync_remediation() -> int:
    """Bring revoked items' remediation state in line with their provisioning tasks."""
    with transaction.atomic():
        changed = refresh_remediation()
        if changed:
            record(
                actor=Actor.system("review remediation"),
                action="review.remediation_synced",
                after={"items": changed},
            )
    return changed
