"""Celery adapters: take ids, re-read, claim with a conditional UPDATE, delegate."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="lifecycle.execute_provisioning_task", ignore_result=True)
def execute_provisioning_task(task_id: int) -> None:
    """Carry out one SCIM provisioning task. Returns quietly when the task is gone, not due,
    already claimed or done; transient failures are rescheduled by the service with backoff."""
    from governance.lifecycle.connectors import run_task
    from governance.lifecycle.services import task_claim

    task = task_claim(task_id)
    if task is None:
        return
    run_task(task)


@shared_task(name="lifecycle.sweep", ignore_result=True)
def sweep_provisioning() -> int:
    """Periodic: requeue tasks stuck in progress and pending tasks whose retry is due."""
    from governance.lifecycle.services import requeue_stuck

    count = requeue_stuck()
    if count:
        log.info("Re-queued %s provisioning tasks", count)
    return count
