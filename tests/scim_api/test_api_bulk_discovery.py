"""POST /Bulk (RFC 7644 §3.7), the discovery endpoints (RFC 7644 §4, RFC 7643 §5-§7) and
POST /.search at the service root (RFC 7644 §3.4.3)."""

import json

import pytest
from django.db.models import Q

from governance.audit.models import AuditEvent
from governance.identities.models import (
    DirectoryGroup,
    GroupMembership,
    Identity,
    IdentitySource,
)

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BASE = "http://testserver/scim/v2"
LEAKS = ("traceback", 'select "', 'from "', "psycopg", "sqlite", "integrityerror", "domainerror")


def assert_error(response, status, scim_type=None):
    """A SCIM error body (RFC 7644 §3.12) that leaks no internal detail."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body["detail"]
    if scim_type:
        assert body.get("scimType") == scim_type, body
    text = response.content.decode().lower()
    assert not [leak for leak in LEAKS if leak in text], text


def bulk(*operations, **extra):
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **extra}


def post_user(bulk_id, user_name):
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": {"schemas": [USER], "userName": user_name},
    }


def post_group(bulk_id, name, members=()):
    return {
        "method": "POST",
        "path": "/Groups",
        "bulkId": bulk_id,
        "data": {
            "schemas": [GROUP],
            "displayName": name,
            "members": [{"value": m} for m in members],
        },
    }


def actions():
    """Audited directory changes in order (lifecycle events derived from them left out)."""
    events = AuditEvent.objects.filter(
        Q(action__startswith="identity.") | Q(action__startswith="group.")
    ).order_by("id")
    return list(events.values_list("action", flat=True))


def op_error(result, status, scim_type=None):
    """One failed bulk operation: status and a SCIM error body in ``response``."""
    assert result["status"] == str(status), result
    response = result["response"]
    assert response["schemas"] == [ERROR]
    assert response["status"] == str(status)
    assert response["detail"]
    if scim_type:
        assert response.get("scimType") == scim_type, response


# ------------------------------------------------------------------------ bulk


def test_bulk_id_reference_user_then_group(scim):
    """A group's member may be ``bulkId:u1``, the user created earlier in the same request;
    the answer lists each operation with bulkId, status, location and version."""
    response = scim.post(
        "/Bulk",
        bulk(post_user("u1", "alice@contoso.example"), post_group("g1", "Sales", ["bulkId:u1"])),
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/scim+json")
    user = Identity.objects.get()
    group = DirectoryGroup.objects.get()
    assert response.json() == {
        "schemas": [BULK_RESPONSE],
        "Operations": [
            {
                "method": "POST",
                "bulkId": "u1",
                "status": "201",
                "location": f"{BASE}/Users/{user.pk}",
                "version": 'W/"1"',
            },
            {
                "method": "POST",
                "bulkId": "g1",
                "status": "201",
                "location": f"{BASE}/Groups/{group.pk}",
                "version": 'W/"1"',
            },
        ],
    }
    assert list(group.memberships.values_list("identity_id", flat=True)) == [user.pk]
    assert actions() == ["identity.created", "group.created"]
    assert AuditEvent.objects.get(action="group.created").after["members"] == [str(user.pk)]


def test_bulk_id_reference_group_before_user(scim):
    """Order does not matter (RFC 7644 §3.7.2): a group naming a user created later in the
    request waits for it; results keep the request's order."""
    response = scim.post(
        "/Bulk",
        bulk(post_group("g1", "Sales", ["bulkId:u1"]), post_user("u1", "alice@contoso.example")),
    )
    assert response.status_code == 200, response.content
    results = response.json()["Operations"]
    assert [(r["bulkId"], r["status"]) for r in results] == [("g1", "201"), ("u1", "201")]
    user = Identity.objects.get()
    assert results[1]["location"] == f"{BASE}/Users/{user.pk}"
    assert set(GroupMembership.objects.values_list("identity_id", flat=True)) == {user.pk}
    assert actions() == ["identity.created", "group.created"]


def test_bulk_id_in_path_and_in_patch_value(scim):
    """``/Groups/bulkId:g1`` and ``bulkId:u2`` inside a PATCH value resolve too; results of
    PATCH and DELETE carry the resource's location."""
    response = scim.post(
        "/Bulk",
        bulk(
            post_group("g1", "Sales"),
            post_user("u2", "bob@contoso.example"),
            {
                "method": "PATCH",
                "path": "/Groups/bulkId:g1",
                "data": {
                    "schemas": [PATCH],
                    "Operations": [
                        {"op": "add", "path": "members", "value": [{"value": "bulkId:u2"}]}
                    ],
                },
            },
            {"method": "DELETE", "path": "/Users/bulkId:u2"},
        ),
    )
    assert response.status_code == 200, response.content
    group = DirectoryGroup.objects.get()
    user = Identity.objects.get()
    patched, deleted = response.json()["Operations"][2:]
    assert patched == {
        "method": "PATCH",
        "status": "204",
        "location": f"{BASE}/Groups/{group.pk}",
        "version": 'W/"2"',
    }
    assert deleted == {"method": "DELETE", "status": "204", "location": f"{BASE}/Users/{user.pk}"}
    assert user.deleted_at is not None
    assert actions() == [
        "group.created",
        "identity.created",
        "group.members_added",
        "identity.deleted",
    ]


def test_unresolvable_bulk_id_is_409_for_that_operation(scim):
    """A reference to a bulkId no operation creates fails that operation only."""
    response = scim.post(
        "/Bulk",
        bulk(post_group("g1", "Sales", ["bulkId:nobody"]), post_user("u1", "a@contoso.example")),
    )
    assert response.status_code == 200
    group_result, user_result = response.json()["Operations"]
    op_error(group_result, 409)
    assert group_result["bulkId"] == "g1" and group_result["method"] == "POST"
    assert user_result["status"] == "201"
    assert not DirectoryGroup.objects.exists()
    assert Identity.objects.count() == 1


def test_reference_to_a_failed_create_fails_too(scim):
    """When the referenced POST fails, the operation depending on it fails as well."""
    scim.post("/Users", {"schemas": [USER], "userName": "taken@contoso.example"})
    response = scim.post(
        "/Bulk",
        bulk(post_user("u1", "TAKEN@contoso.example"), post_group("g1", "Sales", ["bulkId:u1"])),
    )
    user_result, group_result = response.json()["Operations"]
    op_error(user_result, 409, "uniqueness")
    op_error(group_result, 409)
    assert not DirectoryGroup.objects.exists()


def test_failing_operation_does_not_roll_back_the_others(scim):
    """Each operation commits on its own: a failure in the middle keeps what came before
    and after it (RFC 7644 §3.7: bulk is not atomic)."""
    scim.post("/Users", {"schemas": [USER], "userName": "taken@contoso.example"})
    response = scim.post(
        "/Bulk",
        bulk(
            post_user("u1", "alice@contoso.example"),
            post_user("u2", "taken@contoso.example"),
            post_group("g1", "Sales", ["bulkId:u1"]),
        ),
    )
    assert response.status_code == 200
    first, second, third = response.json()["Operations"]
    assert first["status"] == "201" and third["status"] == "201"
    op_error(second, 409, "uniqueness")
    assert second["bulkId"] == "u2"
    assert sorted(Identity.objects.values_list("user_name", flat=True)) == [
        "alice@contoso.example",
        "taken@contoso.example",
    ]
    assert DirectoryGroup.objects.get().display_name == "Sales"
    assert actions() == ["identity.created", "identity.created", "group.created"]


def test_a_failing_patch_inside_bulk_is_atomic(scim):
    """A PATCH operation that fails half-way changes nothing of its resource."""
    alice = scim.post("/Users", {"schemas": [USER], "userName": "alice@contoso.example"}).json()
    response = scim.post(
        "/Bulk",
        bulk(
            {
                "method": "PATCH",
                "path": f"/Users/{alice['id']}",
                "data": {
                    "schemas": [PATCH],
                    "Operations": [
                        {"op": "replace", "path": "title", "value": "Boss"},
                        {"op": "replace", "path": "nosuch", "value": "x"},
                    ],
                },
            }
        ),
    )
    op_error(response.json()["Operations"][0], 400, "invalidPath")
    assert Identity.objects.get().title == ""


@pytest.mark.parametrize(("fail_on_errors", "results"), [(1, 1), (2, 3)])
def test_fail_on_errors_stops_after_that_many_errors(scim, fail_on_errors, results):
    """failOnErrors=N: processing stops at the N-th error; later operations never run and
    get no result (RFC 7644 §3.7.3)."""
    scim.post("/Users", {"schemas": [USER], "userName": "taken@contoso.example"})
    response = scim.post(
        "/Bulk",
        bulk(
            post_user("u1", "taken@contoso.example"),
            post_user("u2", "bob@contoso.example"),
            post_user("u3", "TAKEN@contoso.example"),
            post_user("u4", "carol@contoso.example"),
            failOnErrors=fail_on_errors,
        ),
    )
    assert response.status_code == 200, response.content
    operations = response.json()["Operations"]
    assert [o["bulkId"] for o in operations] == ["u1", "u2", "u3"][:results]
    assert [o["status"] for o in operations] == ["409", "201", "409"][:results]
    created = set(Identity.objects.values_list("user_name", flat=True))
    assert "carol@contoso.example" not in created
    assert ("bob@contoso.example" in created) is (results > 1)


def test_bulk_respects_source_scope(scim, other_scim):
    """Bulk runs every operation in the caller's scope: another source's group is 404."""
    group = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Sales"}).json()
    response = other_scim.post(
        "/Bulk",
        bulk(
            {"method": "DELETE", "path": f"/Groups/{group['id']}"},
            {
                "method": "PUT",
                "path": f"/Groups/{group['id']}",
                "data": {"schemas": [GROUP], "displayName": "Mine"},
            },
        ),
    )
    assert response.status_code == 200
    for result in response.json()["Operations"]:
        op_error(result, 404)
    stored = DirectoryGroup.objects.get()
    assert (stored.display_name, stored.deleted_at) == ("Sales", None)


@pytest.mark.parametrize(
    ("body", "status", "scim_type"),
    [
        ({"Operations": [post_user("u1", "a@x.example")]}, 400, "invalidSyntax"),
        ({"schemas": [USER], "Operations": [post_user("u1", "a@x.example")]}, 400, "invalidSyntax"),
        ({"schemas": BULK_REQUEST, "Operations": [post_user("u1", "a@x.example")]}, 400, None),
        ({"schemas": [BULK_REQUEST]}, 400, "invalidSyntax"),
        ({"schemas": [BULK_REQUEST], "Operations": []}, 400, "invalidSyntax"),
        ({"schemas": [BULK_REQUEST], "Operations": {"method": "POST"}}, 400, "invalidSyntax"),
        (bulk(post_user("u1", "a@x.example"), failOnErrors=0), 400, "invalidValue"),
        (bulk(post_user("u1", "a@x.example"), failOnErrors="1"), 400, "invalidValue"),
        (bulk(post_user("u1", "a@x.example"), failOnErrors=True), 400, "invalidValue"),
        ([post_user("u1", "a@x.example")], 400, "invalidSyntax"),
        ("{broken", 400, "invalidSyntax"),
    ],
    ids=[
        "no-schemas",
        "wrong-schema",
        "schemas-not-a-list",
        "no-operations",
        "empty-operations",
        "operations-object",
        "fail-on-errors-zero",
        "fail-on-errors-string",
        "fail-on-errors-bool",
        "array-body",
        "broken-json",
    ],
)
def test_bad_bulk_requests_are_scim_errors(scim, body, status, scim_type):
    """A malformed bulk request is refused whole with a SCIM error; nothing runs."""
    assert_error(scim.post("/Bulk", body), status, scim_type)
    assert not Identity.objects.exists()


def test_more_than_max_operations_is_413(scim):
    """maxOperations is 1000 (RFC 7644 §3.7.4): 1001 operations are 413 and none runs."""
    operations = [post_user(f"u{i}", f"u{i}@x.example") for i in range(1001)]
    assert_error(scim.post("/Bulk", bulk(*operations)), 413)
    assert not Identity.objects.exists()


def test_oversize_bulk_payload_is_413(scim):
    """A body over maxPayloadSize is refused before it is parsed."""
    big = post_user("u1", "a@x.example")
    big["data"]["title"] = "x" * 1_100_000
    assert_error(scim.post("/Bulk", bulk(big)), 413)


def test_bad_operations_fail_one_by_one(scim):
    """Non-object operations, unknown methods and paths, and POST without bulkId each fail
    with a SCIM error in their own result; the valid operation still runs."""
    response = scim.post(
        "/Bulk",
        bulk(
            "not an object",
            {"method": "GET", "path": "/Users", "bulkId": "g"},
            {"method": "POST", "path": "/Widgets", "bulkId": "w", "data": {}},
            {
                "method": "POST",
                "path": "/Users",
                "data": {"schemas": [USER], "userName": "x@x.example"},
            },
            {"method": "PATCH", "path": "/Users"},
            {"method": "DELETE", "path": "/Users/../Groups"},
            post_user("ok", "ok@x.example"),
        ),
    )
    assert response.status_code == 200, response.content
    results = response.json()["Operations"]
    assert len(results) == 7
    op_error(results[0], 400, "invalidSyntax")
    op_error(results[1], 400, "invalidSyntax")
    assert results[1]["bulkId"] == "g"
    op_error(results[2], 400, "invalidPath")
    op_error(results[3], 400, "invalidValue")
    op_error(results[4], 400, "invalidPath")
    op_error(results[5], 400)
    assert results[6]["status"] == "201"
    assert list(Identity.objects.values_list("user_name", flat=True)) == ["ok@x.example"]
    assert not [leak for leak in LEAKS if leak in response.content.decode().lower()]


def test_bulk_needs_authentication(client):
    """/Bulk without a bearer token is a SCIM 401."""
    assert_error(client.post("/scim/v2/Bulk", "{}", content_type="application/scim+json"), 401)


# ------------------------------------------------------------------------ discovery


def nulls(value, where="$"):
    """Every JSON path whose value is null."""
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{where}[{i}]")]
    return []


DISCOVERY = [
    "/ServiceProviderConfig",
    "/ResourceTypes",
    "/ResourceTypes/User",
    "/ResourceTypes/Group",
    "/Schemas",
    f"/Schemas/{USER}",
    f"/Schemas/{GROUP}",
    f"/Schemas/{ENT}",
]


@pytest.mark.parametrize("path", DISCOVERY)
def test_discovery_has_no_nulls(scim, path):
    """Entra rejects null values in discovery documents; none anywhere."""
    response = scim.get(path)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/scim+json")
    assert nulls(response.json()) == []


def test_service_provider_config(scim):
    """The advertised features (RFC 7643 §5) match what the server does."""
    response = scim.get("/ServiceProviderConfig")
    assert response.json() == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://steward.invalid/docs/scim",
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1_048_576},
        "filter": {"supported": True, "maxResults": 200},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A per-identity-source token created with manage.py scim_token.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{BASE}/ServiceProviderConfig",
        },
    }


def test_max_results_is_enforced(scim):
    """filter.maxResults (200) caps count; totalResults still counts everything."""
    source = IdentitySource.objects.get(name="Entra")
    Identity.objects.bulk_create(
        Identity(source=source, user_name=f"bulk{i}@contoso.example") for i in range(205)
    )
    body = scim.get("/Users?count=5000&attributes=userName").json()
    assert (body["totalResults"], body["itemsPerPage"], len(body["Resources"])) == (205, 200, 200)


def test_resource_types(scim):
    """/ResourceTypes is a ListResponse with integer counts; each type is also readable alone."""
    body = scim.get("/ResourceTypes").json()
    user_type = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "User Account",
        "schema": USER,
        "schemaExtensions": [{"schema": ENT, "required": False}],
        "meta": {"resourceType": "ResourceType", "location": f"{BASE}/ResourceTypes/User"},
    }
    group_type = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "description": "Group",
        "schema": GROUP,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": f"{BASE}/ResourceTypes/Group"},
    }
    assert body == {
        "schemas": [LIST],
        "totalResults": 2,
        "startIndex": 1,
        "itemsPerPage": 2,
        "Resources": [user_type, group_type],
    }
    assert scim.get("/ResourceTypes/User").json() == user_type
    assert scim.get("/resourcetypes/group").json() == group_type


def test_schemas(scim):
    """/Schemas lists the three schemas as a ListResponse; each is readable by its URN and
    describes attributes with every characteristic in camel case (RFC 7643 §7)."""
    body = scim.get("/Schemas").json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == 3 and isinstance(body["totalResults"], int)
    assert body["itemsPerPage"] == 3 and body["startIndex"] == 1
    assert [s["id"] for s in body["Resources"]] == [USER, ENT, GROUP]
    user = scim.get(f"/Schemas/{USER}").json()
    assert user == body["Resources"][0]
    assert user["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
    assert (user["name"], user["meta"]) == (
        "User",
        {"resourceType": "Schema", "location": f"{BASE}/Schemas/{USER}"},
    )
    user_name = next(a for a in user["attributes"] if a["name"] == "userName")
    assert user_name == {
        "name": "userName",
        "type": "string",
        "multiValued": False,
        "description": user_name["description"],
        "required": True,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "server",
    }
    emails = next(a for a in user["attributes"] if a["name"] == "emails")
    assert [s["name"] for s in emails["subAttributes"]] == ["value", "display", "type", "primary"]
    assert "entitlements" in {a["name"] for a in user["attributes"]}
    assert scim.get(f"/Schemas/{USER.lower()}").json()["id"] == USER


@pytest.mark.parametrize(
    "path",
    [
        "/ResourceTypes/Widget",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Widget",
        "/Schemas/nonsense",
    ],
)
def test_unknown_schema_or_resource_type_is_404(scim, path):
    """An unknown schema URN or resource type is a SCIM 404."""
    assert_error(scim.get(path), 404)


@pytest.mark.parametrize("path", ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"])
def test_discovery_is_read_only(scim, path):
    """Discovery endpoints answer other methods with a SCIM 405."""
    assert_error(scim.post(path, {}), 405)
    assert_error(scim.delete(path), 405)


def test_discovery_needs_a_token(client):
    """Steward asks for a bearer token on discovery too (RFC 7644 §4 leaves it open)."""
    assert_error(client.get("/scim/v2/ServiceProviderConfig"), 401)


# ------------------------------------------------------------------------ /.search at the root


@pytest.fixture
def directory(scim):
    users = [
        scim.post(
            "/Users",
            {"schemas": [USER], "userName": f"s{i}@contoso.example", "externalId": f"ext-{i}"},
        ).json()
        for i in range(3)
    ]
    groups = [
        scim.post(
            "/Groups",
            {
                "schemas": [GROUP],
                "displayName": f"Search {i}",
                "externalId": f"gext-{i}",
                "members": [{"value": users[0]["id"]}],
            },
        ).json()
        for i in range(2)
    ]
    return users, groups


def search(scim, **body):
    return scim.post("/.search", {"schemas": [SEARCH], **body})


def test_root_search_returns_users_then_groups(scim, directory):
    """POST /.search spans resource types: users first, then groups, integer counts."""
    users, groups = directory
    response = search(scim)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["schemas"], body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (
        [LIST],
        5,
        1,
        5,
    )
    assert [r["id"] for r in body["Resources"]] == [r["id"] for r in users + groups]


def test_root_search_pages_across_the_boundary(scim, directory):
    """Paging walks from users into groups without gaps or repeats."""
    users, groups = directory
    seen = []
    for start in (1, 3, 5):
        page = search(scim, startIndex=start, count=2).json()
        assert page["totalResults"] == 5 and page["startIndex"] == start
        seen += [r["id"] for r in page["Resources"]]
    assert seen == [r["id"] for r in users + groups]


def test_root_search_filter_on_shared_attribute(scim, directory):
    """A filter on an attribute both types have (externalId) searches both."""
    users, groups = directory
    body = search(scim, filter='externalId eq "gext-1" or externalId eq "ext-2"').json()
    assert [r["id"] for r in body["Resources"]] == [users[2]["id"], groups[1]["id"]]


def test_root_search_filter_on_one_type(scim, directory):
    """A filter only Groups understand searches Groups only."""
    _, groups = directory
    body = search(scim, filter='displayName sw "Search"', attributes=["displayName"]).json()
    assert body["totalResults"] == 2
    assert body["Resources"] == [
        {"schemas": [GROUP], "id": g["id"], "displayName": g["displayName"]} for g in groups
    ]


def test_root_search_attributes_of_one_type(scim, directory):
    """``attributes``/``excludedAttributes`` may name attributes of one type only: each type
    applies the names it has (``members`` for Groups, ``userName`` for Users)."""
    users, groups = directory
    body = search(scim, attributes=["userName"]).json()
    assert body["Resources"] == [
        {"schemas": [USER], "id": u["id"], "userName": u["userName"]} for u in users
    ] + [{"schemas": [GROUP], "id": g["id"]} for g in groups]
    body = search(scim, excludedAttributes=["members", "meta"]).json()
    assert all("members" not in r and "meta" not in r for r in body["Resources"])
    assert all("displayName" in r for r in body["Resources"][3:])
    assert all("userName" in r for r in body["Resources"][:3])


def test_root_search_refusals(scim, directory):
    """Unknown attributes and filters that fit no type are SCIM 400s."""
    assert_error(search(scim, attributes=["nosuch"]), 400, "invalidValue")
    assert_error(search(scim, filter='nosuch eq "x"'), 400, "invalidFilter")
    assert_error(scim.post("/.search", ["not", "an", "object"]), 400, "invalidSyntax")


def test_root_search_respects_scope(scim, other_scim, directory):
    """Another source's search finds nothing of this source's."""
    assert search(other_scim).json()["totalResults"] == 0


def test_bulk_accepts_plain_json(scim):
    """A bulk body sent as application/json is accepted; the answer is application/scim+json."""
    response = scim.post(
        "/Bulk", json.dumps(bulk(post_user("u1", "a@x.example"))), content_type="application/json"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/scim+json")
    assert response.json()["Operations"][0]["status"] == "201"


def test_unstorable_text_fails_the_whole_bulk_request(scim):
    """A NUL character anywhere in the body is refused before any operation runs."""
    body = bulk(post_user("u1", "a@x.example"), post_user("u2", "b\u0000@x.example"))
    assert_error(scim.post("/Bulk", json.dumps(body)), 400, "invalidValue")
    assert not Identity.objects.exists()
