from celery import shared_task


@shared_task(name="reviews.build_population", ignore_result=True)
def build_population(campaign_id: int) -> None:
    """Build a launching campaign's snapshot; returns quietly when it is not launching."""
    from governance.reviews.services import build_population as build

    build(campaign_id)


# Periodic (Celery beat; PeriodicTask rows from reviews/0003_beat_schedules, editable in the
# admin). Each is idempotent: a duplicate or overlapping run finds nothing left to do.


@shared_task(name="reviews.send_reminders", ignore_result=True)
def send_reminders() -> int:
    """One digest mail per reviewer whose pending items are due for a reminder."""
    from governance.reviews.notifications import send_review_reminders

    return send_review_reminders()


@shared_task(name="reviews.escalate", ignore_result=True)
def escalate() -> int:
    """Reassign items pending past the campaign's escalation delay."""
    from governance.reviews.notifications import escalate_overdue

    return escalate_overdue()


@shared_task(name="reviews.close_due", ignore_result=True)
def close_due() -> int:
    """Close campaigns past their due date, applying the timeout actions."""
    from governance.reviews.notifications import close_due_campaigns

    return close_due_campaigns()


@shared_task(name="reviews.start_recurring", ignore_result=True)
def start_recurring() -> int:
    """Create the next draft of each closed recurring campaign (once)."""
    from governance.reviews.notifications import start_recurring_campaigns

    return start_recurring_campaigns()


@shared_task(name="reviews.sync_remediation", ignore_result=True)
def sync_remediation() -> int:
    """Follow revoked items' provisioning tasks into their remediation state."""
    from governance.reviews.notifications import sync_remediation as sync

    return sync()
