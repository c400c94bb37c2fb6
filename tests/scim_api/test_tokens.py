"""SCIM bearer tokens: issued once, stored hashed, revocable, managed from the shell and admin."""

import hashlib
import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from governance.audit.models import AuditEvent
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition
from governance.identities.models import IdentitySource
from scim_api import admin as scim_admin
from scim_api.auth import ScimBearerAuthentication, ScimPrincipal, actor_for
from scim_api.models import ScimToken
from scim_api.tokens import TOKEN_PATTERN, source_for_token, token_create, token_revoke
from tests.factories import IdentitySourceFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"stw_scim_[A-Za-z0-9_-]{43}")
CHANGELIST = "admin:scim_api_scimtoken_changelist"


@pytest.fixture
def issued(source, system_actor):
    """A live token of ``source`` and its plaintext."""
    return token_create(actor=system_actor, source=source, label="Entra production")


def _row_text(token):
    return json.dumps(list(ScimToken.objects.filter(pk=token.pk).values()), default=str)


def _event_text(event):
    fields = ("actor_label", "target_id", "target_repr", "before", "after")
    return json.dumps({f: getattr(event, f) for f in fields}, default=str)


# --- services -------------------------------------------------------------------------------


def test_create_stores_only_hash_and_prefix(source, system_actor):
    """The plaintext is returned once; the row keeps its SHA-256 and a short prefix only."""
    token, raw = token_create(actor=system_actor, source=source, label=" Entra production ")
    assert TOKEN_PATTERN.fullmatch(raw)
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.token_prefix == raw[:17]
    assert token.label == "Entra production"
    assert token.created_by is None
    assert raw not in _row_text(token)
    (event,) = AuditEvent.objects.filter(action="scim_token.created")
    assert event.actor_label == "system:tests"
    assert event.target_type == "scim_api.scimtoken"
    assert event.target_id == str(token.pk)
    assert event.after == {
        "source": "Test Entra",
        "source_id": source.pk,
        "label": "Entra production",
        "prefix": token.token_prefix,
    }
    assert raw not in _event_text(event)
    assert token.token_hash not in _event_text(event)


def test_create_records_the_portal_user(source):
    """A token issued by a person names them, in the row and in the audit event."""
    alice = UserFactory(username="alice")
    token, _ = token_create(actor=Actor.for_user(alice), source=source)
    assert token.created_by == alice
    assert AuditEvent.objects.get(action="scim_token.created").actor_user == alice


def test_each_token_is_unique(source, system_actor):
    """Two tokens of one source share neither plaintext nor prefix."""
    first, raw1 = token_create(actor=system_actor, source=source)
    second, raw2 = token_create(actor=system_actor, source=source)
    assert raw1 != raw2
    assert first.token_prefix != second.token_prefix


def test_create_refuses_disabled_source(system_actor):
    """A disabled source gets no token, and nothing is recorded."""
    disabled = IdentitySourceFactory(name="Old Okta", enabled=False)
    with pytest.raises(DomainError, match="disabled"):
        token_create(actor=system_actor, source=disabled)
    assert not ScimToken.objects.exists()
    assert not AuditEvent.objects.filter(action="scim_token.created").exists()


def test_create_refuses_overlong_label(source, system_actor):
    """An invalid label is a DomainError naming the field; nothing is written."""
    with pytest.raises(DomainError) as info:
        token_create(actor=system_actor, source=source, label="x" * 101)
    assert info.value.field == "label"
    assert not ScimToken.objects.exists()


def test_revoke_records_once_and_refuses_twice(issued):
    """Revocation is audited; revoking again is an invalid transition that changes nothing."""
    token, _ = issued
    bob = UserFactory(username="bob")
    revoked = token_revoke(actor=Actor.for_user(bob), token=token)
    assert revoked.revoked_at is not None
    assert revoked.revoked_by == bob
    with pytest.raises(InvalidTransition):
        token_revoke(actor=Actor.for_user(bob), token=token)
    (event,) = AuditEvent.objects.filter(action="scim_token.revoked")
    assert event.actor_label == "user:bob"
    assert event.target_id == str(token.pk)
    assert event.before == {"revoked_at": None}


# --- resolving a presented token ------------------------------------------------------------


def test_good_token_resolves_to_its_source(issued, source):
    """A live token resolves to its row, with the source it speaks for."""
    token, raw = issued
    found = source_for_token(raw)
    assert found == token
    assert found.source == source


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda raw: raw[:-1] + ("A" if raw[-1] != "A" else "B"), id="last-char"),
        pytest.param(lambda raw: raw + "x", id="too-long"),
        pytest.param(lambda raw: raw[:-1], id="too-short"),
        pytest.param(lambda raw: raw.replace("stw_scim_", "stw_xxxx_"), id="wrong-marker"),
        pytest.param(lambda raw: " " + raw, id="leading-space"),
        pytest.param(lambda raw: "", id="empty"),
        pytest.param(lambda raw: "stw_scim_" + "A" * 43, id="well-formed-unknown"),
        pytest.param(lambda raw: hashlib.sha256(raw.encode()).hexdigest(), id="the-hash"),
    ],
)
def test_bad_tokens_resolve_to_nothing(issued, mangle):
    """Anything but the exact token resolves to nothing."""
    _, raw = issued
    assert source_for_token(mangle(raw)) is None


def test_malformed_token_costs_no_query(django_assert_num_queries):
    """Garbage is refused before the database is asked."""
    with django_assert_num_queries(0):
        assert source_for_token("not a token" * 1000) is None
        assert source_for_token(None) is None


def test_revoked_token_resolves_to_nothing(issued, system_actor):
    """Revocation takes effect at once."""
    token, raw = issued
    token_revoke(actor=system_actor, token=token)
    assert source_for_token(raw) is None


def test_token_of_disabled_source_resolves_to_nothing(issued, source):
    """Disabling a source silences all its tokens without revoking them."""
    _, raw = issued
    IdentitySource.objects.filter(pk=source.pk).update(enabled=False)
    assert source_for_token(raw) is None


def test_use_is_not_audited(issued):
    """Authenticating is not a change: no audit event."""
    _, raw = issued
    before = AuditEvent.objects.count()
    source_for_token(raw)
    assert AuditEvent.objects.count() == before


def test_last_used_at_written_at_most_once_a_minute(issued, django_assert_num_queries):
    """First use writes last_used_at; uses within the minute only read; later uses write."""
    token, raw = issued
    assert token.last_used_at is None
    with django_assert_num_queries(2):  # select + conditional update
        first = source_for_token(raw).last_used_at
    assert first is not None
    token.refresh_from_db()
    assert token.last_used_at == first

    with django_assert_num_queries(1):  # select only
        source_for_token(raw)
    token.refresh_from_db()
    assert token.last_used_at == first

    earlier = timezone.now() - timedelta(minutes=2)
    ScimToken.objects.filter(pk=token.pk).update(last_used_at=earlier)
    with django_assert_num_queries(2):
        source_for_token(raw)
    token.refresh_from_db()
    assert token.last_used_at > earlier


def test_last_used_update_is_conditional(issued):
    """A request that read a stale last_used_at does not overwrite a newer one written by a
    concurrent request between its read and its update (the race is reproduced on purpose)."""
    token, raw = issued
    ScimToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(hours=1))
    fresh = timezone.now()
    raced = []

    def concurrent_request_wins(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "last_used_at" in sql and not raced:
            raced.append(sql)
            ScimToken.objects.filter(pk=token.pk).update(last_used_at=fresh)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(concurrent_request_wins):
        found = source_for_token(raw)
    assert raced
    assert found is not None
    token.refresh_from_db()
    assert token.last_used_at == fresh


# --- management command ---------------------------------------------------------------------


def _run(*args):
    out, err = StringIO(), StringIO()
    call_command("scim_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_create_prints_token_alone_on_last_line():
    """The last line is exactly the token (a stable interface); it authenticates."""
    out, _ = _run("create", "--source", "Okta EU", "--kind", "okta", "--label", "prod")
    last = out.rstrip("\n").splitlines()[-1]
    assert TOKEN_PATTERN.fullmatch(last)
    assert out.count(last) == 1
    token = source_for_token(last)
    assert token is not None
    assert token.source.name == "Okta EU"
    assert token.source.kind == "okta"
    assert token.label == "prod"
    actions = list(
        AuditEvent.objects.order_by("id").values_list("action", "actor_label", flat=False)
    )
    assert actions == [
        ("identity_source.created", "system:scim_token command"),
        ("scim_token.created", "system:scim_token command"),
    ]


def test_command_create_reuses_existing_source(source):
    """An existing source gets the token; a --kind that differs is reported, not applied."""
    out, err = _run("create", "--source", "Test Entra", "--kind", "okta")
    assert IdentitySource.objects.count() == 1
    assert source_for_token(out.splitlines()[-1]).source == source
    assert "--kind was ignored" in err


def test_command_create_defaults_to_generic_kind():
    """A source created without --kind is a generic SCIM client."""
    out, _ = _run("create", "--source", "Homegrown IdP")
    assert IdentitySource.objects.get(name="Homegrown IdP").kind == "generic"
    assert source_for_token(out.splitlines()[-1]) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--source", "X", "--kind", "ldap"), "invalid choice", id="unknown-kind"),
        pytest.param(("--source", "  "), "must name an identity source", id="blank-source"),
        pytest.param(("--source", "Old Okta"), "disabled", id="disabled-source"),
        pytest.param(("--source", "y" * 101), "at most 100", id="overlong-name"),
    ],
)
def test_command_create_bad_input(args, message):
    """Bad input is a CommandError with a clear message and creates nothing."""
    IdentitySourceFactory(name="Old Okta", enabled=False)
    with pytest.raises(CommandError, match=message):
        _run("create", *args)
    assert IdentitySource.objects.count() == 1
    assert not ScimToken.objects.exists()


def test_command_list_never_shows_tokens(issued, system_actor):
    """The listing shows prefixes, labels and states, never a token or its hash."""
    token, raw = issued
    other_source = IdentitySourceFactory(name="Okta")
    other, other_raw = token_create(actor=system_actor, source=other_source)
    token_revoke(actor=system_actor, token=other)
    out, _ = _run("list")
    assert token.token_prefix in out
    assert other.token_prefix in out
    assert "Entra production" in out
    assert "revoked" in out
    assert raw not in out and other_raw not in out
    assert token.token_hash not in out

    out, _ = _run("list", "--source", "Okta")
    assert other.token_prefix in out
    assert token.token_prefix not in out


def test_command_list_unknown_source():
    """Listing an unknown source is an error, not an empty list."""
    with pytest.raises(CommandError, match='No identity source named "Nope"'):
        _run("list", "--source", "Nope")


def test_command_list_empty():
    """No tokens: one plain line says so."""
    out, _ = _run("list")
    assert out.strip() == "No SCIM tokens."


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param(lambda t, raw: t.token_prefix, id="full-prefix"),
        pytest.param(lambda t, raw: t.token_prefix[len("stw_scim_") :], id="random-part"),
        pytest.param(lambda t, raw: t.token_prefix[:13], id="short-prefix"),
        pytest.param(lambda t, raw: str(t.pk), id="id"),
        pytest.param(lambda t, raw: raw, id="whole-token"),
    ],
)
def test_command_revoke(issued, ref):
    """A token is revoked by its prefix (with or without the marker), id or plaintext."""
    token, raw = issued
    out, _ = _run("revoke", ref(token, raw))
    assert f"Revoked SCIM token {token.token_prefix}" in out
    assert source_for_token(raw) is None
    event = AuditEvent.objects.get(action="scim_token.revoked")
    assert event.actor_label == "system:scim_token command"


def test_command_revoke_ambiguous_prefix(source, system_actor):
    """Two tokens sharing the prefix given: refuse, name both, revoke neither."""
    first, _ = token_create(actor=system_actor, source=source)
    second, _ = token_create(actor=system_actor, source=source)
    ScimToken.objects.filter(pk=first.pk).update(token_prefix="stw_scim_abcd1111")
    ScimToken.objects.filter(pk=second.pk).update(token_prefix="stw_scim_abcd2222")
    with pytest.raises(CommandError, match="ambiguous") as info:
        _run("revoke", "abcd")
    assert "stw_scim_abcd1111" in str(info.value) and "stw_scim_abcd2222" in str(info.value)
    assert not ScimToken.objects.filter(revoked_at__isnull=False).exists()
    _run("revoke", "stw_scim_abcd2222")
    assert ScimToken.objects.get(pk=second.pk).revoked_at is not None


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        pytest.param("stw_scim_zzzzzzzz", "No SCIM token has", id="unknown-prefix"),
        pytest.param("999999", "No SCIM token has", id="unknown-id"),
        pytest.param("ab", "neither a token id nor a token prefix", id="too-short"),
        pytest.param("stw_scim_" + "Q" * 43, "No SCIM token matches", id="unknown-token"),
    ],
)
def test_command_revoke_bad_reference(issued, ref, message):
    """An unknown or too short reference is a CommandError and revokes nothing."""
    with pytest.raises(CommandError, match=message):
        _run("revoke", ref)
    assert not ScimToken.objects.filter(revoked_at__isnull=False).exists()


def test_command_revoke_twice(issued, system_actor):
    """Revoking a revoked token is an error, not a silent success."""
    token, _ = issued
    token_revoke(actor=system_actor, token=token)
    with pytest.raises(CommandError, match="already revoked"):
        _run("revoke", token.token_prefix)


# --- admin ----------------------------------------------------------------------------------


@pytest.fixture
def security_admin(client):
    client.force_login(UserFactory(username="sam", roles=["Security admin"]))
    return client


def test_admin_add_shows_token_once(security_admin, source):
    """The add form asks for source and label; the plaintext appears in one message only."""
    add_url = reverse("admin:scim_api_scimtoken_add")
    form_page = security_admin.get(add_url)
    assert form_page.status_code == 200
    assert set(form_page.context["adminform"].form.fields) == {"source", "label"}

    response = security_admin.post(add_url, {"source": source.pk, "label": "Entra"}, follow=True)
    assert response.status_code == 200
    token = ScimToken.objects.get()
    shown = [str(m) for m in response.context["messages"] if TOKEN_RE.search(str(m))]
    assert len(shown) == 1
    (raw,) = TOKEN_RE.findall(shown[0])
    assert "will not be shown again" in shown[0]
    assert source_for_token(raw) == token
    assert token.created_by.username == "sam"
    assert AuditEvent.objects.get(action="scim_token.created").actor_label == "user:sam"

    again = security_admin.get(reverse(CHANGELIST))
    assert raw not in again.content.decode()
    assert token.token_prefix in again.content.decode()
    detail = security_admin.get(reverse("admin:scim_api_scimtoken_change", args=[token.pk]))
    assert detail.status_code == 200
    body = detail.content.decode()
    assert raw not in body and token.token_hash not in body
    assert 'name="_save"' not in body  # read-only


def test_admin_add_refuses_disabled_source(security_admin):
    """The add form offers only enabled sources."""
    disabled = IdentitySourceFactory(name="Old Okta", enabled=False)
    response = security_admin.post(
        reverse("admin:scim_api_scimtoken_add"), {"source": disabled.pk, "label": ""}
    )
    assert response.status_code == 200
    assert "source" in response.context["adminform"].form.errors
    assert not ScimToken.objects.exists()


def test_admin_add_race_with_disabled_source(security_admin, source, monkeypatch):
    """A source disabled between the form's check and the save: an error message, no token,
    no audit event, no admin log entry, and no 500."""
    real_create = scim_admin.token_create

    def disabled_meanwhile(**kwargs):
        IdentitySource.objects.filter(pk=source.pk).update(enabled=False)
        return real_create(**kwargs)

    monkeypatch.setattr(scim_admin, "token_create", disabled_meanwhile)
    add_url = reverse("admin:scim_api_scimtoken_add")
    response = security_admin.post(add_url, {"source": source.pk, "label": ""}, follow=True)
    assert response.status_code == 200
    assert any("is disabled" in str(m) for m in response.context["messages"])
    assert not ScimToken.objects.exists()
    assert not AuditEvent.objects.filter(action="scim_token.created").exists()
    assert not LogEntry.objects.exists()


def test_admin_log_entry_holds_no_secret(security_admin, source):
    """Django's own admin log names the token by its prefix only."""
    add_url = reverse("admin:scim_api_scimtoken_add")
    response = security_admin.post(add_url, {"source": source.pk, "label": "x"}, follow=True)
    (raw,) = TOKEN_RE.findall(response.content.decode())
    entry = LogEntry.objects.get()
    assert entry.object_repr == f"{raw[:17]}… (x)"
    assert raw not in entry.change_message


def test_admin_cannot_edit_or_delete(security_admin, issued):
    """Existing tokens are read-only and cannot be deleted, even by a security admin."""
    token, _ = issued
    change_url = reverse("admin:scim_api_scimtoken_change", args=[token.pk])
    security_admin.post(change_url, {"source": token.source_id, "label": "changed"})
    token.refresh_from_db()
    assert token.label == "Entra production"
    delete_url = reverse("admin:scim_api_scimtoken_delete", args=[token.pk])
    assert security_admin.post(delete_url, {"post": "yes"}).status_code == 403
    assert ScimToken.objects.filter(pk=token.pk).exists()


def test_admin_revoke_action_confirms_then_revokes(security_admin, issued, system_actor):
    """The action asks first, then revokes through the service (audited), skipping tokens
    already revoked."""
    token, raw = issued
    old, _ = token_create(actor=system_actor, source=token.source)
    token_revoke(actor=system_actor, token=old)
    data = {"action": "revoke_selected", "_selected_action": [token.pk, old.pk]}

    confirm = security_admin.post(reverse(CHANGELIST), data)
    assert confirm.status_code == 200
    assert b"Yes, revoke" in confirm.content
    assert token.token_prefix.encode() in confirm.content
    assert source_for_token(raw) is not None  # nothing happened yet

    done = security_admin.post(reverse(CHANGELIST), {**data, "confirm": "yes"}, follow=True)
    assert done.status_code == 200
    assert source_for_token(raw) is None
    token.refresh_from_db()
    assert token.revoked_by.username == "sam"
    messages = [str(m) for m in done.context["messages"]]
    assert "Revoked 1 token(s). 1 were already revoked." in messages
    events = AuditEvent.objects.filter(action="scim_token.revoked", actor_label="user:sam")
    assert list(events.values_list("target_id", flat=True)) == [str(token.pk)]


@pytest.mark.parametrize("role", ["Reviewer", "App owner"])
def test_outsiders_cannot_see_tokens(client, issued, role):
    """Reviewers and application owners have no business with SCIM tokens."""
    token, _ = issued
    client.force_login(UserFactory(username="outsider", roles=[role]))
    assert client.get(reverse(CHANGELIST)).status_code == 403
    change = reverse("admin:scim_api_scimtoken_change", args=[token.pk])
    assert client.get(change).status_code == 403
    assert client.get(reverse("admin:scim_api_scimtoken_add")).status_code == 403


def test_auditor_views_but_cannot_add_or_revoke(client, issued):
    """An auditor reads the list and a token's page; adding and revoking are refused."""
    token, raw = issued
    client.force_login(UserFactory(username="audrey", roles=["Auditor"]))
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    assert [t.pk for t in page.context["cl"].result_list] == [token.pk]
    assert "revoke_selected" not in page.content.decode()
    change = reverse("admin:scim_api_scimtoken_change", args=[token.pk])
    assert client.get(change).status_code == 200
    assert client.get(reverse("admin:scim_api_scimtoken_add")).status_code == 403
    client.post(
        reverse(CHANGELIST),
        {"action": "revoke_selected", "_selected_action": [token.pk], "confirm": "yes"},
    )
    assert source_for_token(raw) is not None


def test_changelist_query_count(security_admin, source, django_assert_max_num_queries):
    """The list costs a bounded number of queries, whatever the number of tokens."""
    for _ in range(5):
        token_create(actor=Actor.for_user(UserFactory()), source=source)
    with django_assert_max_num_queries(12):
        response = security_admin.get(reverse(CHANGELIST))
    assert response.status_code == 200


# --- DRF authentication ---------------------------------------------------------------------


class _Echo(APIView):
    authentication_classes = [ScimBearerAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"source": request.user.source.name, "actor": actor_for(request).label})


def _call(authorization=None):
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = _Echo.as_view()(APIRequestFactory().get("/scim/v2/Users", **extra))
    response.render()
    return response


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_token_authenticates(issued, scheme):
    """The scheme is case-insensitive (RFC 7235 §2.1); the actor is the source."""
    _, raw = issued
    response = _call(f"{scheme} {raw}")
    assert response.status_code == 200
    assert response.data == {"source": "Test Entra", "actor": "scim:Test Entra"}


def test_authenticate_returns_principal_and_token(issued, source):
    """The principal is the source (not a Django user) and the auth object the token."""
    token, raw = issued
    request = Request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {raw}"))
    principal, auth = ScimBearerAuthentication().authenticate(request)
    assert isinstance(principal, ScimPrincipal)
    assert principal.is_authenticated
    assert principal.source == source and principal.token == token
    assert auth == token


NOT_PROVIDED = "Authentication credentials were not provided."
NO_TOKEN = "Invalid Authorization header: no bearer token was given."
SPACES = "Invalid Authorization header: the bearer token must not contain spaces."
BAD_CHARS = "Invalid Authorization header: the bearer token has invalid characters."
REFUSED = "Invalid or revoked SCIM bearer token."


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        pytest.param(None, NOT_PROVIDED, id="no-header"),
        pytest.param("Basic dXNlcjpwdw==", NOT_PROVIDED, id="basic"),
        pytest.param("Bearer", NO_TOKEN, id="empty"),
        pytest.param("Bearer ", NO_TOKEN, id="blank"),
        pytest.param("Bearer a b", SPACES, id="spaces"),
        pytest.param("Bearer garbage", REFUSED, id="garbage"),
        pytest.param("Bearer \u00e9t\u00e9", BAD_CHARS, id="non-ascii"),
    ],
)
def test_refused_requests_get_401_with_challenge(issued, authorization, detail):
    """Every refusal is a 401 with the RFC 6750 challenge and a clear, generic message."""
    response = _call(authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="Steward SCIM"'
    assert response.data == {"detail": detail}


def test_other_scheme_is_left_to_other_authenticators():
    """A non-Bearer scheme is not refused here; the view decides (401 if nothing else)."""
    request = Request(APIRequestFactory().get("/", HTTP_AUTHORIZATION="Basic dXNlcjpwdw=="))
    assert ScimBearerAuthentication().authenticate(request) is None


def test_revoked_token_gets_401(issued, system_actor):
    """A revoked token gets the same generic refusal as a wrong one."""
    token, raw = issued
    token_revoke(actor=system_actor, token=token)
    response = _call(f"Bearer {raw}")
    assert response.status_code == 401
    assert response.data == {"detail": REFUSED}
    assert raw not in json.dumps(response.data)


def test_disabled_source_gets_401(issued, source):
    """Tokens of a disabled source are refused."""
    _, raw = issued
    IdentitySource.objects.filter(pk=source.pk).update(enabled=False)
    assert _call(f"Bearer {raw}").status_code == 401
