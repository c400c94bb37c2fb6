"""Expiry notices 30, 7 and 1 days before an exception ends: each once, one digest mail per
person, to the application's owners and the requester."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from governance.audit.models import AuditEvent
from governance.risk.notifications import send_expiry_notices
from governance.risk.tasks import send_expiry_notices as send_task

pytestmark = pytest.mark.django_db


def _send(today, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return send_expiry_notices(today=today)


def test_each_notice_is_sent_once_in_one_digest_per_person(
    world, django_capture_on_commit_callbacks
):
    today = world.today
    month = world.approved(title="Ledgerly roles", expires_on=today + timedelta(days=30))
    week = world.approved(
        title="VaultFin accounts", app=world.vaultfin, expires_on=today + timedelta(days=7)
    )
    world.approved(title="Far away", expires_on=today + timedelta(days=120))

    assert _send(today, django_capture_on_commit_callbacks) == 1
    assert len(mail.outbox) == 1
    digest = mail.outbox[0]
    assert digest.to == ["grace@x.com"] and "2 exceptions expiring soon" in digest.subject
    assert "Ledgerly roles" in digest.body and "VaultFin accounts" in digest.body
    assert "Far away" not in digest.body
    month.refresh_from_db()
    week.refresh_from_db()
    assert month.expiry_notices_sent == [30]
    assert week.expiry_notices_sent == [30, 7]  # approved late: one notice, 30 is passed

    assert _send(today, django_capture_on_commit_callbacks) == 0  # same day: nothing again
    assert len(mail.outbox) == 1

    six_days_later = today + timedelta(days=6)
    assert _send(six_days_later, django_capture_on_commit_callbacks) == 1
    assert "VaultFin accounts" in mail.outbox[-1].body
    assert "ends in 1 day" in mail.outbox[-1].body
    assert "Ledgerly roles" not in mail.outbox[-1].body

    sent = {
        day: _send(today + timedelta(days=day), django_capture_on_commit_callbacks)
        for day in range(7, 31)
    }
    assert sent[23] == 1 and sent[29] == 1
    assert sum(sent.values()) == 2
    month.refresh_from_db()
    week.refresh_from_db()
    assert month.expiry_notices_sent == [30, 7, 1]
    assert week.expiry_notices_sent == [30, 7, 1]
    assert AuditEvent.objects.filter(action="access_exception.expiry_notice_sent").count() == 5


def test_owners_and_requester_each_get_their_digest(world, django_capture_on_commit_callbacks):
    world.approved(by=world.sam, approver=world.sara, expires_on=world.today + timedelta(days=1))
    _send(world.today, django_capture_on_commit_callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["grace@x.com", "sam@x.com"]
    assert all("ends in 1 day" in m.body for m in mail.outbox)


def test_ended_exceptions_get_no_notice(world, django_capture_on_commit_callbacks):
    from governance.risk import services

    exception = world.approved(expires_on=world.today + timedelta(days=5))
    services.exception_revoke(actor=world.actor(world.sam), exception=exception, comment="x")
    assert _send(world.today, django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []


def test_the_beat_task_sends_the_notices(world, django_capture_on_commit_callbacks):
    world.approved(expires_on=world.today + timedelta(days=7))
    with django_capture_on_commit_callbacks(execute=True):
        send_task.delay()
    assert len(mail.outbox) == 1
