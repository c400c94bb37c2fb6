"""Exception and control pages: owner, colleague and outsider (also by direct URL), the
security queue and decision pages, expiry display, evidence upload and download, and query
counts of the lists."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.risk import services
from governance.risk.models import AccessException, CompensatingControl, ControlEvidence

pytestmark = pytest.mark.django_db
EXCEPTIONS = "admin:risk_accessexception_changelist"
CONTROLS = "admin:risk_compensatingcontrol_changelist"
EVIDENCE = "admin:risk_controlevidence_changelist"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _as(client, user):
    client.force_login(user)
    return client


def _url(name, obj):
    return reverse(f"admin:risk_{name}", args=[obj.pk])


def _shown(response):
    return {obj.pk for obj in response.context["cl"].result_list}


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# ------------------------------------------------------------------------------ scoping


def test_owner_colleague_outsider_and_auditor_see_what_is_theirs(world, client):
    ledgerly = world.draft()
    github = world.draft(app=world.github, by=world.lena, title="GitHub deviation")
    assert _shown(_as(client, world.grace).get(reverse(EXCEPTIONS))) == {ledgerly.pk}
    assert _shown(_as(client, world.lena).get(reverse(EXCEPTIONS))) == {github.pk}
    assert _shown(_as(client, world.alex).get(reverse(EXCEPTIONS))) == {ledgerly.pk, github.pk}
    assert _as(client, world.outsider).get(reverse(EXCEPTIONS)).status_code == 403


@pytest.mark.parametrize(
    "route", ["accessexception_change", "accessexception_submit", "accessexception_renew"]
)
def test_colleague_gets_404_on_direct_exception_urls(world, client, route):
    exception = world.draft()
    lena = _as(client, world.lena)
    assert lena.get(_url(route, exception)).status_code == 404
    assert lena.post(_url(route, exception), {"title": "x"}).status_code == 404
    exception.refresh_from_db()
    assert exception.status == "draft"


@pytest.mark.parametrize("who", ["lena", "outsider"])
def test_colleague_and_outsider_cannot_reach_controls_or_evidence(world, client, who):
    control = world.control()
    evidence = services.control_record_evidence(
        actor=world.actor(world.grace),
        control=control,
        performed_at=timezone.now(),
        result="pass",
        file=SimpleUploadedFile("users.pdf", PDF),
    )
    user = _as(client, getattr(world, who))
    expected = 404 if who == "lena" else 403
    for url in (
        _url("compensatingcontrol_change", control),
        _url("compensatingcontrol_evidence", control),
        _url("compensatingcontrol_retire", control),
        _url("controlevidence_download", evidence),
    ):
        assert user.get(url).status_code == expected, url
    if who == "lena":
        assert control.pk not in _shown(user.get(reverse(CONTROLS)))


def test_owner_add_form_offers_only_own_applications(world, client):
    grace = _as(client, world.grace)
    form = grace.get(reverse("admin:risk_accessexception_add")).context["adminform"].form
    assert set(form.fields["application"].queryset) == {world.ledgerly, world.vaultfin}
    assert world.github_role not in form.fields["entitlement"].queryset
    response = grace.post(
        reverse("admin:risk_accessexception_add"),
        {
            "title": "Sneaky",
            "exception_type": "other",
            "application": world.github.pk,
            "justification": "x",
            "risk_rating": "low",
            "expires_on": (world.today + timedelta(days=10)).isoformat(),
        },
    )
    assert response.status_code == 200
    assert "application" in response.context["adminform"].form.errors
    assert not AccessException.objects.exists()


def test_owner_registers_and_submits_through_the_pages(world, client):
    control = world.control()
    grace = _as(client, world.grace)
    response = grace.post(
        reverse("admin:risk_accessexception_add"),
        {
            "title": "Role changes handled by monthly manual reconciliation",
            "exception_type": "scim_partial",
            "application": world.ledgerly.pk,
            "justification": "No role updates over SCIM.",
            "risk_rating": "medium",
            "expires_on": (world.today + timedelta(days=180)).isoformat(),
            "controls": [control.pk],
        },
    )
    assert response.status_code == 302, (
        response.context and response.context["adminform"].form.errors
    )
    exception = AccessException.objects.get()
    assert exception.requested_by == world.grace and list(exception.controls.all()) == [control]
    assert AuditEvent.objects.filter(action="access_exception.created").exists()
    page = grace.get(_url("accessexception_change", exception))
    assert b"Submit for approval" in page.content
    assert grace.get(_url("accessexception_submit", exception)).status_code == 200
    assert grace.post(_url("accessexception_submit", exception)).status_code == 302
    exception.refresh_from_db()
    assert exception.status == "submitted"
    # Submitted: no longer editable, even by its owner.
    assert grace.post(_url("accessexception_change", exception), {"title": "x"}).status_code == 403


def test_bad_expiry_in_the_form_is_a_field_error(world, client):
    grace = _as(client, world.grace)
    response = grace.post(
        reverse("admin:risk_accessexception_add"),
        {
            "title": "Too long",
            "exception_type": "no_scim",
            "application": world.vaultfin.pk,
            "justification": "x",
            "risk_rating": "low",
            "expires_on": (world.today + timedelta(days=800)).isoformat(),
        },
    )
    assert response.status_code == 200
    assert "expires_on" in response.context["adminform"].form.errors
    assert not AccessException.objects.exists()


def test_auditor_reads_but_cannot_change(world, client):
    exception = world.submitted()
    alex = _as(client, world.alex)
    page = alex.get(_url("accessexception_change", exception))
    assert page.status_code == 200 and page.context["transitions"] == []
    assert alex.get(reverse("admin:risk_accessexception_add")).status_code == 403
    assert alex.post(_url("accessexception_approve", exception)).status_code == 403
    assert alex.get(reverse("admin:risk_accessexception_queue")).status_code == 200
    exception.refresh_from_db()
    assert exception.status == "submitted"


# ------------------------------------------------------------------------------ queue and decisions


def test_queue_lists_submitted_oldest_first_for_security(world, client):
    first = world.submitted(title="First")
    second = world.submitted(title="Second")
    AccessException.objects.filter(pk=first.pk).update(
        submitted_at=timezone.now() - timedelta(days=3)
    )
    world.draft(title="Draft only")
    page = _as(client, world.sam).get(reverse("admin:risk_accessexception_queue"))
    assert [e.pk for e, _waiting in page.context["rows"]] == [first.pk, second.pk]
    assert b"Draft only" not in page.content
    assert (
        _as(client, world.grace).get(reverse("admin:risk_accessexception_queue")).status_code == 403
    )


def test_security_approves_from_a_confirmation_page(world, client):
    finding = world.finding(kind="excess")
    exception = world.submitted()
    sam = _as(client, world.sam)
    confirm = sam.get(_url("accessexception_approve", exception))
    assert confirm.status_code == 200 and b"Yes, approve it" in confirm.content
    response = sam.post(_url("accessexception_approve", exception), {"comment": "Fine."})
    assert response.status_code == 302
    exception.refresh_from_db()
    finding.refresh_from_db()
    assert exception.status == "approved" and exception.decision_comment == "Fine."
    assert finding.status == "suppressed"


def test_reject_needs_a_comment(world, client):
    exception = world.submitted()
    sam = _as(client, world.sam)
    response = sam.post(_url("accessexception_reject", exception), {"comment": ""})
    assert response.status_code == 200 and b"Give a reason." in response.content
    exception.refresh_from_db()
    assert exception.status == "submitted"
    sam.post(_url("accessexception_reject", exception), {"comment": "Use SCIM instead."})
    exception.refresh_from_db()
    assert exception.status == "rejected" and exception.approver == world.sam


def test_requester_security_admin_cannot_approve_through_the_page(world, client):
    exception = world.submitted(by=world.sam)
    sam = _as(client, world.sam)
    assert b"four-eyes" in sam.get(_url("accessexception_change", exception)).content
    response = sam.post(_url("accessexception_approve", exception), {"comment": ""})
    assert response.status_code == 200 and b"four-eyes" in response.content
    exception.refresh_from_db()
    assert exception.status == "submitted"


def test_approval_without_control_shows_the_rule(world, client):
    exception = world.submitted(controls=[])
    response = _as(client, world.sam).post(_url("accessexception_approve", exception), {})
    assert response.status_code == 200
    assert b"at least one active compensating control" in response.content


def test_owner_cannot_approve_by_url(world, client):
    exception = world.submitted()
    grace = _as(client, world.grace)
    assert grace.post(_url("accessexception_approve", exception)).status_code == 403


def test_revoke_and_renew_pages(world, client):
    exception = world.approved()
    grace = _as(client, world.grace)
    response = grace.post(
        _url("accessexception_renew", exception),
        {"expires_on": (world.today + timedelta(days=200)).isoformat(), "submit_now": "on"},
    )
    assert response.status_code == 302
    renewal = AccessException.objects.get(renewal_of=exception)
    assert renewal.status == "submitted"
    sam = _as(client, world.sam)
    assert sam.post(_url("accessexception_revoke", exception), {"comment": ""}).status_code == 200
    sam.post(_url("accessexception_revoke", exception), {"comment": "Replaced"})
    exception.refresh_from_db()
    assert exception.status == "revoked"


# ------------------------------------------------------------------------------ expiry display


def test_days_left_and_expiry_filter(world, client):
    soon = world.approved(title="Soon", expires_on=world.today + timedelta(days=5))
    later = world.approved(title="Later", expires_on=world.today + timedelta(days=100))
    sam = _as(client, world.sam)
    page = sam.get(reverse(EXCEPTIONS))
    assert b'rk-flag-bad">5 days' in page.content and b'rk-flag-ok">100 days' in page.content
    assert _shown(sam.get(reverse(EXCEPTIONS) + "?expiry=30")) == {soon.pk}
    assert later.pk in _shown(sam.get(reverse(EXCEPTIONS)))


# ------------------------------------------------------------------------------ controls


def test_controls_list_flags_overdue(world, client):
    late = world.control(name="Late one", next_due_on=world.today - timedelta(days=4))
    fine = world.control(name="Fine one")
    grace = _as(client, world.grace)
    page = grace.get(reverse(CONTROLS))
    assert b"Overdue 4 days" in page.content
    assert _shown(grace.get(reverse(CONTROLS) + "?overdue=yes")) == {late.pk}
    assert _shown(grace.get(reverse(CONTROLS) + "?overdue=no")) == {fine.pk}


def test_owner_registers_a_control_only_for_own_applications(world, client):
    grace = _as(client, world.grace)
    data = {
        "name": "Monthly export review",
        "kind": "periodic_review",
        "frequency": "monthly",
        "owner": world.grace.pk,
        "next_due_on": world.today.isoformat(),
    }
    refused = grace.post(
        reverse("admin:risk_compensatingcontrol_add"), {**data, "application": world.github.pk}
    )
    assert refused.status_code == 200 and not CompensatingControl.objects.exists()
    orgwide = grace.post(reverse("admin:risk_compensatingcontrol_add"), data)
    assert orgwide.status_code == 200 and not CompensatingControl.objects.exists()
    ok = grace.post(
        reverse("admin:risk_compensatingcontrol_add"), {**data, "application": world.vaultfin.pk}
    )
    assert ok.status_code == 302
    assert CompensatingControl.objects.get().application == world.vaultfin


def _evidence_post(world, **extra):
    now = timezone.localtime()
    return {
        "performed_by": world.grace.pk,
        "performed_at_0": now.strftime("%Y-%m-%d"),
        "performed_at_1": (now - timedelta(minutes=1)).strftime("%H:%M:%S"),
        "result": "pass",
        "note": "",
        **extra,
    }


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("users.pdf", b"<html><script>alert(1)</script></html>", b"not a PDF file"),
        ("users.csv", b"", b"The file is empty"),
        ("users.txt", b"a" * (10 * 1024 * 1024 + 1), b"at most 10 MB"),
    ],
    ids=["html-as-pdf", "empty", "too-big"],
)
def test_upload_form_refuses_bad_files(world, client, name, content, message):
    control = world.control()
    response = _as(client, world.grace).post(
        _url("compensatingcontrol_evidence", control),
        _evidence_post(world, file=SimpleUploadedFile(name, content)),
    )
    assert response.status_code == 200 and message in response.content
    assert not ControlEvidence.objects.exists()


def test_upload_then_download_as_attachment(world, client):
    control = world.control()
    grace = _as(client, world.grace)
    upload = SimpleUploadedFile("vaultfin-users.pdf", PDF, content_type="text/html")
    response = grace.post(
        _url("compensatingcontrol_evidence", control), _evidence_post(world, file=upload)
    )
    assert response.status_code == 302
    evidence = ControlEvidence.objects.get()
    url = _url("controlevidence_download", evidence)
    assert url.encode() in grace.get(_url("compensatingcontrol_change", control)).content
    downloads = []
    for viewer in (world.grace, world.sam, world.alex):
        download = _as(client, viewer).get(url)
        downloads.append(download)
        assert download.status_code == 200
        assert download["Content-Type"] == "application/pdf"
        assert download["Content-Disposition"].startswith("attachment;")
        assert download["X-Content-Type-Options"] == "nosniff"
        assert b"".join(download.streaming_content) == PDF
    for download in downloads:  # closing ends the request (and its database connection)
        download.close()


def test_auditor_cannot_record_evidence(world, client):
    control = world.control()
    alex = _as(client, world.alex)
    assert alex.get(_url("compensatingcontrol_evidence", control)).status_code == 403
    assert (
        alex.post(
            _url("compensatingcontrol_evidence", control), _evidence_post(world, note="x")
        ).status_code
        == 403
    )
    assert not ControlEvidence.objects.exists()


# ------------------------------------------------------------------------------ query counts


def _count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("who", ["sam", "grace"])
def test_exception_list_query_count_does_not_grow(
    world, client, who, django_assert_max_num_queries
):
    for n in range(3):
        world.approved(title=f"E{n}")
    viewer = _as(client, getattr(world, who))
    few = _count(viewer, reverse(EXCEPTIONS))
    for n in range(3, 25):
        world.approved(title=f"E{n}")
    with django_assert_max_num_queries(few):
        viewer.get(reverse(EXCEPTIONS))
    queue = _count(viewer, reverse(EXCEPTIONS) + "?status__exact=submitted")
    assert queue <= few


@pytest.mark.parametrize("who", ["sam", "grace"])
def test_control_list_query_count_does_not_grow(world, client, who, django_assert_max_num_queries):
    for n in range(3):
        world.control(name=f"C{n}", next_due_on=world.today - timedelta(days=n))
    viewer = _as(client, getattr(world, who))
    few = _count(viewer, reverse(CONTROLS))
    few_evidence = _count(viewer, reverse(EVIDENCE))
    for n in range(3, 25):
        control = world.control(name=f"C{n}")
        services.control_record_evidence(
            actor=world.actor(world.grace),
            control=control,
            performed_at=timezone.now(),
            result="pass",
            note="ok",
        )
    with django_assert_max_num_queries(few):
        viewer.get(reverse(CONTROLS))
    with django_assert_max_num_queries(few_evidence):
        viewer.get(reverse(EVIDENCE))


def test_transition_not_possible_in_this_state_goes_back_with_a_message(world, client):
    draft = world.draft()
    sam = _as(client, world.sam)
    response = sam.post(_url("accessexception_approve", draft), {"comment": "ok"})
    assert response.status_code == 302
    assert any("not possible now" in m for m in _messages(response))
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_colleague_gets_404_on_evidence_page(world, client):
    control = world.control()
    evidence = services.control_record_evidence(
        actor=world.actor(world.grace),
        control=control,
        performed_at=timezone.now(),
        result="pass",
        note="ok",
    )
    url = _url("controlevidence_change", evidence)
    assert _as(client, world.lena).get(url).status_code == 404
    assert _as(client, world.grace).get(url).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/admin/risk/accessexception/abc/approve/",
        "/admin/risk/accessexception/99999/change/",
        "/admin/risk/accessexception/queue/?p=zzz",
        "/admin/risk/accessexception/?expiry=forever",
        "/admin/risk/compensatingcontrol/1%27/record-evidence/",
        "/admin/risk/compensatingcontrol/?overdue=maybe",
        "/admin/risk/controlevidence/xyz/download/",
    ],
)
def test_hostile_urls_never_fail(world, client, url):
    response = _as(client, world.sam).get(url)
    assert response.status_code in (200, 302, 404)


def test_hostile_posts_change_nothing(world, client):
    exception = world.draft()
    grace = _as(client, world.grace)
    response = grace.post(
        _url("accessexception_change", exception),
        {
            "title": "",
            "exception_type": "nonsense",
            "application": "not-a-number",
            "account": "99999",
            "justification": "",
            "risk_rating": "extreme",
            "expires_on": "tomorrow",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert {"title", "exception_type", "application", "account", "expires_on"} <= set(errors)
    renew = grace.post(
        _url("accessexception_renew", world.approved(title="x")), {"expires_on": "x"}
    )
    assert renew.status_code == 200
    exception.refresh_from_db()
    assert exception.title != "" and AccessException.objects.count() == 2
