"""A real Celery worker on the Redis broker carries a joiner into a real SCIM target.

Runs wherever ``CELERY_BROKER_URL`` is set (CI sets it); the rows are committed
(``transaction=True``) so the worker, on its own database connection, sees them.
"""

from __future__ import annotations

import threading
import time

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import EagerResult
from celery.signals import task_postrun
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone

from governance import celery_app
from governance.access.services import entitlement_create, policy_create
from governance.core.actor import Actor
from governance.identities.models import Identity
from governance.lifecycle.models import ProvisioningTask
from governance.lifecycle.services import requeue_stuck
from governance.lifecycle.tasks import execute_provisioning_task
from tests.lifecycle.conftest import ENTERPRISE, USER, connect_application

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not django_settings.CELERY_BROKER_URL, reason="needs CELERY_BROKER_URL (Redis)"
    ),
]

State = ProvisioningTask.State
DEADLINE_SECONDS = 30


_executed: dict[str, int] = {}  # Celery task id -> the thread that ran it


def _after_task(task_id=None, **kwargs):
    """In the worker thread after each task: count it, and close the thread's database
    connections so none outlives the test database."""
    connections.close_all()
    _executed[task_id] = threading.get_ident()


@pytest.fixture
def worker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.worker_hijack_root_logger
    conf.task_always_eager = False
    conf.worker_hijack_root_logger = False  # leave pytest's log capture alone
    task_postrun.connect(_after_task)
    try:
        with start_worker(celery_app, perform_ping_check=False, pool="solo", shutdown_timeout=15):
            yield
    finally:
        task_postrun.disconnect(_after_task)
        conf.task_always_eager, conf.worker_hijack_root_logger = saved


def _wait_until_done(identity: Identity) -> list[ProvisioningTask]:
    """Poll (bounded) until every task of the person is verified or failed. Stands in for
    beat only when a retry was scheduled (a grant that ran before its account existed): the
    retry is brought forward and sent by the periodic sweep."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    tasks: list[ProvisioningTask] = []
    while time.monotonic() < deadline:
        tasks = list(ProvisioningTask.objects.filter(identity=identity))
        if tasks and all(t.state in (State.VERIFIED, State.FAILED) for t in tasks):
            return tasks
        now = timezone.now()
        if ProvisioningTask.objects.filter(
            identity=identity, state=State.PENDING, attempts__gte=1, next_attempt_at__gt=now
        ).update(next_attempt_at=now):
            requeue_stuck()
        time.sleep(0.1)
    pytest.fail(f"tasks not done in {DEADLINE_SECONDS}s: {[(t.operation, t.state) for t in tasks]}")


@pytest.mark.django_db(transaction=True)
def test_a_worker_on_redis_provisions_a_joiner(entra, scim_target, worker):
    """POST /Users commits, ``on_commit`` sends the tasks to Redis, the worker claims each by
    id and provisions the target; Steward records the verified outcome."""
    app = connect_application("GitHub Enterprise", "scim", url=scim_target.base_url)
    group_id = scim_target.create_group("gh-engineering")
    ent = entitlement_create(
        actor=Actor.system("tests"), application=app, name="eng", external_value=group_id
    )
    policy_create(
        actor=Actor.system("tests"),
        name="Engineering gets eng",
        entitlements=[ent],
        attribute="department",
        attribute_value="Engineering",
    )

    response = entra.post(
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "userName": "lena.fischer@northwind.example",
            "active": True,
            ENTERPRISE: {"department": "Engineering"},
        },
    )
    assert response.status_code == 201, response.content
    identity = Identity.objects.get(pk=response.json()["id"])

    tasks = _wait_until_done(identity)

    assert {(t.operation, t.state) for t in tasks} == {
        (ProvisioningTask.Operation.CREATE_ACCOUNT, State.VERIFIED),
        (ProvisioningTask.Operation.GRANT, State.VERIFIED),
    }
    user = scim_target.user_named("lena.fischer@northwind.example")
    assert user["active"] is True
    assert scim_target.members(group_id) == {user["id"]}
    assert identity.accounts.get().external_id == user["id"]
    assert scim_target.writes("POST") == [("POST", "/Users")]

    # The same messages delivered again through the broker change nothing.
    requests = len(scim_target.app.requests)
    attempts = {t.pk: t.attempts for t in tasks}
    sent = [execute_provisioning_task.delay(t.pk) for t in tasks]
    assert not any(isinstance(result, EagerResult) for result in sent)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not {r.id for r in sent} <= set(_executed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {r.id for r in sent} <= set(_executed)
    assert threading.get_ident() not in _executed.values()  # the worker's thread ran them
    assert len(scim_target.app.requests) == requests
    assert {t.pk: t.attempts for t in ProvisioningTask.objects.filter(identity=identity)} == (
        attempts
    )
