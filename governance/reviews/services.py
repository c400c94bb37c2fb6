"""Access reviews: launch a campaign (a snapshot of the population), decide items, carry out
revocations through the lifecycle, close with timeout rules. Every change is audited."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, timedelta

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from governance.access.models import Grant
from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition, PermissionDenied
from governance.lifecycle.models import ProvisioningTask
from governance.portal.models import User
from governance.reviews.models import Campaign, Delegation, ReviewItem

LAUNCH_BATCH = 5000
Decision = ReviewItem.Decision
Remediation = ReviewItem.Remediation


# --------------------------------------------------------------------------- population


def population(campaign: Campaign) -> QuerySet[Grant]:
    """The active grants a campaign covers, in a stable order."""
    qs = Grant.objects.filter(status=Grant.Status.ACTIVE)
    app_ids = list(campaign.applications.values_list("pk", flat=True))
    if app_ids:
        qs = qs.filter(entitlement__application_id__in=app_ids)
    ent_ids = list(campaign.entitlements.values_list("pk", flat=True))
    if ent_ids:
        qs = qs.filter(entitlement_id__in=ent_ids)
    if campaign.privileged_only:
        qs = qs.filter(entitlement__privileged=True)
    holders = Q(pk__in=[])
    if campaign.include_people:
        people = Q(account__identity__isnull=False)
        if campaign.departments:
            people &= Q(account__identity__department__in=campaign.departments)
        holders |= people
    if campaign.include_nhis:
        holders |= Q(account__nhi__isnull=False)
    return qs.filter(holders).order_by("pk")


def _portal_user_of(identity) -> User | None:
    if identity is None:
        return None
    return getattr(identity, "portal_user", None)


def justified_pairs(identity_ids: Iterable | None = None) -> set[tuple]:
    """(identity id, entitlement id) pairs that an enabled birthright policy justifies,
    computed set-based: one query for group policies, one per attribute policy."""
    from governance.access.models import AccessPolicy
    from governance.identities.models import GroupMembership, Identity

    pairs: set[tuple] = set()
    by_group = GroupMembership.objects.filter(
        group__policies__enabled=True, group__deleted_at__isnull=True
    )
    if identity_ids is not None:
        by_group = by_group.filter(identity_id__in=identity_ids)
    pairs.update(by_group.values_list("identity_id", "group__policies__entitlements"))
    for policy in AccessPolicy.objects.filter(enabled=True, directory_group__isnull=True):
        people = Identity.objects.filter(
            **{f"{policy.attribute}__iexact": policy.attribute_value}, active=True
        )
        if identity_ids is not None:
            people = people.filter(pk__in=identity_ids)
        ents = list(policy.entitlements.values_list("pk", flat=True))
        for person_id in people.values_list("pk", flat=True):
            pairs.update((person_id, ent) for ent in ents)
    return pairs


class _Resolver:
    """Picks each item's reviewer; caches per application/entitlement/manager."""

    def __init__(self, campaign: Campaign, strategy: str):
        self.campaign = campaign
        self.strategy = strategy
        self.app_owner: dict[int, User | None] = {}

    def __call__(self, grant: Grant) -> tuple[User, str]:
        account = grant.account
        subject_user = _portal_user_of(account.identity) if account.identity_id else None
        reviewer = None
        if self.strategy == Campaign.Strategy.MANAGER and account.identity_id:
            reviewer = _portal_user_of(account.identity.manager)
        elif self.strategy == Campaign.Strategy.APP_OWNER:
            app_id = grant.entitlement.application_id
            if app_id not in self.app_owner:
                self.app_owner[app_id] = grant.entitlement.application.owners.order_by("pk").first()
            reviewer = self.app_owner[app_id]
        elif self.strategy == Campaign.Strategy.ENTITLEMENT_OWNER:
            reviewer = grant.entitlement.owner
        elif self.strategy == Campaign.Strategy.NHI_OWNER and account.nhi_id:
            reviewer = _portal_user_of(account.nhi.owner)
        elif self.strategy == Campaign.Strategy.NAMED:
            reviewer = self.campaign.named_reviewer
        why = ""
        if reviewer is None or not reviewer.is_active:
            reviewer, why = self.campaign.fallback_reviewer, "no reviewer found: fallback reviewer"
        elif subject_user is not None and reviewer.pk == subject_user.pk:
            reviewer, why = (
                self.campaign.fallback_reviewer,
                "self-review avoided: fallback reviewer",
            )
        if subject_user is not None and reviewer.pk == subject_user.pk:
            # The fallback reviewer is the subject: the escalation contact, else another
            # security admin, decides (never the person themselves).
            reviewer = self._independent(subject_user)
            why = "the fallback reviewer is the subject: independent security admin"
        return reviewer, why

    def _independent(self, subject_user: User) -> User:
        if self.campaign.escalation_to_id and self.campaign.escalation_to_id != subject_user.pk:
            return self.campaign.escalation_to
        other = (
            User.objects.filter(is_active=True)
            .filter(Q(is_superuser=True) | Q(groups__name="Security admin"))
            .exclude(pk=subject_user.pk)
            .order_by("pk")
            .first()
        )
        if other is None:
            raise DomainError(
                f"No independent reviewer for {subject_user}'s own access: name an escalation "
                "contact or add another security admin."
            )
        return other


def _item_for(
    campaign: Campaign, grant: Grant, resolver: _Resolver, stage: int, justified: set[tuple]
) -> ReviewItem:
    account = grant.account
    reviewer, why = resolver(grant)
    identity, nhi = account.identity, account.nhi
    return ReviewItem(
        campaign=campaign,
        stage=stage,
        grant=grant,
        subject_identity=identity,
        subject_nhi=nhi,
        subject_label=str(identity or nhi or f"orphan account {account.username}"),
        account_label=account.username,
        application_id=grant.entitlement.application_id,
        entitlement_id=grant.entitlement_id,
        entitlement_label=f"{grant.entitlement.application.name}: {grant.entitlement.name}",
        granted_via=grant.origin,
        policy_justified=(account.identity_id, grant.entitlement_id) in justified,
        last_login_at=account.last_login_at,
        privileged=grant.entitlement.privileged,
        risk=grant.entitlement.risk,
        person_inactive=bool(identity and not identity.active),
        reviewer=reviewer,
        routed_because=why,
    )


def population_hash(grant_ids: Iterable[int], digest=None) -> str:
    digest = digest or hashlib.sha256()
    for grant_id in grant_ids:
        digest.update(f"{grant_id}\n".encode())
    return digest.hexdigest()


@transaction.atomic
def campaign_launch(*, actor: Actor, campaign: Campaign) -> Campaign:
    """Start building the snapshot; the work runs in Celery (``build_population``)."""
    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.state != Campaign.State.DRAFT:
        raise InvalidTransition(f"Campaign {locked} is {locked.get_state_display().lower()}.")
    if locked.fallback_reviewer_id is None:
        raise DomainError("Name a fallback reviewer before launching.")
    locked.state = Campaign.State.LAUNCHING
    locked.launch_total = population(locked).count()
    locked.launch_done = 0
    locked.launched_at = None  # the build claims the campaign by setting it
    locked.save(update_fields=["state", "launch_total", "launch_done", "launched_at"])
    record(
        actor=actor,
        action="campaign.launch_started",
        target=locked,
        after={"population": locked.launch_total},
    )
    from governance.reviews.tasks import build_population

    transaction.on_commit(lambda: build_population.delay(locked.pk))
    return locked


def build_population(campaign_id: int) -> None:
    """Create one item per grant in scope, in batches, recording progress; then the count and
    hash of the population. Idempotent: a retry starts the snapshot again from scratch."""
    now = timezone.now()
    # Claim with a conditional UPDATE so a duplicated message cannot build twice; a build
    # that died (claimed over an hour ago and still launching) may be taken over.
    claimed = (
        Campaign.objects.filter(pk=campaign_id, state=Campaign.State.LAUNCHING)
        .filter(Q(launched_at__isnull=True) | Q(launched_at__lt=now - timedelta(hours=1)))
        .update(launched_at=now)
    )
    if claimed != 1:
        return
    campaign = Campaign.objects.get(pk=campaign_id)
    ReviewItem.objects.filter(campaign=campaign).delete()
    Campaign.objects.filter(pk=campaign_id).update(launch_done=0)
    resolver = _Resolver(campaign, campaign.reviewer_strategy)
    digest = hashlib.sha256()
    count = 0
    grants = population(campaign).select_related(
        "account__identity__manager__portal_user",
        "account__identity__portal_user",
        "account__nhi__owner__portal_user",
        "entitlement__application",
        "entitlement__owner",
    )
    justified = justified_pairs()
    batch: list[ReviewItem] = []
    for grant in grants.iterator(chunk_size=LAUNCH_BATCH):
        batch.append(_item_for(campaign, grant, resolver, stage=1, justified=justified))
        digest.update(f"{grant.pk}\n".encode())
        if len(batch) >= LAUNCH_BATCH:
            count += _flush(campaign_id, batch)
    count += _flush(campaign_id, batch)
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign_id, state=Campaign.State.LAUNCHING).update(
            state=Campaign.State.ACTIVE,
            population_count=count,
            population_hash=digest.hexdigest(),
            launch_done=count,
            launched_at=timezone.now(),
        )
        if updated == 1:
            campaign.refresh_from_db()
            record(
                actor=Actor.system("campaign launch"),
                action="campaign.launched",
                target=campaign,
                after={"population": count, "hash": campaign.population_hash},
            )


def _flush(campaign_id: int, batch: list[ReviewItem]) -> int:
    if not batch:
        return 0
    n = len(batch)
    with transaction.atomic():
        ReviewItem.objects.bulk_create(batch, batch_size=1000)
        Campaign.objects.filter(pk=campaign_id).update(launch_done=F("launch_done") + n)
    batch.clear()
    return n


# --------------------------------------------------------------------------- deciding


def acting_for(user: User, reviewer: User, on: date | None = None) -> bool:
    """Whether ``user`` may act for ``reviewer`` today (an active delegation)."""
    on = on or timezone.localdate()
    return Delegation.objects.filter(
        delegator=reviewer, delegate=user, starts_on__lte=on, ends_on__gte=on
    ).exists()


def _may_decide(user: User, item: ReviewItem) -> User | None:
    """None when the user decides as the reviewer; the reviewer when acting as a delegate."""
    if item.reviewer_id == user.pk:
        return None
    if acting_for(user, item.reviewer):
        return item.reviewer
    raise PermissionDenied("This review item is not assigned to you.")


def _remediation_of(task: ProvisioningTask | None) -> str:
    if task is None:
        return Remediation.NONE
    if task.state == ProvisioningTask.State.VERIFIED:
        return Remediation.VERIFIED
    if task.state == ProvisioningTask.State.EXECUTED:
        return Remediation.EXECUTED
    return Remediation.REQUESTED


@transaction.atomic
def review_decide(
    *,
    actor: Actor,
    item: ReviewItem,
    decision: str,
    comment: str = "",
    bulk: bool = False,
) -> ReviewItem:
    """Approve or revoke one item. Change of mind is allowed until the campaign closes or the
    revocation has been carried out. A revoke requests the removal through the lifecycle."""
    from governance.lifecycle.services import lifecycle_request_revocation, task_cancel

    if decision not in (Decision.APPROVE, Decision.REVOKE):
        raise DomainError("Decide approve or revoke.", field="decision")
    user = actor.user if actor.kind == "user" else None
    if user is None:
        raise DomainError("Review decisions are made by people.")
    locked = (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("campaign", "grant")
        .get(pk=item.pk)
    )
    on_behalf_of = _may_decide(user, locked)
    if (
        locked.subject_identity_id
        and getattr(user, "identity_id", None) == locked.subject_identity_id
    ):
        raise PermissionDenied("Nobody decides on their own access.")
    campaign = locked.campaign
    if campaign.state != Campaign.State.ACTIVE:
        raise InvalidTransition("The campaign is not active; decisions are closed.")
    comment = (comment or "").strip()
    if decision == Decision.APPROVE and campaign.comment_required_on_approve and not comment:
        raise DomainError("This campaign requires a comment to approve.", field="comment")
    if decision == Decision.REVOKE and campaign.comment_required_on_revoke and not comment:
        raise DomainError("This campaign requires a comment to revoke.", field="comment")
    task = locked.provisioning_task
    if locked.decision == Decision.REVOKE and decision != Decision.REVOKE and task is not None:
        if task.state not in (
            ProvisioningTask.State.PENDING,
            ProvisioningTask.State.AWAITING_MANUAL,
        ):
            raise InvalidTransition("The revocation is already being carried out.")
        task_cancel(actor=actor, task=task, reason="the reviewer changed their decision")
        locked.provisioning_task = None
        task = None
    before = {"decision": locked.decision, "comment": locked.comment}
    now = timezone.now()
    locked.decision = decision
    locked.comment = comment
    locked.decided_at = now
    locked.decided_by = user
    locked.on_behalf_of = on_behalf_of
    locked.decided_by_policy = False
    locked.bulk = bulk
    previous = (
        ReviewItem.objects.filter(campaign=campaign, decided_by=user, decided_at__isnull=False)
        .exclude(pk=locked.pk)
        .order_by("-decided_at")
        .values_list("decided_at", flat=True)
        .first()
    )
    started = max(filter(None, [previous, campaign.launched_at, locked.created_at]))
    locked.seconds_to_decide = max(0.0, (now - started).total_seconds())
    if decision == Decision.REVOKE and task is None and locked.grant is not None:
        if locked.grant.status == Grant.Status.ACTIVE:
            task = lifecycle_request_revocation(
                actor=actor, grant=locked.grant, reason=f"access review: {campaign.name}"
            )
            locked.provisioning_task = task
    locked.remediation = _remediation_of(task) if decision == Decision.REVOKE else Remediation.NONE
    locked.save()
    if decision == Decision.APPROVE and locked.grant is not None:
        Grant.objects.filter(pk=locked.grant_id).update(last_reviewed_at=now)
    _second_stage(campaign, locked)
    record(
        actor=actor,
        action="review_item.decided",
        target=locked,
        before=before,
        after={
            "decision": decision,
            "comment": comment,
            "bulk": bulk,
            "on_behalf_of": on_behalf_of.username if on_behalf_of else None,
            "task": task.pk if task else None,
        },
    )
    return locked


@transaction.atomic
def review_reassign(*, actor: Actor, item: ReviewItem, to: User, reason: str) -> ReviewItem:
    user = actor.user if actor.kind == "user" else None
    if user is None:
        raise DomainError("Reassignment is done by a person.")
    if not (reason or "").strip():
        raise DomainError("Say why you reassign this item.", field="reason")
    locked = (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("campaign")
        .get(pk=item.pk)
    )
    if not user.is_security_admin:
        _may_decide(user, locked)
    if locked.campaign.state != Campaign.State.ACTIVE:
        raise InvalidTransition("The campaign is not active.")
    if not (to.is_active and to.is_staff):
        raise DomainError(f"{to} cannot review: not an active portal user.", field="to")
    if to.identity_id and to.identity_id == locked.subject_identity_id:
        raise DomainError("An item cannot be reassigned to the person it is about.")
    before = {"reviewer": locked.reviewer.username}
    locked.reviewer = to
    locked.routed_because = f"reassigned by {user.username}: {reason.strip()}"[:200]
    locked.save(update_fields=["reviewer", "routed_because"])
    record(
        actor=actor,
        action="review_item.reassigned",
        target=locked,
        before=before,
        after={"reviewer": to.username, "reason": reason},
    )
    return locked


def _second_stage(campaign: Campaign, item: ReviewItem) -> None:
    """Two-stage campaigns: a first-stage approval of an item in the second stage's scope
    opens a stage-2 item for the second-stage reviewer; changing the first decision to revoke
    withdraws it while it is undecided."""
    if not campaign.second_stage_strategy or item.stage != 1:
        return
    if campaign.second_stage_privileged_only and not item.privileged:
        return
    existing = ReviewItem.objects.filter(campaign=campaign, stage=2, grant_id=item.grant_id)
    if item.decision != Decision.APPROVE:
        existing.filter(decision=Decision.PENDING).delete()
        return
    if existing.exists() or item.grant is None:
        return
    grant = Grant.objects.select_related(
        "account__identity__manager__portal_user",
        "account__identity__portal_user",
        "account__nhi__owner__portal_user",
        "entitlement__application",
        "entitlement__owner",
    ).get(pk=item.grant_id)
    resolver = _Resolver(campaign, campaign.second_stage_strategy)
    second = _item_for(campaign, grant, resolver, stage=2, justified=set())
    # the snapshot is the campaign's, not today's grant
    for name in ("granted_via", "policy_justified", "last_login_at", "person_inactive"):
        setattr(second, name, getattr(item, name))
    second.save()


def refresh_remediation(item_ids: Iterable[int] | None = None) -> int:
    """Bring each revoked item's remediation state in line with its task (set-based)."""
    qs = ReviewItem.objects.filter(decision=Decision.REVOKE, provisioning_task__isnull=False)
    if item_ids is not None:
        qs = qs.filter(pk__in=list(item_ids))
    changed = 0
    for state, remediation in (
        (ProvisioningTask.State.VERIFIED, Remediation.VERIFIED),
        (ProvisioningTask.State.EXECUTED, Remediation.EXECUTED),
    ):
        changed += (
            qs.filter(provisioning_task__state=state)
            .exclude(remediation=remediation)
            .update(remediation=remediation)
        )
    return changed


@transaction.atomic
def campaign_close(*, actor: Actor, campaign: Campaign) -> Campaign:
    """Close: undecided items get the campaign's timeout action, attributed to the policy."""
    from governance.lifecycle.services import lifecycle_request_revocation

    locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if locked.state != Campaign.State.ACTIVE:
        raise InvalidTransition(f"Campaign {locked} is {locked.get_state_display().lower()}.")
    now = timezone.now()
    outcome = {"revoke": 0, "keep": 0, "leave_open": 0}
    pending = ReviewItem.objects.filter(campaign=locked, decision=Decision.PENDING).select_related(
        "grant"
    )
    for item in pending.iterator():
        action = (
            locked.timeout_action_privileged if item.privileged else locked.timeout_action_standard
        )
        outcome[action] += 1
        if action == Campaign.TimeoutAction.LEAVE_OPEN:
            continue
        item.decision = Decision.REVOKE if action == "revoke" else Decision.APPROVE
        item.decided_at = now
        item.decided_by_policy = True
        item.comment = f"Decided by the campaign's timeout rule ({action})."
        if action == "revoke" and item.grant and item.grant.status == Grant.Status.ACTIVE:
            item.provisioning_task = lifecycle_request_revocation(
                actor=Actor.system("campaign timeout"),
                grant=item.grant,
                reason=f"access review timeout: {locked.name}",
            )
            item.remediation = _remediation_of(item.provisioning_task)
        item.save()
    locked.state = Campaign.State.CLOSED
    locked.closed_at = now
    locked.save(update_fields=["state", "closed_at"])
    record(actor=actor, action="campaign.closed", target=locked, after={"timeout": outcome})
    return locked


# --------------------------------------------------------------------------- micro-reviews


def micro_review_for_mover(*, event) -> Campaign | None:
    """A one-campaign review of privileged access a mover kept, for the new manager."""
    already = set(
        ReviewItem.objects.filter(
            campaign__kind=Campaign.Kind.MICRO,
            campaign__state=Campaign.State.ACTIVE,
            decision=Decision.PENDING,
        ).values_list("grant_id", flat=True)
    )
    # A grant already waiting in an open micro-review is not asked about again.
    retained = [r for r in event.retained_privileged or [] if r["grant"] not in already]
    if not retained:
        return None
    manager_user = _portal_user_of(event.identity.manager)
    fallback = (
        manager_user
        or User.objects.filter(
            Q(is_superuser=True) | Q(groups__name="Security admin"), is_active=True
        )
        .order_by("pk")
        .first()
    )
    if fallback is None:
        return None
    campaign = Campaign.objects.create(
        name=f"Mover review: {event.identity}",
        description="Privileged access kept from the previous role; confirm it is still needed.",
        kind=Campaign.Kind.MICRO,
        state=Campaign.State.ACTIVE,
        reviewer_strategy=Campaign.Strategy.MANAGER,
        fallback_reviewer=fallback,
        source_event=event,
        launched_at=timezone.now(),
    )
    grants = Grant.objects.filter(pk__in=[r["grant"] for r in retained]).select_related(
        "account__identity__manager__portal_user",
        "account__identity__portal_user",
        "entitlement__application",
    )
    resolver = _Resolver(campaign, Campaign.Strategy.MANAGER)
    justified = justified_pairs([event.identity_id])
    items = [_item_for(campaign, g, resolver, stage=1, justified=justified) for g in grants]
    ReviewItem.objects.bulk_create(items)
    campaign.population_count = len(items)
    campaign.population_hash = population_hash(sorted(g.pk for g in grants))
    campaign.save(update_fields=["population_count", "population_hash"])
    record(
        actor=Actor.system("lifecycle"),
        action="campaign.micro_review_created",
        target=campaign,
        after={"event": event.pk, "items": len(items)},
    )
    return campaign


def review_single_item_for_finding(*, finding, actor: Actor) -> ReviewItem:
    """A one-item review of a reconciliation finding for the application's owner: approve
    (keep) or revoke (remove). The subject never reviews their own access."""
    from governance.access.models import Grant as _Grant

    application = finding.application
    owner = application.owners.filter(is_active=True).order_by("pk").first()
    fallback = (
        owner
        or User.objects.filter(
            Q(is_superuser=True) | Q(groups__name="Security admin"), is_active=True
        )
        .order_by("pk")
        .first()
    )
    if fallback is None:
        raise DomainError(f"{application} has no owner and there is no security admin to review.")
    account = finding.account
    identity = account.identity if account is not None else finding.identity
    nhi = account.nhi if account is not None else finding.nhi
    grant = (
        _Grant.objects.filter(
            account=account, entitlement=finding.entitlement, status=_Grant.Status.ACTIVE
        ).first()
        if account is not None
        else None
    )
    campaign = Campaign.objects.create(
        name=f"Drift review: {finding.subject}"[:200],
        description=(
            f"Reconciliation of {application} found {finding.get_kind_display().lower()}: "
            "confirm the access is needed, or revoke it."
        ),
        kind=Campaign.Kind.MICRO,
        state=Campaign.State.ACTIVE,
        reviewer_strategy=Campaign.Strategy.APP_OWNER,
        fallback_reviewer=fallback,
        launched_at=timezone.now(),
    )
    campaign.applications.add(application)
    resolver = _Resolver(campaign, Campaign.Strategy.APP_OWNER)
    subject_user = _portal_user_of(identity) if identity is not None else None
    reviewer, why = fallback, ""
    if subject_user is not None and reviewer.pk == subject_user.pk:
        reviewer, why = resolver._independent(subject_user), "self-review avoided"
    entitlement = finding.entitlement
    item = ReviewItem.objects.create(
        campaign=campaign,
        grant=grant,
        subject_identity=identity,
        subject_nhi=nhi,
        subject_label=str(identity or nhi or f"orphan account {finding.evidence.get('username')}")[
            :300
        ],
        account_label=(account.username if account else str(finding.evidence.get("username")))[
            :255
        ],
        application=application,
        entitlement=entitlement,
        entitlement_label=f"{application.name}: {entitlement.name}"[:300],
        granted_via=grant.origin if grant else "observed",
        policy_justified=False,
        last_login_at=account.last_login_at if account else None,
        privileged=entitlement.privileged,
        risk=entitlement.risk,
        person_inactive=bool(identity and not identity.active),
        reviewer=reviewer,
        routed_because=why or "reconciliation finding: application owner",
    )
    campaign.population_count = 1
    campaign.population_hash = population_hash([grant.pk] if grant else [])
    campaign.save(update_fields=["population_count", "population_hash"])
    record(
        actor=actor,
        action="campaign.finding_review_created",
        target=campaign,
        after={"finding": finding.pk, "item": item.pk, "reviewer": reviewer.username},
    )
    return item
