"""Mails about non-human identities: one rotation digest per owner per day, and one mail to
security admins listing the hand-offs that waited too long."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Q
from django.urls import reverse

from governance.identities.models import Identity
from governance.nhi.models import Handoff, RotationTask
from governance.portal.models import Role, User

#: An owner hears about an open rotation task at most this often.
DIGEST_EVERY = timedelta(hours=20)
DIGEST_LINES = 50


def _url(name: str) -> str:
    return f"{settings.STEWARD_BASE_URL}{reverse(name)}"


def address_of(person: Identity) -> str | None:
    """Where a person is mailed: their portal account, their primary work mail, or a
    userName that is an address."""
    user = getattr(person, "portal_user", None)
    if user is not None and user.email:
        return user.email
    email = person.emails.order_by("-primary", "position").values_list("value", flat=True).first()
    if email:
        return email
    return person.user_name if "@" in person.user_name else None


def security_admin_addresses() -> list[str]:
    users = User.objects.filter(is_active=True).filter(
        Q(is_superuser=True) | Q(groups__name=Role.SECURITY_ADMIN)
    )
    return sorted({u.email for u in users.distinct() if u.email})


def send_owner_digests(*, now: datetime) -> int:
    """One mail per active owner listing their NHIs' open rotation tasks not mailed in the
    last day; returns the number of mails sent."""
    tasks = (
        RotationTask.objects.filter(state=RotationTask.State.OPEN)
        .filter(Q(notified_at__isnull=True) | Q(notified_at__lte=now - DIGEST_EVERY))
        .filter(credential__nhi__owner__active=True)
        .select_related("credential__nhi__owner__portal_user")
        .order_by("due_at", "pk")
    )
    by_owner: dict[Identity, list[RotationTask]] = defaultdict(list)
    for task in tasks:
        by_owner[task.credential.nhi.owner].append(task)
    sent = 0
    for owner, items in by_owner.items():
        address = address_of(owner)
        if not address:
            continue
        lines = [
            f"Hello {owner.display_name or owner.user_name},",
            "",
            f"{len(items)} credential(s) of non-human identities you own need rotating:",
            "",
        ]
        for task in items[:DIGEST_LINES]:
            due = f"due {task.due_at:%Y-%m-%d}" if task.due_at else "no due date"
            lines.append(f"  - {task.credential} ({task.get_reason_display().lower()}, {due})")
        if len(items) > DIGEST_LINES:
            lines.append(f"  ... and {len(items) - DIGEST_LINES} more")
        lines += [
            "",
            "Rotate them, then record the rotation with its evidence:",
            _url("admin:nhi_rotationtask_changelist") + "?state__exact=open",
            "",
            "Steward",
        ]
        EmailMessage(
            subject=f"[Steward] {len(items)} NHI credential(s) to rotate",
            body="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[address],
        ).send()
        RotationTask.objects.filter(pk__in=[t.pk for t in items]).update(notified_at=now)
        sent += 1
    return sent


def send_escalation_digest(handoffs: list[Handoff]) -> int:
    to = security_admin_addresses()
    if not to or not handoffs:
        return 0
    lines = [
        f"{len(handoffs)} hand-off(s) of non-human identities whose owner left have had no "
        "answer and need a decision from security:",
        "",
    ]
    for handoff in handoffs:
        who = handoff.proposed_to or "security admins"
        lines.append(
            f"  - {handoff.nhi} (left by {handoff.from_owner}; proposed to {who} "
            f"on {handoff.proposed_at:%Y-%m-%d})"
        )
    lines += [
        "",
        "Assign an owner or chase the proposed person:",
        _url("admin:nhi_handoff_changelist") + "?escalated=yes",
        "",
        "Steward",
    ]
    EmailMessage(
        subject=f"[Steward] {len(handoffs)} NHI hand-off(s) escalated",
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
    ).send()
    return 1


def send_handoff_reminders(*, now: datetime) -> int:
    """One mail per proposed person listing the hand-offs waiting for their answer, at most
    once a day; returns the number of mails sent."""
    waiting = (
        Handoff.objects.filter(state=Handoff.State.PROPOSED, proposed_to__active=True)
        .filter(Q(reminded_at__isnull=True) | Q(reminded_at__lte=now - DIGEST_EVERY))
        .select_related("nhi", "from_owner", "proposed_to__portal_user")
        .order_by("proposed_at", "pk")
    )
    by_person: dict[Identity, list[Handoff]] = defaultdict(list)
    for handoff in waiting:
        by_person[handoff.proposed_to].append(handoff)
    sent = 0
    for person, handoffs in by_person.items():
        address = address_of(person)
        if not address:
            continue
        lines = [
            f"Hello {person.display_name or person.user_name},",
            "",
            "These non-human identities lost their owner and you are proposed as the new "
            "accountable owner. Accept, or decline with a reason so the next person is asked:",
            "",
        ]
        lines += [
            f"  - {h.nhi} (owned by {h.from_owner}, proposed {h.proposed_at:%Y-%m-%d})"
            for h in handoffs[:DIGEST_LINES]
        ]
        lines += ["", "My hand-offs: " + _url("admin:nhi_handoff_changelist") + "?mine=yes"]
        lines += ["", "Steward"]
        EmailMessage(
            subject=f"[Steward] {len(handoffs)} NHI hand-off(s) wait for your answer",
            body="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[address],
        ).send()
        Handoff.objects.filter(pk__in=[h.pk for h in handoffs]).update(reminded_at=now)
        sent += 1
    return sent
