"""Reads over lifecycle events and provisioning work."""

from __future__ import annotations

from collections import Counter, defaultdict
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
    return leaver_clocks([event], now=now or timezone.now())[event.pk][0]


def leaver_clocks(
    events: list[LifecycleEvent], *, now: datetime, app_ids: set[int] | None = None
) -> dict[int, tuple[LeaverClock, dict[int, Counter]]]:
    """Time to deprovision for many leavers in one query (no query per leaver).

    ``app_ids`` narrows the rows to those applications (an application owner's view).
    Also returns, per event and application, how many tasks are in each state.
    """
    tasks = (
        ProvisioningTask.objects.filter(event__in=[e.pk for e in events])
        .exclude(state=ProvisioningTask.State.CANCELLED)
        .select_related("application")
        .order_by("application__name", "pk")
    )
    if app_ids is not None:
        tasks = tasks.filter(application_id__in=app_ids)
    grouped: dict[int, dict[Application, list[ProvisioningTask]]] = defaultdict(dict)
    for task in tasks:
        grouped[task.event_id].setdefault(task.application, []).append(task)
    result = {}
    for event in events:
        per_app, states = [], {}
        for app, items in grouped.get(event.pk, {}).items():
            open_count = sum(1 for t in items if t.state != ProvisioningTask.State.VERIFIED)
            last = max((t.verified_at for t in items if t.verified_at), default=None)
            end = last if open_count == 0 else now
            hours = (
                round((end - event.occurred_at).total_seconds() / 3600, 2)
                if open_count == 0 and last
                else None
            )
            sla = app.deprovisioning_sla_hours
            breached = end > event.occurred_at + timedelta(hours=sla)
            per_app.append(
                AppDeprovisioning(app, len(items), open_count, last, hours, sla, breached)
            )
            states[app.pk] = Counter(
                t.state for t in items if t.state != ProvisioningTask.State.VERIFIED
            )
        result[event.pk] = (_clock(event, per_app), states)
    return result


def _clock(event: LifecycleEvent, per_app: list[AppDeprovisioning]) -> LeaverClock:
    """Overall figures of a clock from its per-application rows (as the selector does)."""
    done = all(a.open == 0 for a in per_app)
    last = max((a.last_verified_at for a in per_app if a.last_verified_at), default=None)
    if done and last:
        overall = round((last - event.occurred_at).total_seconds() / 3600, 2)
    else:
        overall = 0.0 if done else None
    return LeaverClock(event, per_app, overall, done, any(a.breached for a in per_app))


def open_leavers() -> QuerySet[LifecycleEvent]:
    """Leaver events with work still open, oldest first, with their latest verification."""
    return (
        LifecycleEvent.objects.filter(kind=LifecycleEvent.Kind.LEAVER, completed_at__isnull=True)
        .select_related("identity")
        .annotate(last_verified=Max("tasks__verified_at"))
        .order_by("occurred_at")
    )
