"""Every admin page loads with real data, and roles narrow what people see."""

import pytest
from django.contrib import admin
from django.db import transaction
from django.urls import reverse

from governance.access.models import Application
from governance.portal.demo import seed_demo
from governance.portal.models import User

pytestmark = pytest.mark.django_db

MODELS = [m for m in admin.site._registry]


@pytest.fixture(scope="module")
def _demo_data(django_db_setup, django_db_blocker):
    """Seed once for the module inside a transaction that is rolled back at the end; each
    test runs in a savepoint within it, as Django's TestCase does."""
    with django_db_blocker.unblock(), transaction.atomic():
        seed_demo()
        yield
        transaction.set_rollback(True)


@pytest.fixture
def seeded(_demo_data, db):
    return None


def test_every_changelist_and_change_page_loads(
    seeded, admin_client, django_assert_max_num_queries
):
    """Superuser: every registered model's list, a search, and an object's page answer 200,
    with a bounded number of queries per list (no N+1)."""
    failures = []
    for model in MODELS:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        with django_assert_max_num_queries(30):
            response = admin_client.get(url)
        if response.status_code != 200:
            failures.append((url, response.status_code))
        if admin_client.get(url, {"q": "northwind"}).status_code != 200:
            failures.append((url + "?q", "search"))
        obj = model._default_manager.order_by("pk").first()
        if obj is None:
            failures.append((opts.label, "seed_demo left it empty"))
            continue
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        if admin_client.get(change).status_code != 200:
            failures.append((change, "change page"))
    assert failures == []


def test_admin_index_lists_sections(seeded, admin_client):
    page = admin_client.get(reverse("admin:index"))
    assert page.status_code == 200
    for section in (
        b"Directory",
        b"Applications and access",
        b"Non-human identities",
        b"Audit log",
    ):
        assert section in page.content


def _login(client, username):
    client.force_login(User.objects.get(username=username))
    return client


def test_app_owner_sees_only_own_applications(seeded, client):
    """Owner (Grace) sees her apps; a colleague owner (Lena) sees hers; an outsider is refused."""
    grace = _login(client, "grace.liu")
    page = grace.get(reverse("admin:access_application_changelist"))
    assert page.status_code == 200
    shown = {a.name for a in page.context["cl"].result_list}
    assert shown == {"Ledgerly", "VaultFin"}
    github = Application.objects.get(name="GitHub Enterprise")
    assert grace.get(reverse("admin:access_application_change", args=[github.pk])).status_code in (
        302,
        404,
    )
    accounts = grace.get(reverse("admin:access_account_changelist")).context["cl"].queryset
    assert set(accounts.values_list("application__name", flat=True)) <= {"Ledgerly", "VaultFin"}


def test_colleague_app_owner_cannot_see_other_apps(seeded, client):
    lena = _login(client, "lena.fischer")
    shown = {
        a.name
        for a in lena.get(reverse("admin:access_application_changelist")).context["cl"].result_list
    }
    assert "VaultFin" not in shown and "GitHub Enterprise" in shown


def test_outsider_without_role_is_refused(seeded, client):
    outsider = User.objects.create_user("outsider", password="pw", is_staff=True)
    client.force_login(outsider)
    assert client.get(reverse("admin:access_application_changelist")).status_code == 403
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 403


def test_auditor_reads_but_cannot_change(seeded, client):
    auditor = _login(client, "alex.morgan")
    app = Application.objects.get(name="VaultFin")
    assert auditor.get(reverse("admin:access_application_changelist")).status_code == 200
    assert auditor.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    response = auditor.post(
        reverse("admin:access_application_change", args=[app.pk]), {"name": "Hacked"}
    )
    assert response.status_code == 403
    app.refresh_from_db()
    assert app.name == "VaultFin"


def test_security_admin_sees_everything(seeded, client):
    sam = _login(client, "sam.patel")
    cl = sam.get(reverse("admin:access_application_changelist")).context["cl"]
    assert cl.result_count == Application.objects.count()


def test_portal_user_edit_and_roles_are_audited(admin_client):
    from django.contrib.auth.models import Group

    from governance.audit.models import AuditEvent

    user = User.objects.create_user("hannah", password="pw", is_staff=True)
    reviewer = Group.objects.get(name="Reviewer")
    response = admin_client.post(
        reverse("admin:portal_user_change", args=[user.pk]),
        {
            "username": "hannah",
            "email": "hannah@northwind.example",
            "is_active": "on",
            "is_staff": "on",
            "groups": [reviewer.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    updated = AuditEvent.objects.get(action="portal_user.updated")
    assert updated.after["email"] == "hannah@northwind.example"
    roles = AuditEvent.objects.get(action="portal_user.roles_changed")
    assert roles.before == {"roles": []} and roles.after == {"roles": ["Reviewer"]}


def test_home_shows_governance_signals(seeded, admin_client):
    """The admin home leads with orphan, stale, excess and unowned-NHI counts linking to lists."""
    page = admin_client.get(reverse("admin:index"))
    signals = {s.label: s for s in page.context["overview"]["signals"]}
    assert signals["Orphan accounts"].count == 1
    assert signals["NHIs without an active owner"].count == 4
    assert b"Governance at a glance" in page.content
    listing = admin_client.get(signals["Orphan accounts"].url)
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1


def test_home_is_scoped_for_app_owner(seeded, client):
    grace = _login(client, "grace.liu")
    overview = grace.get(reverse("admin:index")).context["overview"]
    assert overview["scoped"] is True
    assert overview["applications"] == 2


def test_home_counts_open_leavers_and_work(seeded, admin_client):
    """The demo's three leavers still have access to remove: they show on the home page, and
    the card links to the open-leavers list."""
    signals = {
        s.label: s for s in admin_client.get(reverse("admin:index")).context["overview"]["signals"]
    }
    assert signals["Open leavers"].count == 3
    assert signals["Open provisioning work"].count > 0
    assert admin_client.get(signals["Open leavers"].url).status_code == 200
    assert admin_client.get(signals["Open provisioning work"].url).status_code == 200


RISK_AND_DRIFT_CARDS = [
    "Open drift findings",
    "Exceptions awaiting approval",
    "Exceptions expiring within 30 days",
    "Compensating controls overdue",
]


@pytest.mark.parametrize("label", RISK_AND_DRIFT_CARDS)
def test_home_risk_and_drift_cards_match_their_lists(seeded, admin_client, label):
    """Each exception, control and drift card counts exactly what its link lists."""
    signals = {
        s.label: s for s in admin_client.get(reverse("admin:index")).context["overview"]["signals"]
    }
    card = signals[label]
    listing = admin_client.get(card.url)
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == card.count


def test_home_drift_chart_counts_open_findings_by_kind(seeded, admin_client):
    """The drift chart has one bar per kind with open findings, largest first, each linking to
    its filtered list; the bars add up to the open-findings card."""
    from governance.reconciliation.models import Finding

    overview = admin_client.get(reverse("admin:index")).context["overview"]
    bars = overview["drift"]
    expected = {}
    for kind in Finding.objects.filter(status="open").values_list("kind", flat=True):
        expected[kind] = expected.get(kind, 0) + 1
    assert {b["kind"]: b["count"] for b in bars} == expected
    assert [b["count"] for b in bars] == sorted((b["count"] for b in bars), reverse=True)
    signals = {s.label: s for s in overview["signals"]}
    assert sum(expected.values()) == signals["Open drift findings"].count
    for bar in bars:
        page = admin_client.get(
            f"{overview['findings_url']}?status__exact=open&kind__exact={bar['kind']}"
        )
        assert page.context["cl"].result_count == bar["count"]


def test_home_drift_is_scoped_for_app_owner(seeded, client):
    """An app owner's drift chart counts only findings of applications they own."""
    from governance.reconciliation.models import Finding

    grace = _login(client, "grace.liu")
    overview = grace.get(reverse("admin:index")).context["overview"]
    user = User.objects.get(username="grace.liu")
    mine = Finding.objects.filter(status="open", application__owners=user).count()
    assert sum(b["count"] for b in overview["drift"]) == mine


def test_anonymous_visitor_gets_the_login_page_and_redirects_never_errors(seeded, client):
    """Signed-out visitors see the sign-in page, and every admin list redirects them to it:
    no admin class may assume a signed-in portal user."""
    assert client.get(reverse("admin:login")).status_code == 200
    assert client.get(reverse("admin:index")).status_code == 302
    for model in MODELS:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login"))
