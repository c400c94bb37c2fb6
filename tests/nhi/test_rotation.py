"""Rotation tracking: the daily sweep raises one task per overdue or expiring credential,
mails each owner one digest, and recording a rotation with evidence closes the work."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition
from governance.nhi import services
from governance.nhi.models import Credential, RotationTask
from governance.nhi.tasks import rotation_sweep
from tests.factories import CredentialFactory, IdentityFactory, NonHumanIdentityFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def old(days):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def owners():
    return IdentityFactory(user_name="olga@northwind.example"), IdentityFactory(
        user_name="pete@northwind.example"
    )


def test_sweep_raises_tasks_once_and_mails_one_digest_per_owner(owners):
    olga, pete = owners
    overdue = CredentialFactory(nhi__owner=olga, issued_at=old(200))
    expiring = CredentialFactory(
        nhi__owner=olga, issued_at=old(5), expires_at=timezone.now() + timedelta(days=3)
    )
    petes = CredentialFactory(nhi__owner=pete, issued_at=old(100))
    fresh = CredentialFactory(nhi__owner=pete, issued_at=old(5))
    revoked = CredentialFactory(nhi__owner=pete, issued_at=old(500), status="revoked")
    mail.outbox.clear()

    counts = rotation_sweep.delay().get()

    assert counts == {"overdue": 2, "expiring": 1, "mails": 2}
    tasks = {t.credential_id: t.reason for t in RotationTask.objects.all()}
    assert tasks == {overdue.pk: "overdue", expiring.pk: "expiring", petes.pk: "overdue"}
    assert fresh.pk not in tasks and revoked.pk not in tasks
    by_address = {m.to[0]: m for m in mail.outbox}
    assert set(by_address) == {"olga@northwind.example", "pete@northwind.example"}
    assert str(overdue) in by_address["olga@northwind.example"].body
    assert str(expiring) in by_address["olga@northwind.example"].body
    assert str(petes) not in by_address["olga@northwind.example"].body

    # Same day again: no duplicate tasks, no second mail.
    assert services.rotation_sweep() == {"overdue": 0, "expiring": 0, "mails": 0}
    assert RotationTask.objects.count() == 3 and len(mail.outbox) == 2
    # A day later the owners are reminded of what is still open.
    again = services.rotation_sweep(now=timezone.now() + timedelta(days=1))
    assert again["mails"] == 2 and RotationTask.objects.count() == 3


def test_departed_owner_gets_no_digest(owners):
    olga, _pete = owners
    olga.active = False
    olga.save()
    CredentialFactory(nhi__owner=olga, issued_at=old(200))
    mail.outbox.clear()
    assert services.rotation_sweep()["mails"] == 0
    assert RotationTask.objects.count() == 1


def test_record_rotation_closes_open_tasks_with_evidence(owners):
    credential = CredentialFactory(nhi__owner=owners[0], issued_at=old(200))
    services.rotation_sweep(notify=False)
    rotated_at = old(0) - timedelta(minutes=1)
    new_expiry = timezone.now() + timedelta(days=90)
    services.credential_record_rotation(
        actor=ACTOR,
        credential=credential,
        rotated_at=rotated_at,
        evidence_reference="CHG-7",
        evidence_note="New key in vault",
        expires_at=new_expiry,
    )
    credential.refresh_from_db()
    assert credential.last_rotated_at == rotated_at and credential.expires_at == new_expiry
    task = RotationTask.objects.get()
    assert (task.state, task.evidence_reference, task.evidence_note) == (
        "done",
        "CHG-7",
        "New key in vault",
    )
    event = AuditEvent.objects.get(action="credential.rotated")
    assert event.after["rotation_tasks_closed"] == [task.pk]
    assert services.rotation_sweep(notify=False)["overdue"] == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "evidence_reference"),
        ({"evidence_reference": "  "}, "evidence_reference"),
        ({"evidence_reference": "x" * 201}, "evidence_reference"),
        ({"evidence_note": "ok", "rotated_at": timezone.now() + timedelta(days=1)}, "rotated_at"),
        ({"evidence_note": "ok", "rotated_at": old(400)}, "rotated_at"),
        ({"evidence_note": "ok", "expires_at": old(1)}, "expires_at"),
    ],
    ids=[
        "no-evidence",
        "blank-evidence",
        "long-reference",
        "future",
        "before-creation",
        "expiry-in-past",
    ],
)
def test_bad_rotation_is_refused_and_changes_nothing(kwargs, field):
    credential = CredentialFactory(issued_at=old(300))
    with pytest.raises(DomainError) as exc:
        services.credential_record_rotation(actor=ACTOR, credential=credential, **kwargs)
    assert exc.value.field == field
    credential.refresh_from_db()
    assert credential.last_rotated_at is None
    assert not AuditEvent.objects.filter(action="credential.rotated").exists()


def test_rotation_of_revoked_or_earlier_than_recorded_is_refused():
    credential = CredentialFactory(issued_at=old(300), last_rotated_at=old(10))
    with pytest.raises(DomainError, match="later rotation"):
        services.credential_record_rotation(
            actor=ACTOR, credential=credential, rotated_at=old(20), evidence_note="x"
        )
    credential.status = Credential.Status.REVOKED
    credential.save()
    with pytest.raises(InvalidTransition):
        services.credential_record_rotation(actor=ACTOR, credential=credential, evidence_note="x")


def test_credential_create_validates_metadata():
    nhi = NonHumanIdentityFactory()
    with pytest.raises(DomainError) as exc:
        services.credential_create(
            actor=ACTOR, nhi=nhi, name="key", type="api_key", environments=["prod"]
        )
    assert exc.value.field == "environments"
    with pytest.raises(DomainError) as exc:
        services.credential_create(actor=ACTOR, nhi=nhi, name="key", type="plaintext")
    assert exc.value.field == "type"
    created = services.credential_create(
        actor=ACTOR,
        nhi=nhi,
        name="key",
        type="api_key",
        environments=["production", "staging"],
        known_by=[nhi.owner],
    )
    assert created.environments == ["production", "staging"]
    assert list(created.known_by.all()) == [nhi.owner]
    with pytest.raises(DomainError) as exc:
        services.credential_create(actor=ACTOR, nhi=nhi, name="KEY", type="api_key")
    assert exc.value.field == "name"
    assert Credential.objects.count() == 1
