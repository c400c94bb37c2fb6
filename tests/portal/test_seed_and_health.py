"""seed_demo and /healthz."""

from unittest import mock

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import OperationalError

from governance.access.selectors import excess_privileged_grants, orphan_accounts, stale_accounts
from governance.audit.selectors import audit_chain_verify
from governance.identities.models import Identity
from governance.nhi.models import NonHumanIdentity
from governance.nhi.selectors import unowned_nhis

pytestmark = pytest.mark.django_db


def _counts():
    return {
        m._meta.label: m._default_manager.count()
        for m in apps.get_models()
        if m._meta.app_label
        in {"identities", "access", "nhi", "portal", "audit", "risk", "reconciliation", "api"}
    }


def test_seed_demo_is_idempotent_and_realistic(capsys):
    call_command("seed_demo")
    first = _counts()
    out = capsys.readouterr().out
    assert "Admin login: admin / steward-demo" in out
    call_command("seed_demo")
    assert _counts() == first
    assert "nothing to create" in capsys.readouterr().out
    assert Identity.objects.count() >= 150
    assert Identity.objects.exclude(manager=None).count() >= 140
    assert NonHumanIdentity.objects.count() >= 15
    assert unowned_nhis().exists()
    assert orphan_accounts().exists()
    assert stale_accounts().exists()
    assert excess_privileged_grants().exists()
    modes = set(
        apps.get_model("access", "Application").objects.values_list("provisioning_mode", flat=True)
    )
    assert modes == {"scim", "scim_partial", "manual"}
    assert audit_chain_verify()[1] is None


def test_seed_demo_scale(capsys):
    call_command("seed_demo", scale=2)
    assert Identity.objects.count() >= 300


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["status"] == "ok"
    assert body["broker"]["status"] in {"ok", "down"}


def test_healthz_database_down(client):
    """503 when the database cannot answer; no internals in the body."""
    with mock.patch(
        "governance.portal.views.connection.cursor",
        side_effect=OperationalError("connection refused at 10.0.0.5"),
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["database"]["status"] == "down"
    assert "10.0.0.5" not in response.content.decode()


def test_healthz_broker_down(client, settings):
    """A broker outage is reported as degraded, still 200 while the database answers."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["broker"]["status"] == "down"
    assert response.json()["status"] == "degraded"
