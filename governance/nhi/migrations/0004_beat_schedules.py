"""The daily NHI jobs as django-celery-beat rows, editable (and switchable) in the admin.
Idempotent: looked up by name."""

from django.db import migrations
from django.utils import timezone

DAILY = {"day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
SCHEDULES = [
    # name, task, crontab, description
    (
        "nhi-rotation-sweep",
        "nhi.rotation_sweep",
        {"minute": "30", "hour": "6", **DAILY},
        "Raise rotation tasks for NHI credentials older than policy, expired or expiring "
        "soon; one digest mail per owner.",
    ),
    (
        "nhi-escalate-handoffs",
        "nhi.escalate_handoffs",
        {"minute": "45", "hour": "6", **DAILY},
        "Remind proposed successors of open NHI hand-offs; escalate those unanswered for "
        "STEWARD_NHI_HANDOFF_ESCALATE_DAYS (default 5) to security admins.",
    ),
]


def create(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    created = False
    for name, task, spec, description in SCHEDULES:
        crontab = CrontabSchedule.objects.filter(timezone="UTC", **spec).first()
        if crontab is None:
            crontab = CrontabSchedule.objects.create(timezone="UTC", **spec)
        _obj, was_created = PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "crontab": crontab, "description": description}
        )
        created |= was_created
    if created:
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_rest in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("nhi", "0003_role_permissions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
