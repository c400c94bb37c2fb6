"""Reads for access reviews: which items a person may see, campaign statistics and the
rubber-stamp signals shown on the campaign page. Set-based: one aggregate query each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from statistics import median

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from governance.reviews.models import Campaign, Delegation, ReviewItem

Decision = ReviewItem.Decision
Remediation = ReviewItem.Remediation

#: Above this share of approvals made in bulk, a reviewer's approvals deserve a second look.
BULK_SHARE_WARNING = 80.0


def active_delegations(user, on: date | None = None) -> QuerySet[Delegation]:
    """Delegations that let ``user`` act for someone on ``on`` (today by default)."""
    on = on or timezone.localdate()
    return Delegation.objects.filter(delegate=user, starts_on__lte=on, ends_on__gte=on)


def reviewer_scope(user, on: date | None = None) -> Q:
    """The items ``user`` may decide: assigned to them, or to someone they act for through a
    delegation active today (the semantics of ``services.acting_for``, as one subquery), and
    never an item about their own access."""
    on = on or timezone.localdate()
    delegated = Delegation.objects.filter(
        delegator=OuterRef("reviewer"), delegate=user, starts_on__lte=on, ends_on__gte=on
    )
    scope = Q(reviewer=user) | Q(Exists(delegated))
    if getattr(user, "identity_id", None):
        scope &= ~Q(subject_identity_id=user.identity_id)
    return scope


def items_for_reviewer(user, on: date | None = None) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(reviewer_scope(user, on))


# ------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class CampaignStatistics:
    total: int
    pending: int
    approved: int
    revoked: int
    decided_by_policy: int
    decided_by_delegate: int
    privileged: int
    privileged_pending: int
    self_review_rerouted: int
    remediation_requested: int
    remediation_executed: int
    remediation_verified: int
    overdue: int

    @property
    def decided(self) -> int:
        return self.approved + self.revoked

    @property
    def percent_decided(self) -> float:
        return round(100 * self.decided / self.total, 1) if self.total else 0.0

    @property
    def revoked_not_remediated(self) -> int:
        """Revocations not yet verified: only a verified removal counts as remediated."""
        return self.revoked - self.remediation_verified

    @property
    def percent_remediated(self) -> float:
        return round(100 * self.remediation_verified / self.revoked, 1) if self.revoked else 0.0


def campaign_statistics(campaign: Campaign, now: datetime | None = None) -> CampaignStatistics:
    """Completion statistics of a campaign, in one aggregate query."""
    now = now or timezone.now()
    pending = Q(decision=Decision.PENDING)
    counts = ReviewItem.objects.filter(campaign=campaign).aggregate(
        total=Count("pk"),
        pending=Count("pk", filter=pending),
        approved=Count("pk", filter=Q(decision=Decision.APPROVE)),
        revoked=Count("pk", filter=Q(decision=Decision.REVOKE)),
        decided_by_policy=Count("pk", filter=Q(decided_by_policy=True)),
        decided_by_delegate=Count("pk", filter=Q(on_behalf_of__isnull=False)),
        privileged_items=Count("pk", filter=Q(privileged=True)),
        privileged_pending=Count("pk", filter=Q(privileged=True) & pending),
        self_review_rerouted=Count("pk", filter=Q(routed_because__startswith="self-review")),
        remediation_requested=Count("pk", filter=Q(remediation=Remediation.REQUESTED)),
        remediation_executed=Count("pk", filter=Q(remediation=Remediation.EXECUTED)),
        remediation_verified=Count("pk", filter=Q(remediation=Remediation.VERIFIED)),
    )
    past_due = (
        campaign.state == Campaign.State.ACTIVE
        and campaign.due_at is not None
        and campaign.due_at < now
    )
    counts["privileged"] = counts.pop("privileged_items")  # an alias may not shadow a field
    return CampaignStatistics(**counts, overdue=counts["pending"] if past_due else 0)


# ------------------------------------------------------------------- rubber-stamp signals


@dataclass(frozen=True)
class ReviewerSignals:
    """How one person decided in a campaign (as themselves or as a delegate)."""

    user_id: int
    username: str
    decisions: int
    approvals: int
    revocations: int
    bulk_approvals: int
    delegated: int
    inactive_approvals: int
    privileged_approvals_without_comment: int
    median_seconds: float | None

    @property
    def bulk_share(self) -> float:
        """Share (percent) of this person's approvals that were made in bulk."""
        return round(100 * self.bulk_approvals / self.approvals, 1) if self.approvals else 0.0

    @property
    def flagged(self) -> bool:
        return bool(
            self.inactive_approvals
            or self.privileged_approvals_without_comment
            or self.bulk_share >= BULK_SHARE_WARNING
        )


def rubber_stamp_signals(campaign: Campaign) -> list[ReviewerSignals]:
    """Per person who decided (decisions made by the timeout rule are left out): decisions,
    share of bulk approvals, median seconds to decide, approvals of inactive people and
    privileged approvals without a comment. One aggregate query plus one pass over the
    decided items' seconds for the medians."""
    decided = ReviewItem.objects.filter(
        campaign=campaign, decided_by__isnull=False, decided_by_policy=False
    ).exclude(decision=Decision.PENDING)
    approve = Q(decision=Decision.APPROVE)
    rows = (
        decided.values("decided_by", "decided_by__username")
        .annotate(
            decisions=Count("pk"),
            approvals=Count("pk", filter=approve),
            revocations=Count("pk", filter=Q(decision=Decision.REVOKE)),
            bulk_approvals=Count("pk", filter=approve & Q(bulk=True)),
            delegated=Count("pk", filter=Q(on_behalf_of__isnull=False)),
            inactive_approvals=Count("pk", filter=approve & Q(person_inactive=True)),
            privileged_no_comment=Count("pk", filter=approve & Q(privileged=True, comment="")),
        )
        .order_by("decided_by__username")
    )
    seconds: dict[int, list[float]] = {}
    timings = decided.filter(seconds_to_decide__isnull=False).order_by()
    for user_id, value in timings.values_list("decided_by", "seconds_to_decide"):
        seconds.setdefault(user_id, []).append(value)
    return [
        ReviewerSignals(
            user_id=row["decided_by"],
            username=row["decided_by__username"],
            decisions=row["decisions"],
            approvals=row["approvals"],
            revocations=row["revocations"],
            bulk_approvals=row["bulk_approvals"],
            delegated=row["delegated"],
            inactive_approvals=row["inactive_approvals"],
            privileged_approvals_without_comment=row["privileged_no_comment"],
            median_seconds=(
                round(median(seconds[row["decided_by"]]), 1)
                if seconds.get(row["decided_by"])
                else None
            ),
        )
        for row in rows
    ]
