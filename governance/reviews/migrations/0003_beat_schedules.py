"""Periodic tasks of access reviews as django-celery-beat rows, so they can be edited (and
switched off) in the admin, the only source of schedules. Idempotent: looked up by name."""

from django.db import migrations
from django.utils import timezone

# The daily digest goes out in the morning; the campaign's reminder_every_days decides which
# items are due.
DIGEST = (
    "reviews-send-reminders",
    "reviews.send_reminders",
    {"minute": "0", "hour": "8", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
    (
        "Digest mail to each reviewer with pending items due for a reminder "
        "(per campaign: reminder every N days)."
    ),
)
SCHEDULES = [
    # name, task, every (seconds), description
    (
        "reviews-escalate",
        "reviews.escalate",
        3600,
        (
            "Reassign items pending past the campaign's escalation delay to the escalation "
            "person, the reviewer's manager or the fallback reviewer."
        ),
    ),
    (
        "reviews-close-due",
        "reviews.close_due",
        900,
        "Close campaigns whose due date passed; undecided items get the timeout action.",
    ),
    (
        "reviews-start-recurring",
        "reviews.start_recurring",
        3600,
        "Create the next draft of each closed recurring campaign.",
    ),
    (
        "reviews-sync-remediation",
        "reviews.sync_remediation",
        600,
        "Follow revoked items' provisioning tasks into their remediation state.",
    ),
]


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    name, task, spec, description = DIGEST
    crontab = CrontabSchedule.objects.filter(timezone="UTC", **spec).first()
    if crontab is None:
        crontab = CrontabSchedule.objects.create(timezone="UTC", **spec)
    _obj, created = PeriodicTask.objects.get_or_create(
        name=name, defaults={"task": task, "crontab": crontab, "description": description}
    )
    for name, task, every, description in SCHEDULES:
        interval = IntervalSchedule.objects.filter(every=every, period="seconds").first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=every, period="seconds")
        _obj, was_created = PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": task, "interval": interval, "description": description},
        )
        created |= was_created
    if created:
        # What PeriodicTasks.changed() does on a model save: tells a running beat to reload.
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    names = [DIGEST[0]] + [name for name, *_rest in SCHEDULES]
    PeriodicTask.objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0001_initial"),
        ("reviews", "0002_role_permissions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
