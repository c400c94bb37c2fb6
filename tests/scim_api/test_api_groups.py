"""/Groups: CRUD with whole responses and audit rows, and the request shapes Microsoft Entra
ID and Okta really send (see shared/IDP-BEHAVIOUR.md), RFC 7644 §3.3-§3.6."""

import threading
import uuid

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from governance.audit.models import AuditEvent
from governance.identities.models import DirectoryGroup, GroupMembership, Identity, IdentitySource

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BASE = "http://testserver/scim/v2"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
MEMBERSHIP_TABLE = GroupMembership._meta.db_table
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


def patch(*operations):
    return {"schemas": [PATCH], "Operations": list(operations)}


def make_users(scim, *names):
    """Users created through the API; returns their ids in order."""
    ids = []
    for name in names:
        response = scim.post(
            "/Users",
            {"schemas": [USER], "userName": f"{name}@contoso.example", "displayName": name},
        )
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def make_group(scim, name="Sales", members=()):
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members]}
    response = scim.post("/Groups", body)
    assert response.status_code == 201, response.content
    return response.json()


def members_of(group_id):
    return {
        str(i)
        for i in GroupMembership.objects.filter(group_id=group_id).values_list(
            "identity_id", flat=True
        )
    }


def actions():
    """Audited directory changes in order (lifecycle events derived from them left out)."""
    events = AuditEvent.objects.filter(
        Q(action__startswith="identity.") | Q(action__startswith="group.")
    ).order_by("id")
    return list(events.values_list("action", flat=True))


def member(identity_id, name):
    return {
        "value": identity_id,
        "$ref": f"{BASE}/Users/{identity_id}",
        "display": name,
        "type": "User",
    }


def membership_queries(captured):
    return [q["sql"] for q in captured.captured_queries if MEMBERSHIP_TABLE in q["sql"]]


def group_wide_membership_queries(captured, identity_ids):
    """Membership queries that name none of ``identity_ids``: reads of a whole group."""
    keys = [str(i).replace("-", "") for i in identity_ids]
    return [
        sql
        for sql in membership_queries(captured)
        if not any(k in sql.replace("-", "") for k in keys)
    ]


# ------------------------------------------------------------------------ create and read


def test_entra_create_with_microsoft_schema_urn(scim):
    """Entra's POST /Groups (externalId, displayName, meta, no members, the Microsoft ADSCIM
    URN in schemas) is accepted: 201 with the whole group, Location, ETag and an audit row."""
    response = scim.post(
        "/Groups",
        {
            "schemas": [GROUP, MS_GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Group1DisplayName",
            "meta": {"resourceType": "Group"},
        },
    )
    assert response.status_code == 201, response.content
    group = DirectoryGroup.objects.get()
    body = response.json()
    assert response["Location"] == f"{BASE}/Groups/{group.pk}"
    assert response["ETag"] == 'W/"1"'
    assert response["Content-Type"].startswith("application/scim+json")
    assert body == {
        "schemas": [GROUP],
        "id": str(group.pk),
        "displayName": "Group1DisplayName",
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "members": [],
        "meta": {
            "resourceType": "Group",
            "created": body["meta"]["created"],
            "lastModified": body["meta"]["lastModified"],
            "location": f"{BASE}/Groups/{group.pk}",
            "version": 'W/"1"',
        },
    }
    assert group.source.name == "Entra"
    event = AuditEvent.objects.get(action="group.created")
    assert (event.action, event.actor_label, event.target_id) == (
        "group.created",
        "scim:Entra",
        str(group.pk),
    )
    assert event.after["member_count"] == 0 and event.after["members"] == []


def test_okta_create_with_empty_members(scim):
    """Okta Group Push creates with ``{displayName, members: []}``."""
    response = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Okta Push", "members": []})
    assert response.status_code == 201, response.content
    assert response.json()["members"] == []
    assert DirectoryGroup.objects.get().display_name == "Okta Push"
    assert actions() == ["group.created"]


def test_create_with_members_and_get_whole_group(scim):
    """Members given at creation are stored, audited in the creation event, and returned
    by GET with value, $ref, display and type."""
    alice, bob = make_users(scim, "Alice", "Bob")
    created = make_group(scim, "Engineering", [alice, bob])
    assert members_of(created["id"]) == {alice, bob}
    response = scim.get(f"/Groups/{created['id']}")
    assert response.status_code == 200
    assert response["ETag"] == 'W/"1"'
    body = response.json()
    assert sorted(body["members"], key=lambda m: m["display"]) == [
        member(alice, "Alice"),
        member(bob, "Bob"),
    ]
    assert body == {**created, "members": body["members"]}
    event = AuditEvent.objects.get(action="group.created")
    assert event.after["member_count"] == 2
    assert set(event.after["members"]) == {alice, bob}


def test_create_without_display_name_is_400(scim):
    """displayName is required (RFC 7643 §4.2)."""
    for body in ({"schemas": [GROUP]}, {"schemas": [GROUP], "displayName": "  "}):
        assert_error(scim.post("/Groups", body), 400, "invalidValue")
    assert not DirectoryGroup.objects.exists()


def test_duplicate_display_name_case_insensitive_is_409(scim):
    """displayName is unique case-insensitively: create, rename and PUT all answer 409
    uniqueness and change nothing."""
    make_group(scim, "Finance")
    other = make_group(scim, "Marketing")
    assert_error(
        scim.post("/Groups", {"schemas": [GROUP], "displayName": "FINANCE"}), 409, "uniqueness"
    )
    assert_error(
        scim.patch(
            f"/Groups/{other['id']}",
            patch({"op": "replace", "path": "displayName", "value": "finance"}),
        ),
        409,
        "uniqueness",
    )
    assert_error(
        scim.put(f"/Groups/{other['id']}", {"schemas": [GROUP], "displayName": "Finance"}),
        409,
        "uniqueness",
    )
    assert sorted(DirectoryGroup.objects.values_list("display_name", flat=True)) == [
        "Finance",
        "Marketing",
    ]
    assert actions() == ["group.created", "group.created"]


def test_entra_lookup_excluding_members(scim):
    """Entra matches groups with ``excludedAttributes=members&filter=displayName eq "…"``:
    a ListResponse without members; displayName compares case-insensitively."""
    alice = make_users(scim, "Alice")[0]
    created = make_group(scim, "Group1DisplayName", [alice])
    make_group(scim, "Other")
    response = scim.get(
        '/Groups?excludedAttributes=members&filter=displayName eq "Group1DisplayName"'
    )
    assert response.status_code == 200
    assert response.json() == {
        "schemas": [LIST],
        "totalResults": 1,
        "startIndex": 1,
        "itemsPerPage": 1,
        "Resources": [{k: v for k, v in created.items() if k != "members"}],
    }
    lower = scim.get('/Groups?excludedAttributes=members&filter=displayName eq "group1displayname"')
    assert lower.json()["totalResults"] == 1
    missing = scim.get('/Groups?excludedAttributes=members&filter=displayName eq "nope"')
    assert missing.json() == {
        "schemas": [LIST],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_excluded_members_are_never_loaded(scim):
    """``excludedAttributes=members`` (list and single GET) and ``attributes=displayName``
    read no membership row: a group may have 100,000 members."""
    ids = make_users(scim, "Alice", "Bob")
    created = make_group(scim, "Big", ids)
    for path in (
        "/Groups?excludedAttributes=members",
        '/Groups?excludedAttributes=members&filter=displayName eq "Big"',
        "/Groups?attributes=displayName",
        f"/Groups/{created['id']}?excludedAttributes=members",
        f"/Groups/{created['id']}?attributes=displayName,externalId",
    ):
        with CaptureQueriesContext(connection) as captured:
            response = scim.get(path)
        assert response.status_code == 200, (path, response.content)
        assert "members" not in response.content.decode(), path
        assert membership_queries(captured) == [], path


def test_single_get_reads_the_group_once(scim, django_assert_max_num_queries):
    """GET /Groups/{id} costs a bounded number of queries (auth, group, members)."""
    created = make_group(scim, "Small", make_users(scim, "Alice", "Bob", "Carol"))
    with django_assert_max_num_queries(4):
        assert len(scim.get(f"/Groups/{created['id']}").json()["members"]) == 3


# ------------------------------------------------------------------------ Entra PATCH shapes


def test_entra_add_member_with_null_ref(scim):
    """``{"op":"Add","path":"members","value":[{"$ref":null,"value":id}]}`` adds the member;
    the answer is 204 without a body (Entra: returning members is not advisable)."""
    alice = make_users(scim, "Alice")[0]
    group = make_group(scim, "Sales")
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": alice}]}),
    )
    assert response.status_code == 204, response.content
    assert response.content == b""
    assert response["ETag"] == 'W/"2"'
    assert members_of(group["id"]) == {alice}
    event = AuditEvent.objects.get(action="group.members_added")
    assert event.after == {"count": 1, "members": [alice]}
    assert event.actor_label == "scim:Entra" and event.target_id == group["id"]


def test_entra_default_dialect_removes_only_listed_member(scim):
    """Entra's default dialect ``{"op":"Remove","path":"members","value":[{"value":id}]}``
    removes that member only, never the whole group."""
    alice, bob, carol = make_users(scim, "Alice", "Bob", "Carol")
    group = make_group(scim, "Sales", [alice, bob, carol])
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "Remove", "path": "members", "value": [{"value": bob}]}),
    )
    assert response.status_code == 204, response.content
    assert members_of(group["id"]) == {alice, carol}
    event = AuditEvent.objects.get(action="group.members_removed")
    assert event.before == {"count": 1, "members": [bob]}


def test_entra_optscim_dialect_removes_by_filter(scim):
    """With ``aadOptscim062020`` Entra removes ``members[value eq "id"]``."""
    alice, bob = make_users(scim, "Alice", "Bob")
    group = make_group(scim, "Sales", [alice, bob])
    response = scim.patch(
        f"/Groups/{group['id']}?aadOptscim062020",
        patch({"op": "remove", "path": f'members[value eq "{alice}"]'}),
    )
    assert response.status_code == 204, response.content
    assert members_of(group["id"]) == {bob}
    assert actions().count("group.members_removed") == 1


def test_entra_several_memberships_in_one_patch(scim):
    """Gallery apps must take several membership changes in one PATCH: two Add operations,
    a multi-valued Add and a Remove, applied in order."""
    a, b, c, d = make_users(scim, "A", "B", "C", "D")
    group = make_group(scim, "Sales", [d])
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch(
            {"op": "Add", "path": "members", "value": [{"$ref": None, "value": a}]},
            {"op": "Add", "path": "members", "value": [{"value": b}, {"value": c}]},
            {"op": "Remove", "path": "members", "value": [{"value": d}]},
        ),
    )
    assert response.status_code == 204, response.content
    assert members_of(group["id"]) == {a, b, c}
    assert actions()[-3:] == ["group.members_added", "group.members_added", "group.members_removed"]


def test_adding_an_existing_member_or_removing_a_stranger_is_a_no_op(scim):
    """IdPs retry: re-adding a member or removing a non-member succeeds and audits nothing."""
    alice, bob = make_users(scim, "Alice", "Bob")
    group = make_group(scim, "Sales", [alice])
    before = actions()
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch(
            {"op": "add", "path": "members", "value": [{"value": alice}]},
            {"op": "remove", "path": f'members[value eq "{bob}"]'},
        ),
    )
    assert response.status_code == 204, response.content
    assert members_of(group["id"]) == {alice}
    assert actions() == before
    assert DirectoryGroup.objects.get().version == 1


# ------------------------------------------------------------------------ Okta PATCH/PUT shapes


def test_okta_rename_with_id_in_value(scim):
    """Okta renames with a path-less replace whose value repeats the group's id."""
    group = make_group(scim, "Old name")
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "replace", "value": {"id": group["id"], "displayName": "New name"}}),
    )
    assert response.status_code == 204, response.content
    assert DirectoryGroup.objects.get().display_name == "New name"
    event = AuditEvent.objects.get(action="group.updated")
    assert event.before == {"display_name": "Old name"}
    assert event.after == {"display_name": "New name"}
    fetched = scim.get(f"/Groups/{group['id']}").json()
    assert fetched["displayName"] == "New name"
    assert fetched["meta"]["version"] == 'W/"2"'


def test_okta_changing_the_id_is_refused(scim):
    """``id`` is readOnly: a replace that changes it is 400 mutability and changes nothing."""
    group = make_group(scim, "Sales")
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "replace", "value": {"id": str(uuid.uuid4()), "displayName": "X"}}),
    )
    assert_error(response, 400, "mutability")
    assert DirectoryGroup.objects.get().display_name == "Sales"


def test_okta_mixed_membership_patch(scim):
    """Okta's membership update: the rename, a ``remove members[value eq …]`` and an
    ``add members [{value, display}]`` (no ``type``) in one PATCH."""
    alice, bob, carol = make_users(scim, "Alice", "Bob", "Carol")
    group = make_group(scim, "Okta Push", [alice, bob])
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch(
            {"op": "replace", "value": {"id": group["id"], "displayName": "Okta Push"}},
            {"op": "remove", "path": f'members[value eq "{alice}"]'},
            {"op": "add", "path": "members", "value": [{"value": carol, "display": "Carol"}]},
        ),
    )
    assert response.status_code == 204, response.content
    assert members_of(group["id"]) == {bob, carol}
    assert actions()[-2:] == ["group.members_removed", "group.members_added"]
    assert "group.updated" not in actions()


def test_okta_put_with_full_member_list(scim):
    """Okta (AIW) PUTs the whole group, id and members without ``type`` included: the
    membership becomes exactly that list, the answer is the whole group."""
    alice, bob, carol = make_users(scim, "Alice", "Bob", "Carol")
    group = make_group(scim, "Okta Push", [alice, bob])
    response = scim.put(
        f"/Groups/{group['id']}",
        {
            "schemas": [GROUP],
            "id": group["id"],
            "displayName": "Okta Push Renamed",
            "members": [{"value": bob, "display": "Bob"}, {"value": carol, "display": "Carol"}],
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert response["ETag"] == body["meta"]["version"] == 'W/"3"'
    assert body == {
        "schemas": [GROUP],
        "id": group["id"],
        "displayName": "Okta Push Renamed",
        "members": body["members"],
        "meta": {**group["meta"], "lastModified": body["meta"]["lastModified"], "version": 'W/"3"'},
    }
    assert sorted(m["value"] for m in body["members"]) == sorted([bob, carol])
    assert members_of(group["id"]) == {bob, carol}
    replaced = AuditEvent.objects.get(action="group.members_replaced")
    assert replaced.before == {"count": 1, "members": [alice]}
    assert replaced.after == {"count": 1, "members": [carol]}
    assert actions()[-2:] == ["group.updated", "group.members_replaced"]


def test_patch_replace_members_sets_exact_list(scim):
    """``replace members`` makes the membership exactly the given list."""
    alice, bob = make_users(scim, "Alice", "Bob")
    group = make_group(scim, "Sales", [alice])
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "replace", "path": "members", "value": [{"value": bob}]}),
    )
    assert response.status_code == 204, response.content
    assert members_of(group["id"]) == {bob}


def test_patch_with_attributes_returns_the_group(scim):
    """A client that asks for attributes on PATCH gets 200 with that projection."""
    alice = make_users(scim, "Alice")[0]
    group = make_group(scim, "Sales")
    response = scim.patch(
        f"/Groups/{group['id']}?attributes=members",
        patch({"op": "add", "path": "members", "value": [{"value": alice}]}),
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "schemas": [GROUP],
        "id": group["id"],
        "members": [member(alice, "Alice")],
    }


# ------------------------------------------------------------------------ refusals


def test_unknown_member_is_400_and_nothing_changes(scim):
    """One unknown member id fails the whole PATCH (RFC 7644 §3.5.2 atomicity): the rename
    and the valid member before it are rolled back, nothing is audited."""
    alice = make_users(scim, "Alice")[0]
    group = make_group(scim, "Sales")
    before = actions()
    missing = str(uuid.uuid4())
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch(
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "add", "path": "members", "value": [{"value": alice}]},
            {"op": "add", "path": "members", "value": [{"value": missing}]},
        ),
    )
    assert_error(response, 400, "invalidValue")
    assert missing in response.json()["detail"]
    stored = DirectoryGroup.objects.get()
    assert (stored.display_name, stored.version) == ("Sales", 1)
    assert members_of(group["id"]) == set()
    assert actions() == before


@pytest.mark.parametrize("value", ["not-a-uuid", "", 42], ids=["garbage", "empty", "number"])
def test_bad_member_values_are_400(scim, value):
    """Member values that cannot be user ids are refused on create and on PATCH."""
    assert_error(
        scim.post(
            "/Groups", {"schemas": [GROUP], "displayName": "X", "members": [{"value": value}]}
        ),
        400,
        "invalidValue",
    )
    assert not DirectoryGroup.objects.exists()
    group = make_group(scim, "Sales")
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "add", "path": "members", "value": [{"value": value}]}),
    )
    assert_error(response, 400, "invalidValue")


def test_create_with_unknown_member_creates_nothing(scim):
    """POST /Groups naming an unknown member is 400 and leaves no group behind."""
    response = scim.post(
        "/Groups",
        {"schemas": [GROUP], "displayName": "Ghosts", "members": [{"value": str(uuid.uuid4())}]},
    )
    assert_error(response, 400, "invalidValue")
    assert not DirectoryGroup.objects.exists()
    assert not AuditEvent.objects.filter(action="group.created").exists()


def test_deleted_user_cannot_be_added(scim):
    """A soft-deleted user is unknown to membership changes."""
    alice = make_users(scim, "Alice")[0]
    assert scim.delete(f"/Users/{alice}").status_code == 204
    group = make_group(scim, "Sales")
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "add", "path": "members", "value": [{"value": alice}]}),
    )
    assert_error(response, 400, "invalidValue")


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "members", "value": "not-a-list"},
        {"op": "add", "path": "members", "value": [{"display": "no value"}]},
        {"op": "add", "path": 'members[value eq "x"]', "value": [{"value": "x"}]},
        {"op": "remove", "path": 'members[display eq "Alice"]'},
        {"op": "replace", "path": "nosuchattribute", "value": "x"},
        {"op": "move", "path": "members", "value": []},
    ],
    ids=["scalar", "no-value", "add-filter", "remove-by-display", "unknown-attr", "bad-op"],
)
def test_malformed_group_patches_are_400(scim, operation):
    """Malformed PATCH operations are a SCIM 400 and leave the group untouched."""
    alice = make_users(scim, "Alice")[0]
    group = make_group(scim, "Sales", [alice])
    response = scim.patch(f"/Groups/{group['id']}", patch(operation))
    assert_error(response, 400)
    assert members_of(group["id"]) == {alice}
    assert DirectoryGroup.objects.get().version == 1


def test_patch_without_operations_is_400(scim):
    """A PatchOp without Operations, or with an empty list, is 400 invalidSyntax."""
    group = make_group(scim, "Sales")
    assert_error(scim.patch(f"/Groups/{group['id']}", {"schemas": [PATCH]}), 400, "invalidSyntax")
    assert_error(
        scim.patch(f"/Groups/{group['id']}", {"schemas": ["urn:x"], "Operations": []}),
        400,
        "invalidSyntax",
    )


def test_unknown_and_garbage_group_ids_are_404(scim):
    """Unknown ids are a SCIM 404 for every method."""
    for path in ("/Groups/7f4b4a4e-0000-0000-0000-000000000000", "/Groups/not-a-uuid"):
        assert_error(scim.get(path), 404)
        assert_error(scim.put(path, {"schemas": [GROUP], "displayName": "X"}), 404)
        assert_error(scim.patch(path, patch({"op": "remove", "path": "members"})), 404)
        assert_error(scim.delete(path), 404)


def test_stale_if_match_is_412(scim):
    """If-Match with an old version is 412 and changes nothing (RFC 7644 §3.14)."""
    group = make_group(scim, "Sales")
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "replace", "path": "displayName", "value": "X"}),
        HTTP_IF_MATCH='W/"9"',
    )
    assert_error(response, 412)
    assert DirectoryGroup.objects.get().display_name == "Sales"
    ok = scim.patch(
        f"/Groups/{group['id']}",
        patch({"op": "replace", "path": "displayName", "value": "X"}),
        HTTP_IF_MATCH='W/"1"',
    )
    assert ok.status_code == 204


# ------------------------------------------------------------------------ delete


def test_delete_is_204_then_404(scim):
    """DELETE soft-deletes: 204, then 404 for GET, PATCH and DELETE; memberships end, the
    row and its history stay, and the name can be used again."""
    alice = make_users(scim, "Alice")[0]
    group = make_group(scim, "Sales", [alice])
    response = scim.delete(f"/Groups/{group['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_error(scim.get(f"/Groups/{group['id']}"), 404)
    assert_error(scim.delete(f"/Groups/{group['id']}"), 404)
    assert scim.get("/Groups").json()["totalResults"] == 0
    stored = DirectoryGroup.objects.get()
    assert stored.deleted_at is not None
    assert members_of(group["id"]) == set()
    event = AuditEvent.objects.get(action="group.deleted")
    assert event.before == {"display_name": "Sales", "member_count": 1}
    assert "groups" not in scim.get(f"/Users/{alice}").json()
    assert scim.post("/Groups", {"schemas": [GROUP], "displayName": "Sales"}).status_code == 201


# ------------------------------------------------------------------------ cost and scope


def _group_with_members(scim, name, size):
    source = IdentitySource.objects.get(name="Entra")
    people = Identity.objects.bulk_create(
        Identity(source=source, user_name=f"{name}-{i}@contoso.example") for i in range(size)
    )
    group = make_group(scim, name)
    GroupMembership.objects.bulk_create(
        GroupMembership(group_id=group["id"], identity=p) for p in people
    )
    return group


def _queries_to_add_two(scim, group):
    newcomers = make_users(scim, f"new1-{group['id'][:8]}", f"new2-{group['id'][:8]}")
    with CaptureQueriesContext(connection) as captured:
        response = scim.patch(
            f"/Groups/{group['id']}",
            patch({"op": "Add", "path": "members", "value": [{"value": n} for n in newcomers]}),
        )
    assert response.status_code == 204, response.content
    assert members_of(group["id"]) >= set(newcomers)
    assert group_wide_membership_queries(captured, newcomers) == []
    return len(captured.captured_queries)


def test_adding_members_costs_the_same_whatever_the_group_size(scim):
    """Adding 2 members is O(k): the same number of queries for a group of 5 and a group of
    500, and every membership query names the members concerned, so none reads the whole
    group. (The total includes the lifecycle events derived for each new member.)"""
    small = _queries_to_add_two(scim, _group_with_members(scim, "small", 5))
    large = _queries_to_add_two(scim, _group_with_members(scim, "large", 500))
    assert small == large < 100


def test_removing_members_costs_the_same_whatever_the_group_size(scim):
    """Entra's default-dialect removal is O(k) as well."""
    counts = []
    for name, size in (("small", 5), ("large", 500)):
        group = _group_with_members(scim, name, size)
        victim = next(iter(members_of(group["id"])))
        with CaptureQueriesContext(connection) as captured:
            response = scim.patch(
                f"/Groups/{group['id']}",
                patch({"op": "Remove", "path": "members", "value": [{"value": victim}]}),
            )
        assert response.status_code == 204
        assert len(members_of(group["id"])) == size - 1
        assert group_wide_membership_queries(captured, [victim]) == []
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1] < 100


def test_group_list_query_count_is_bounded(scim, django_assert_max_num_queries):
    """Listing groups with members costs the same for 2 groups as for 20."""
    ids = make_users(scim, "Alice", "Bob")
    for i in range(20):
        make_group(scim, f"G{i:02d}", ids)
    with django_assert_max_num_queries(5):
        body = scim.get("/Groups?count=100").json()
    assert body["totalResults"] == 20
    assert all(len(g["members"]) == 2 for g in body["Resources"])


def test_source_scope(scim, other_scim):
    """Another source neither sees nor changes this source's groups, and cannot put this
    source's users into its own groups."""
    alice = make_users(scim, "Alice")[0]
    group = make_group(scim, "Sales", [alice])
    path = f"/Groups/{group['id']}"
    assert_error(other_scim.get(path), 404)
    assert other_scim.get("/Groups").json()["totalResults"] == 0
    assert other_scim.get('/Groups?filter=displayName eq "Sales"').json()["totalResults"] == 0
    assert_error(other_scim.patch(path, patch({"op": "remove", "path": "members"})), 404)
    assert_error(other_scim.put(path, {"schemas": [GROUP], "displayName": "Mine"}), 404)
    assert_error(other_scim.delete(path), 404)
    stored = DirectoryGroup.objects.get()
    assert (stored.display_name, stored.deleted_at, members_of(stored.pk)) == (
        "Sales",
        None,
        {alice},
    )

    theirs = other_scim.post("/Groups", {"schemas": [GROUP], "displayName": "Okta group"}).json()
    response = other_scim.patch(
        f"/Groups/{theirs['id']}",
        patch({"op": "add", "path": "members", "value": [{"value": alice}]}),
    )
    assert_error(response, 400, "invalidValue")
    assert members_of(theirs["id"]) == set()
    assert_error(
        other_scim.post(
            "/Groups", {"schemas": [GROUP], "displayName": "Sneaky", "members": [{"value": alice}]}
        ),
        400,
        "invalidValue",
    )


def test_authoritative_source_sees_every_group(client, scim):
    """A source marked authoritative_for_all sees and changes every group."""
    from tests.scim_api.conftest import make_scim_client

    group = make_group(scim, "Sales")
    hr = make_scim_client(client, name="HR", kind="generic", authoritative=True)
    assert hr.get(f"/Groups/{group['id']}").status_code == 200
    response = hr.patch(
        f"/Groups/{group['id']}",
        patch({"op": "replace", "path": "displayName", "value": "Sales EU"}),
    )
    assert response.status_code == 204
    assert AuditEvent.objects.filter(action="group.updated").get().actor_label == "scim:HR"


def test_attributes_select_sub_attributes(scim):
    """``attributes=meta.version,members.value`` returns only those sub-attributes, plus
    ``id`` and ``schemas`` (RFC 7644 §3.4.2.5)."""
    alice = make_users(scim, "Alice")[0]
    group = make_group(scim, "Sales", [alice])
    response = scim.get(f"/Groups/{group['id']}?attributes=meta.version,members.value")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "schemas": [GROUP],
        "id": group["id"],
        "members": [{"value": alice}],
        "meta": {"version": 'W/"1"'},
    }


@pytest.mark.django_db(transaction=True)
def test_concurrent_member_additions_both_land(client):
    """Two IdP workers adding different members to one group at the same moment: both
    PATCHes succeed, no membership is lost, the version moves twice (the service locks the
    group row). PostgreSQL only: SQLite serialises writers on its own."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    from django.db import connections
    from django.test import Client

    from tests.scim_api.conftest import make_scim_client

    scim = make_scim_client(client)
    people = make_users(scim, *[f"P{i}" for i in range(6)])
    group = make_group(scim, "Race")
    barrier = threading.Barrier(2)
    statuses = []

    def add(ids):
        worker = make_scim_client(Client())
        try:
            barrier.wait(timeout=10)
            response = worker.patch(
                f"/Groups/{group['id']}",
                patch({"op": "add", "path": "members", "value": [{"value": i} for i in ids]}),
            )
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=add, args=(people[:3],)),
        threading.Thread(target=add, args=(people[3:],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [204, 204]
    assert members_of(group["id"]) == set(people)
    assert DirectoryGroup.objects.get().version == 3
    assert actions().count("group.members_added") == 2


@pytest.mark.parametrize(
    "raw",
    [
        '{"displayName": "a\\u0000b"}',
        '{"displayName": "\\ud800"}',
        '{"displayName": "ok", "members": [{"value": "\\u0000"}]}',
        '{"displayName": "ok", "externalId": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"displayName": "ok", "x": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}",
    ],
    ids=["nul", "lone-surrogate", "nul-in-member", "deep-but-parsable", "too-deep"],
)
def test_unstorable_or_too_deep_bodies_are_400(scim, raw):
    """Text a database cannot store (NUL, unpaired surrogates) and JSON nested too deeply
    are a SCIM 400, never a 500, on SQLite and PostgreSQL alike."""
    assert_error(scim.post("/Groups", raw), 400)
    assert not DirectoryGroup.objects.exists()
