"""The governance API for NHIs: token authentication, role permissions and application
scoping (owner / colleague / outsider / auditor / no token / revoked token), registration
and updates through the services, rotations with evidence, field errors never 500s, the
OpenAPI schema and the api_token command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from governance.api.models import ApiToken
from governance.api.tokens import hash_token, token_create, token_revoke
from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.nhi.models import Credential, NonHumanIdentity, OwnershipChange, RotationTask
from tests.factories import (
    ApplicationFactory,
    CredentialFactory,
    IdentityFactory,
    NonHumanIdentityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
NHIS = "/api/v1/nhis/"
CREDS = "/api/v1/credentials/"


class Api:
    def __init__(self, client, token=None):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}

    def get(self, url, **params):
        return self.client.get(url, params, **self.headers)

    def post(self, url, body):
        return self.client.post(url, body, content_type="application/json", **self.headers)

    def patch(self, url, body):
        return self.client.patch(url, body, content_type="application/json", **self.headers)


def api_for(client, user):
    _token, raw = token_create(actor=ACTOR, user=user)
    return Api(client, raw)


@pytest.fixture
def world(client):
    grace = UserFactory(username="grace", roles=["App owner"])
    lena = UserFactory(username="lena", roles=["App owner"])
    payments, search = ApplicationFactory(name="Payments"), ApplicationFactory(name="Search")
    payments.owners.add(grace)
    search.owners.add(lena)
    owner = IdentityFactory(user_name="olga@northwind.example")
    pay = NonHumanIdentityFactory(name="pay-sync", application=payments, owner=owner)
    srch = NonHumanIdentityFactory(name="search-indexer", application=search)
    pay_cred = CredentialFactory(
        nhi=pay, name="api key", issued_at=timezone.now() - timedelta(days=200)
    )
    CredentialFactory(nhi=srch, name="search key")
    return {
        "grace": grace,
        "lena": lena,
        "sam": UserFactory(username="sam", roles=["Security admin"]),
        "alex": UserFactory(username="alex", roles=["Auditor"]),
        "nobody": UserFactory(username="nobody"),
        "pay": pay,
        "search": srch,
        "pay_cred": pay_cred,
        "owner": owner,
        "client": client,
    }


def test_no_token_bad_token_and_revoked_token_are_401(world):
    client = world["client"]
    assert Api(client).get(NHIS).status_code == 401
    assert Api(client, "stw_api_" + "x" * 43).get(NHIS).status_code == 401
    assert client.get(NHIS, HTTP_AUTHORIZATION="Token").status_code == 401
    assert client.get(NHIS, HTTP_AUTHORIZATION="Token a b").status_code == 401
    token, raw = token_create(actor=ACTOR, user=world["sam"])
    assert Api(client, raw).get(NHIS).status_code == 200
    token_revoke(actor=ACTOR, token=token)
    response = Api(client, raw).get(NHIS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_list_scoping_owner_colleague_outsider_auditor(world, django_assert_max_num_queries):
    client = world["client"]
    NonHumanIdentityFactory.create_batch(10, application=world["pay"].application)
    grace = api_for(client, world["grace"])
    with django_assert_max_num_queries(12):
        page = grace.get(NHIS)
    assert page.status_code == 200
    names = {row["name"] for row in page.json()["results"]}
    assert "pay-sync" in names and "search-indexer" not in names
    assert grace.get(f"{NHIS}{world['search'].pk}/").status_code == 404
    lena = api_for(client, world["lena"])
    assert {r["name"] for r in lena.get(NHIS).json()["results"]} == {"search-indexer"}
    assert api_for(client, world["nobody"]).get(NHIS).status_code == 403
    auditor = api_for(client, world["alex"])
    assert auditor.get(NHIS).json()["count"] == 12
    assert auditor.post(NHIS, {"name": "x", "kind": "bot"}).status_code == 403
    assert auditor.patch(f"{NHIS}{world['pay'].pk}/", {"purpose": "x"}).status_code == 403


def test_retrieve_shows_flags_and_whole_record(world):
    sam = api_for(world["client"], world["sam"])
    body = sam.get(f"{NHIS}{world['pay'].pk}/").json()
    assert body["risk_flags"] == ["NHI7"]
    assert body["owner"] == "olga@northwind.example"
    assert body["application"] == "Payments"
    assert "ownership_reason" not in body
    assert sam.get(NHIS, flag="NHI7").json()["count"] == 1
    assert sam.get(NHIS, flag="NHI99").status_code == 400


def test_security_admin_registers_and_updates_nhi(world):
    sam = api_for(world["client"], world["sam"])
    response = sam.post(
        NHIS,
        {
            "name": "ci-deployer",
            "kind": "workload",
            "owner": "OLGA@northwind.example",
            "application": "Payments",
            "platform": "GitHub Actions",
            "auth_method": "static_secret",
            "consumers": ["deploy", "release"],
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["risk_flags"] == ["NHI4", "NHI9"]
    nhi = NonHumanIdentity.objects.get(name="ci-deployer")
    assert AuditEvent.objects.filter(action="nhi.created", target_id=str(nhi.pk)).exists()
    # Owner change without a reason: a field error, nothing changes.
    newcomer = IdentityFactory(user_name="nina@northwind.example")
    url = f"{NHIS}{nhi.pk}/"
    refused = sam.patch(url, {"owner": "nina@northwind.example", "purpose": "deploys"})
    assert refused.status_code == 400
    assert refused.json() == {"ownership_reason": ["Say why the owner changes (ownership_reason)."]}
    nhi.refresh_from_db()
    assert nhi.owner.user_name == "olga@northwind.example" and nhi.purpose == ""
    ok = sam.patch(
        url, {"owner": "nina@northwind.example", "ownership_reason": "Rota", "purpose": "deploys"}
    )
    assert ok.status_code == 200 and ok.json()["owner"] == "nina@northwind.example"
    assert OwnershipChange.objects.filter(nhi=nhi, to_owner=newcomer, reason="Rota").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "bot", "owner": "olga@northwind.example"}, "name"),
        ({"name": "x", "kind": "robot", "owner": "olga@northwind.example"}, "kind"),
        ({"name": "x", "kind": "bot", "owner": "nobody@northwind.example"}, "owner"),
        ({"name": "x", "kind": "bot", "owner": 12}, "owner"),
        ({"name": "x", "kind": "bot"}, "owner"),
        ({"name": "pay-sync", "kind": "bot", "owner": "olga@northwind.example"}, "name"),
        (
            {"name": "x", "kind": "bot", "owner": "olga@northwind.example", "consumers": "a"},
            "consumers",
        ),
        (
            {"name": "x", "kind": "bot", "owner": "olga@northwind.example", "application": "Nope"},
            "application",
        ),
        (
            {
                "name": "x",
                "kind": "bot",
                "owner": "olga@northwind.example",
                "backup_owner": "olga@northwind.example",
            },
            "backup_owner",
        ),
        (
            {
                "name": "x",
                "kind": "bot",
                "owner": "olga@northwind.example",
                "last_used_at": "yesterday",
            },
            "last_used_at",
        ),
    ],
    ids=[
        "no-name",
        "bad-kind",
        "unknown-owner",
        "owner-not-text",
        "no-owner",
        "duplicate",
        "consumers-not-list",
        "unknown-app",
        "backup-is-owner",
        "bad-date",
    ],
)
def test_bad_registration_is_a_field_error(world, body, field):
    sam = api_for(world["client"], world["sam"])
    before = NonHumanIdentity.objects.count()
    response = sam.post(NHIS, body)
    assert response.status_code in (400, 409), response.content
    assert field in response.json()
    assert NonHumanIdentity.objects.count() == before


def test_garbage_bodies_never_500(world):
    sam = api_for(world["client"], world["sam"])
    client = world["client"]
    for payload in ("not json", "[]", '"x"', "{", "null"):
        response = client.post(
            NHIS,
            payload,
            content_type="application/json",
            HTTP_AUTHORIZATION=sam.headers["HTTP_AUTHORIZATION"],
        )
        assert response.status_code == 400, payload
    assert sam.get(NHIS, updated_since="not-a-date").status_code == 400
    assert sam.get(f"{NHIS}abc/").status_code == 404


def test_app_owner_registers_credentials_of_own_nhis_only(world):
    grace = api_for(world["client"], world["grace"])
    assert (
        grace.post(
            NHIS,
            {
                "name": "x",
                "kind": "bot",
                "owner": "olga@northwind.example",
                "application": "Payments",
            },
        ).status_code
        == 403
    )
    ok = grace.post(
        CREDS,
        {
            "nhi": world["pay"].pk,
            "name": "deploy token",
            "type": "token",
            "environments": ["production", "staging"],
            "known_by": ["olga@northwind.example"],
            "in_vault": True,
            "location": "vault:kv/pay",
        },
    )
    assert ok.status_code == 201, ok.content
    body = ok.json()
    assert body["environments"] == ["production", "staging"]
    assert body["known_by"] == ["olga@northwind.example"]
    assert body["rotation_state"] == "ok"
    other = grace.post(CREDS, {"nhi": world["search"].pk, "name": "y", "type": "token"})
    assert other.status_code == 400 and "nhi" in other.json()
    secret = grace.post(
        CREDS, {"nhi": world["pay"].pk, "name": "z", "type": "token", "secret": "hunter2"}
    )
    assert secret.status_code == 400 and "secret" in secret.json()
    assert "hunter2" not in secret.content.decode()
    assert not Credential.objects.filter(name__in=["y", "z"]).exists()
    lena = api_for(world["client"], world["lena"])
    assert lena.get(f"{CREDS}{world['pay_cred'].pk}/").status_code == 404


def test_record_rotation_via_api(world):
    from governance.nhi import services

    services.rotation_sweep(notify=False)
    grace = api_for(world["client"], world["grace"])
    url = f"{CREDS}{world['pay_cred'].pk}/rotations/"
    refused = grace.post(url, {})
    assert refused.status_code == 400 and "evidence_reference" in refused.json()
    future = grace.post(
        url,
        {
            "evidence_reference": "CHG-1",
            "rotated_at": (timezone.now() + timedelta(days=2)).isoformat(),
        },
    )
    assert future.status_code == 400 and "rotated_at" in future.json()
    done = grace.post(url, {"evidence_reference": "CHG-1"})
    assert done.status_code == 201, done.content
    assert done.json()["rotation_state"] == "ok"
    assert RotationTask.objects.get(credential=world["pay_cred"]).state == "done"
    tasks = grace.get("/api/v1/rotation-tasks/").json()["results"]
    assert [t["evidence_reference"] for t in tasks] == ["CHG-1"]
    lena = api_for(world["client"], world["lena"])
    assert lena.post(url, {"evidence_reference": "x"}).status_code == 404
    auditor = api_for(world["client"], world["alex"])
    assert auditor.post(url, {"evidence_reference": "x"}).status_code == 403


def test_schema_renders(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Steward governance API" in text
    assert "/api/v1/nhis/" in text and "/api/v1/credentials/{id}/rotations/" in text
    assert "/scim/v2" not in text


def test_api_token_command_prints_token_last_and_stores_hash():
    user = UserFactory(username="pipeline", roles=["Security admin"])
    out = StringIO()
    call_command("api_token", "create", "pipeline", "--label", "ci", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("stw_api_") and len(raw) == len("stw_api_") + 43
    token = ApiToken.objects.get(user=user)
    assert token.token_hash == hash_token(raw) and raw not in token.token_prefix + token.label
    assert raw not in str(list(AuditEvent.objects.values_list("after", flat=True)))
    listing = StringIO()
    call_command("api_token", "list", stdout=listing)
    assert token.token_prefix in listing.getvalue() and raw not in listing.getvalue()
    call_command("api_token", "revoke", str(token.pk), stdout=StringIO())
    token.refresh_from_db()
    assert token.revoked_at is not None
    with pytest.raises(CommandError):
        call_command("api_token", "revoke", str(token.pk), stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("api_token", "create", "ghost", stdout=StringIO())


def test_api_token_admin_shows_token_once_and_revokes(admin_client):
    from django.contrib.admin import helpers
    from django.urls import reverse

    user = UserFactory(username="pipeline")
    response = admin_client.post(
        reverse("admin:api_apitoken_add"), {"user": user.pk, "label": "ci"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=user)
    shown = [str(m) for m in response.context["messages"]]
    assert any("stw_api_" in m for m in shown)
    listing = reverse("admin:api_apitoken_changelist")
    confirm = admin_client.post(
        listing, {"action": "revoke_selected", helpers.ACTION_CHECKBOX_NAME: [token.pk]}
    )
    assert confirm.status_code == 200 and b"Yes, revoke" in confirm.content
    admin_client.post(
        listing,
        {"action": "revoke_selected", helpers.ACTION_CHECKBOX_NAME: [token.pk], "confirm": "yes"},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
