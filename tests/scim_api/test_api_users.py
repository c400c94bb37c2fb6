"""/Users: whole responses, audit rows, and the hostile cases (RFC 7644 §3)."""

import pytest

from governance.audit.models import AuditEvent
from governance.identities.models import Identity

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def entra_user(**overrides):
    body = {
        "schemas": [USER, ENT],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@testuser.com",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName",
        },
        "roles": [],
        ENT: {"employeeNumber": "701984", "department": "Finance"},
    }
    body.update(overrides)
    return body


def assert_error(response, status, scim_type=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body["detail"]
    if scim_type:
        assert body.get("scimType") == scim_type, body
    text = response.content.decode().lower()
    for leak in ("traceback", "select ", "psycopg", "sqlite", "integrityerror"):
        assert leak not in text


def test_create_returns_whole_resource_and_audits(scim):
    response = scim.post("/Users", entra_user())
    assert response.status_code == 201, response.content
    body = response.json()
    identity = Identity.objects.get()
    assert response["Location"] == f"http://testserver/scim/v2/Users/{identity.pk}"
    assert response["ETag"] == 'W/"1"'
    assert body == {
        "schemas": [USER, ENT],
        "id": str(identity.pk),
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@testuser.com",
        "active": True,
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName",
        },
        "emails": [{"value": "Test_User_fd0ea19b@testuser.com", "type": "work", "primary": True}],
        ENT: {"employeeNumber": "701984", "department": "Finance"},
        "meta": {
            "resourceType": "User",
            "created": body["meta"]["created"],
            "lastModified": body["meta"]["lastModified"],
            "location": response["Location"],
            "version": 'W/"1"',
        },
    }
    event = AuditEvent.objects.get(action="identity.created")
    assert event.actor_label == "scim:Entra"
    assert event.target_id == str(identity.pk)


def test_plain_json_content_type_accepted(scim):
    response = scim.post("/Users", entra_user(), content_type="application/json")
    assert response.status_code == 201


def test_duplicate_username_case_insensitive_is_409(scim):
    scim.post("/Users", entra_user())
    response = scim.post("/Users", entra_user(userName="TEST_USER_AB6490EE@testuser.com"))
    assert_error(response, 409, "uniqueness")
    assert Identity.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [USER]},
        {"schemas": [USER], "userName": ""},
        {"schemas": [USER], "userName": None},
        {"schemas": [USER], "userName": 42},
        {"schemas": [USER], "userName": ["a"]},
    ],
    ids=["missing", "empty", "null", "number", "list"],
)
def test_missing_or_bad_username_is_400(scim, body):
    response = scim.post("/Users", body)
    assert response.status_code == 400
    assert_error(response, 400)
    assert not Identity.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[]",
        '"text"',
        "null",
        "",
        '{"userName": {"a": 1}}',
        '{"active": "maybe", "userName": "x"}',
    ],
    ids=["broken", "array", "string", "null", "empty", "object-username", "bad-bool"],
)
def test_malformed_bodies_are_400(scim, raw):
    response = scim.post("/Users", raw)
    assert_error(response, 400)
    assert not Identity.objects.exists()


def test_capitalised_attribute_names_and_string_booleans(scim):
    """The Entra validator sends "UserName"/"Active"; OneLogin sends "active": "true"."""
    response = scim.post(
        "/Users",
        {"schemas": [USER], "UserName": "cap@x.com", "Active": "False", "DisplayName": "Cap"},
    )
    assert response.status_code == 201, response.content
    identity = Identity.objects.get()
    assert (identity.user_name, identity.active, identity.display_name) == (
        "cap@x.com",
        False,
        "Cap",
    )


def test_get_unknown_and_garbage_ids_are_404(scim):
    assert_error(scim.get("/Users/7f4b4a4e-0000-0000-0000-000000000000"), 404)
    assert_error(scim.get("/Users/not-a-uuid"), 404)
    assert_error(scim.get("/Users/%27%20OR%201=1--"), 404)


def test_unknown_endpoint_is_scim_404(scim):
    assert_error(scim.get("/Widgets"), 404)


def test_no_or_bad_token_is_401(client, scim):
    response = client.get("/scim/v2/Users")
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/scim/v2/Users", HTTP_AUTHORIZATION="Bearer nope")
    assert_error(response, 401)


def test_lowercase_path_served(scim):
    assert scim.get("/users").status_code == 200


def test_source_scope(scim, other_scim):
    """A source sees and changes only what it provisioned."""
    created = scim.post("/Users", entra_user()).json()
    assert other_scim.get(f"/Users/{created['id']}").status_code == 404
    assert other_scim.get("/Users").json()["totalResults"] == 0
    assert (
        other_scim.patch(
            f"/Users/{created['id']}",
            {
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            },
        ).status_code
        == 404
    )
    assert Identity.objects.get().active is True


def test_entra_default_dialect_deactivation(scim):
    user = scim.post("/Users", entra_user()).json()
    response = scim.patch(
        f"/Users/{user['id']}",
        {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
    )
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    assert response["ETag"] == 'W/"2"'
    # still readable and filterable
    assert scim.get(f"/Users/{user['id']}").json()["active"] is False
    found = scim.get('/Users?filter=userName eq "test_user_ab6490ee@testuser.com"').json()
    assert found["totalResults"] == 1
    assert AuditEvent.objects.filter(action="identity.deactivated").count() == 1


def test_entra_no_path_replace_with_dotted_and_urn_keys(scim):
    user = scim.post("/Users", entra_user()).json()
    response = scim.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@x.com"},
                {
                    "op": "replace",
                    "value": {
                        "name.givenName": "Jo",
                        f"{ENT}:employeeNumber": "99",
                        "displayName": "Jo X",
                    },
                },
            ],
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"]["givenName"] == "Jo"
    assert body[ENT]["employeeNumber"] == "99"
    assert body["emails"][0]["value"] == "new@x.com"
    identity = Identity.objects.get()
    assert identity.given_name == "Jo" and identity.employee_number == "99"
    assert "name.givenName" not in identity.attributes


def test_patch_is_atomic(scim):
    user = scim.post("/Users", entra_user()).json()
    response = scim.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "nosuchattribute", "value": "x"},
            ],
        },
    )
    assert_error(response, 400, "invalidPath")
    assert Identity.objects.get().display_name == ""


def test_okta_put_with_id_and_meta(scim):
    user = scim.post("/Users", entra_user()).json()
    fetched = scim.get(f"/Users/{user['id']}").json()
    fetched["name"]["givenName"] = "Okta"
    fetched["title"] = "Engineer"
    response = scim.put(f"/Users/{user['id']}", fetched)
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "Engineer"
    assert Identity.objects.get().given_name == "Okta"


def test_put_clears_omitted_attributes(scim):
    user = scim.post("/Users", entra_user(title="Clerk")).json()
    response = scim.put(f"/Users/{user['id']}", {"schemas": [USER], "userName": user["userName"]})
    assert response.status_code == 200
    assert "title" not in response.json()


def test_etags(scim):
    user = scim.post("/Users", entra_user()).json()
    path = f"/Users/{user['id']}"
    assert scim.get(path, HTTP_IF_NONE_MATCH='W/"1"').status_code == 304
    stale = scim.patch(
        path,
        {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}]},
        HTTP_IF_MATCH='W/"7"',
    )
    assert_error(stale, 412)
    ok = scim.patch(
        path,
        {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}]},
        HTTP_IF_MATCH='W/"1"',
    )
    assert ok.status_code == 200
    assert scim.get(path).json()["meta"]["lastModified"] >= user["meta"]["lastModified"]


def test_delete_soft_deletes(scim):
    user = scim.post("/Users", entra_user()).json()
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert_error(scim.get(f"/Users/{user['id']}"), 404)
    identity = Identity.objects.get()
    assert identity.deleted_at is not None and identity.active is False
    assert AuditEvent.objects.filter(action="identity.deleted").exists()


def test_manager_resolved_later(scim):
    report = scim.post(
        "/Users",
        entra_user(userName="r@x.com", externalId="r", **{ENT: {"manager": {"value": "mgr-ext"}}}),
    ).json()
    manager = scim.post("/Users", entra_user(userName="m@x.com", externalId="mgr-ext")).json()
    body = scim.get(f"/Users/{report['id']}").json()
    assert body[ENT]["manager"]["value"] == manager["id"]
    assert body[ENT]["manager"]["$ref"].endswith(f"/Users/{manager['id']}")


def test_oversize_payload_is_413(scim):
    response = scim.post("/Users", {"userName": "x", "title": "a" * 1_100_000})
    assert_error(response, 413)
