"""Compensating controls: who may manage them, evidence (with its file rules), the schedule,
and the findings raised when a control is overdue or fails."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import date, datetime, time, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.core.errors import DomainError, InvalidTransition, PermissionDenied
from governance.reconciliation.models import Finding
from governance.risk import services
from governance.risk.models import CompensatingControl, ControlEvidence
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
K = Finding.Kind
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _at(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(10)))


def record(world, control, *, by=None, result="pass", when=None, note="Checked.", file=None):
    return services.control_record_evidence(
        actor=world.actor(by or world.grace),
        control=control,
        performed_at=when or timezone.now(),
        result=result,
        note=note,
        file=file,
    )


# ------------------------------------------------------------------------------ managing


@pytest.mark.parametrize(
    ("who", "app", "allowed"),
    [
        ("grace", "ledgerly", True),
        ("sam", "ledgerly", True),
        ("lena", "ledgerly", False),
        ("outsider", "ledgerly", False),
        ("grace", None, False),
        ("sam", None, True),
    ],
    ids=["owner", "security", "colleague", "outsider", "owner-org-wide", "security-org-wide"],
)
def test_who_may_register_a_control(world, who, app, allowed):
    user = getattr(world, who)
    kwargs = dict(
        actor=world.actor(user),
        name="Quarterly access review",
        kind="periodic_review",
        frequency="quarterly",
        next_due_on=world.today,
        application=getattr(world, app) if app else None,
    )
    if allowed:
        control = services.control_create(**kwargs)
        assert control.owner == user
        assert AuditEvent.objects.filter(action="compensating_control.created").exists()
    else:
        with pytest.raises(PermissionDenied):
            services.control_create(**kwargs)
        assert not CompensatingControl.objects.exists()


def test_manual_deprovisioning_control_promises_a_turnaround(world):
    with pytest.raises(DomainError) as raised:
        world.control(kind="manual_deprovisioning")
    assert raised.value.field == "within_hours"
    assert world.control(kind="manual_deprovisioning", within_hours=24).within_hours == 24


def test_colleague_cannot_change_a_control(world):
    control = world.control()
    with pytest.raises(PermissionDenied):
        services.control_update(actor=world.actor(world.lena), control=control, name="x")
    updated = services.control_update(actor=world.actor(world.grace), control=control, name="y")
    assert updated.name == "y"


# ------------------------------------------------------------------------------ evidence


@pytest.mark.parametrize(
    ("frequency", "due", "performed", "expected"),
    [
        ("monthly", date(2026, 1, 5), date(2026, 1, 4), date(2026, 2, 5)),
        ("monthly", date(2026, 1, 31), date(2026, 1, 30), date(2026, 2, 28)),
        ("monthly", date(2026, 1, 5), date(2026, 3, 20), date(2026, 4, 5)),
        ("quarterly", date(2026, 11, 5), date(2026, 11, 1), date(2027, 2, 5)),
        ("weekly", date(2026, 1, 5), date(2026, 1, 5), date(2026, 1, 12)),
        ("daily", date(2026, 1, 5), date(2026, 1, 1), date(2026, 1, 6)),
        ("annual", date(2026, 2, 28), date(2026, 2, 1), date(2027, 2, 28)),
    ],
    ids=["on-time", "month-end", "late-keeps-anchor", "quarterly", "weekly", "daily", "annual"],
)
def test_next_due_moves_on_by_the_frequency(frequency, due, performed, expected):
    assert services.next_due_after(due, frequency, performed) == expected


def test_recording_evidence_advances_the_schedule_and_is_audited(world):
    control = world.control(next_due_on=world.today + timedelta(days=3))
    evidence = record(world, control)
    control.refresh_from_db()
    assert control.next_due_on == services.advance(world.today + timedelta(days=3), "monthly")
    assert control.last_result == "pass" and control.last_performed_at == evidence.performed_at
    event = AuditEvent.objects.get(action="control_evidence.recorded")
    assert event.after["next_due_on"] == control.next_due_on.isoformat()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"when": "future"}, "performed_at"),
        ({"result": "maybe"}, "result"),
        ({"note": "  "}, "note"),
    ],
    ids=["future", "bad-result", "no-note-no-file"],
)
def test_bad_evidence_is_refused_and_changes_nothing(world, kwargs, field):
    control = world.control()
    due = control.next_due_on
    if kwargs.get("when") == "future":
        kwargs["when"] = timezone.now() + timedelta(hours=2)
    with pytest.raises(DomainError) as raised:
        record(world, control, **kwargs)
    assert raised.value.field == field
    control.refresh_from_db()
    assert control.next_due_on == due and not ControlEvidence.objects.exists()


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("grace", True), ("performer", True), ("sam", True), ("lena", False), ("alex", False)],
    ids=["app-owner", "control-owner", "security", "colleague", "auditor"],
)
def test_who_may_record_evidence(world, who, allowed):
    performer = UserFactory(username="controller")
    control = world.control(owner=performer)
    user = performer if who == "performer" else getattr(world, who)
    if allowed:
        assert record(world, control, by=user).performed_by == user
    else:
        with pytest.raises(PermissionDenied):
            record(world, control, by=user)


def test_retired_control_takes_no_evidence(world):
    control = world.control()
    services.control_retire(actor=world.actor(world.grace), control=control)
    with pytest.raises(InvalidTransition):
        record(world, control)


# ------------------------------------------------------------------------------ files


def _docx(valid=True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml" if valid else "payload/run.sh", "x")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("export.csv", b"a" * (10 * 1024 * 1024 + 1), "at most 10 MB"),
        ("export.pdf", b"<html><script>alert(1)</script></html>", "not a PDF file"),
        ("export.txt", b"<!DOCTYPE html><html><body>hi</body></html>", "web-page markup"),
        ("export.csv", b'<svg xmlns="http://www.w3.org/2000/svg" onload="x()"/>', "web-page"),
        ("export.txt", b"MZ\x90\x01\x03", "program or script"),
        ("export.json", b"#!/bin/sh\nrm -rf /\n", "program or script"),
        ("export.txt", b"", "empty"),
        ("export.html", b"<html></html>", "not accepted as evidence"),
        ("export.svg", b"<svg/>", "not accepted as evidence"),
        ("export.exe", b"MZ", "not accepted as evidence"),
        ("export.docx", _docx(valid=False), "not a DOCX document"),
        ("export.csv", b"a,b\x00\x01", "not CSV text"),
    ],
    ids=[
        "too-big",
        "html-as-pdf",
        "html-as-txt",
        "svg-as-csv",
        "exe-as-txt",
        "script-as-json",
        "empty",
        "html",
        "svg",
        "exe",
        "zip-as-docx",
        "binary-csv",
    ],
)
def test_evidence_file_limits(world, name, content, message):
    control = world.control()
    with pytest.raises(DomainError) as raised:
        record(world, control, file=SimpleUploadedFile(name, content))
    assert raised.value.field == "file" and message in raised.value.message
    assert not ControlEvidence.objects.exists()
    control.refresh_from_db()
    assert not control.last_result


@pytest.mark.parametrize(
    ("name", "content"),
    [("users.pdf", PDF), ("users.csv", b"user,role\nann,admin\n"), ("notes.docx", _docx())],
)
def test_accepted_file_is_stored_with_its_checksum(world, name, content):
    control = world.control()
    evidence = record(world, control, file=SimpleUploadedFile(name, content), note="")
    assert evidence.file_name == name and evidence.file_size == len(content)
    assert evidence.file_sha256 == hashlib.sha256(content).hexdigest()
    with evidence.file.open("rb") as stored:
        assert stored.read() == content


# ------------------------------------------------------------------------------ findings


def test_overdue_controls_get_one_finding_each(world):
    late = world.control(name="Late", next_due_on=world.today - timedelta(days=3))
    world.control(name="Due today", next_due_on=world.today)
    retired = world.control(name="Retired", next_due_on=world.today - timedelta(days=9))
    services.control_retire(actor=world.actor(world.grace), control=retired)
    assert services.controls_flag_overdue(today=world.today) == 1
    assert services.controls_flag_overdue(today=world.today) == 0  # idempotent
    finding = Finding.objects.get(kind=K.CONTROL_OVERDUE)
    assert finding.control == late and finding.application == world.ledgerly
    assert finding.fingerprint == f"control:{late.pk}:overdue:{late.next_due_on.isoformat()}"
    assert finding.owner is None and finding.status == Finding.Status.OPEN


def test_overdue_finding_goes_to_the_approver_relying_on_the_control(world):
    control = world.control(next_due_on=world.today - timedelta(days=1))
    world.approved(controls=[control], approver=world.sara, risk_rating="high")
    services.controls_flag_overdue(today=world.today)
    finding = Finding.objects.get(kind=K.CONTROL_OVERDUE)
    assert finding.owner == world.sara and finding.severity == "high"


@pytest.mark.parametrize(("result", "severity"), [("fail", "high"), ("partial", "medium")])
def test_failed_or_partial_result_opens_a_finding(world, result, severity):
    control = world.control()
    world.approved(controls=[control], risk_rating="high")
    record(world, control, result=result)
    record(world, control, result=result)  # still the one open finding
    finding = Finding.objects.get(kind=K.CONTROL_FAILED)
    assert finding.control == control and finding.severity == severity
    assert finding.owner == world.sam


def test_passing_evidence_resolves_overdue_and_failed_findings(world):
    control = world.control(next_due_on=world.today - timedelta(days=40))
    services.controls_flag_overdue(today=world.today)
    record(world, control, result="fail", when=_at(world.today - timedelta(days=1)))
    assert Finding.objects.filter(control=control, status="open").count() == 2
    record(world, control, result="pass")
    assert not Finding.objects.filter(control=control, status="open").exists()
    assert Finding.objects.filter(control=control, status="resolved").count() == 2
    control.refresh_from_db()
    assert control.next_due_on > world.today


def test_retiring_the_only_control_of_an_approved_exception_is_refused(world):
    control = world.control()
    exception = world.approved(controls=[control])
    with pytest.raises(DomainError, match="rely on this control alone"):
        services.control_retire(actor=world.actor(world.grace), control=control)
    spare = world.control(name="Spare")
    services.exception_revoke(actor=world.actor(world.sam), exception=exception, comment="x")
    assert services.control_retire(actor=world.actor(world.grace), control=spare).status == (
        "retired"
    )


def test_retiring_closes_the_controls_findings(world):
    control = world.control(next_due_on=world.today - timedelta(days=2))
    services.controls_flag_overdue(today=world.today)
    services.control_retire(actor=world.actor(world.grace), control=control, comment="Replaced")
    finding = Finding.objects.get(kind=K.CONTROL_OVERDUE)
    assert finding.status == Finding.Status.RESOLVED and finding.resolved_at
