"""Celery adapters: take ids, claim with a conditional UPDATE (in the service), delegate."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="reconciliation.execute_run", ignore_result=True)
def execute_run(run_id: int) -> None:
    """Import and compare one queued run. Returns quietly when the run is gone, already
    claimed or finished, so a duplicated message or a retry never applies twice."""
    from governance.reconciliation.services import run_execute

    run_execute(run_id)


@shared_task(name="reconciliation.dispatch", ignore_result=True)
def dispatch_scheduled_runs() -> int:
    """Periodic: queue the SCIM reads that are due, and fail runs a lost worker left running."""
    from governance.reconciliation.services import dispatch_scheduled

    count = dispatch_scheduled()
    if count:
        log.info("Queued %s scheduled reconciliation runs", count)
    return count
