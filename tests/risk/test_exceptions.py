"""Exception workflow: every transition, four-eyes (service and database), who may do what,
scope and expiry rules, the compensating-control rule, suppression, expiry and renewal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError, InvalidTransition, PermissionDenied
from governance.reconciliation.models import Finding
from governance.risk import services
from governance.risk.models import AccessException
from tests.factories import AccountFactory, NonHumanIdentityFactory

pytestmark = pytest.mark.django_db
S = AccessException.Status
SYSTEM = Actor.system("tests")


def in_state(world, state: str) -> AccessException:
    if state == "draft":
        return world.draft()
    if state == "submitted":
        return world.submitted()
    exception = world.approved() if state != "rejected" else world.submitted()
    sam = world.actor(world.sam)
    if state == "rejected":
        return services.exception_reject(actor=sam, exception=exception, comment="No.")
    if state == "expired":
        return services.exception_expire(
            actor=SYSTEM, exception=exception, today=exception.expires_on + timedelta(days=1)
        )
    if state == "revoked":
        return services.exception_revoke(actor=sam, exception=exception, comment="Ended.")
    return exception


def run(world, action: str, exception: AccessException):
    grace, sam = world.actor(world.grace), world.actor(world.sam)
    if action == "submit":
        return services.exception_submit(actor=grace, exception=exception)
    if action == "approve":
        return services.exception_approve(actor=sam, exception=exception)
    if action == "reject":
        return services.exception_reject(actor=sam, exception=exception, comment="No.")
    if action == "revoke":
        return services.exception_revoke(actor=sam, exception=exception, comment="Stop.")
    if action == "update":
        return services.exception_update(actor=grace, exception=exception, title="Renamed")
    if action == "renew":
        return services.exception_renew(
            actor=grace, exception=exception, expires_on=world.today + timedelta(days=30)
        )
    raise AssertionError(action)


STATES = ["draft", "submitted", "approved", "rejected", "expired", "revoked"]
ALLOWED = {
    # action: {from state: resulting state of the exception acted on}
    "submit": {"draft": "submitted"},
    "approve": {"submitted": "approved"},
    "reject": {"submitted": "rejected"},
    "revoke": {"approved": "revoked"},
    "update": {"draft": "draft"},
    "renew": {"approved": "approved", "expired": "expired"},
}
TABLE = [
    pytest.param(state, action, ALLOWED[action].get(state), id=f"{state}-{action}")
    for action in ALLOWED
    for state in STATES
]


@pytest.mark.parametrize(("state", "action", "result"), TABLE)
def test_transition_table(world, state, action, result):
    """Each action is allowed from exactly the states in the table; otherwise it raises
    InvalidTransition and changes nothing."""
    exception = in_state(world, state)
    events = AuditEvent.objects.count()
    if result is None:
        with pytest.raises(InvalidTransition):
            run(world, action, exception)
        exception.refresh_from_db()
        assert exception.status == state
        assert AuditEvent.objects.count() == events
        return
    outcome = run(world, action, exception)
    exception.refresh_from_db()
    assert exception.status == result
    assert AuditEvent.objects.count() > events
    if action == "renew":
        assert outcome.renewal_of_id == exception.pk and outcome.status == S.SUBMITTED


@pytest.mark.parametrize("state", STATES)
def test_expire_only_ends_approved_exceptions_past_their_date(world, state):
    exception = in_state(world, state)
    after = exception.expires_on + timedelta(days=1)
    result = services.exception_expire(actor=SYSTEM, exception=exception, today=after)
    exception.refresh_from_db()
    if state == "approved":
        assert result is not None and exception.status == S.EXPIRED and exception.ended_at
    else:
        assert result is None and exception.status == state


def test_approved_exception_is_valid_through_its_expiry_date(world):
    exception = world.approved()
    assert (
        services.exception_expire(actor=SYSTEM, exception=exception, today=exception.expires_on)
        is None
    )
    exception.refresh_from_db()
    assert exception.status == S.APPROVED


# ------------------------------------------------------------------------------ four-eyes


def test_requester_cannot_decide_own_exception_even_as_security_admin(world):
    """Sam (security admin) requests; Sam can neither approve nor reject; Sara can."""
    exception = world.submitted(by=world.sam)
    for decide in (
        lambda: services.exception_approve(actor=world.actor(world.sam), exception=exception),
        lambda: services.exception_reject(
            actor=world.actor(world.sam), exception=exception, comment="No"
        ),
    ):
        with pytest.raises(PermissionDenied) as raised:
            decide()
        assert raised.value.code == "four_eyes"
    exception.refresh_from_db()
    assert exception.status == S.SUBMITTED and exception.approver_id is None
    approved = services.exception_approve(actor=world.actor(world.sara), exception=exception)
    assert approved.status == S.APPROVED and approved.approver == world.sara


def test_app_owner_cannot_approve_own_or_any_exception(world):
    exception = world.submitted()
    with pytest.raises(PermissionDenied):
        services.exception_approve(actor=world.actor(world.grace), exception=exception)
    with pytest.raises(PermissionDenied):
        services.exception_approve(actor=world.actor(world.lena), exception=exception)


def test_database_refuses_approver_equal_to_requester(world):
    """The access_exception_four_eyes constraint holds even for a raw ORM update."""
    exception = world.submitted()
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessException.objects.filter(pk=exception.pk).update(
            approver=F("requested_by"), status=S.APPROVED
        )
    exception.refresh_from_db()
    assert exception.approver_id is None


def test_database_refuses_decided_exception_without_approver(world):
    exception = world.submitted()
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessException.objects.filter(pk=exception.pk).update(status=S.APPROVED)


# ------------------------------------------------------------------------------ who may


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("grace", True), ("sam", True), ("lena", False), ("alex", False), ("outsider", False)],
    ids=["owner", "security", "colleague", "auditor", "outsider"],
)
def test_who_may_register_an_exception_for_ledgerly(world, who, allowed):
    user = getattr(world, who)
    if allowed:
        assert world.draft(by=user).requested_by == user
        return
    with pytest.raises(PermissionDenied):
        world.draft(by=user, controls=[])
    assert not AccessException.objects.exists()


def test_colleague_cannot_edit_submit_or_renew_anothers_exception(world):
    draft = world.draft()
    lena = world.actor(world.lena)
    with pytest.raises(PermissionDenied):
        services.exception_update(actor=lena, exception=draft, title="Mine now")
    with pytest.raises(PermissionDenied):
        services.exception_submit(actor=lena, exception=draft)
    approved = world.approved(title="Other")
    with pytest.raises(PermissionDenied):
        services.exception_renew(
            actor=lena, exception=approved, expires_on=world.today + timedelta(days=5)
        )
    draft.refresh_from_db()
    assert draft.title != "Mine now" and draft.status == S.DRAFT


def test_only_security_admins_revoke(world):
    exception = world.approved()
    with pytest.raises(PermissionDenied):
        services.exception_revoke(actor=world.actor(world.grace), exception=exception, comment="x")


def test_reject_and_revoke_need_a_reason(world):
    submitted = world.submitted()
    with pytest.raises(DomainError) as raised:
        services.exception_reject(actor=world.actor(world.sam), exception=submitted, comment=" ")
    assert raised.value.field == "comment"
    approved = world.approved(title="Other")
    with pytest.raises(DomainError):
        services.exception_revoke(actor=world.actor(world.sam), exception=approved, comment="")
    approved.refresh_from_db()
    assert approved.status == S.APPROVED


# ------------------------------------------------------------------------------ rules


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("entitlement", lambda w: {"entitlement": w.github_role}),
        ("account", lambda w: {"account": w.github_account}),
        ("finding", lambda w: {"finding": w.finding(app=w.github)}),
        ("nhi", lambda w: {"nhi": NonHumanIdentityFactory(application=w.github)}),
    ],
)
def test_scope_must_belong_to_the_application(world, field, make):
    with pytest.raises(DomainError) as raised:
        world.draft(**make(world))
    assert raised.value.field == field
    assert not AccessException.objects.exists()


def test_nhi_with_an_account_in_the_application_is_in_scope(world):
    nhi = NonHumanIdentityFactory(application=None)
    AccountFactory(application=world.ledgerly, nhi=nhi, identity=None, username="svc-ledger")
    assert world.draft(nhi=nhi).nhi == nhi


@pytest.mark.parametrize(
    ("days", "message"),
    [(-1, "in the past"), (366, "at most 365 days"), (None, "needs an expiry date")],
    ids=["past", "too-far", "missing"],
)
def test_expiry_is_mandatory_bounded_and_not_past(world, days, message):
    expires = None if days is None else world.today + timedelta(days=days)
    with pytest.raises(DomainError) as raised:
        world.draft(expires_on=expires)
    assert raised.value.field == "expires_on" and message in raised.value.message


def test_maximum_expiry_is_configurable(world, settings):
    settings.STEWARD_EXCEPTION_MAX_DAYS = 30
    with pytest.raises(DomainError, match="at most 30 days"):
        world.draft(expires_on=world.today + timedelta(days=31))
    assert world.draft(expires_on=world.today + timedelta(days=30))


@pytest.mark.parametrize("app", ["ledgerly", "vaultfin"])
def test_approval_needs_an_active_control_without_full_scim(world, app):
    application = getattr(world, app)
    exception = world.submitted(app=application, controls=[])
    with pytest.raises(DomainError) as raised:
        services.exception_approve(actor=world.actor(world.sam), exception=exception)
    assert raised.value.code == "control_required" and "compensating control" in str(raised.value)
    exception.refresh_from_db()
    assert exception.status == S.SUBMITTED


def test_a_suspended_control_does_not_count(world):
    control = world.control()
    control.status = "suspended"
    control.save()
    exception = world.submitted(controls=[control])
    with pytest.raises(DomainError, match="active compensating control"):
        services.exception_approve(actor=world.actor(world.sam), exception=exception)


def test_full_scim_application_needs_no_control(world):
    exception = world.approved(app=world.github, by=world.lena, controls=[])
    assert exception.status == S.APPROVED


def test_controls_of_another_application_cannot_be_linked(world):
    other = world.control(app=world.vaultfin)
    with pytest.raises(DomainError) as raised:
        world.draft(controls=[other])
    assert raised.value.field == "controls"


# ------------------------------------------------------------------------------ effects


def test_approval_suppresses_covered_findings_and_expiry_reopens_them(world):
    covered = world.finding(kind="excess")
    other_kind = world.finding(kind="orphan")
    exception = world.approved()
    covered.refresh_from_db()
    other_kind.refresh_from_db()
    assert covered.status == Finding.Status.SUPPRESSED and covered.suppressed_by == exception
    assert other_kind.status == Finding.Status.OPEN
    approved = AuditEvent.objects.get(action="access_exception.approved")
    assert approved.after["findings_suppressed"] == 1

    after = exception.expires_on + timedelta(days=1)
    assert services.exceptions_expire_due(today=after) == 1
    assert services.exceptions_expire_due(today=after) == 0  # idempotent
    covered.refresh_from_db()
    exception.refresh_from_db()
    assert exception.status == S.EXPIRED
    assert covered.status == Finding.Status.OPEN and covered.suppressed_by is None
    lapsed = Finding.objects.get(kind=Finding.Kind.EXCEPTION_EXPIRED)
    assert lapsed.exception == exception and lapsed.owner == world.grace
    assert lapsed.status == Finding.Status.OPEN and lapsed.severity == exception.risk_rating
    assert lapsed.application == world.ledgerly
    assert AuditEvent.objects.filter(action="access_exception.expired").count() == 1


def test_revoking_reopens_findings_at_once_without_an_expiry_finding(world):
    covered = world.finding(kind="missing")
    exception = world.approved()
    services.exception_revoke(actor=world.actor(world.sam), exception=exception, comment="Stop")
    covered.refresh_from_db()
    assert covered.status == Finding.Status.OPEN
    assert not Finding.objects.filter(kind=Finding.Kind.EXCEPTION_EXPIRED).exists()
    event = AuditEvent.objects.get(action="access_exception.revoked")
    assert event.after["findings_reopened"] == 1


def test_approved_renewal_supersedes_the_old_exception(world):
    """Renewal copies scope and controls; approving it ends the old one as superseded, the
    findings stay accepted (now by the renewal) and no expiry finding is opened."""
    covered = world.finding(kind="excess", entitlement=world.ledgerly_role)
    old = world.approved(entitlement=world.ledgerly_role)
    renewal = services.exception_renew(
        actor=world.actor(world.grace),
        exception=old,
        expires_on=world.today + timedelta(days=300),
    )
    assert renewal.status == S.SUBMITTED and renewal.renewal_of == old
    assert renewal.entitlement == world.ledgerly_role
    assert set(renewal.controls.all()) == set(old.controls.all())
    with pytest.raises(Conflict):
        services.exception_renew(
            actor=world.actor(world.grace), exception=old, expires_on=world.today
        )
    services.exception_approve(actor=world.actor(world.sara), exception=renewal)
    old.refresh_from_db()
    covered.refresh_from_db()
    assert old.status == S.EXPIRED and "Superseded" in old.end_comment
    assert covered.status == Finding.Status.SUPPRESSED and covered.suppressed_by == renewal
    assert services.exceptions_expire_due(today=old.expires_on + timedelta(days=1)) == 0
    assert not Finding.objects.filter(kind=Finding.Kind.EXCEPTION_EXPIRED).exists()
    with pytest.raises(InvalidTransition, match=f"renew exception {renewal.pk} instead"):
        services.exception_renew(
            actor=world.actor(world.grace), exception=old, expires_on=world.today
        )


def test_late_renewal_resolves_the_expiry_finding(world):
    old = world.approved()
    services.exceptions_expire_due(today=old.expires_on + timedelta(days=1))
    lapsed = Finding.objects.get(kind=Finding.Kind.EXCEPTION_EXPIRED)
    old.refresh_from_db()
    renewal = services.exception_renew(
        actor=world.actor(world.grace), exception=old, expires_on=world.today + timedelta(days=90)
    )
    services.exception_approve(actor=world.actor(world.sam), exception=renewal)
    lapsed.refresh_from_db()
    assert lapsed.status == Finding.Status.RESOLVED and "Renewed" in lapsed.resolution


def test_every_transition_is_audited(world):
    exception = world.approved()
    actions = list(
        AuditEvent.objects.filter(target_type="risk.accessexception", target_id=str(exception.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "access_exception.created",
        "access_exception.submitted",
        "access_exception.approved",
    ]
