"""Reconciliation in the admin: CSV upload with mapping and preview, run pages with the drift
chart, and finding triage — for the application's owner, a colleague who owns another
application, an outsider and an auditor, including direct URLs."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from governance.audit.models import AuditEvent
from governance.lifecycle.models import ProvisioningTask
from governance.reconciliation.models import Finding, ObservedAccount, ReconciliationRun
from governance.reviews.models import ReviewItem
from tests.factories import ApplicationFactory, FindingFactory, UserFactory
from tests.reconciliation.helpers import MAPPING, build_world, import_csv

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:reconciliation_finding_changelist"


@pytest.fixture
def world(django_capture_on_commit_callbacks):
    world = build_world()
    world.run = import_csv(world, world.csv(), django_capture_on_commit_callbacks)
    return world


@pytest.fixture
def colleague():
    user = UserFactory(username="colleague", roles=["App owner"])
    ApplicationFactory(name="Other app").owners.add(user)
    return user


@pytest.fixture
def outsider():
    return UserFactory(username="outsider")


@pytest.fixture
def auditor():
    return UserFactory(username="auditor", roles=["Auditor"])


def _triage(finding, action):
    return reverse("admin:reconciliation_finding_triage", args=[finding.pk, action])


def _finding(world, prefix):
    return Finding.objects.get(application=world.app, subject__startswith=prefix)


def test_owner_sees_their_findings_colleague_none_outsider_refused(
    world, client, colleague, outsider, django_assert_max_num_queries
):
    client.force_login(world.owner)
    for _ in range(30):
        FindingFactory(application=world.app)
    with django_assert_max_num_queries(20):
        page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert page.context["cl"].result_count == Finding.objects.filter(application=world.app).count()
    assert client.get(reverse(CHANGELIST), {"kind__exact": "orphan"}).status_code == 200
    assert client.get(reverse(CHANGELIST), {"q": "alice"}).context["cl"].result_count == 1

    client.force_login(colleague)
    assert client.get(reverse(CHANGELIST)).context["cl"].result_count == 0
    alice = _finding(world, "alice")
    change = reverse("admin:reconciliation_finding_change", args=[alice.pk])
    assert client.get(change).status_code == 302  # not theirs: "does not exist"
    assert client.get(_triage(alice, "remediate")).status_code == 302

    client.force_login(outsider)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(change).status_code == 403
    assert client.post(_triage(alice, "remediate")).status_code == 403
    alice.refresh_from_db()
    assert alice.status == "open"


def test_owner_remediates_a_finding_into_a_manual_work_item(world, client):
    client.force_login(world.owner)
    alice = _finding(world, "alice")
    page = client.get(reverse("admin:reconciliation_finding_change", args=[alice.pk]))
    assert page.status_code == 200
    assert page.context["triage"]["remediate"] == _triage(alice, "remediate")
    confirm = client.get(_triage(alice, "remediate"))
    assert confirm.status_code == 200 and b"Yes, remediate" in confirm.content
    assert client.post(_triage(alice, "remediate")).status_code == 302
    alice.refresh_from_db()
    assert alice.status == "remediating" and alice.triaged_by == world.owner
    task = alice.task
    assert (task.operation, task.state, task.entitlement) == (
        "revoke",
        "awaiting_manual",
        world.ents["admin"],
    )
    assert AuditEvent.objects.filter(action="finding.remediation_requested").count() == 1


def test_remediating_an_unknown_account_records_it_and_asks_to_disable_it(world, client):
    client.force_login(world.security)
    ghost = _finding(world, "ghost")
    client.post(_triage(ghost, "remediate"))
    ghost.refresh_from_db()
    assert ghost.status == "remediating"
    assert ghost.account.username == "ghost" and ghost.account.origin == "imported"
    assert ghost.task.operation == "disable_account" and ghost.task.channel == "manual"


def test_false_positive_needs_a_reason(world, client):
    client.force_login(world.owner)
    erin = _finding(world, "erin")
    response = client.post(_triage(erin, "false-positive"), {"reason": "  "})
    assert response.status_code == 200 and b"This field is required" in response.content
    erin.refresh_from_db()
    assert erin.status == "open"
    client.post(_triage(erin, "false-positive"), {"reason": "Seasonal approver."})
    erin.refresh_from_db()
    assert erin.status == "false_positive" and erin.resolution == "Seasonal approver."


def test_send_to_review_creates_a_one_item_review_for_the_owner(world, client):
    client.force_login(world.owner)
    alice = _finding(world, "alice")
    client.post(_triage(alice, "review"))
    alice.refresh_from_db()
    assert alice.status == "in_review"
    item = ReviewItem.objects.get()
    assert alice.review_item == item and item.reviewer == world.owner
    assert item.entitlement == world.ents["admin"] and item.campaign.kind == "micro"
    assert item.campaign.state == "active" and item.account_label == "alice"


def test_bulk_actions_confirm_first_and_skip_what_cannot_change(world, client, colleague):
    client.force_login(world.owner)
    ids = list(
        Finding.objects.filter(application=world.app, status="open").values_list("pk", flat=True)
    )
    data = {"action": "remediate", "_selected_action": ids}
    confirm = client.post(reverse(CHANGELIST), data)
    assert confirm.status_code == 200 and b"Yes, remediate" in confirm.content
    assert not Finding.objects.filter(status="remediating").exists()
    client.post(reverse(CHANGELIST), {**data, "post": "yes"})
    assert Finding.objects.filter(status="remediating").count() == len(ids)
    assert Finding.objects.get(subject__startswith="hank").status == "suppressed"

    client.force_login(colleague)
    gina = _finding(world, "gina")
    client.post(
        reverse(CHANGELIST),
        {
            "action": "mark_false_positive",
            "_selected_action": [gina.pk],
            "post": "yes",
            "reason": "not mine",
        },
    )
    gina.refresh_from_db()
    assert gina.status == "in_flight"


def test_auditor_reads_but_cannot_triage(world, client, auditor):
    client.force_login(auditor)
    alice = _finding(world, "alice")
    page = client.get(reverse("admin:reconciliation_finding_change", args=[alice.pk]))
    assert page.status_code == 200 and page.context["triage"] == {}
    assert client.post(_triage(alice, "remediate")).status_code == 403
    listing = client.get(reverse(CHANGELIST))
    assert listing.status_code == 200 and listing.context["action_form"] is None


def test_exception_link_is_prefilled_for_the_finding(world, client):
    client.force_login(world.owner)
    alice = _finding(world, "alice")
    page = client.get(reverse("admin:reconciliation_finding_change", args=[alice.pk]))
    link = page.context["triage"].get("exception")
    if link is None:
        pytest.skip("the exception admin is not registered")
    assert link.startswith(reverse("admin:risk_accessexception_add") + "?")
    assert f"finding={alice.pk}" in link and f"application={world.app.pk}" in link
    assert f"entitlement={world.ents['admin'].pk}" in link


def test_upload_preview_and_confirm_through_the_admin(
    world, client, colleague, django_capture_on_commit_callbacks
):
    client.force_login(world.owner)
    add = reverse("admin:reconciliation_reconciliationrun_add")
    assert client.get(add).status_code == 200
    bad = client.post(
        add,
        {"application": world.app.pk, "file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00a")},
    )
    assert bad.status_code == 200 and b"not UTF-8" in bad.content
    before = ReconciliationRun.objects.count()
    response = client.post(
        add, {"application": world.app.pk, "file": SimpleUploadedFile("x.csv", world.csv())}
    )
    run = ReconciliationRun.objects.latest("pk")
    assert ReconciliationRun.objects.count() == before + 1 and run.status == "preview"
    preview_url = reverse("admin:reconciliation_reconciliationrun_preview", args=[run.pk])
    assert response.url == preview_url
    preview = client.get(preview_url)
    assert preview.status_code == 200 and b"dave.new" in preview.content
    observed = ObservedAccount.objects.count()

    client.force_login(colleague)
    assert client.get(preview_url).status_code == 302
    assert client.post(preview_url, {**MAPPING, "confirm": "1"}).status_code == 302
    run.refresh_from_db()
    assert run.status == "preview"

    client.force_login(world.owner)
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(preview_url, {**MAPPING, "confirm": "1"})
    assert done.status_code == 302
    run.refresh_from_db()
    assert run.status == "completed" and ObservedAccount.objects.count() == observed
    page = client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]))
    assert page.status_code == 200 and b"Drift over time" in page.content
    assert len(page.context["chart"].columns) == 2


def test_run_pages_load_for_each_role(world, client, colleague, auditor):
    for user, status in ((world.owner, 200), (world.security, 200), (auditor, 200)):
        client.force_login(user)
        assert (
            client.get(reverse("admin:reconciliation_reconciliationrun_changelist")).status_code
            == status
        )
        assert (
            client.get(reverse("admin:reconciliation_driftsnapshot_changelist")).status_code == 200
        )
    client.force_login(auditor)
    assert client.get(reverse("admin:reconciliation_reconciliationrun_add")).status_code == 403
    client.force_login(colleague)
    listing = client.get(reverse("admin:reconciliation_reconciliationrun_changelist"))
    assert listing.context["cl"].result_count == 0
    scim = client.get(reverse("admin:reconciliation_reconciliationrun_scim"))
    choices = scim.context["form"].fields["application"].queryset
    assert scim.status_code == 200 and list(choices.values_list("name", flat=True)) == ["Other app"]
    response = client.post(
        reverse("admin:reconciliation_reconciliationrun_scim"), {"application": world.app.pk}
    )
    assert (
        response.status_code == 200 and not ReconciliationRun.objects.filter(source="scim").exists()
    )


def test_failed_task_count_stays_untouched_by_pages(world, client):
    """Loading pages changes nothing (no side effects on GET)."""
    client.force_login(world.owner)
    tasks = ProvisioningTask.objects.count()
    for finding in Finding.objects.all():
        client.get(_triage(finding, "remediate"))
    assert ProvisioningTask.objects.count() == tasks


def test_settings_are_changed_by_the_owner_only(world, client, colleague, auditor):
    from governance.reconciliation.models import ReconciliationSettings

    settings_row = ReconciliationSettings.objects.create(application=world.app)
    change = reverse("admin:reconciliation_reconciliationsettings_change", args=[settings_row.pk])
    form = {"dormant_after_days": 30, "scheduled": "", "every_hours": 12}
    client.force_login(colleague)
    assert client.get(change).status_code == 302
    client.post(change, form)
    client.force_login(auditor)
    assert client.get(change).status_code == 200
    assert client.post(change, form).status_code == 403
    settings_row.refresh_from_db()
    assert settings_row.dormant_after_days == 90
    client.force_login(world.owner)
    page = client.get(change)
    assert page.status_code == 200 and b"Drift over time" in page.content
    assert client.post(change, {**form, "dormant_after_days": 0}).status_code == 200
    assert client.post(change, form).status_code == 302
    settings_row.refresh_from_db()
    assert (settings_row.dormant_after_days, settings_row.every_hours) == (30, 12)
