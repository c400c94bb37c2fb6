"""Celery adapters of the daily NHI jobs (schedules are django-celery-beat rows)."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="nhi.rotation_sweep", ignore_result=True)
def rotation_sweep() -> dict[str, int]:
    """Daily: rotation tasks for overdue and soon-expiring credentials, owner digests."""
    from governance.nhi.services import rotation_sweep as sweep

    counts = sweep()
    log.info("NHI rotation sweep: %s", counts)
    return counts


@shared_task(name="nhi.escalate_handoffs", ignore_result=True)
def escalate_handoffs() -> int:
    """Daily: remind proposed successors; hand-offs unanswered for too long go to security
    admins. Returns the number escalated."""
    from django.utils import timezone

    from governance.nhi.notifications import send_handoff_reminders
    from governance.nhi.services import handoffs_escalate

    count = len(handoffs_escalate())
    reminded = send_handoff_reminders(now=timezone.now())
    if count or reminded:
        log.info("Escalated %s NHI hand-offs; reminded %s people", count, reminded)
    return count
