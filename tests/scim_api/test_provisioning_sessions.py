"""Whole provisioning sessions replayed through the API, request by request, the way
Microsoft Entra ID and Okta drive a SCIM server (shared/IDP-BEHAVIOUR.md). Each session ends
by checking the database and the audit trail it leaves."""

import uuid
from collections import Counter
from urllib.parse import quote

import pytest

from governance.audit.models import AuditEvent
from governance.identities.models import DirectoryGroup, GroupMembership, Identity, IdentitySource

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
EMPTY_LIST = {
    "schemas": [LIST],
    "totalResults": 0,
    "startIndex": 1,
    "itemsPerPage": 0,
    "Resources": [],
}


def patch(*operations):
    return {"schemas": [PATCH], "Operations": list(operations)}


def trail(source_name, prefixes=("identity.", "group.")):
    """(action, subject) of the source's audit events, in order: the directory changes by
    default. The subject is the target id, or for lifecycle events the person's id."""
    events = AuditEvent.objects.filter(actor_label=f"scim:{source_name}").order_by("id")
    return [
        (
            e.action,
            (e.after or {}).get("identity") if e.action.startswith("lifecycle.") else e.target_id,
        )
        for e in events
        if e.action.startswith(prefixes)
    ]


def members_of(group_id):
    return {
        str(i)
        for i in GroupMembership.objects.filter(group_id=group_id).values_list(
            "identity_id", flat=True
        )
    }


def ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json() if response.content else None


# ------------------------------------------------------------------------ Microsoft Entra ID


def entra_user(upn, external_id, given, family, employee_number):
    """Entra's POST /Users body (S1), including the nulls older sample code sends."""
    return {
        "schemas": [USER, ENT],
        "externalId": external_id,
        "userName": upn,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": upn}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "roles": [],
        "nickName": None,
        ENT: {"employeeNumber": employee_number, "department": None},
    }


def entra_find_or_create(scim, upn, external_id, given, family, number):
    found = ok(scim.get(f'/Users?filter=userName eq "{upn}"'))
    assert found == EMPTY_LIST
    created = ok(scim.post("/Users", entra_user(upn, external_id, given, family, number)), 201)
    assert created["userName"] == upn and created["active"] is True
    return created["id"]


def test_entra_provisioning_session(scim):
    """Test Connection, matching queries, creates, both PATCH dialects, manager, group with
    member batches and both removal dialects, disable with "False", hard delete."""
    # Test Connection: a user that cannot exist, then a random user and group.
    guid = str(uuid.uuid4())
    assert ok(scim.get(f'/Users?filter=userName eq "{guid}"')) == EMPTY_LIST
    assert ok(scim.get(f'/Users?filter=externalId eq "{guid}"')) == EMPTY_LIST
    assert ok(scim.get(f'/Groups?excludedAttributes=members&filter=displayName eq "{guid}"')) == (
        EMPTY_LIST
    )

    # Initial cycle: match by userName, create when absent.
    manager = entra_find_or_create(
        scim,
        "megan@contoso.example",
        "4a1f0c52-1b7e-4bd7-9d0b-1f5f4d2b7a01",
        "Megan",
        "Bowen",
        "100",
    )
    adele = entra_find_or_create(
        scim,
        "adele@contoso.example",
        "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "Adele",
        "Vance",
        "701",
    )
    alex = entra_find_or_create(
        scim,
        "alex@contoso.example",
        "7c2b3c4d-0000-4f8e-bf98-7363c4aed4ef",
        "Alex",
        "Wilber",
        "702",
    )
    diego = entra_find_or_create(
        scim,
        "diego@contoso.example",
        "9d3e4f5a-0000-4f8e-bf98-7363c4aed4ef",
        "Diego",
        "Siciliani",
        "703",
    )
    # Matching by externalId, quoted or as in Entra's sample unquoted, and by work email.
    by_external = ok(scim.get('/Users?filter=externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"'))
    assert [r["id"] for r in by_external["Resources"]] == [adele]
    unquoted = ok(scim.get("/Users?filter=externalId eq 0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"))
    assert [r["id"] for r in unquoted["Resources"]] == [adele]
    by_email = ok(scim.get('/Users?filter=emails[type eq "work"].value eq "adele@contoso.example"'))
    assert [r["id"] for r in by_email["Resources"]] == [adele]

    # Incremental cycle, default dialect: one Replace per attribute.
    body = ok(
        scim.patch(
            f"/Users/{adele}",
            patch(
                {"op": "Replace", "path": "displayName", "value": "Adele V."},
                {
                    "op": "Replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "av@contoso.example",
                },
                {"op": "Replace", "path": "name.givenName", "value": "Adèle"},
                {"op": "Replace", "path": "name.familyName", "value": "Vance-Smith"},
                {"op": "Replace", "path": "externalId", "value": "adele-v"},
                {"op": "Replace", "path": f"{ENT}:employeeNumber", "value": "7010"},
            ),
        )
    )
    assert body["displayName"] == "Adele V."
    assert body["emails"] == [{"value": "av@contoso.example", "type": "work", "primary": True}]
    assert body["name"]["givenName"] == "Adèle" and body["name"]["familyName"] == "Vance-Smith"
    assert body["externalId"] == "adele-v" and body[ENT]["employeeNumber"] == "7010"

    # aadOptscim062020: value paths, then one no-path replace with dotted and URN keys.
    body = ok(
        scim.patch(
            f"/Users/{adele}?aadOptscim062020",
            patch(
                {
                    "op": "replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "adele@contoso.example",
                },
                {
                    "op": "replace",
                    "value": {
                        "displayName": "Adele Vance",
                        "name.givenName": "Adele",
                        "name.familyName": "Vance",
                        f"{ENT}:employeeNumber": "701",
                        f"{ENT}:department": "Retail",
                    },
                },
            ),
        )
    )
    assert body["name"]["givenName"] == "Adele" and body[ENT]["department"] == "Retail"
    assert (
        "name.givenName" not in body
        and "name.givenName" not in Identity.objects.get(pk=adele).attributes
    )

    # Add a single-valued attribute: "Add" (default), then the same as "add" (no change).
    assert (
        ok(
            scim.patch(f"/Users/{adele}", patch({"op": "Add", "path": "nickName", "value": "Babs"}))
        )["nickName"]
        == "Babs"
    )
    ok(
        scim.patch(
            f"/Users/{adele}?aadOptscim062020",
            patch({"op": "add", "path": "nickName", "value": "Babs"}),
        )
    )

    # Manager: Add with path "manager" and the [{"$ref": null, "value"}] array, or the URN path.
    body = ok(
        scim.patch(
            f"/Users/{adele}",
            patch({"op": "Add", "path": "manager", "value": [{"$ref": None, "value": manager}]}),
        )
    )
    assert body[ENT]["manager"]["value"] == manager
    body = ok(
        scim.patch(
            f"/Users/{alex}",
            patch(
                {"op": "Add", "path": f"{ENT}:manager", "value": [{"$ref": None, "value": manager}]}
            ),
        )
    )
    assert body[ENT]["manager"]["$ref"] == f"http://testserver/scim/v2/Users/{manager}"

    # Groups: match by displayName without members, create, then member batches.
    lookup = '/Groups?excludedAttributes=members&filter=displayName eq "Retail Team"'
    assert ok(scim.get(lookup)) == EMPTY_LIST
    group = ok(
        scim.post(
            "/Groups",
            {
                "schemas": [GROUP, MS_GROUP],
                "externalId": "5b1f9a1e-4e0b-4b5e-9d7b-1a2b3c4d5e6f",
                "displayName": "Retail Team",
                "meta": {"resourceType": "Group"},
            },
        ),
        201,
    )["id"]
    assert [r["id"] for r in ok(scim.get(lookup))["Resources"]] == [group]
    assert "members" not in ok(scim.get(lookup))["Resources"][0]
    add = {"op": "Add", "path": "members"}
    assert (
        ok(
            scim.patch(
                f"/Groups/{group}",
                patch(
                    {**add, "value": [{"$ref": None, "value": adele}]},
                    {
                        **add,
                        "value": [{"$ref": None, "value": alex}, {"$ref": None, "value": diego}],
                    },
                ),
            ),
            204,
        )
        is None
    )
    ok(
        scim.patch(f"/Groups/{group}", patch({**add, "value": [{"$ref": None, "value": manager}]})),
        204,
    )
    assert members_of(group) == {adele, alex, diego, manager}
    # Removal, default dialect (value list) then aadOptscim062020 (filter): only those go.
    ok(
        scim.patch(
            f"/Groups/{group}",
            patch({"op": "Remove", "path": "members", "value": [{"value": diego}]}),
        ),
        204,
    )
    ok(
        scim.patch(
            f"/Groups/{group}?aadOptscim062020",
            patch({"op": "remove", "path": f'members[value eq "{manager}"]'}),
        ),
        204,
    )
    assert members_of(group) == {adele, alex}

    # Disable: the default dialect sends the boolean as the string "False".
    body = ok(
        scim.patch(f"/Users/{adele}", patch({"op": "Replace", "path": "active", "value": "False"}))
    )
    assert body["active"] is False
    assert ok(scim.get(f"/Users/{adele}"))["active"] is False
    assert [
        r["id"]
        for r in ok(scim.get('/Users?filter=userName eq "adele@contoso.example"'))["Resources"]
    ] == [adele]

    # Hard delete after Entra's 30-day soft delete.
    assert scim.delete(f"/Users/{adele}").status_code == 204
    assert scim.get(f"/Users/{adele}").status_code == 404

    # Final state.
    people = {str(i.pk): i for i in Identity.objects.all()}
    assert set(people) == {manager, adele, alex, diego}
    gone = people[adele]
    assert (gone.active, gone.deleted_at is not None) == (False, True)
    assert (gone.display_name, gone.nick_name, gone.department) == ("Adele Vance", "Babs", "Retail")
    assert str(gone.manager_id) == manager
    assert str(people[alex].manager_id) == manager
    assert all(people[p].active and people[p].deleted_at is None for p in (manager, alex, diego))
    stored_group = DirectoryGroup.objects.get()
    assert (stored_group.display_name, stored_group.source.name) == ("Retail Team", "Entra")
    assert members_of(group) == {alex}
    assert trail("Entra") == [
        ("identity.created", manager),
        ("identity.created", adele),
        ("identity.created", alex),
        ("identity.created", diego),
        ("identity.updated", adele),
        ("identity.updated", adele),
        ("identity.updated", adele),
        ("identity.updated", adele),
        ("identity.updated", alex),
        ("group.created", group),
        ("group.members_added", group),
        ("group.members_added", group),
        ("group.members_added", group),
        ("group.members_removed", group),
        ("group.members_removed", group),
        ("identity.deactivated", adele),
        ("identity.deleted", adele),
    ]
    # Lifecycle events derived from those changes: joiners, movers (department, manager,
    # group membership), one leaver; deleting an already disabled user adds none.
    assert Counter(trail("Entra", ("lifecycle.",))) == Counter(
        {
            ("lifecycle.joiner", manager): 1,
            ("lifecycle.joiner", adele): 1,
            ("lifecycle.joiner", alex): 1,
            ("lifecycle.joiner", diego): 1,
            ("lifecycle.mover", adele): 3,
            ("lifecycle.mover", alex): 2,
            ("lifecycle.mover", diego): 2,
            ("lifecycle.mover", manager): 2,
            ("lifecycle.leaver", adele): 1,
        }
    )
    assert AuditEvent.objects.filter(actor_label="scim:Entra").count() == 17 + 14
    deleted = AuditEvent.objects.get(action="identity.deleted")
    assert deleted.after["left_groups"] == [group]


# ------------------------------------------------------------------------ Okta


def okta_user(user_name, okta_id, given, family):
    """Okta's POST /Users body (S3): password and groups included."""
    return {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": okta_id,
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }


def okta_create(okta, user_name, okta_id, given, family):
    encoded = quote(f'userName eq "{user_name}"')
    assert ok(okta.get(f"/Users?filter={encoded}&startIndex=1&count=100")) == EMPTY_LIST
    response = okta.post(
        "/Users", okta_user(user_name, okta_id, given, family), content_type="application/json"
    )
    created = ok(response, 201)
    assert response["Location"] == created["meta"]["location"]
    return created


def test_okta_provisioning_session(other_scim, client):
    """Connector test, create flow with the case-sensitivity check and 409 re-POST, profile
    update by GET-modify-PUT, deactivation by path-less PATCH, Group Push and import paging."""
    okta = other_scim
    source = IdentitySource.objects.get(name="Okta")
    # Connector test: constant queries, integer paging fields.
    for path in ("/Users?startIndex=1&count=2", "/Groups?startIndex=1&count=100"):
        assert ok(okta.get(path)) == EMPTY_LIST

    isabella = okta_create(
        okta, "isabella.s@okta.example", "00u1k2b3c4D5e6F7g8h9", "Isabella", "Stone"
    )
    assert isabella == {
        "schemas": [USER],
        "id": isabella["id"],
        "userName": "isabella.s@okta.example",
        "active": True,
        "externalId": "00u1k2b3c4D5e6F7g8h9",
        "displayName": "Isabella Stone",
        "locale": "en-US",
        "name": {"familyName": "Stone", "givenName": "Isabella"},
        "emails": [{"value": "isabella.s@okta.example", "type": "work", "primary": True}],
        "meta": isabella["meta"],
    }
    # Username Case Sensitivity Check: the upper-cased userName finds the same user.
    upper = quote('userName eq "ISABELLA.S@OKTA.EXAMPLE"')
    assert [
        r["id"] for r in ok(okta.get(f"/Users?filter={upper}&startIndex=1&count=100"))["Resources"]
    ] == [isabella["id"]]
    # Re-POST of an existing user: 409 with the SCIM error body.
    again = okta.post(
        "/Users",
        okta_user("Isabella.S@okta.example", "00u1k2b3c4D5e6F7g8h9", "Isabella", "Stone"),
        content_type="application/json",
    )
    assert again.status_code == 409
    assert again.json()["schemas"] == [ERROR] and again.json()["scimType"] == "uniqueness"
    # SPEC test: the first user has the attributes Okta reads.
    first = ok(okta.get("/Users?count=1&startIndex=1"))["Resources"][0]
    assert first["id"] and first["name"]["familyName"] and first["name"]["givenName"]
    assert first["userName"] and first["active"] is True and first["emails"][0]["value"]
    # Unknown id: 404 with detail and the Error schema.
    missing = okta.get(f"/Users/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["schemas"] == [ERROR] and missing.json()["detail"]

    noah = okta_create(okta, "noah.k@okta.example", "00u2noah", "Noah", "Kim")["id"]
    ruth = okta_create(okta, "ruth.b@okta.example", "00u3ruth", "Ruth", "Baker")["id"]

    # Profile update: GET, edit, PUT the whole object back with id and meta.
    fetched = ok(okta.get(f"/Users/{isabella['id']}"))
    fetched["name"]["familyName"] = "Stone-Rivera"
    fetched["displayName"] = "Isabella Stone-Rivera"
    fetched["title"] = "Buyer"
    put = ok(okta.put(f"/Users/{isabella['id']}", fetched, content_type="application/json"))
    assert put["name"]["familyName"] == "Stone-Rivera" and put["title"] == "Buyer"
    assert put["meta"]["version"] == 'W/"2"'

    # Group Push: create, rename (id repeated), membership with the rename sent along.
    group = ok(okta.post("/Groups", {"displayName": "Okta Buyers", "members": []}), 201)["id"]
    rename = {"op": "replace", "value": {"id": group, "displayName": "Buyers"}}
    ok(okta.patch(f"/Groups/{group}", patch(rename)), 204)
    ok(
        okta.patch(
            f"/Groups/{group}",
            patch(
                rename,
                {
                    "op": "add",
                    "path": "members",
                    "value": [
                        {"value": isabella["id"], "display": "isabella.s@okta.example"},
                        {"value": noah, "display": "noah.k@okta.example"},
                    ],
                },
            ),
        ),
        204,
    )
    ok(
        okta.patch(
            f"/Groups/{group}",
            patch(
                rename,
                {"op": "remove", "path": f'members[value eq "{noah}"]'},
                {
                    "op": "add",
                    "path": "members",
                    "value": [{"value": ruth, "display": "ruth.b@okta.example"}],
                },
            ),
        ),
        204,
    )
    assert members_of(group) == {isabella["id"], ruth}
    # An unlinked pushed group is deleted in the app.
    temp = ok(okta.post("/Groups", {"displayName": "Okta Temp", "members": []}), 201)["id"]
    assert okta.delete(f"/Groups/{temp}").status_code == 204

    # Deactivation: path-less replace; the user stays readable with active false.
    body = ok(okta.patch(f"/Users/{noah}", patch({"op": "replace", "value": {"active": False}})))
    assert body["active"] is False
    assert ok(okta.get(f"/Users/{noah}"))["active"] is False

    # Import: count=100, startIndex += 100 until totalResults; stable order, no repeats.
    Identity.objects.bulk_create(
        Identity(source=source, user_name=f"imported{i:03d}@okta.example") for i in range(150)
    )
    seen, start = [], 1
    while True:
        page = ok(okta.get(f"/Users?startIndex={start}&count=100"))
        assert isinstance(page["totalResults"], int) and page["startIndex"] == start
        seen += [r["id"] for r in page["Resources"]]
        start += 100
        if start > page["totalResults"]:
            break
    assert page["totalResults"] == 153 == len(seen) == len(set(seen))
    assert seen[:3] == [isabella["id"], noah, ruth]

    # Bad token: 401 with detail, status "401" and the Error schema.
    bad = client.get("/scim/v2/Users", HTTP_AUTHORIZATION="Bearer stw_scim_wrong")
    assert bad.status_code == 401
    assert bad.json()["schemas"] == [ERROR] and bad.json()["status"] == "401"

    # Final state: nobody deleted, Noah inactive, the password stored nowhere.
    stored = Identity.objects.get(pk=isabella["id"])
    assert (stored.family_name, stored.title, stored.active, stored.locale) == (
        "Stone-Rivera",
        "Buyer",
        True,
        "en-US",
    )
    assert not Identity.objects.filter(deleted_at__isnull=False).exists()
    assert not Identity.objects.get(pk=noah).active
    assert "password" not in stored.attributes
    assert not AuditEvent.objects.filter(after__icontains="1mz050nq").exists()
    buyers = DirectoryGroup.objects.get(pk=group)
    assert (buyers.display_name, buyers.deleted_at, buyers.source_id) == ("Buyers", None, source.pk)
    assert DirectoryGroup.objects.get(pk=temp).deleted_at is not None
    assert trail("Okta") == [
        ("identity.created", isabella["id"]),
        ("identity.created", noah),
        ("identity.created", ruth),
        ("identity.updated", isabella["id"]),
        ("group.created", group),
        ("group.updated", group),
        ("group.members_added", group),
        ("group.members_removed", group),
        ("group.members_added", group),
        ("group.created", temp),
        ("group.deleted", temp),
        ("identity.deactivated", noah),
    ]
    assert Counter(trail("Okta", ("lifecycle.",))) == Counter(
        {
            ("lifecycle.joiner", isabella["id"]): 1,
            ("lifecycle.joiner", noah): 1,
            ("lifecycle.joiner", ruth): 1,
            ("lifecycle.mover", isabella["id"]): 2,
            ("lifecycle.mover", noah): 2,
            ("lifecycle.mover", ruth): 1,
            ("lifecycle.leaver", noah): 1,
        }
    )
    assert AuditEvent.objects.filter(actor_label="scim:Okta").count() == 12 + 9


def test_removing_active_never_reactivates_a_leaver(scim):
    """Steward has no unassigned activation state: ``remove active`` keeps a deactivated
    user deactivated instead of falling back to the default, and is not audited."""
    user = ok(
        scim.post("/Users", entra_user("leaver@contoso.example", "x1", "Lee", "Ver", "9")), 201
    )
    ok(
        scim.patch(
            f"/Users/{user['id']}", patch({"op": "Replace", "path": "active", "value": "False"})
        )
    )
    body = ok(scim.patch(f"/Users/{user['id']}", patch({"op": "remove", "path": "active"})))
    assert body["active"] is False
    assert Identity.objects.get().active is False
    assert [a for a, _ in trail("Entra")] == ["identity.created", "identity.deactivated"]
