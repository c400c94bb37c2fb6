"""Reminder digests, escalation, closing at the due date, recurrence, remediation sync."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db.models import F
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.lifecycle.models import ProvisioningTask
from governance.reviews import notifications, services, tasks
from governance.reviews.models import Campaign, ReviewItem
from tests.factories import (
    AccountFactory,
    ApplicationFactory,
    EntitlementFactory,
    GrantFactory,
    IdentityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STEWARD_BASE_URL = "https://steward.example"


@pytest.fixture
def world(db, django_capture_on_commit_callbacks):
    """Nora manages Hannah; Hannah manages Daniel and Priya; Sam is the fallback. One active
    campaign over VaultFin (privileged approver, standard clerk) and one over Jira."""
    nora_p = IdentityFactory(user_name="nora@x.com")
    hannah_p = IdentityFactory(user_name="hannah@x.com", manager=nora_p)
    daniel_p = IdentityFactory(user_name="daniel@x.com", manager=hannah_p)
    priya_p = IdentityFactory(user_name="priya@x.com", manager=hannah_p)
    users = {
        "nora": UserFactory(username="nora", email="nora@x.com", identity=nora_p),
        "hannah": UserFactory(username="hannah", email="hannah@x.com", identity=hannah_p),
        "daniel": UserFactory(username="daniel", email="daniel@x.com", identity=daniel_p),
        "sam": UserFactory(username="sam", email="sam@x.com", roles=["Security admin"]),
    }
    vaultfin = ApplicationFactory(name="VaultFin", provisioning_mode="manual")
    approver = EntitlementFactory(application=vaultfin, name="Invoice Approver", privileged=True)
    clerk = EntitlementFactory(application=vaultfin, name="Invoice Clerk")
    jira = ApplicationFactory(name="Jira", provisioning_mode="manual")
    jira_user = EntitlementFactory(application=jira, name="User")

    def grant(app, person, ent, username):
        return GrantFactory(
            account=AccountFactory(application=app, identity=person, username=username),
            entitlement=ent,
        )

    grant(vaultfin, daniel_p, approver, "daniel")
    grant(vaultfin, priya_p, clerk, "priya")
    grant(vaultfin, hannah_p, clerk, "hannah")
    grant(jira, daniel_p, jira_user, "daniel-jira")
    campaigns = {}
    for name, app in (("Q4 VaultFin", vaultfin), ("Q4 Jira", jira)):
        campaign = Campaign.objects.create(
            name=name,
            fallback_reviewer=users["sam"],
            reviewer_strategy="manager",
            due_at=timezone.now() + 30 * DAY,
            reminder_every_days=7,
        )
        campaign.applications.add(app)
        with django_capture_on_commit_callbacks(execute=True):
            services.campaign_launch(actor=Actor.for_user(users["sam"]), campaign=campaign)
        campaign.refresh_from_db()
        assert campaign.state == "active"
        campaigns[name] = campaign
    return {**users, "campaigns": campaigns, "launched": timezone.now()}


def _item(world, account_label):
    return ReviewItem.objects.get(account_label=account_label)


# --------------------------------------------------------------------------- reminders


def test_one_digest_per_reviewer_with_all_their_items(world):
    """Hannah reviews three items in two campaigns: one mail, grouped, with counts, due
    dates and the link; Nora gets her own for Hannah's item; each item is stamped."""
    now = world["launched"] + 8 * DAY
    assert notifications.send_review_reminders(now=now) == 2
    by_to = {m.to[0]: m for m in mail.outbox}
    assert set(by_to) == {"hannah@x.com", "nora@x.com"}
    body = by_to["hannah@x.com"].body
    assert "Q4 VaultFin: 2 pending, due " in body and "Q4 Jira: 1 pending, due " in body
    assert body.count("  - ") == 3
    assert "My reviews: https://steward.example/" in body
    assert "3 access review items waiting" in by_to["hannah@x.com"].subject
    assert by_to["nora@x.com"].body.count("  - ") == 1
    assert not ReviewItem.objects.filter(last_reminded_at__isnull=True).exists()
    assert set(ReviewItem.objects.values_list("last_reminded_at", flat=True)) == {now}
    assert AuditEvent.objects.filter(action="review.reminder_sent").count() == 2


def test_reminder_interval_is_respected(world):
    """Nothing before the interval; nothing again until the interval passed since the last
    reminder; decided items are never reminded."""
    launched = world["launched"]
    assert notifications.send_review_reminders(now=launched + 6 * DAY) == 0
    assert notifications.send_review_reminders(now=launched + 8 * DAY) == 2
    assert notifications.send_review_reminders(now=launched + 10 * DAY) == 0
    services.review_decide(
        actor=Actor.for_user(world["nora"]), item=_item(world, "hannah"), decision="approve"
    )
    mail.outbox.clear()
    assert notifications.send_review_reminders(now=launched + 16 * DAY) == 1
    assert [m.to for m in mail.outbox] == [["hannah@x.com"]]


def test_reminders_off_and_task_adapter(world):
    """reminder_every_days=0 switches a campaign's reminders off; the task runs the service."""
    Campaign.objects.update(reminder_every_days=0)
    assert tasks.send_reminders.delay().get() == 0
    assert mail.outbox == []


# --------------------------------------------------------------------------- escalation


def _escalate_after(world, days=3, **extra):
    Campaign.objects.filter(pk=world["campaigns"]["Q4 VaultFin"].pk).update(
        escalate_after_days=days, **extra
    )


def test_escalation_goes_to_the_reviewers_manager(world):
    """Hannah's VaultFin items go to Nora; Nora has no manager: hers go to the fallback."""
    _escalate_after(world)
    launched = world["launched"]
    assert notifications.escalate_overdue(now=launched + 2 * DAY) == 0
    now = launched + 4 * DAY
    assert notifications.escalate_overdue(now=now) == 3
    for label in ("daniel", "priya"):
        item = _item(world, label)
        assert item.reviewer == world["nora"] and item.escalated_at == now
        assert item.routed_because.startswith("escalated")
    assert _item(world, "hannah").reviewer == world["sam"]
    assert _item(world, "daniel-jira").reviewer == world["hannah"]  # no escalation rule
    events = AuditEvent.objects.filter(action="review_item.escalated")
    assert events.count() == 3
    event = events.get(target_id=str(_item(world, "daniel").pk))
    assert event.actor_label == "system:review escalation"
    assert event.before == {"reviewer": "hannah"}
    assert event.after["reviewer"] == "nora"
    by_to = {m.to[0]: m for m in mail.outbox}
    assert sorted(by_to) == ["nora@x.com", "sam@x.com"] and len(mail.outbox) == 2
    assert by_to["nora@x.com"].body.count("  - ") == 2  # one digest for both items
    assert "escalated to you" in by_to["nora@x.com"].subject
    # escalated once: a second run does nothing
    assert notifications.escalate_overdue(now=now + DAY) == 0


def test_escalation_to_a_named_person(world):
    auditor = UserFactory(username="alex", email="alex@x.com")
    _escalate_after(world, escalation_to=auditor)
    assert notifications.escalate_overdue(now=world["launched"] + 4 * DAY) == 3
    reviewers = ReviewItem.objects.filter(escalated_at__isnull=False).values_list(
        "reviewer__username", flat=True
    )
    assert set(reviewers) == {"alex"}
    assert [m.to for m in mail.outbox] == [["alex@x.com"]]


def test_escalation_never_to_the_subject(world):
    """The escalation person is the subject of an item: that item goes to the fallback."""
    _escalate_after(world, escalation_to=world["nora"])
    ReviewItem.objects.filter(account_label="priya").update(subject_identity=world["nora"].identity)
    assert notifications.escalate_overdue(now=world["launched"] + 4 * DAY) == 3
    assert _item(world, "priya").reviewer == world["sam"]
    assert _item(world, "daniel").reviewer == world["nora"]
    # already with the escalation person: the fallback takes it
    assert _item(world, "hannah").reviewer == world["sam"]
    assert not ReviewItem.objects.filter(
        reviewer__identity__isnull=False, reviewer__identity=F("subject_identity")
    ).exists()


def test_escalation_without_manager_goes_to_fallback(world):
    """No manager above Hannah: her items go to the fallback. An item already with the
    fallback, who has no manager either, stays with him and is not marked escalated."""
    _escalate_after(world)
    hannah = world["hannah"].identity
    hannah.manager = None
    hannah.save()
    ReviewItem.objects.filter(account_label="hannah").update(reviewer=world["sam"])
    assert notifications.escalate_overdue(now=world["launched"] + 4 * DAY) == 2
    assert {_item(world, label).reviewer.username for label in ("daniel", "priya")} == {"sam"}
    stuck = _item(world, "hannah")
    assert stuck.reviewer == world["sam"] and stuck.escalated_at is None
    assert [m.to for m in mail.outbox] == [["sam@x.com"]]


# --------------------------------------------------------------------------- schedule


def test_close_due_applies_timeout_actions_to_the_policy(world):
    campaign = world["campaigns"]["Q4 VaultFin"]
    assert notifications.close_due_campaigns(now=campaign.due_at - DAY) == 0
    assert notifications.close_due_campaigns(now=campaign.due_at + DAY) == 2
    campaign.refresh_from_db()
    assert campaign.state == "closed"
    daniel = _item(world, "daniel")  # privileged: revoke on timeout
    assert (daniel.decision, daniel.decided_by_policy, daniel.decided_by) == ("revoke", True, None)
    assert daniel.provisioning_task.operation == "revoke"
    assert _item(world, "priya").decision == "pending"  # standard: left open
    event = AuditEvent.objects.get(action="campaign.closed", target_id=str(campaign.pk))
    assert event.actor_label == "system:campaign schedule"
    assert notifications.close_due_campaigns(now=campaign.due_at + 2 * DAY) == 0


def test_add_months_clamps_to_month_end():
    moment = datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert notifications.add_months(moment, 3) == datetime(2027, 2, 28, 9, tzinfo=UTC)
    assert notifications.add_months(moment, 1) == datetime(2026, 12, 30, 9, tzinfo=UTC)


def test_recurrence_creates_exactly_one_next_campaign(world):
    campaign = world["campaigns"]["Q4 VaultFin"]
    starts = datetime(2026, 10, 1, tzinfo=UTC)
    Campaign.objects.filter(pk=campaign.pk).update(
        recurrence="quarterly",
        starts_at=starts,
        due_at=starts + 14 * DAY,
        escalate_after_days=5,
        privileged_only=True,
    )
    assert notifications.start_recurring_campaigns() == 0  # still active
    services.campaign_close(actor=Actor.system("tests"), campaign=campaign)
    assert notifications.start_recurring_campaigns() == 1
    assert notifications.start_recurring_campaigns() == 0
    nxt = Campaign.objects.get(name="Q4 VaultFin", state="draft")
    assert nxt.starts_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert nxt.due_at == datetime(2027, 1, 15, tzinfo=UTC)
    assert (nxt.recurrence, nxt.escalate_after_days, nxt.privileged_only) == ("quarterly", 5, True)
    assert nxt.fallback_reviewer == world["sam"]
    assert list(nxt.applications.values_list("name", flat=True)) == ["VaultFin"]
    assert nxt.population_count == 0 and nxt.launched_at is None
    assert AuditEvent.objects.filter(action="campaign.created", target_id=str(nxt.pk)).exists()


def test_one_off_campaign_does_not_recur(world):
    services.campaign_close(actor=Actor.system("tests"), campaign=world["campaigns"]["Q4 Jira"])
    assert notifications.start_recurring_campaigns() == 0


def test_remediation_sync_follows_the_task(world):
    item = services.review_decide(
        actor=Actor.for_user(world["hannah"]),
        item=_item(world, "daniel"),
        decision="revoke",
        comment="moved to sales",
    )
    assert item.remediation == "requested"
    assert notifications.sync_remediation() == 0
    ProvisioningTask.objects.filter(pk=item.provisioning_task_id).update(state="executed")
    assert tasks.sync_remediation.delay().get() == 1
    item.refresh_from_db()
    assert item.remediation == "executed"
    assert AuditEvent.objects.filter(action="review.remediation_synced").count() == 1


@pytest.mark.django_db
def test_every_periodic_task_is_a_database_row_for_the_admin():
    """Beat reads only the database: the sweep and the review schedules exist as rows."""
    from django_celery_beat.models import PeriodicTask

    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {
        "lifecycle-sweep",
        "reviews-send-reminders",
        "reviews-escalate",
        "reviews-close-due",
        "reviews-start-recurring",
        "reviews-sync-remediation",
    } <= names
