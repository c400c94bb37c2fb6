"""Succession when an owner leaves, driven end to end from a SCIM deactivation: NHIs are
orphaned, handed off to the backup owner, the leaver's manager or an application owner,
accepted or declined down the chain to security, escalated when unanswered, and every
credential the leaver owned or knew gets one rotation task."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition, PermissionDenied
from governance.lifecycle.models import LifecycleEvent
from governance.nhi import services
from governance.nhi.models import Handoff, NonHumanIdentity, OwnershipChange, RotationTask
from governance.nhi.selectors import unowned_nhis
from tests.factories import ApplicationFactory, CredentialFactory, UserFactory
from tests.nhi.conftest import make_nhi

pytestmark = pytest.mark.django_db
Route = Handoff.Route


def as_user(person, *roles, username=None):
    """The person's portal account (created on first use)."""
    from governance.portal.models import User

    user = User.objects.filter(identity=person).first() or UserFactory(
        username=person.user_name.split("@")[0],
        identity=person,
        email=person.user_name,
        roles=list(roles),
    )
    return Actor.for_user(user)


@pytest.fixture
def team(directory):
    """Mia manages Owen (who owns NHIs) and Bea (his backup); Ada owns the application."""
    mia = directory.hire("mia.manager")
    owen = directory.hire("owen.owner", manager=mia)
    bea = directory.hire("bea.backup", manager=mia)
    ada = directory.hire("ada.appowner")
    app = ApplicationFactory(name="Payments")
    app_owner_user = UserFactory(username="ada", identity=ada, roles=["App owner"])
    app.owners.add(app_owner_user)
    return {"mia": mia, "owen": owen, "bea": bea, "ada": ada, "app": app}


def test_owner_leaves_nhis_orphaned_and_proposed_down_the_chain(team, directory):
    owen, bea, mia, ada, app = (team[k] for k in ("owen", "bea", "mia", "ada", "app"))
    with_backup = make_nhi(owen, name="payments-sync", backup_owner=bea, application=app)
    no_backup = make_nhi(owen, name="payments-report", application=app)
    retired = make_nhi(owen, name="old-batch", application=app)
    retired.status = "retired"
    retired.save()

    directory.deactivate(owen)

    event = LifecycleEvent.objects.get(identity=owen, kind="leaver")
    assert event.nhi_handoff_needed is True
    for nhi in (with_backup, no_backup, retired):
        nhi.refresh_from_db()
    assert (with_backup.status, no_backup.status, retired.status) == (
        "orphaned",
        "orphaned",
        "retired",
    )
    assert set(unowned_nhis()) == {with_backup, no_backup}
    handoffs = {h.nhi.name: h for h in Handoff.objects.select_related("nhi")}
    assert set(handoffs) == {"payments-sync", "payments-report"}
    assert (handoffs["payments-sync"].proposed_to, handoffs["payments-sync"].route) == (
        bea,
        Route.BACKUP_OWNER,
    )
    assert (handoffs["payments-report"].proposed_to, handoffs["payments-report"].route) == (
        mia,
        Route.MANAGER,
    )
    assert handoffs["payments-sync"].event == event
    assert OwnershipChange.objects.filter(nhi=with_backup, kind="orphaned").count() == 1
    assert AuditEvent.objects.filter(action="handoff.proposed").count() == 2

    # Bea accepts: she owns it (and is no longer her own backup), the NHI is active again.
    services.handoff_accept(actor=as_user(bea), handoff=handoffs["payments-sync"])
    with_backup.refresh_from_db()
    assert (with_backup.owner, with_backup.backup_owner, with_backup.status) == (
        bea,
        None,
        "active",
    )
    last = OwnershipChange.objects.filter(nhi=with_backup).first()
    assert (last.kind, last.from_owner, last.to_owner) == ("handoff", owen, bea)

    # Mia declines: the application owner is asked next; Ada declines: security.
    second = services.handoff_decline(
        actor=as_user(mia), handoff=handoffs["payments-report"], reason="Not my team's job"
    )
    assert (second.proposed_to, second.route) == (ada, Route.APP_OWNER)
    third = services.handoff_decline(actor=as_user(ada), handoff=second, reason="Never used it")
    assert (third.proposed_to, third.route) == (None, Route.SECURITY)
    sam = Actor.for_user(UserFactory(username="sam", roles=["Security admin"]))
    with pytest.raises(PermissionDenied):
        services.handoff_decline(actor=as_user(ada), handoff=third, reason="x")
    with pytest.raises(InvalidTransition):
        services.handoff_decline(actor=sam, handoff=third, reason="No one left to ask")
    with pytest.raises(InvalidTransition):
        services.handoff_accept(actor=sam, handoff=third)
    no_backup.refresh_from_db()
    assert no_backup.status == "orphaned"

    # Security assigns an owner: the NHI is active and the security hand-off is closed.
    services.nhi_assign_owner(actor=sam, nhi=no_backup, owner=ada, reason="Only user left")
    third.refresh_from_db()
    no_backup.refresh_from_db()
    assert third.state == "closed" and no_backup.status == "active" and no_backup.owner == ada


def test_only_the_proposed_person_or_security_answers(team, directory):
    owen, bea, mia = team["owen"], team["bea"], team["mia"]
    nhi = make_nhi(owen, backup_owner=bea)
    directory.deactivate(owen)
    handoff = Handoff.objects.get(nhi=nhi)
    with pytest.raises(PermissionDenied):
        services.handoff_accept(actor=as_user(mia), handoff=handoff)
    with pytest.raises(DomainError):
        services.handoff_decline(actor=as_user(bea), handoff=handoff, reason="  ")
    handoff.refresh_from_db()
    assert handoff.state == "proposed"
    services.handoff_accept(actor=as_user(bea), handoff=handoff)
    with pytest.raises(InvalidTransition):
        services.handoff_accept(actor=as_user(bea), handoff=handoff)


def test_inactive_candidates_are_skipped(team, directory):
    owen, bea, mia, ada = team["owen"], team["bea"], team["mia"], team["ada"]
    nhi = make_nhi(owen, backup_owner=bea, application=team["app"])
    directory.deactivate(bea)
    directory.deactivate(mia)
    directory.deactivate(owen)
    handoff = Handoff.objects.get(nhi=nhi, state="proposed")
    assert (handoff.proposed_to, handoff.route) == (ada, Route.APP_OWNER)


def test_duplicate_leaver_event_creates_nothing_new(team, directory):
    owen = team["owen"]
    nhi = make_nhi(owen, backup_owner=team["bea"])
    CredentialFactory(nhi=nhi)
    directory.deactivate(owen)
    counts = (
        Handoff.objects.count(),
        RotationTask.objects.count(),
        OwnershipChange.objects.count(),
    )
    assert counts == (1, 1, 2)
    # The same leaver again (a replayed event, or a second deactivation after a rehire race).
    event = LifecycleEvent.objects.get(identity=owen, kind="leaver")
    result = services.nhi_succession_for_leaver(identity=owen, event=event)
    assert (result.orphaned, result.handoffs, result.rotation_tasks) == ([], [], [])
    directory.deactivate(owen)  # SCIM says it again: no new event at all
    assert (
        Handoff.objects.count(),
        RotationTask.objects.count(),
        OwnershipChange.objects.count(),
    ) == counts


def test_rotation_tasks_for_owned_and_known_credentials(team, directory):
    owen, bea, mia = team["owen"], team["bea"], team["mia"]
    owned = CredentialFactory(nhi=make_nhi(owen, name="owen-svc"))
    shared = CredentialFactory(nhi=make_nhi(mia, name="mia-svc"), known_by=[owen, bea])
    unrelated = CredentialFactory(nhi=make_nhi(bea, name="bea-svc"), known_by=[bea])
    revoked = CredentialFactory(
        nhi=make_nhi(mia, name="mia-old"), known_by=[owen], status="revoked"
    )
    directory.deactivate(owen)
    tasks = {t.credential_id: t for t in RotationTask.objects.all()}
    assert set(tasks) == {owned.pk, shared.pk}
    assert tasks[owned.pk].reason == "owner_left" and tasks[shared.pk].reason == "knower_left"
    assert tasks[shared.pk].leaver == owen and tasks[shared.pk].due_at > timezone.now()
    assert unrelated.pk not in tasks and revoked.pk not in tasks


def test_knower_who_owns_nothing_leaving_raises_rotation(team, directory):
    """A shared password known by someone who owns no NHI is rotated when they leave."""
    bea, mia = team["bea"], team["mia"]
    shared = CredentialFactory(
        nhi=make_nhi(mia, name="shared-sftp"), known_by=[bea, mia], type="password"
    )
    directory.deactivate(bea)
    assert not Handoff.objects.exists()
    task = RotationTask.objects.get()
    assert (task.credential, task.reason, task.leaver) == (shared, "knower_left", bea)
    # Recording the rotation closes the task and takes the leaver off the knowers.
    services.credential_record_rotation(
        actor=as_user(mia), credential=shared, evidence_reference="CHG-1042"
    )
    task.refresh_from_db()
    assert task.state == "done" and task.evidence_reference == "CHG-1042"
    assert list(shared.known_by.all()) == [mia]
    # A replay of the same leaver does not reopen the work.
    services.nhi_succession_for_leaver(identity=bea)
    assert RotationTask.objects.count() == 1


def test_unanswered_handoffs_escalate_once_after_n_days(team, directory, settings):
    settings.STEWARD_NHI_HANDOFF_ESCALATE_DAYS = 5
    UserFactory(username="sec", email="sec@northwind.example", roles=["Security admin"])
    owen = team["owen"]
    nhi = make_nhi(owen, backup_owner=team["bea"])
    directory.deactivate(owen)
    handoff = Handoff.objects.get(nhi=nhi)
    now = timezone.now()
    mail.outbox.clear()
    assert services.handoffs_escalate(now=now + timedelta(days=4, hours=23)) == []
    escalated = services.handoffs_escalate(now=now + timedelta(days=5, minutes=1))
    assert [h.pk for h in escalated] == [handoff.pk]
    handoff.refresh_from_db()
    assert handoff.escalated_at is not None and handoff.state == "proposed"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["sec@northwind.example"]
    assert nhi.name in mail.outbox[0].body
    assert services.handoffs_escalate(now=now + timedelta(days=6)) == []
    assert len(mail.outbox) == 1
    assert AuditEvent.objects.filter(action="handoff.escalated").count() == 1


def test_escalation_task_runs_from_beat(team, directory, settings):
    from governance.nhi.tasks import escalate_handoffs

    settings.STEWARD_NHI_HANDOFF_ESCALATE_DAYS = 0
    make_nhi(team["owen"], backup_owner=team["bea"])
    directory.deactivate(team["owen"])
    assert escalate_handoffs.delay().get() == 1
    from django_celery_beat.models import PeriodicTask

    assert set(
        PeriodicTask.objects.filter(name__startswith="nhi-").values_list("task", flat=True)
    ) == {"nhi.rotation_sweep", "nhi.escalate_handoffs"}


def test_urgent_leaver_hands_off_before_the_directory(team):
    """A portal-started urgent leaver hands off at once; the later SCIM deactivation adds
    nothing."""
    from governance.lifecycle.services import lifecycle_start_urgent_leaver

    owen = team["owen"]
    nhi = make_nhi(owen, backup_owner=team["bea"])
    sam = Actor.for_user(UserFactory(username="sam", roles=["Security admin"]))
    lifecycle_start_urgent_leaver(actor=sam, identity=owen, reason="Walked out")
    assert Handoff.objects.filter(nhi=nhi, proposed_to=team["bea"]).count() == 1
    assert NonHumanIdentity.objects.get(pk=nhi.pk).status == "orphaned"


def test_proposed_person_is_reminded_daily_once(team, directory):
    from governance.nhi.notifications import send_handoff_reminders

    owen, bea = team["owen"], team["bea"]
    make_nhi(owen, name="reminded-svc", backup_owner=bea)
    directory.deactivate(owen)
    mail.outbox.clear()
    now = timezone.now()
    assert send_handoff_reminders(now=now) == 1
    assert mail.outbox[0].to == [bea.user_name]
    assert "reminded-svc" in mail.outbox[0].body and "?mine=yes" in mail.outbox[0].body
    assert send_handoff_reminders(now=now + timedelta(hours=2)) == 0
    assert send_handoff_reminders(now=now + timedelta(days=1)) == 1
    handoff = Handoff.objects.get(nhi__name="reminded-svc")
    services.handoff_accept(actor=as_user(bea), handoff=handoff)
    assert send_handoff_reminders(now=now + timedelta(days=3)) == 0
