"""The daily jobs of exceptions and controls as django-celery-beat rows, editable (and
switchable) in the admin. Idempotent: looked up by name."""

from django.db import migrations
from django.utils import timezone

SCHEDULES = [
    # name, task, hour (UTC), description
    (
        "risk-expire-exceptions",
        "risk.expire_exceptions",
        "0",
        "Expire approved exceptions past their expiry date: re-open the findings they "
        "suppressed and open an 'exception expired' finding when no renewal replaced them.",
    ),
    (
        "risk-flag-overdue-controls",
        "risk.flag_overdue_controls",
        "1",
        "Open a 'control overdue' finding for each active compensating control past its "
        "due date.",
    ),
    (
        "risk-send-expiry-notices",
        "risk.send_expiry_notices",
        "7",
        "Tell application owners and requesters 30, 7 and 1 days before an exception expires "
        "(one digest mail per person).",
    ),
]


def create_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    created = False
    for name, task, hour, description in SCHEDULES:
        spec = {
            "minute": "15",
            "hour": hour,
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
        }
        crontab = CrontabSchedule.objects.filter(timezone="UTC", **spec).first()
        if crontab is None:
            crontab = CrontabSchedule.objects.create(timezone="UTC", **spec)
        _obj, was_created = PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "crontab": crontab, "description": description}
        )
        created |= was_created
    if created:
        # What PeriodicTasks.changed() does on a model save: tells a running beat to reload.
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_rest in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0003_role_permissions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
