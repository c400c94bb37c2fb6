"""NHI admin: flags column and filter, scoping for application owners, owner assignment
(one or in bulk) through a confirmation page, "My hand-offs" with accept and decline, and
rotations recorded with evidence."""

from datetime import timedelta

import pytest
from django.contrib.admin import helpers
from django.urls import reverse
from django.utils import timezone

from governance.core.actor import Actor
from governance.core.errors import PermissionDenied
from governance.nhi import services
from governance.nhi.models import (
    Credential,
    Handoff,
    NonHumanIdentity,
    OwnershipChange,
    RotationTask,
)
from tests.factories import (
    ApplicationFactory,
    CredentialFactory,
    IdentityFactory,
    NonHumanIdentityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
LIST = reverse("admin:nhi_nonhumanidentity_changelist")
ASSIGN = reverse("admin:nhi_nonhumanidentity_assign_owner")
SELECTED = helpers.ACTION_CHECKBOX_NAME


def change_url(obj):
    return reverse(f"admin:nhi_{obj._meta.model_name}_change", args=[obj.pk])


@pytest.fixture
def estate():
    """Grace owns Payments, Lena owns Search; each application has NHIs."""
    grace = UserFactory(username="grace", roles=["App owner", "Reviewer"])
    lena = UserFactory(username="lena", roles=["App owner", "Reviewer"])
    payments, search = ApplicationFactory(name="Payments"), ApplicationFactory(name="Search")
    payments.owners.add(grace)
    search.owners.add(lena)
    pay = NonHumanIdentityFactory(name="pay-sync", application=payments, consumers=["a", "b"])
    srch = NonHumanIdentityFactory(name="search-indexer", application=search)
    CredentialFactory(nhi=pay, issued_at=timezone.now() - timedelta(days=400))
    CredentialFactory(nhi=srch)
    return {"grace": grace, "lena": lena, "pay": pay, "search": srch}


def test_list_shows_flags_and_filters_by_flag(admin_client, estate, django_assert_max_num_queries):
    NonHumanIdentityFactory.create_batch(15, consumers=["x", "y"])
    with django_assert_max_num_queries(20):
        page = admin_client.get(LIST)
    assert page.status_code == 200
    assert b"NHI9" in page.content and b"NHI7" in page.content
    shown = {n.name for n in admin_client.get(LIST, {"flag": "NHI7"}).context["cl"].result_list}
    assert shown == {"pay-sync"}
    assert admin_client.get(LIST, {"flag": "any"}).context["cl"].result_count == 16
    assert admin_client.get(LIST, {"flag": "bogus"}).status_code == 200
    detail = admin_client.get(change_url(estate["pay"]))
    assert b"Ownership history" in detail.content and b"Long-lived secret" in detail.content


def test_app_owner_sees_only_own_application_rows(client, estate):
    """Owner sees hers; a colleague owner sees his; an outsider is refused; direct URLs too."""
    client.force_login(estate["grace"])
    names = {n.name for n in client.get(LIST).context["cl"].result_list}
    assert names == {"pay-sync"}
    assert client.get(change_url(estate["search"])).status_code in (302, 404)
    creds = client.get(reverse("admin:nhi_credential_changelist")).context["cl"].result_list
    assert {c.nhi.name for c in creds} == {"pay-sync"}
    client.force_login(estate["lena"])
    assert {n.name for n in client.get(LIST).context["cl"].result_list} == {"search-indexer"}
    client.force_login(UserFactory(username="outsider"))
    assert client.get(LIST).status_code == 403
    assert client.get(change_url(estate["pay"])).status_code == 403
    assert client.get(ASSIGN + f"?ids={estate['pay'].pk}").status_code == 403


def test_assign_owner_with_reason_through_confirmation(admin_client, estate):
    pay = estate["pay"]
    newcomer = IdentityFactory()
    confirm = admin_client.post(LIST, {"action": "assign_owner", SELECTED: [pay.pk]})
    assert confirm.status_code == 302 and confirm.url == ASSIGN + f"?ids={pay.pk}"
    page = admin_client.get(confirm.url)
    assert page.status_code == 200 and b"Assign or transfer owner" in page.content
    # No reason: refused, nothing changes.
    refused = admin_client.post(ASSIGN, {SELECTED: [pay.pk], "post": "yes", "owner": newcomer.pk})
    assert refused.status_code == 200 and refused.context["form"].errors["reason"]
    pay.refresh_from_db()
    assert pay.owner != newcomer
    done = admin_client.post(
        ASSIGN, {SELECTED: [pay.pk], "post": "yes", "owner": newcomer.pk, "reason": "Handover"}
    )
    assert done.status_code == 302
    pay.refresh_from_db()
    assert pay.owner == newcomer
    change = OwnershipChange.objects.filter(nhi=pay).first()
    assert (change.kind, change.to_owner, change.reason) == ("assigned", newcomer, "Handover")


def test_bulk_assign_is_all_or_nothing(admin_client, estate):
    pay, search = estate["pay"], estate["search"]
    target = IdentityFactory()
    search.backup_owner = target  # the new owner cannot also be its backup
    search.save()
    response = admin_client.post(
        ASSIGN,
        {SELECTED: [pay.pk, search.pk], "post": "yes", "owner": target.pk, "reason": "Team move"},
    )
    assert response.status_code == 200
    assert b"Nothing changed" in response.content
    pay.refresh_from_db()
    assert pay.owner != target
    departed = IdentityFactory(active=False)
    response = admin_client.post(
        ASSIGN, {SELECTED: [pay.pk], "post": "yes", "owner": departed.pk, "reason": "x"}
    )
    assert response.status_code == 200 and response.context["form"].errors["owner"]
    search.backup_owner = None
    search.save()
    admin_client.post(
        ASSIGN,
        {SELECTED: [pay.pk, search.pk], "post": "yes", "owner": target.pk, "reason": "Team move"},
    )
    assert set(NonHumanIdentity.objects.filter(owner=target)) == {pay, search}
    assert OwnershipChange.objects.filter(kind="bulk").count() == 2


def test_add_nhi_in_admin_goes_through_the_service(admin_client):
    owner = IdentityFactory()
    response = admin_client.post(
        reverse("admin:nhi_nonhumanidentity_add"),
        {
            "name": "new-bot",
            "kind": "bot",
            "status": "active",
            "owner": owner.pk,
            "environment": "production",
            "consumers": "chat\nalerts",
            "ownership_changes-TOTAL_FORMS": 0,
            "ownership_changes-INITIAL_FORMS": 0,
            "handoffs-TOTAL_FORMS": 0,
            "handoffs-INITIAL_FORMS": 0,
            "credentials-TOTAL_FORMS": 0,
            "credentials-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    nhi = NonHumanIdentity.objects.get(name="new-bot")
    assert nhi.consumers == ["chat", "alerts"]
    assert OwnershipChange.objects.get(nhi=nhi).kind == "registered"


def _handoff_for(person_user):
    leaver = IdentityFactory()
    nhi = NonHumanIdentityFactory(owner=leaver, backup_owner=person_user.identity)
    leaver.active = False
    leaver.save()
    services.nhi_succession_for_leaver(identity=leaver)
    return Handoff.objects.get(nhi=nhi)


def test_my_handoffs_accept_for_a_reviewer_without_nhi_role(client):
    """The proposed person sees their hand-off even with only the Reviewer role, and accepts
    it through a confirmation; a colleague sees nothing of it."""
    hannah = UserFactory(username="hannah", identity=IdentityFactory(), roles=["Reviewer"])
    colleague = UserFactory(username="colleague", identity=IdentityFactory(), roles=["Reviewer"])
    handoff = _handoff_for(hannah)
    mine = reverse("admin:nhi_handoff_changelist")
    client.force_login(colleague)
    assert client.get(mine).status_code == 403
    other = _handoff_for(colleague)
    listed = {h.pk for h in client.get(mine).context["cl"].result_list}
    assert listed == {other.pk}
    # The colleague cannot accept Hannah's even by posting her id.
    client.post(mine, {"action": "accept", SELECTED: [handoff.pk], "post": "yes"})
    handoff.refresh_from_db()
    assert handoff.state == "proposed"

    client.force_login(hannah)
    page = client.get(mine, {"mine": "yes"})
    assert [h.pk for h in page.context["cl"].result_list] == [handoff.pk]
    confirm = client.post(mine, {"action": "accept", SELECTED: [handoff.pk]})
    assert confirm.status_code == 200 and b"Yes, accept" in confirm.content
    client.post(mine, {"action": "accept", SELECTED: [handoff.pk], "post": "yes"})
    handoff.refresh_from_db()
    assert handoff.state == "accepted"
    assert handoff.nhi.owner == hannah.identity and handoff.nhi.status == "active"


def test_decline_needs_a_reason_and_moves_on(client):
    hannah = UserFactory(username="hannah", identity=IdentityFactory(), roles=["Reviewer"])
    handoff = _handoff_for(hannah)
    mine = reverse("admin:nhi_handoff_changelist")
    client.force_login(hannah)
    page = client.post(mine, {"action": "decline", SELECTED: [handoff.pk], "post": "yes"})
    assert page.status_code == 200 and page.context["form"].errors["reason"]
    handoff.refresh_from_db()
    assert handoff.state == "proposed"
    client.post(
        mine,
        {"action": "decline", SELECTED: [handoff.pk], "post": "yes", "reason": "Not mine"},
    )
    handoff.refresh_from_db()
    assert handoff.state == "declined" and handoff.decline_reason == "Not mine"
    assert Handoff.objects.get(nhi=handoff.nhi, state="proposed").route == "security"


def test_record_rotation_action(client, estate):
    client.force_login(estate["grace"])
    credential = estate["pay"].credentials.get()
    services.rotation_sweep(notify=False)
    url = reverse("admin:nhi_credential_changelist")
    form = client.post(url, {"action": "record_rotation", SELECTED: [credential.pk]})
    assert form.status_code == 200 and b"Record rotation" in form.content
    missing = client.post(
        url, {"action": "record_rotation", SELECTED: [credential.pk], "post": "yes"}
    )
    assert missing.status_code == 200 and missing.context["form"].non_field_errors()
    client.post(
        url,
        {
            "action": "record_rotation",
            SELECTED: [credential.pk],
            "post": "yes",
            "evidence_reference": "CHG-9",
        },
    )
    task = RotationTask.objects.get(credential=credential)
    assert task.state == "done" and task.evidence_reference == "CHG-9"
    # Lena cannot rotate Grace's credential, even by id.
    client.force_login(estate["lena"])
    other = estate["search"].credentials.get()
    before = other.last_rotated_at
    client.post(
        url,
        {
            "action": "record_rotation",
            SELECTED: [credential.pk],
            "post": "yes",
            "evidence_reference": "x",
        },
    )
    other.refresh_from_db()
    assert other.last_rotated_at == before
    assert RotationTask.objects.get(credential=credential).evidence_reference == "CHG-9"


def test_edit_in_admin_is_audited_and_cannot_change_owner(admin_client, estate):
    from governance.audit.models import AuditEvent

    pay = estate["pay"]
    intruder = IdentityFactory()
    data = {
        "name": pay.name,
        "kind": pay.kind,
        "owner": intruder.pk,  # read-only on this page: ignored
        "environment": "staging",
        "purpose": "Moves payments",
        "consumers": "billing",
    }
    ids = {
        "handoffs": [],
        "ownership_changes": list(pay.ownership_changes.values_list("pk", flat=True)),
        "credentials": list(pay.credentials.values_list("pk", flat=True)),
    }
    for prefix, pks in ids.items():
        data[f"{prefix}-TOTAL_FORMS"] = len(pks)
        data[f"{prefix}-INITIAL_FORMS"] = len(pks)
        for i, pk in enumerate(pks):
            data[f"{prefix}-{i}-id"] = pk
            data[f"{prefix}-{i}-nhi"] = pay.pk
    response = admin_client.post(change_url(pay), data)
    assert response.status_code == 302
    pay.refresh_from_db()
    assert (pay.purpose, pay.environment, pay.consumers) == (
        "Moves payments",
        "staging",
        ["billing"],
    )
    assert pay.owner != intruder
    event = AuditEvent.objects.filter(action="nhi.updated", target_id=str(pay.pk)).get()
    assert event.after["purpose"] == "Moves payments"


def test_owner_attests_and_auditor_cannot(client, estate):
    pay = estate["pay"]
    owner_user = UserFactory(username="olga", identity=pay.owner, roles=["Reviewer"])
    auditor = UserFactory(username="alex", roles=["Auditor"])
    client.force_login(auditor)
    page = client.get(LIST)
    assert page.status_code == 200 and page.context["action_form"] is None  # no actions
    client.post(LIST, {"action": "attest", SELECTED: [pay.pk], "post": "yes"})
    pay.refresh_from_db()
    assert pay.attested_at is None
    # The service decides who may attest: the owner, not an application owner.
    services.nhi_attest(actor=Actor.for_user(owner_user), nhi=pay)
    pay.refresh_from_db()
    assert pay.attested_by == owner_user and pay.attested_at is not None
    with pytest.raises(PermissionDenied):
        services.nhi_attest(actor=Actor.for_user(estate["grace"]), nhi=pay)


@pytest.mark.parametrize(
    "model", ["credential", "rotationtask", "handoff", "ownershipchange", "credentialpolicy"]
)
def test_other_lists_bounded_queries_and_outsider_refused(
    model, admin_client, client, estate, django_assert_max_num_queries
):
    for _ in range(10):
        leaver = IdentityFactory()
        nhi = NonHumanIdentityFactory(owner=leaver, application=estate["pay"].application)
        CredentialFactory(nhi=nhi, known_by=[leaver], issued_at=timezone.now() - timedelta(400))
        leaver.active = False
        leaver.save()
        services.nhi_succession_for_leaver(identity=leaver)
    url = reverse(f"admin:nhi_{model}_changelist")
    with django_assert_max_num_queries(20):
        assert admin_client.get(url).status_code == 200
    client.force_login(UserFactory(username="outsider"))
    assert client.get(url).status_code == 403
    if model != "credentialpolicy":
        row = {
            "credential": Credential.objects.first,
            "rotationtask": RotationTask.objects.first,
            "handoff": Handoff.objects.first,
            "ownershipchange": OwnershipChange.objects.first,
        }[model]()
        assert client.get(change_url(row)).status_code == 403
        client.force_login(estate["lena"])  # a colleague owning another application
        assert client.get(change_url(row)).status_code in (302, 403, 404)
        client.force_login(estate["grace"])  # the owner of the application
        assert client.get(change_url(row)).status_code == 200
