"""Health and the portal's landing page."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection


def _database_status() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the detail stays in the log
        return {"status": "down", "error": type(exc).__name__, "vendor": connection.vendor}
    return {"status": "ok", "vendor": connection.vendor}


def _broker_status() -> dict:
    if not settings.CELERY_BROKER_URL:
        return {"status": "ok", "mode": "in-process"}
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return {"status": "down", "mode": "broker", "error": type(exc).__name__}
    return {"status": "ok", "mode": "broker"}


@never_cache
@require_GET
def healthz(request):
    """Liveness for load balancers: 503 when the database is unreachable. A broker outage is
    reported (work queues up) but does not fail the check."""
    database = _database_status()
    broker = _broker_status()
    healthy = database["status"] == "ok"
    body = {
        "status": "ok"
        if healthy and broker["status"] == "ok"
        else ("degraded" if healthy else "down"),
        "database": database,
        "broker": broker,
    }
    return JsonResponse(body, status=200 if healthy else 503)


def home(request):
    return redirect("admin:index")
