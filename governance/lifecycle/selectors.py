"""Reads over lifecycle events and provisioning work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, QuerySet
from django.utils import timezone

from governance.access.models import Application
from governance.lifecycle.models import LifecycleEvent, ProvisioningProfile, ProvisioningTask

# Presets of the capability profile per provisioning mode.
MODE_PRESETS = {
    Application.ProvisioningMode.SCIM: {
        "supports_create": True,
        "supports_update": True,
        "supports_deactivate": True,
        "supports_delete": True,
        "supports_entitlements": True,
    },
    Application.ProvisioningMode.SCIM_PARTIAL: {
        "supports_create": True,
        "supports_update": False,
        "supports_deactivate": True,
        "supports_delete": False,
        "supports_entitlements": False,
    },
    Application.ProvisioningMode.MANUAL: {
        "supports_create": False,
        "supports_update": False,
        "supports_deactivate": False,
        "supports_delete": False,
        "supports_entitlements": False,
    },
}

_NEEDS = {
    ProvisioningTask.Operation.CREATE_ACCOUNT: "supports_create",
    ProvisioningTask.Operation.UPDATE_ACCOUNT: "supports_update",
    ProvisioningTask.Operation.DISABLE_ACCOUNT: "supports_deactivate",
    ProvisioningTask.Operation.ENABLE_ACCOUNT: "supports_deactivate",
    ProvisioningTask.Operation.GRANT: "supports_entitlements",
    ProvisioningTask.Operation.REVOKE: "supports_entitlements",
}


def profile_for(application: Application) -> ProvisioningProfile:
    """The application's profile, or an unsaved one holding its mode's preset."""
    try:
        return application.provisioning_profile
    except ProvisioningProfile.DoesNotExist:
        return ProvisioningProfile(
            application=application, **MODE_PRESETS[application.provisioning_mode]
        )


def channel_for(application: Application, operation: str) -> tuple[str, str]:
    """(channel, why) for one operation: SCIM when the app can do it and is connected."""
    if application.provisioning_mode == Application.ProvisioningMode.MANUAL:
        return ProvisioningTask.Channel.MANUAL, "the application has no SCIM"
    profile = profile_for(application)
    if not getattr(profile, _NEEDS[operation]):
        return ProvisioningTask.Channel.MANUAL, "the application's SCIM cannot do this"
    if not profile.connected:
        return ProvisioningTask.Channel.MANUAL, "no SCIM connector is configured"
    return ProvisioningTask.Channel.SCIM, ""


def open_tasks() -> QuerySet[ProvisioningTask]:
    return ProvisioningTask.objects.filter(state__in=ProvisioningTask.OPEN_STATES)


@dataclass(frozen=True)
class AppDeprovisioning:
    application: Application
    tasks: int
    open: int
    last_verified_at: datetime | None
    hours: float | None
    sla_hours: int
    breached: bool


@dataclass(frozen=True)
class LeaverClock:
    event: LifecycleEvent
    per_app: list[AppDeprovisioning]
    overall_hours: float | None
    done: bool
    breached: bool


def _hours(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 3600, 2)


def leaver_clock(event: LifecycleEvent, *, now: datetime | None = None) -> LeaverClock:
    """Time to deprovision: from the leaver event to the last account verified disabled,
    per application and overall; SLA breach when verification (or now) passes the SLA."""
    now = now or timezone.now()
    rows = {}
    tasks = (
        event.tasks.select_related("application")
        .exclude(state=ProvisioningTask.State.CANCELLED)
        .order_by("application__name")
    )
    for task in tasks:
        rows.setdefault(task.application, []).append(task)
    per_app = []
    for app, items in rows.items():
        open_count = sum(1 for t in items if t.state != ProvisioningTask.State.VERIFIED)
        last = max((t.verified_at for t in items if t.verified_at), default=None)
        end = last if open_count == 0 else now
        hours = _hours(event.occurred_at, end) if open_count == 0 and last else None
        breached = end > event.occurred_at + timedelta(hours=app.deprovisioning_sla_hours)
        per_app.append(
            AppDeprovisioning(
                app, len(items), open_count, last, hours, app.deprovisioning_sla_hours, breached
            )
        )
    done = all(a.open == 0 for a in per_app)
    last_overall = max((a.last_verified_at for a in per_app if a.last_verified_at), default=None)
    overall = (
        _hours(event.occurred_at, last_overall)
        if done and last_overall
        else (0.0 if done else None)
    )
    return LeaverClock(event, per_app, overall, done, any(a.breached for a in per_app))


def open_leavers() -> QuerySet[LifecycleEvent]:
    """Leaver events with work still open, oldest first, with their latest verification."""
    return (
        LifecycleEvent.objects.filter(kind=LifecycleEvent.Kind.LEAVER, completed_at__isnull=True)
        .select_related("identity")
        .annotate(last_verified=Max("tasks__verified_at"))
        .order_by("occurred_at")
    )
