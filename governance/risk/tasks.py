"""Daily jobs of exceptions and controls (Celery beat; the PeriodicTask rows come from
risk/0004_beat_schedules and are editable in the admin). Each is idempotent: a repeated or
overlapping run finds nothing left to do."""

from celery import shared_task


@shared_task(name="risk.expire_exceptions", ignore_result=True)
def expire_exceptions() -> int:
    """Expire approved exceptions past their expiry date; re-open what they suppressed."""
    from governance.risk.services import exceptions_expire_due

    return exceptions_expire_due()


@shared_task(name="risk.send_expiry_notices", ignore_result=True)
def send_expiry_notices() -> int:
    """Tell owners 30, 7 and 1 days before an exception expires (one digest per person)."""
    from governance.risk.notifications import send_expiry_notices as send

    return send()


@shared_task(name="risk.flag_overdue_controls", ignore_result=True)
def flag_overdue_controls() -> int:
    """Open a finding for each active compensating control past its due date."""
    from governance.risk.services import controls_flag_overdue

    return controls_flag_overdue()
