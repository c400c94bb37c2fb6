"""The reconciliation dispatcher as a django-celery-beat row: every 15 minutes it queues the
SCIM reads that are due (each application's cadence is in its reconciliation settings)."""

from django.db import migrations

NAME, TASK, EVERY = "reconciliation-dispatch", "reconciliation.dispatch", 900


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=EVERY, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": interval,
            "description": "Queue scheduled reconciliation reads of SCIM applications that are "
            "due, and fail runs a lost worker left running.",
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0004_role_permissions"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
