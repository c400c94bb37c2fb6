"""Lifecycle in the admin: work items, the leaver clock, open leavers, urgent leavers and the
SCIM capability profile, seen by an owner, a colleague owner, an auditor and an outsider."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.access import services as access
from governance.access.models import Application
from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import InvalidTransition
from governance.identities import services as directory
from governance.lifecycle import services as lifecycle
from governance.lifecycle.models import LifecycleEvent, ProvisioningProfile, ProvisioningTask
from governance.lifecycle.selectors import leaver_clock, leaver_clocks
from governance.portal.models import Role
from tests.factories import IdentitySourceFactory, UserFactory

pytestmark = pytest.mark.django_db
State = ProvisioningTask.State
Op = ProvisioningTask.Operation
SYSTEM = Actor.system("tests")
TASKS = "admin:lifecycle_provisioningtask_changelist"
EVENTS = "admin:lifecycle_lifecycleevent_changelist"
OPEN_LEAVERS = "admin:lifecycle_open_leavers"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


class World:
    """Northwind, small: Grace owns VaultFin (manual) and Ledgerly (create/deactivate-only
    SCIM), Lena owns GitHub (full SCIM, 4 h SLA); Priya holds access in all three."""

    def __init__(self):
        self.source = IdentitySourceFactory(name="Northwind Entra ID")
        self.scim = Actor.for_source(self.source)
        self.sam = UserFactory(username="sam.patel", roles=[Role.SECURITY_ADMIN])
        self.grace = UserFactory(username="grace.liu", roles=[Role.APP_OWNER])
        self.lena = UserFactory(username="lena.fischer", roles=[Role.APP_OWNER])
        self.alex = UserFactory(username="alex.morgan", roles=[Role.AUDITOR])
        self.outsider = UserFactory(username="outsider")  # staff, no role
        self.vaultfin = self._app("VaultFin", "manual", 48, self.grace)
        self.ledgerly = self._app("Ledgerly", "scim_partial", 24, self.grace)
        self.github = self._app("GitHub Enterprise", "scim", 4, self.lena)
        self.priya = self.person("priya.shah", "Priya", "Shah")
        self.give(self.priya, self.vaultfin, "invoice-approver", privileged=True)
        self.give(self.priya, self.ledgerly, "viewer")
        self.give(self.priya, self.github, "member")

    def _app(self, name, mode, sla, owner):
        return access.application_create(
            actor=SYSTEM,
            name=name,
            provisioning_mode=mode,
            deprovisioning_sla_hours=sla,
            owners=[owner],
        )

    def person(self, key, given, family):
        return directory.identity_create(
            actor=self.scim,
            source=self.source,
            user_name=f"{key}@northwind.example",
            given_name=given,
            family_name=family,
            display_name=f"{given} {family}",
            department="Platform",
            derive_lifecycle=False,
        )

    def give(self, person, app, value, *, privileged=False):
        ent = app.entitlements.filter(external_value=value).first() or access.entitlement_create(
            actor=SYSTEM,
            application=app,
            name=value.title(),
            external_value=value,
            privileged=privileged,
        )
        account = app.accounts.filter(identity=person).first() or access.account_create(
            actor=SYSTEM, application=app, username=person.user_name, identity=person
        )
        access.grant_create(actor=SYSTEM, account=account, entitlement=ent)

    def leave(self, person=None) -> LifecycleEvent:
        """The identity provider deactivates the person (SCIM)."""
        person = person or self.priya
        directory.identity_deactivate(actor=self.scim, identity=person)
        return LifecycleEvent.objects.get(identity=person, kind=LifecycleEvent.Kind.LEAVER)

    def task(self, app, operation=Op.DISABLE_ACCOUNT, person=None) -> ProvisioningTask:
        return ProvisioningTask.objects.get(
            application=app, identity=person or self.priya, operation=operation
        )


@pytest.fixture
def world(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STEWARD_ENCRYPTION_KEY = "admin-tests-encryption-key"
    return World()


def _as(client, user):
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _shown(response) -> list:
    return list(response.context["cl"].result_list)


def _record_url(task):
    return reverse("admin:lifecycle_provisioningtask_record_work", args=[task.pk])


def _task_url(task):
    return reverse("admin:lifecycle_provisioningtask_change", args=[task.pk])


# ------------------------------------------------------------------------ who sees which task


def test_owner_sees_only_the_work_items_of_her_applications(world, client):
    """Grace (owner of VaultFin and Ledgerly) sees their tasks and nothing of GitHub's."""
    world.leave()
    page = _as(client, world.grace).get(reverse(TASKS))
    assert page.status_code == 200
    apps = {t.application.name for t in _shown(page)}
    assert apps == {"VaultFin", "Ledgerly"}
    assert b"Awaiting manual work" in page.content
    assert client.get(_task_url(world.task(world.vaultfin))).status_code == 200


def test_colleague_owner_cannot_open_or_close_another_apps_work_item(world, client):
    world.leave()
    vaultfin = world.task(world.vaultfin)
    lena = _as(client, world.lena)
    assert {t.application.name for t in _shown(lena.get(reverse(TASKS)))} == {"GitHub Enterprise"}
    assert lena.get(_task_url(vaultfin)).status_code in (302, 404)
    assert lena.get(_record_url(vaultfin)).status_code in (302, 404)
    response = lena.post(_record_url(vaultfin), {"reference": "CHG-1"})
    assert response.status_code in (302, 404)
    evidence = reverse("admin:lifecycle_provisioningtask_evidence", args=[vaultfin.pk])
    assert lena.get(evidence).status_code == 404
    vaultfin.refresh_from_db()
    assert vaultfin.state == State.AWAITING_MANUAL and vaultfin.executed_by is None


def test_colleague_action_on_another_apps_task_changes_nothing(world, client):
    """The changelist action works on the owner's queryset only: a forged id is ignored."""
    world.leave()
    vaultfin = world.task(world.vaultfin)
    _as(client, world.lena).post(
        reverse(TASKS),
        {
            "action": "record_manual_work",
            "_selected_action": [vaultfin.pk],
            "post": "yes",
            "reference": "CHG-1",
        },
    )
    vaultfin.refresh_from_db()
    assert vaultfin.state == State.AWAITING_MANUAL


def test_outsider_without_a_role_is_refused_everywhere(world, client):
    event = world.leave()
    task = world.task(world.vaultfin)
    outsider = _as(client, world.outsider)
    for url in (
        reverse(TASKS),
        _task_url(task),
        _record_url(task),
        reverse("admin:lifecycle_provisioningtask_evidence", args=[task.pk]),
        reverse(EVENTS),
        reverse("admin:lifecycle_lifecycleevent_change", args=[event.pk]),
        reverse(OPEN_LEAVERS),
    ):
        assert outsider.get(url).status_code == 403, url
    assert outsider.post(_record_url(task), {"reference": "x"}).status_code == 403
    task.refresh_from_db()
    assert task.state == State.AWAITING_MANUAL


def test_auditor_reads_every_task_but_cannot_close_one(world, client):
    world.leave()
    task = world.task(world.vaultfin)
    alex = _as(client, world.alex)
    page = alex.get(reverse(TASKS))
    assert {t.application.name for t in _shown(page)} == {
        "VaultFin",
        "Ledgerly",
        "GitHub Enterprise",
    }
    assert page.context["action_form"] is None  # no transitions offered
    assert alex.get(_task_url(task)).status_code == 200
    assert alex.get(_record_url(task)).status_code == 403
    assert alex.post(_record_url(task), {"reference": "x"}).status_code == 403
    task.refresh_from_db()
    assert task.state == State.AWAITING_MANUAL


def test_security_admin_sees_every_task(world, client):
    world.leave()
    page = _as(client, world.sam).get(reverse(TASKS))
    assert len(_shown(page)) == ProvisioningTask.objects.count() == 6


def test_tasks_are_never_added_edited_or_deleted_in_the_admin(world, client):
    world.leave()
    task = world.task(world.vaultfin)
    sam = _as(client, world.sam)
    assert sam.get(reverse("admin:lifecycle_provisioningtask_add")).status_code == 403
    delete = reverse("admin:lifecycle_provisioningtask_delete", args=[task.pk])
    assert sam.post(delete, {"post": "yes"}).status_code == 403
    assert sam.post(_task_url(task), {"state": "verified"}).status_code == 403
    task.refresh_from_db()
    assert task.state == State.AWAITING_MANUAL


# ------------------------------------------------------------------ closing a work item


def test_closing_without_evidence_is_refused_and_changes_nothing(world, client):
    world.leave()
    task = world.task(world.vaultfin)
    response = _as(client, world.grace).post(_record_url(task), {"reference": " ", "note": ""})
    assert response.status_code == 200
    assert b"Closing a work item needs evidence" in response.content
    task.refresh_from_db()
    assert task.state == State.AWAITING_MANUAL and task.executed_at is None
    assert not AuditEvent.objects.filter(action="provisioning_task.executed").exists()


def test_owner_closes_a_work_item_with_a_ticket_reference(world, client):
    world.leave()
    task = world.task(world.vaultfin)
    grace = _as(client, world.grace)
    form = grace.get(_record_url(task))
    assert form.status_code == 200 and b"Ticket reference" in form.content
    response = grace.post(_record_url(task), {"reference": "CHG-20431", "note": "Disabled."})
    assert response.status_code == 302 and response["Location"] == _task_url(task)
    task.refresh_from_db()
    assert task.state == State.EXECUTED
    assert task.executed_by == world.grace and task.executed_at is not None
    assert task.evidence_reference == "CHG-20431"
    event = AuditEvent.objects.get(action="provisioning_task.executed", target_id=str(task.pk))
    assert event.actor_user == world.grace
    assert event.after["reference"] == "CHG-20431"
    page = grace.get(_task_url(task))
    assert b"Executed, not verified" in page.content
    assert b"CHG-20431" in page.content and b"by grace.liu" in page.content


def test_record_action_closes_several_items_with_one_evidence(world, client):
    world.leave()
    tasks = [
        world.task(world.vaultfin),
        world.task(world.vaultfin, Op.REVOKE),
        world.task(world.ledgerly),
    ]
    grace = _as(client, world.grace)
    data = {"action": "record_manual_work", "_selected_action": [t.pk for t in tasks]}
    confirm = grace.post(reverse(TASKS), data)
    assert confirm.status_code == 200
    assert b"Record manual work done" in confirm.content
    upload = SimpleUploadedFile("vaultfin-users.csv", b"user,status\npriya,disabled\n")
    done = grace.post(
        reverse(TASKS), {**data, "post": "yes", "reference": "CHG-9", "evidence_file": upload}
    )
    assert done.status_code == 302
    names = set()
    for task in tasks:
        task.refresh_from_db()
        assert task.state == State.EXECUTED and task.executed_by == world.grace
        names.add(task.evidence_file.name)
    assert len(names) == 1  # one stored copy for all three


def test_domain_errors_become_messages_not_500(world, client, monkeypatch):
    world.leave()
    task = world.task(world.vaultfin)

    def refuse(**kwargs):
        raise InvalidTransition(f"Task {kwargs['task'].pk} is executed, not verified.")

    monkeypatch.setattr("governance.lifecycle.admin.task_mark_executed", refuse)
    grace = _as(client, world.grace)
    response = grace.post(
        reverse(TASKS),
        {
            "action": "record_manual_work",
            "_selected_action": [task.pk],
            "post": "yes",
            "reference": "CHG-1",
        },
    )
    assert response.status_code == 302
    assert any("is executed, not verified" in m for m in _messages(response))


def test_a_closed_item_cannot_be_closed_again(world, client):
    world.leave()
    task = world.task(world.vaultfin)
    grace = _as(client, world.grace)
    grace.post(_record_url(task), {"reference": "CHG-1"})
    again = grace.post(_record_url(task), {"reference": "CHG-2"})
    assert again.status_code == 302
    assert any("only tasks awaiting manual work" in m for m in _messages(again))
    task.refresh_from_db()
    assert task.evidence_reference == "CHG-1"


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("export.txt", b"a" * (10 * 1024 * 1024 + 1), b"at most 10 MB"),
        ("export.html", b"<html><script>alert(1)</script></html>", b"not accepted as evidence"),
        ("export.exe", b"MZ\x90\x00", b"not accepted as evidence"),
        ("export.pdf", b"<html>not a pdf</html>", b"not a PDF file"),
        ("export.csv", b"a,b\x00\x01", b"not CSV text"),
    ],
    ids=["too-big", "html", "exe", "fake-pdf", "binary-csv"],
)
def test_evidence_file_limits(world, client, name, content, error):
    world.leave()
    task = world.task(world.vaultfin)
    upload = SimpleUploadedFile(name, content)
    response = _as(client, world.grace).post(
        _record_url(task), {"reference": "CHG-1", "evidence_file": upload}
    )
    assert response.status_code == 200
    assert error in response.content
    task.refresh_from_db()
    assert task.state == State.AWAITING_MANUAL and not task.evidence_file


def test_evidence_file_is_stored_and_served_as_a_download(world, client):
    world.leave()
    task = world.task(world.vaultfin)
    grace = _as(client, world.grace)
    upload = SimpleUploadedFile("vaultfin-export.pdf", PDF, content_type="text/html")
    response = grace.post(_record_url(task), {"evidence_file": upload})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.state == State.EXECUTED and task.evidence_file
    url = reverse("admin:lifecycle_provisioningtask_evidence", args=[task.pk])
    assert url.encode() in grace.get(_task_url(task)).content
    download = grace.get(url)
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"  # never the uploader's claim
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["X-Content-Type-Options"] == "nosniff"
    assert b"".join(download.streaming_content) == PDF
    download.close()


# -------------------------------------------------------------------------------- retry


def test_security_admin_retries_failed_tasks(world, client):
    world.leave()
    failed = world.task(world.github)
    ProvisioningTask.objects.filter(pk=failed.pk).update(
        state=State.FAILED,
        channel="scim",
        attempts=6,
        last_error="HTTP 500",
        failed_at=timezone.now(),
    )
    waiting = world.task(world.vaultfin)
    sam = _as(client, world.sam)
    data = {"action": "retry_failed", "_selected_action": [failed.pk, waiting.pk]}
    confirm = sam.post(reverse(TASKS), data)
    assert confirm.status_code == 200 and b"HTTP 500" in confirm.content
    done = sam.post(reverse(TASKS), {**data, "post": "yes"})
    assert done.status_code == 302
    failed.refresh_from_db()
    waiting.refresh_from_db()
    assert failed.state == State.PENDING and failed.attempts == 0
    assert waiting.state == State.AWAITING_MANUAL
    assert AuditEvent.objects.filter(action="provisioning_task.retried").count() == 1


def test_retry_with_nothing_failed_changes_nothing(world, client):
    world.leave()
    task = world.task(world.vaultfin)
    response = _as(client, world.grace).post(
        reverse(TASKS), {"action": "retry_failed", "_selected_action": [task.pk]}
    )
    assert response.status_code == 302
    assert any("nothing was retried" in m for m in _messages(response))


# ------------------------------------------------------------------------- urgent leaver


def _action_names(page) -> set[str]:
    form = page.context["action_form"]
    return {name for name, _label in form.fields["action"].choices} if form else set()


def test_security_admin_starts_an_urgent_leaver_and_scim_catches_up(world, client):
    """Sam starts it before Entra: tasks planned at once; the later SCIM deactivation is
    recognised as already done (no second leaver event)."""
    identities = reverse("admin:identities_identity_changelist")
    sam = _as(client, world.sam)
    assert "start_urgent_leaver" in _action_names(sam.get(identities))
    data = {"action": "start_urgent_leaver", "_selected_action": [world.priya.pk]}
    confirm = sam.post(identities, data)
    assert confirm.status_code == 200 and b"High-risk termination" in confirm.content
    refused = sam.post(identities, {**data, "post": "yes", "reason": ""})
    assert refused.status_code == 200 and b"This field is required" in refused.content
    assert not LifecycleEvent.objects.exists()

    started = sam.post(identities, {**data, "post": "yes", "reason": "HR case 2291"})
    assert started.status_code == 302
    event = LifecycleEvent.objects.get(identity=world.priya)
    assert event.kind == LifecycleEvent.Kind.LEAVER and event.urgent
    assert event.started_by == world.sam
    assert event.tasks.count() == 6
    assert AuditEvent.objects.filter(action="lifecycle.urgent_leaver_started").count() == 1

    directory.identity_deactivate(actor=world.scim, identity=world.priya)
    assert LifecycleEvent.objects.filter(identity=world.priya).count() == 1
    assert ProvisioningTask.objects.filter(identity=world.priya).count() == 6
    noted = AuditEvent.objects.get(action="lifecycle.leaver_already_started")
    assert noted.target_id == str(event.pk)


def test_urgent_leaver_from_the_person_page(world, client):
    sam = _as(client, world.sam)
    page = sam.get(reverse("admin:identities_identity_change", args=[world.priya.pk]))
    url = reverse("admin:identities_identity_urgent_leaver", args=[world.priya.pk])
    assert url.encode() in page.content
    assert sam.get(url).status_code == 200
    assert sam.post(url, {"reason": "Terminated for cause"}).status_code == 302
    assert LifecycleEvent.objects.get(identity=world.priya).urgent
    again = sam.post(url, {"reason": "double click"})
    assert again.status_code == 302
    assert any("already in progress" in m for m in _messages(again))
    assert LifecycleEvent.objects.filter(identity=world.priya).count() == 1


def test_app_owner_and_auditor_cannot_start_an_urgent_leaver(world, client):
    identities = reverse("admin:identities_identity_changelist")
    url = reverse("admin:identities_identity_urgent_leaver", args=[world.priya.pk])
    for user in (world.grace, world.alex):
        other = _as(client, user)
        assert "start_urgent_leaver" not in _action_names(other.get(identities))
        page = other.get(reverse("admin:identities_identity_change", args=[world.priya.pk]))
        assert url.encode() not in page.content
        assert other.get(url).status_code == 403
        other.post(
            identities,
            {
                "action": "start_urgent_leaver",
                "_selected_action": [world.priya.pk],
                "post": "yes",
                "reason": "x",
            },
        )
        assert other.post(url, {"reason": "x"}).status_code == 403
    assert not LifecycleEvent.objects.exists()


def test_identity_page_links_to_the_persons_lifecycle_events(world, client):
    world.leave()
    other = world.person("omar.haddad", "Omar", "Haddad")
    world.give(other, world.github, "member")
    world.leave(other)
    sam = _as(client, world.sam)
    page = sam.get(reverse("admin:identities_identity_change", args=[world.priya.pk]))
    link = reverse(EVENTS) + f"?identity__id__exact={world.priya.pk}"
    assert link.encode() in page.content
    listing = sam.get(link)
    assert listing.status_code == 200
    assert [e.identity for e in _shown(listing)] == [world.priya]


# ------------------------------------------------------------------- leaver clock and list


def _backdate(event, hours):
    LifecycleEvent.objects.filter(pk=event.pk).update(
        occurred_at=timezone.now() - timedelta(hours=hours)
    )
    event.refresh_from_db()
    return event


def _verify(task, user):
    lifecycle.task_mark_executed(actor=Actor.for_user(user), task=task, reference="CHG-1")
    lifecycle.task_record_verified(actor=SYSTEM, task=task, evidence={"reconciliation": "run 7"})


def test_leaver_page_shows_hours_per_application_and_breach(world, client):
    """VaultFin verified 30 h after the leaver (SLA 48: fine); GitHub (SLA 4) and Ledgerly
    (SLA 24) still open after 30 h: breached."""
    event = _backdate(world.leave(), 30)
    for task in event.tasks.filter(application=world.vaultfin):
        _verify(task, world.grace)
    sam = _as(client, world.sam)
    page = sam.get(reverse("admin:lifecycle_lifecycleevent_change", args=[event.pk]))
    assert page.status_code == 200
    rows = {row.application.name: row for row in page.context["leaver_clock"].per_app}
    assert rows["VaultFin"].open == 0 and 29.9 < rows["VaultFin"].hours < 30.1
    assert not rows["VaultFin"].breached
    assert rows["GitHub Enterprise"].breached and rows["GitHub Enterprise"].hours is None
    assert rows["Ledgerly"].breached
    html = page.content.decode()
    assert "Time to deprovision" in html and "30.0" in html
    assert "SLA breached" in html and "lc-row-breach" in html
    assert "Provisioning tasks of this event" in html and "lc-state-verified" in html
    assert "Hand-off needed" not in html


def test_owner_sees_only_her_applications_on_the_leaver_page(world, client):
    event = world.leave()
    grace = _as(client, world.grace)
    page = grace.get(reverse("admin:lifecycle_lifecycleevent_change", args=[event.pk]))
    assert {r.application.name for r in page.context["leaver_clock"].per_app} == {
        "VaultFin",
        "Ledgerly",
    }
    assert b"GitHub Enterprise" not in page.content
    assert b"Showing your applications only" in page.content
    assert _as(client, world.outsider).get(page.request["PATH_INFO"]).status_code == 403


def test_event_list_is_scoped_and_counts_open_tasks(world, client):
    world.leave()
    other = world.person("omar.haddad", "Omar", "Haddad")
    world.give(other, world.github, "member")
    world.leave(other)
    sam = _as(client, world.sam)
    page = sam.get(reverse(EVENTS))
    open_counts = {e.identity.user_name: e._open for e in _shown(page)}
    assert open_counts == {"priya.shah@northwind.example": 6, "omar.haddad@northwind.example": 2}
    assert b"Open leavers" in page.content
    grace = _as(client, world.grace).get(reverse(EVENTS))
    assert {e.identity.user_name: e._open for e in _shown(grace)} == {
        "priya.shah@northwind.example": 4
    }
    sam = _as(client, world.sam)
    assert [e.identity for e in _shown(sam.get(reverse(EVENTS), {"q": "omar"}))] == [other]
    assert len(_shown(sam.get(reverse(EVENTS), {"status": "completed"}))) == 0


def test_open_leavers_lists_what_is_still_open(world, client):
    event = _backdate(world.leave(), 30)
    for task in event.tasks.filter(application=world.vaultfin):
        _verify(task, world.grace)
    sam = _as(client, world.sam)
    assert reverse(OPEN_LEAVERS).encode() in sam.get(reverse(EVENTS)).content
    page = sam.get(reverse(OPEN_LEAVERS))
    assert page.status_code == 200
    [row] = page.context["rows"]
    assert row.clock.event == event and row.clock.breached
    assert 29.9 < row.elapsed_hours < 30.1
    assert [a.application.name for a, _states in row.still_open] == [
        "GitHub Enterprise",
        "Ledgerly",
    ]
    html = page.content.decode()
    assert "Priya Shah" in html and "Breached" in html
    assert "2 awaiting manual work" in html

    grace = _as(client, world.grace).get(reverse(OPEN_LEAVERS))
    [row] = grace.context["rows"]
    assert [a.application.name for a, _states in row.still_open] == ["Ledgerly"]
    assert b"GitHub Enterprise" not in grace.content


def test_open_leavers_empty_state(world, client):
    page = _as(client, world.sam).get(reverse(OPEN_LEAVERS))
    assert page.status_code == 200
    assert b"No open leavers: every departure is fully deprovisioned and verified." in page.content


def test_open_leavers_empty_for_an_owner_with_nothing_open(world, client):
    other = world.person("omar.haddad", "Omar", "Haddad")
    world.give(other, world.github, "member")
    world.leave(other)
    page = _as(client, world.grace).get(reverse(OPEN_LEAVERS))
    assert page.context["rows"] == []
    assert b"No open leavers" in page.content


def test_bulk_clocks_match_the_selector(world):
    """The open-leavers page computes clocks in one query; they equal ``leaver_clock``."""
    event = _backdate(world.leave(), 30)
    for task in event.tasks.filter(application=world.vaultfin):
        _verify(task, world.grace)
    lifecycle.task_mark_executed(
        actor=Actor.for_user(world.grace), task=world.task(world.ledgerly), note="done"
    )
    now = timezone.now()
    bulk, _states = leaver_clocks([event], now=now)[event.pk]
    assert bulk == leaver_clock(event, now=now)
    verified_all = event.tasks.exclude(application=world.vaultfin)
    for task in verified_all.filter(state=State.AWAITING_MANUAL):
        _verify(task, world.lena if task.application == world.github else world.grace)
    lifecycle.task_record_verified(actor=SYSTEM, task=world.task(world.ledgerly), evidence={})
    event.refresh_from_db()
    assert leaver_clocks([event], now=now)[event.pk][0] == leaver_clock(event, now=now)


# ------------------------------------------------------------------------- query counts


def _leavers(world, n, start=0):
    for i in range(start, start + n):
        person = world.person(f"leaver{i}", "Leaver", f"Number{i}")
        world.give(person, world.vaultfin, "invoice-approver")
        world.give(person, world.github, "member")
        world.leave(person)


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("user", ["sam", "grace"])
def test_list_pages_do_not_query_per_row(world, client, user, django_assert_max_num_queries):
    _leavers(world, 2)
    viewer = _as(client, getattr(world, user))
    urls = [reverse(TASKS), reverse(EVENTS), reverse(OPEN_LEAVERS)]
    few = {url: _queries(viewer, url) for url in urls}
    _leavers(world, 6, start=2)
    for url in urls:
        with django_assert_max_num_queries(few[url]):
            viewer.get(url)
        with django_assert_max_num_queries(20):
            viewer.get(url)


# ------------------------------------------------------------------ capability profile


TOKEN = "ledgerly-scim-secret-3f9a1c77"  # a secret: must never be shown or logged


def _application_form(client, app) -> dict:
    """The application's change form as the browser would submit it, unchanged."""
    page = client.get(reverse("admin:access_application_change", args=[app.pk]))
    assert page.status_code == 200
    data: dict = {}

    def add(form):
        for bound in form:
            value = bound.value()
            if value is None or value is False:
                continue
            data[bound.html_name] = "on" if value is True else value

    add(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[formset.management_form.add_prefix(name)] = value
        for form in formset.forms:
            add(form)
    return data


def _profile_fields(**values) -> dict:
    return {f"provisioning_profile-0-{k}": v for k, v in values.items()}


def test_owner_records_the_profile_and_the_token_is_never_shown_or_logged(world, client):
    """Scenario 3: Grace records Ledgerly's profile (create and deactivate only)."""
    grace = _as(client, world.grace)
    url = reverse("admin:access_application_change", args=[world.ledgerly.pk])
    data = _application_form(grace, world.ledgerly)
    assert data["provisioning_profile-0-supports_create"] == "on"  # the mode's preset
    data.update(
        _profile_fields(
            scim_base_url="https://api.ledgerly.example/scim/v2",
            new_scim_token=TOKEN,
            lag_budget_minutes="90",
        )
    )
    response = grace.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    profile = ProvisioningProfile.objects.get(application=world.ledgerly)
    assert profile.scim_token == TOKEN and profile.connected
    assert profile.supports_deactivate and not profile.supports_entitlements
    with connection.cursor() as cursor:
        cursor.execute("SELECT scim_token FROM lifecycle_provisioningprofile")
        stored = cursor.fetchone()[0]
    assert TOKEN not in stored

    page = grace.get(url)
    assert TOKEN.encode() not in page.content
    assert b"Set (hidden)" in page.content and b"role changes are not propagated" in page.content
    created = AuditEvent.objects.get(action="provisioningprofile.created")
    assert created.after["scim_token"] == "(set)" and created.after["scim_base_url"] == "(set)"

    # Blank token keeps the stored one; a new one is recorded as "(changed)".
    data = _application_form(grace, world.ledgerly)
    data.update(_profile_fields(lag_budget_minutes="120"))
    assert grace.post(url, data).status_code == 302
    profile.refresh_from_db()
    assert profile.scim_token == TOKEN and profile.lag_budget_minutes == 120
    data = _application_form(grace, world.ledgerly)
    data.update(_profile_fields(new_scim_token=TOKEN + "-rotated"))
    assert grace.post(url, data).status_code == 302
    rotated = AuditEvent.objects.filter(action="provisioningprofile.updated").latest("id")
    assert rotated.before == {"scim_token": "(set)"}
    assert rotated.after == {"scim_token": "(changed)"}

    everything = json.dumps(list(AuditEvent.objects.values("before", "after", "target_repr")))
    assert TOKEN not in everything
    assert TOKEN.encode() not in _as(client, world.alex).get(url).content


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("ftp://ledgerly.example/scim", b"http:// or https://"),
        ("javascript:alert(1)", b"Enter a valid URL"),
        ("https://admin:pw@ledgerly.example/scim", b"Do not put credentials in the URL"),
    ],
    ids=["ftp", "javascript", "credentials"],
)
def test_profile_url_must_be_http(world, client, value, error):
    grace = _as(client, world.grace)
    data = _application_form(grace, world.ledgerly)
    data.update(_profile_fields(scim_base_url=value, new_scim_token=TOKEN))
    response = grace.post(
        reverse("admin:access_application_change", args=[world.ledgerly.pk]), data
    )
    assert response.status_code == 200
    assert error in response.content
    assert TOKEN.encode() not in response.content  # not even echoed back on an error
    assert not ProvisioningProfile.objects.exists()


def test_profile_secrets_refused_without_an_encryption_key(world, client, settings):
    settings.STEWARD_ENCRYPTION_KEY = ""
    grace = _as(client, world.grace)
    data = _application_form(grace, world.ledgerly)
    data.update(_profile_fields(new_scim_token=TOKEN))
    response = grace.post(
        reverse("admin:access_application_change", args=[world.ledgerly.pk]), data
    )
    assert response.status_code == 200
    assert b"STEWARD_ENCRYPTION_KEY is not set" in response.content
    assert not ProvisioningProfile.objects.exists()


def test_colleague_and_auditor_cannot_change_the_profile(world, client):
    ProvisioningProfile.objects.create(application=world.ledgerly, supports_create=True)
    url = reverse("admin:access_application_change", args=[world.ledgerly.pk])
    assert _as(client, world.lena).get(url).status_code in (302, 404)
    alex = _as(client, world.alex)
    assert alex.get(url).status_code == 200
    assert alex.post(url, {"provisioning_profile-0-supports_update": "on"}).status_code == 403
    assert not ProvisioningProfile.objects.get(application=world.ledgerly).supports_update
    assert _as(client, world.outsider).get(url).status_code == 403


def test_unchanged_application_save_creates_no_profile(world, client):
    """The empty profile form starts from the mode's preset; saving the application without
    touching it creates no profile row (the preset applies anyway)."""
    sam = _as(client, world.sam)
    data = _application_form(sam, world.github)
    url = reverse("admin:access_application_change", args=[world.github.pk])
    assert sam.post(url, data).status_code == 302
    assert not ProvisioningProfile.objects.exists()
    assert Application.objects.get(pk=world.github.pk).name == "GitHub Enterprise"


def test_application_saved_without_the_profile_section_keeps_the_profile(world, client):
    """A script or an older form posting only the application fields leaves the profile and
    its token as they are."""
    profile = ProvisioningProfile.objects.create(
        application=world.ledgerly,
        supports_create=True,
        scim_base_url="https://l.example/scim",
        scim_token=TOKEN,
    )
    data = {
        k: v
        for k, v in _application_form(_as(client, world.sam), world.ledgerly).items()
        if not k.startswith("provisioning_profile-")
    }
    data["deprovisioning_sla_hours"] = "12"
    url = reverse("admin:access_application_change", args=[world.ledgerly.pk])
    assert client.post(url, data).status_code == 302
    profile.refresh_from_db()
    assert profile.scim_token == TOKEN and profile.supports_create
    assert Application.objects.get(pk=world.ledgerly.pk).deprovisioning_sla_hours == 12
    assert not AuditEvent.objects.filter(action__startswith="provisioningprofile.").exists()


def test_profile_form_shows_the_residual_risk_of_the_mode_preset(world, client):
    page = _as(client, world.grace).get(
        reverse("admin:access_application_change", args=[world.ledgerly.pk])
    )
    html = page.content.decode()
    assert "the mode&#x27;s preset applies" in html or "the mode's preset applies" in html
    assert "role changes are not propagated" in html
    assert "account creation is manual" not in html


def test_profile_without_encryption_key_is_a_form_error_not_a_500(world, client, settings):
    """With no STEWARD_ENCRYPTION_KEY a connector secret cannot be stored: the page says so
    and nothing is saved."""
    settings.STEWARD_ENCRYPTION_KEY = None
    grace = _as(client, world.grace)
    url = reverse("admin:access_application_change", args=[world.ledgerly.pk])
    data = _application_form(grace, world.ledgerly)
    data.update(
        _profile_fields(scim_base_url="https://api.ledgerly.example/scim/v2", new_scim_token=TOKEN)
    )
    response = grace.post(url, data)
    assert response.status_code == 200
    assert b"STEWARD_ENCRYPTION_KEY" in response.content
    assert not ProvisioningProfile.objects.filter(application=world.ledgerly).exists()


def test_changed_encryption_key_does_not_break_the_application_page(world, client, settings):
    """Secrets stored under an old key read as unset (the page loads, the connector counts as
    not configured) and are kept as they were until someone enters new ones."""
    from governance.lifecycle.crypto import UndecryptableSecret

    ProvisioningProfile.objects.create(
        application=world.ledgerly, scim_base_url="https://old.example/scim", scim_token=TOKEN
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT scim_token FROM lifecycle_provisioningprofile")
        stored = cursor.fetchone()[0]
    settings.STEWARD_ENCRYPTION_KEY = "a-different-key"
    grace = _as(client, world.grace)
    page = grace.get(reverse("admin:access_application_change", args=[world.ledgerly.pk]))
    assert page.status_code == 200
    profile = ProvisioningProfile.objects.get(application=world.ledgerly)
    assert isinstance(profile.scim_token, UndecryptableSecret) and not profile.connected
    profile.lag_budget_minutes = 30
    profile.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT scim_token FROM lifecycle_provisioningprofile")
        assert cursor.fetchone()[0] == stored
