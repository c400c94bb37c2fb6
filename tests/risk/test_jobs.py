"""The daily jobs exist as beat rows (editable in the admin) and run through Celery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from governance.celery import app as celery_app
from governance.reconciliation.models import Finding
from governance.risk import tasks
from governance.risk.models import AccessException

pytestmark = pytest.mark.django_db


def test_beat_rows_name_registered_tasks():
    rows = dict(PeriodicTask.objects.filter(name__startswith="risk-").values_list("name", "task"))
    assert rows == {
        "risk-expire-exceptions": "risk.expire_exceptions",
        "risk-flag-overdue-controls": "risk.flag_overdue_controls",
        "risk-send-expiry-notices": "risk.send_expiry_notices",
    }
    celery_app.loader.import_default_modules()
    assert set(rows.values()) <= set(celery_app.tasks)
    assert all(row.crontab_id for row in PeriodicTask.objects.filter(name__startswith="risk-"))


def test_expiry_and_overdue_tasks_do_their_work_once(world):
    exception = world.approved(expires_on=world.today)
    AccessException.objects.filter(pk=exception.pk).update(
        expires_on=timezone.localdate() - timedelta(days=1)
    )
    world.control(name="Late", next_due_on=world.today - timedelta(days=2))
    for _ in range(2):
        tasks.expire_exceptions.delay()
        tasks.flag_overdue_controls.delay()
    exception.refresh_from_db()
    assert exception.status == AccessException.Status.EXPIRED
    assert Finding.objects.filter(kind=Finding.Kind.EXCEPTION_EXPIRED).count() == 1
    assert Finding.objects.filter(kind=Finding.Kind.CONTROL_OVERDUE).count() == 1
