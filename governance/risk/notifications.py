"""Expiry notices: owners hear 30, 7 and 1 days before an approved exception ends.

Run daily by Celery beat (``risk.send_expiry_notices``). Each notice is sent once per
exception (``expiry_notices_sent`` remembers which), claimed under a row lock so overlapping
runs do not repeat it, and every recipient gets one digest mail per run however many of their
exceptions are due. An exception approved late (say 5 days before expiry) gets one notice for
the nearest threshold and the larger ones are marked as passed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.risk.models import AccessException
from governance.risk.selectors import EXPIRY_NOTICE_DAYS

Status = AccessException.Status


def _due_thresholds(exception: AccessException, today: date) -> list[int]:
    left = (exception.expires_on - today).days
    sent = set(exception.expiry_notices_sent or [])
    return [d for d in EXPIRY_NOTICE_DAYS if left <= d and d not in sent]


def _link(exception: AccessException) -> str:
    path = reverse("admin:risk_accessexception_change", args=[exception.pk])
    return f"{settings.STEWARD_BASE_URL}{path}"


def _line(exception: AccessException, today: date) -> str:
    left = (exception.expires_on - today).days
    when = "today" if left == 0 else f"in {left} day{'s' * (left != 1)}"
    pending = [r for r in exception.renewals.all() if r.status in (Status.DRAFT, Status.SUBMITTED)]
    renewal = (
        f" A renewal is {pending[0].get_status_display().lower()}."
        if pending
        else " Renew it if the deviation remains, or let it end."
    )
    return (
        f"- {exception.application}: “{exception.title}” ends {when} "
        f"({exception.expires_on:%Y-%m-%d}).{renewal}\n  {_link(exception)}"
    )


def _body(user, lines: list[str]) -> str:
    name = user.get_full_name() or user.get_username()
    return "\n".join(
        [
            f"Hello {name},",
            "",
            "These approved access exceptions are about to expire. When an exception expires "
            "without an approved renewal, the deviation it accepted becomes an open finding.",
            "",
            *lines,
            "",
            "Steward",
        ]
    )


def send_expiry_notices(*, today: date | None = None) -> int:
    """Claim the due notices, then send one digest per recipient (application owners and the
    requester). Returns the number of mails sent."""
    today = today or timezone.localdate()
    candidates = AccessException.objects.filter(
        status=Status.APPROVED,
        expires_on__gte=today,
        expires_on__lte=today + timedelta(days=max(EXPIRY_NOTICE_DAYS)),
    )
    lines_for: dict[int, list[str]] = defaultdict(list)
    users: dict[int, object] = {}
    actor = Actor.system("exception expiry notices")
    with transaction.atomic():
        locked = list(
            candidates.select_for_update(of=("self",))
            .select_related("application", "requested_by")
            .prefetch_related("application__owners", "renewals")
            .order_by("expires_on", "pk")
        )
        for exception in locked:
            due = _due_thresholds(exception, today)
            if not due:
                continue
            exception.expiry_notices_sent = sorted(
                set(exception.expiry_notices_sent or []) | set(due), reverse=True
            )
            exception.save(update_fields=["expiry_notices_sent", "updated_at"])
            recipients = {u.pk: u for u in exception.application.owners.all() if u.is_active}
            if exception.requested_by.is_active:
                recipients[exception.requested_by_id] = exception.requested_by
            recipients = {pk: u for pk, u in recipients.items() if u.email}
            record(
                actor=actor,
                action="access_exception.expiry_notice_sent",
                target=exception,
                after={
                    "days_before": min(due),
                    "notices": exception.expiry_notices_sent,
                    "recipients": sorted(recipients),
                },
            )
            line = _line(exception, today)
            for pk, user in recipients.items():
                users[pk] = user
                lines_for[pk].append(line)
        per_user = {pk: (users[pk], lines) for pk, lines in lines_for.items()}

        def send() -> None:
            for user, lines in per_user.values():
                count = len(lines)
                EmailMessage(
                    subject=f"Steward: {count} exception{'s' * (count != 1)} expiring soon",
                    body=_body(user, lines),
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    to=[user.email],
                ).send()

        transaction.on_commit(send)
    return len(per_user)
