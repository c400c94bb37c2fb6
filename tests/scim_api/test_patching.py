"""Tests for the pure SCIM PATCH engine (RFC 7644 §3.5.2) with real IdP payloads."""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import pytest

from scim_api import patching
from scim_api.patching import (
    MAX_OPERATIONS,
    GroupPatch,
    MemberOp,
    PatchError,
    apply_user_patch,
    plan_group_patch,
)
from scim_api.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    Attribute,
    ResourceSchema,
    ResourceType,
)

ENT = ENTERPRISE_USER_SCHEMA
ABSENT = object()  # marks a key the patched resource must not have


def user() -> dict[str, Any]:
    """A User as Steward's serializer returns it: canonical keys, extension under its URN."""
    return {
        "schemas": [USER_SCHEMA, ENT],
        "id": "2819c223",
        "externalId": "ext-1",
        "meta": {
            "resourceType": "User",
            "created": "2024-01-01T00:00:00Z",
            "lastModified": "2024-01-02T00:00:00Z",
            "location": "https://steward.example/scim/v2/Users/2819c223",
            "version": 'W/"1"',
        },
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "active": True,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@home.example", "type": "home"},
        ],
        "groups": [{"value": "g1", "display": "Staff", "type": "direct"}],
        ENT: {
            "employeeNumber": "701984",
            "manager": {"value": "26118915", "displayName": "John Smith"},
        },
    }


def group() -> dict[str, Any]:
    """A Group as handed to the engine: attributes and meta, never members."""
    return {
        "schemas": [GROUP_SCHEMA],
        "id": "e9e30dba",
        "externalId": "okta-1",
        "displayName": "Tour Guides",
        "meta": {"resourceType": "Group", "version": 'W/"3"'},
    }


def expected_user(changes: dict[str, Any]) -> dict[str, Any]:
    result = user()
    for key, value in changes.items():
        if value is ABSENT:
            result.pop(key, None)
        else:
            result[key] = value
    return result


WORK = {"value": "bjensen@example.com", "type": "work", "primary": True}
HOME = {"value": "babs@home.example", "type": "home"}
MANAGER = {"value": "26118915", "displayName": "John Smith"}


# --------------------------------------------------------------------------------------
# Users: successful operations
# --------------------------------------------------------------------------------------

USER_CASES = [
    # -- real IdP payloads --------------------------------------------------------------
    pytest.param(
        [{"op": "Replace", "path": "active", "value": "False"}],
        {"active": False},
        id="entra-default-active-string-False",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "value": {
                    "name.givenName": "Jo",
                    f"{ENT}:employeeNumber": "99",
                    "displayName": "Jo X",
                },
            }
        ],
        {
            "name": {"givenName": "Jo", "familyName": "Jensen"},
            "displayName": "Jo X",
            ENT: {"employeeNumber": "99", "manager": MANAGER},
        },
        id="entra-aadOptscim062020-dotted-and-urn-keys",
    ),
    pytest.param(
        [{"op": "replace", "value": {"active": False}}],
        {"active": False},
        id="okta-deactivate",
    ),
    pytest.param(
        [
            {"op": "Remove", "path": 'emails[type eq "work"]'},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@x.com"},
        ],
        {"emails": [HOME, {"type": "work", "value": "new@x.com"}]},
        id="entra-replace-nonmatching-value-path-adds",
    ),
    pytest.param(
        [{"op": "Add", "path": "manager", "value": [{"$ref": None, "value": "u9"}]}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "u9"}}},
        id="entra-manager-list-with-null-ref",
    ),
    pytest.param(
        [{"op": "Add", "path": f"{ENT}:manager", "value": "u9"}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "u9"}}},
        id="entra-manager-bare-string-urn-path",
    ),
    pytest.param(
        [{"op": "replace", "value": {"id": "2819c223", "displayName": "New"}}],
        {"displayName": "New"},
        id="okta-replace-with-unchanged-id",
    ),
    # -- names are case-insensitive and stored canonically ------------------------------
    pytest.param(
        [{"op": "replace", "path": "UserName", "value": "babs@example.com"}],
        {"userName": "babs@example.com"},
        id="capitalised-path-UserName",
    ),
    pytest.param(
        [{"op": "replace", "path": "Active", "value": "false"}],
        {"active": False},
        id="capitalised-path-Active",
    ),
    pytest.param(
        [{"op": "replace", "value": {"UserName": "babs@example.com", "Active": "TRUE"}}],
        {"userName": "babs@example.com", "active": True},
        id="capitalised-keys-in-value-object",
    ),
    pytest.param(
        [{"OP": "replace", "PATH": "NAME.GIVENNAME", "VALUE": "Barb"}],
        {"name": {"givenName": "Barb", "familyName": "Jensen"}},
        id="capitalised-member-names-and-sub-attribute",
    ),
    pytest.param(
        [{"op": "replace", "path": f"{USER_SCHEMA}:displayName", "value": "B"}],
        {"displayName": "B"},
        id="core-urn-qualified-path",
    ),
    pytest.param(
        [{"op": "replace", "path": f"{ENT.lower()}:EMPLOYEENUMBER", "value": "7"}],
        {ENT: {"employeeNumber": "7", "manager": MANAGER}},
        id="lower-case-extension-urn-path",
    ),
    pytest.param(
        [{"op": "add", "path": "department", "value": "Sales"}],
        {ENT: {"employeeNumber": "701984", "manager": MANAGER, "department": "Sales"}},
        id="extension-attribute-without-urn",
    ),
    pytest.param(
        [{"op": "add", "value": {ENT: {"Department": "Sales", "costCenter": "42"}}}],
        {
            ENT: {
                "employeeNumber": "701984",
                "manager": MANAGER,
                "department": "Sales",
                "costCenter": "42",
            }
        },
        id="extension-urn-key-with-object",
    ),
    pytest.param(
        [{"op": "replace", "value": {"schemas": ["whatever"], "title": "Boss"}}],
        {"title": "Boss"},
        id="schemas-key-in-value-object-ignored",
    ),
    # -- singular attributes -----------------------------------------------------------
    pytest.param(
        [{"op": "add", "path": "nickName", "value": "Babs"}],
        {"nickName": "Babs"},
        id="add-singular-sets",
    ),
    pytest.param(
        [{"op": "add", "path": "displayName", "value": "Added"}],
        {"displayName": "Added"},
        id="add-singular-overwrites-like-replace",
    ),
    pytest.param(
        [{"op": "replace", "path": "displayName", "value": None}],
        {"displayName": ABSENT},
        id="null-replace-removes-singular",
    ),
    pytest.param(
        [{"op": "replace", "value": {"nickName": None, "displayName": None, "title": "T"}}],
        {"displayName": ABSENT, "title": "T"},
        id="null-in-value-object-removes-unmapped",
    ),
    pytest.param(
        [{"op": "replace", "path": "externalId", "value": "ext-2"}],
        {"externalId": "ext-2"},
        id="replace-externalId",
    ),
    pytest.param(
        [{"op": "add", "path": "password", "value": "t1meMa$heen"}],
        {"password": "t1meMa$heen"},
        id="write-only-password",
    ),
    pytest.param(
        [{"op": "replace", "path": "name", "value": {"givenName": "B"}}],
        {"name": {"givenName": "B", "familyName": "Jensen"}},
        id="replace-complex-keeps-unnamed-sub-attributes",
    ),
    pytest.param(
        [{"op": "add", "value": {"name": {"middleName": "Q", "familyName": None}}}],
        {"name": {"givenName": "Barbara", "middleName": "Q"}},
        id="no-path-complex-merges-and-null-sub-removes",
    ),
    pytest.param(
        [{"op": "replace", "path": "manager.value", "value": "u9"}],
        {ENT: {"employeeNumber": "701984", "manager": {"value": "u9"}}},
        id="new-manager-drops-stale-readonly-displayName",
    ),
    pytest.param(
        [{"op": "replace", "path": "manager", "value": {"value": "26118915"}}],
        {},
        id="same-manager-keeps-displayName",
    ),
    # -- multi-valued attributes --------------------------------------------------------
    pytest.param(
        [{"op": "add", "path": "emails", "value": [{"value": "x@y.z", "type": "other"}]}],
        {"emails": [WORK, HOME, {"value": "x@y.z", "type": "other"}]},
        id="add-multi-appends",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": {"value": "x@y.z", "type": "other"}}],
        {"emails": [WORK, HOME, {"value": "x@y.z", "type": "other"}]},
        id="add-multi-single-object",
    ),
    pytest.param(
        [
            {
                "op": "add",
                "path": "emails",
                "value": [{"Value": "BABS@home.example", "TYPE": "home"}],
            }
        ],
        {},
        id="add-multi-skips-equal-element",
    ),
    pytest.param(
        [{"op": "replace", "path": "emails", "value": [{"value": "only@x.z"}]}],
        {"emails": [{"value": "only@x.z"}]},
        id="replace-multi-without-filter-replaces-all",
    ),
    pytest.param(
        [{"op": "replace", "path": "emails", "value": None}],
        {"emails": ABSENT},
        id="replace-multi-null-removes",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": None}],
        {},
        id="add-multi-null-is-noop",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "b@x.com"}],
        {"emails": [{**WORK, "value": "b@x.com"}, HOME]},
        id="replace-value-path-sub-attribute",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "path": 'emails[type eq "work" or type eq "home"].display',
                "value": "D",
            }
        ],
        {"emails": [{**WORK, "display": "D"}, {**HOME, "display": "D"}]},
        id="replace-value-path-sub-attribute-on-every-match",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "home"]', "value": {"display": "Home"}}],
        {"emails": [WORK, {**HOME, "display": "Home"}]},
        id="replace-value-path-merges-element",
    ),
    pytest.param(
        [{"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"}],
        {"phoneNumbers": [{"type": "mobile", "value": "+1 555"}]},
        id="add-value-path-creates-element",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "path": 'addresses[type eq "work"]',
                "value": {"streetAddress": "1 Main St", "locality": "Oslo"},
            }
        ],
        {"addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Oslo"}]},
        id="replace-value-path-without-sub-creates-element",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": [{"value": "n@x.z", "primary": "True"}]}],
        {"emails": [{**WORK, "primary": False}, HOME, {"value": "n@x.z", "primary": True}]},
        id="new-primary-clears-old-primary",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "home"].primary', "value": True}],
        {"emails": [{**WORK, "primary": False}, {**HOME, "primary": True}]},
        id="primary-via-value-path-clears-others",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "home"]'}],
        {"emails": [WORK]},
        id="remove-value-path",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "other"]'}],
        {},
        id="remove-value-path-without-match-is-noop",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "work"].primary'}],
        {"emails": [{"value": "bjensen@example.com", "type": "work"}, HOME]},
        id="remove-sub-attribute-of-matching-elements",
    ),
    pytest.param(
        [{"op": "remove", "path": "emails.type"}],
        {
            "emails": [
                {"value": "bjensen@example.com", "primary": True},
                {"value": "babs@home.example"},
            ]
        },
        id="remove-sub-attribute-of-all-elements",
    ),
    pytest.param(
        [{"op": "remove", "path": "emails", "value": [{"value": "BABS@home.example"}]}],
        {"emails": [WORK]},
        id="remove-multi-with-value-removes-only-those",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "work" or type eq "home"]'}],
        {"emails": ABSENT},
        id="remove-last-elements-drops-attribute",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "value": {"groups": [{"value": "g1", "display": "Staff", "type": "direct"}]},
            }
        ],
        {},
        id="readonly-groups-unchanged-value-ignored",
    ),
    # -- remove -------------------------------------------------------------------------
    pytest.param(
        [{"op": "remove", "path": "name.givenName"}],
        {"name": {"familyName": "Jensen"}},
        id="remove-sub-attribute-of-complex",
    ),
    pytest.param(
        [{"op": "remove", "path": "nickName"}],
        {},
        id="remove-absent-attribute-is-noop",
    ),
    pytest.param(
        [{"op": "remove", "path": f"{ENT}:manager"}],
        {ENT: {"employeeNumber": "701984"}},
        id="remove-manager-urn-path",
    ),
    pytest.param(
        [{"op": "remove", "path": "employeeNumber"}, {"op": "remove", "path": "manager"}],
        {ENT: ABSENT, "schemas": [USER_SCHEMA]},
        id="emptied-extension-dropped-from-resource-and-schemas",
    ),
    pytest.param(
        [{"op": "remove", "path": ENT}],
        {ENT: ABSENT, "schemas": [USER_SCHEMA]},
        id="remove-whole-extension-by-urn",
    ),
    # -- order --------------------------------------------------------------------------
    pytest.param(
        [
            {"op": "replace", "path": "displayName", "value": "A"},
            {"op": "replace", "path": "displayName", "value": "B"},
            {"op": "remove", "path": "title"},
        ],
        {"displayName": "B"},
        id="operations-apply-in-order",
    ),
]


@pytest.mark.parametrize(("operations", "changes"), USER_CASES)
def test_apply_user_patch(operations: list[Any], changes: dict[str, Any]) -> None:
    """Each PATCH yields exactly the expected resource; everything else is unchanged."""
    original = user()
    result = apply_user_patch(original, operations)
    assert result == expected_user(changes)
    assert original == user(), "the input resource must never be mutated"


def test_extension_is_added_to_schemas_when_first_set() -> None:
    """Setting an extension attribute on a user without one adds the URN to schemas."""
    resource = user()
    del resource[ENT]
    resource["schemas"] = [USER_SCHEMA]
    result = apply_user_patch(resource, [{"op": "add", "path": "department", "value": "R&D"}])
    assert result[ENT] == {"department": "R&D"}
    assert result["schemas"] == [USER_SCHEMA, ENT]


def test_result_does_not_alias_input_or_request() -> None:
    """The result is a deep copy: mutating it touches neither resource nor operations."""
    resource = user()
    value = [{"value": "x@y.z"}]
    result = apply_user_patch(resource, [{"op": "add", "path": "emails", "value": value}])
    result["emails"][0]["value"] = "changed"
    result["name"]["givenName"] = "changed"
    result["emails"][-1]["value"] = "changed"
    assert resource == user()
    assert value == [{"value": "x@y.z"}]


# --------------------------------------------------------------------------------------
# Users: errors
# --------------------------------------------------------------------------------------

USER_ERRORS = [
    # -- request shape ------------------------------------------------------------------
    pytest.param({"op": "add"}, "invalidSyntax", "array", id="operations-not-a-list"),
    pytest.param([], "invalidSyntax", "at least one", id="operations-empty"),
    pytest.param(["add"], "invalidSyntax", "must be an object", id="operation-not-an-object"),
    pytest.param([{"path": "title", "value": "x"}], "invalidSyntax", "'op'", id="op-missing"),
    pytest.param([{"op": "copy", "path": "title"}], "invalidSyntax", "'op'", id="op-unknown"),
    pytest.param([{"op": 1, "path": "title"}], "invalidSyntax", "'op'", id="op-not-string"),
    pytest.param(
        [{"op": "add", "Op": "remove", "path": "title"}], "invalidSyntax", "repeats", id="dup-op"
    ),
    pytest.param(
        [{"op": "remove", "path": "title"}] * (MAX_OPERATIONS + 1),
        "invalidValue",
        "too many",
        id="too-many-operations",
    ),
    pytest.param(
        [{"op": "add", "path": "title"}], "invalidValue", "requires a 'value'", id="add-no-value"
    ),
    pytest.param(
        [{"op": "add", "value": "x"}], "invalidValue", "object value", id="no-path-scalar"
    ),
    # -- paths --------------------------------------------------------------------------
    pytest.param([{"op": "remove", "path": 7}], "invalidPath", "string", id="path-not-string"),
    pytest.param(
        [{"op": "remove", "path": "emails[type eq"}],
        "invalidPath",
        "invalid path",
        id="path-malformed",
    ),
    pytest.param(
        [{"op": "add", "path": "shoeSize", "value": "9"}],
        "invalidPath",
        "shoeSize",
        id="unknown-attribute",
    ),
    pytest.param(
        [{"op": "add", "path": "name.nick", "value": "x"}], "invalidPath", "nick", id="unknown-sub"
    ),
    pytest.param(
        [{"op": "add", "value": {"shoeSize": "9"}}],
        "invalidPath",
        "shoeSize",
        id="unknown-key-no-path",
    ),
    pytest.param(
        [{"op": "add", "path": f"{GROUP_SCHEMA}:displayName", "value": "x"}],
        "invalidPath",
        "not a schema",
        id="wrong-urn",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": [{"value": "a@b", "kind": "x"}]}],
        "invalidPath",
        "kind",
        id="unknown-sub-in-element",
    ),
    pytest.param(
        [{"op": "replace", "path": 'name[givenName eq "x"]', "value": {}}],
        "invalidPath",
        "single-valued",
        id="filter-on-singular",
    ),
    # -- filters ------------------------------------------------------------------------
    pytest.param(
        [{"op": "remove", "path": 'emails[kind eq "x"]'}],
        "invalidFilter",
        "kind",
        id="filter-unknown-sub-attribute",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "a" or type eq "b"].value', "value": "x"}],
        "noTarget",
        "'eq' comparisons",
        id="nonmatching-or-filter-cannot-add",
    ),
    # -- remove -------------------------------------------------------------------------
    pytest.param([{"op": "remove"}], "noTarget", "requires a 'path'", id="remove-without-path"),
    pytest.param(
        [{"op": "Remove", "path": "userName"}],
        "mutability",
        "userName is required",
        id="remove-required",
    ),
    pytest.param(
        [{"op": "replace", "path": "userName", "value": None}],
        "mutability",
        "userName is required",
        id="null-required",
    ),
    pytest.param(
        [{"op": "replace", "path": "userName", "value": ""}],
        "invalidValue",
        "empty",
        id="empty-required",
    ),
    # -- mutability ---------------------------------------------------------------------
    pytest.param(
        [{"op": "replace", "value": {"id": "other"}}],
        "mutability",
        "id is readOnly",
        id="change-id",
    ),
    pytest.param(
        [{"op": "replace", "path": "meta.version", "value": 'W/"9"'}],
        "mutability",
        "meta is readOnly",
        id="change-meta",
    ),
    pytest.param(
        [{"op": "add", "path": "groups", "value": [{"value": "g2"}]}],
        "mutability",
        "groups is readOnly",
        id="add-readonly-groups",
    ),
    pytest.param(
        [{"op": "remove", "path": "groups"}], "mutability", "readOnly", id="remove-readonly-groups"
    ),
    pytest.param(
        [{"op": "add", "path": "manager", "value": {"value": "26118915", "displayName": "X"}}],
        "mutability",
        "manager.displayName is readOnly",
        id="set-readonly-sub-attribute",
    ),
    # -- values -------------------------------------------------------------------------
    pytest.param(
        [{"op": "replace", "path": "active", "value": "yes"}],
        "invalidValue",
        "boolean",
        id="bool-junk-string",
    ),
    pytest.param(
        [{"op": "replace", "path": "active", "value": 1}],
        "invalidValue",
        "boolean",
        id="bool-number",
    ),
    pytest.param(
        [{"op": "replace", "path": "title", "value": 42}],
        "invalidValue",
        "string",
        id="string-number",
    ),
    pytest.param(
        [{"op": "replace", "path": "title", "value": True}],
        "invalidValue",
        "string",
        id="string-bool",
    ),
    pytest.param(
        [{"op": "replace", "path": "title", "value": {"a": 1}}],
        "invalidValue",
        "string",
        id="string-object",
    ),
    pytest.param(
        [{"op": "replace", "path": "title", "value": ["a"]}],
        "invalidValue",
        "string",
        id="string-array",
    ),
    pytest.param(
        [{"op": "replace", "path": "name", "value": "Bob"}],
        "invalidValue",
        "object",
        id="complex-string",
    ),
    pytest.param(
        [{"op": "replace", "path": "emails", "value": "a@b"}],
        "invalidValue",
        "array",
        id="multi-string",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": ["a@b"]}],
        "invalidValue",
        "object",
        id="element-string",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": [{"value": 5}]}],
        "invalidValue",
        "string",
        id="element-value-number",
    ),
    pytest.param(
        [{"op": "replace", "path": "manager", "value": [{"value": "a"}, {"value": "b"}]}],
        "invalidValue",
        "one object",
        id="manager-list-of-two",
    ),
    pytest.param(
        [
            {
                "op": "replace",
                "path": "emails",
                "value": [{"value": "a@b", "primary": True}, {"value": "c@d", "primary": True}],
            }
        ],
        "invalidValue",
        "primary",
        id="two-primaries",
    ),
    pytest.param(
        [{"op": "replace", "value": {"name": {"givenName": "a", "GivenName": "b"}}}],
        "invalidValue",
        "twice",
        id="sub-attribute-given-twice",
    ),
]


@pytest.mark.parametrize(("operations", "scim_type", "detail"), USER_ERRORS)
def test_apply_user_patch_errors(operations: Any, scim_type: str, detail: str) -> None:
    """Invalid requests raise PatchError with the RFC 7644 §3.12 scimType and a clear detail."""
    original = user()
    with pytest.raises(PatchError) as info:
        apply_user_patch(original, operations)
    assert info.value.scim_type == scim_type
    assert detail in info.value.detail
    assert original == user()


def test_atomic_when_a_later_operation_fails() -> None:
    """RFC 7644 §3.5.2: if any operation fails the whole PATCH fails; nothing is applied."""
    original = user()
    operations = [
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "active", "value": "maybe"},
    ]
    with pytest.raises(PatchError) as info:
        apply_user_patch(original, operations)
    assert info.value.scim_type == "invalidValue"
    assert info.value.detail.startswith("Operations[1] (replace 'active')")
    assert original == user()


THING = ResourceType(
    name="Thing",
    endpoint="/Things",
    schema=ResourceSchema(
        id="urn:example:params:scim:schemas:core:2.0:Thing",
        name="Thing",
        description="A resource with an immutable attribute",
        attributes=(
            Attribute("serial", description="Set once", mutability="immutable"),
            Attribute("label", description="Free text"),
        ),
    ),
)


@pytest.mark.parametrize(
    ("resource", "operations", "outcome"),
    [
        pytest.param(
            {},
            [{"op": "add", "path": "serial", "value": "S1"}],
            {"serial": "S1"},
            id="set-when-absent",
        ),
        pytest.param(
            {"serial": "S1"},
            [{"op": "replace", "path": "serial", "value": "S1"}],
            {"serial": "S1"},
            id="same-value",
        ),
        pytest.param(
            {"serial": "S1"},
            [{"op": "replace", "path": "serial", "value": "S2"}],
            "mutability",
            id="change",
        ),
        pytest.param(
            {"serial": "S1"}, [{"op": "remove", "path": "serial"}], "mutability", id="remove"
        ),
    ],
)
def test_immutable_attributes_may_only_be_set_when_absent(
    resource: dict[str, Any], operations: list[Any], outcome: Any
) -> None:
    """RFC 7643 §2.2 immutable: writable while absent, never changed afterwards.

    Steward's User and Group attributes have none outside Group.members (handled as
    MemberOps), so the rule is exercised through the engine with a small test schema.
    """
    document = patching._Document(THING, resource)
    if isinstance(outcome, str):
        with pytest.raises(PatchError) as info:
            for op in patching._parse_operations(operations):
                document.run(op)
        assert info.value.scim_type == outcome
    else:
        for op in patching._parse_operations(operations):
            document.run(op)
        assert document.finish() == outcome


def test_patch_error_rejects_unknown_scim_type() -> None:
    """PatchError only carries scimType values RFC 7644 §3.12 defines for PATCH."""
    with pytest.raises(ValueError, match="unknown scimType"):
        PatchError("tooMany", "x")
    error = PatchError("noTarget", "detail")
    assert (error.scim_type, error.detail, str(error)) == ("noTarget", "detail", "detail")


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------

GROUP_CASES = [
    pytest.param(
        [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": "u1"}]}],
        [MemberOp("add", ["u1"])],
        {},
        id="entra-add-member",
    ),
    pytest.param(
        [{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}],
        [MemberOp("remove", ["u1091"])],
        {},
        id="entra-default-remove-with-value-removes-only-those",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "7f4b"]'}],
        [MemberOp("remove", ["7f4b"])],
        {},
        id="remove-by-value-filter",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "a" or value eq "b" or Value EQ "a"]'}],
        [MemberOp("remove", ["a", "b"])],
        {},
        id="remove-by-or-ed-value-filter",
    ),
    pytest.param(
        [{"op": "remove", "path": "members[value eq 7f4b]"}],
        [MemberOp("remove", ["7f4b"])],
        {},
        id="remove-by-unquoted-value",
    ),
    pytest.param(
        [
            {"op": "remove", "path": 'members[value eq "a"]'},
            {"op": "add", "path": "members", "value": [{"value": "b", "display": "B"}]},
        ],
        [MemberOp("remove", ["a"]), MemberOp("add", ["b"], {"b": "B"})],
        {},
        id="okta-mixed-remove-then-add",
    ),
    pytest.param(
        [{"op": "replace", "value": {"id": "e9e30dba", "displayName": "New Name"}}],
        [],
        {"displayName": "New Name"},
        id="okta-rename-with-unchanged-id",
    ),
    pytest.param(
        [{"op": "remove", "path": "members"}],
        [MemberOp("remove_all", [])],
        {},
        id="remove-members-without-value-empties",
    ),
    pytest.param(
        [{"op": "remove", "path": "members", "value": None}],
        [MemberOp("remove_all", [])],
        {},
        id="remove-members-null-value-empties",
    ),
    pytest.param(
        [{"op": "remove", "path": "members", "value": []}],
        [],
        {},
        id="remove-members-empty-list-is-noop",
    ),
    pytest.param(
        [{"op": "replace", "path": "members", "value": [{"value": "a"}, {"value": "b"}]}],
        [MemberOp("replace", ["a", "b"])],
        {},
        id="replace-members",
    ),
    pytest.param(
        [{"op": "replace", "path": "members", "value": []}],
        [MemberOp("replace", [])],
        {},
        id="replace-members-empty-list",
    ),
    pytest.param(
        [{"op": "replace", "path": "members", "value": None}],
        [MemberOp("remove_all", [])],
        {},
        id="replace-members-null",
    ),
    pytest.param(
        [{"op": "add", "value": {"members": [{"value": "a"}]}}],
        [MemberOp("add", ["a"])],
        {},
        id="no-path-add-members",
    ),
    pytest.param(
        [{"op": "replace", "value": {"displayName": "X", "Members": [{"value": "a"}]}}],
        [MemberOp("replace", ["a"])],
        {"displayName": "X"},
        id="no-path-replace-members-and-rename",
    ),
    pytest.param(
        [
            {
                "op": "add",
                "path": f"{GROUP_SCHEMA}:Members",
                "value": [{"Value": "a", "type": "User"}],
            }
        ],
        [MemberOp("add", ["a"])],
        {},
        id="urn-qualified-capitalised-members",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "a"}]}],
        [MemberOp("add", ["a"])],
        {},
        id="duplicate-ids-collapsed",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": []}],
        [],
        {},
        id="add-no-members-is-noop",
    ),
    pytest.param(
        [{"op": "Replace", "path": "externalId", "value": "okta-2"}],
        [],
        {"externalId": "okta-2"},
        id="replace-externalId",
    ),
]


@pytest.mark.parametrize(("operations", "member_ops", "changes"), GROUP_CASES)
def test_plan_group_patch(
    operations: list[Any], member_ops: list[MemberOp], changes: dict[str, Any]
) -> None:
    """Member operations become MemberOps in order; other attributes patch the resource."""
    original = group()
    plan = plan_group_patch(original, operations)
    assert isinstance(plan, GroupPatch)
    assert plan.member_ops == member_ops
    assert plan.resource == {**group(), **changes}
    assert "members" not in plan.resource
    assert original == group()


GROUP_ERRORS = [
    pytest.param(
        [{"op": "remove", "path": 'members[display eq "Bob"]'}],
        "invalidFilter",
        'value eq "',
        id="filter-on-display",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value ne "a"]'}],
        "invalidFilter",
        'value eq "',
        id="filter-ne",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[value eq "a" and type eq "User"]'}],
        "invalidFilter",
        'value eq "',
        id="filter-and",
    ),
    pytest.param(
        [{"op": "remove", "path": "members[value pr]"}],
        "invalidFilter",
        'value eq "',
        id="filter-present",
    ),
    pytest.param(
        [{"op": "remove", "path": 'members[nick eq "a"]'}],
        "invalidFilter",
        "nick",
        id="filter-unknown-sub",
    ),
    pytest.param(
        [{"op": "add", "path": 'members[value eq "a"]', "value": [{"value": "a"}]}],
        "invalidPath",
        "filters select members to remove",
        id="add-with-filter",
    ),
    pytest.param(
        [{"op": "remove", "path": "members.display"}],
        "invalidPath",
        "remove the member",
        id="remove-member-sub-attribute",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": [{"display": "a"}]}],
        "invalidValue",
        "members[0].value",
        id="member-without-value",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": [{"value": 12}]}],
        "invalidValue",
        "non-empty string",
        id="member-value-number",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": ["u1"]}],
        "invalidValue",
        "must be an object",
        id="member-bare-string",
    ),
    pytest.param(
        [{"op": "add", "path": "members", "value": "u1"}],
        "invalidValue",
        "array of objects",
        id="members-string",
    ),
    pytest.param(
        [{"op": "remove", "path": "displayName"}],
        "mutability",
        "displayName is required",
        id="remove-displayName",
    ),
    pytest.param(
        [{"op": "replace", "value": {"id": "other", "displayName": "X"}}],
        "mutability",
        "id is readOnly",
        id="change-id",
    ),
    pytest.param(
        [{"op": "add", "path": "userName", "value": "x"}],
        "invalidPath",
        "userName",
        id="user-attribute-on-group",
    ),
    pytest.param(
        [{"op": "remove"}],
        "noTarget",
        "requires a 'path'",
        id="remove-without-path",
    ),
]


@pytest.mark.parametrize(("operations", "scim_type", "detail"), GROUP_ERRORS)
def test_plan_group_patch_errors(operations: list[Any], scim_type: str, detail: str) -> None:
    """Unsupported member filters and malformed member entries are rejected clearly."""
    with pytest.raises(PatchError) as info:
        plan_group_patch(group(), operations)
    assert info.value.scim_type == scim_type
    assert detail in info.value.detail


def test_group_plan_is_atomic() -> None:
    """A failing later operation discards earlier member ops and attribute changes."""
    original = group()
    with pytest.raises(PatchError):
        plan_group_patch(
            original,
            [
                {"op": "add", "path": "members", "value": [{"value": "a"}]},
                {"op": "replace", "path": "displayName", "value": 5},
            ],
        )
    assert original == group()


def test_group_member_cost_is_linear_in_request() -> None:
    """Only members named in the request are touched: 100,000 ids are planned quickly."""
    ids = [f"user-{n}" for n in range(100_000)]
    started = time.perf_counter()
    plan = plan_group_patch(
        group(), [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}]
    )
    assert plan.member_ops == [MemberOp("add", ids)]
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------

USER_SEEDS: list[dict[str, Any]] = [
    {"op": "Replace", "path": "active", "value": "False"},
    {"op": "replace", "value": {"name.givenName": "Jo", f"{ENT}:employeeNumber": "9"}},
    {"op": "Add", "path": "manager", "value": [{"$ref": None, "value": "id"}]},
    {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "n@x.com"},
    {"op": "remove", "path": 'emails[type eq "home"]'},
    {"op": "add", "path": "emails", "value": [{"value": "a@b", "primary": True}]},
    {"op": "replace", "value": {ENT: {"department": "x", "manager": "m"}}},
    {"op": "remove", "path": "name.givenName"},
]
GROUP_SEEDS: list[dict[str, Any]] = [
    {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "u1"}]},
    {"op": "Remove", "path": "members", "value": [{"value": "u1091"}]},
    {"op": "remove", "path": 'members[value eq "a" or value eq "b"]'},
    {"op": "replace", "value": {"id": "e9e30dba", "displayName": "New"}},
    {"op": "replace", "value": {"members": [{"value": "a"}], "externalId": "x"}},
]
JUNK: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    float("nan"),
    "",
    " ",
    "x",
    "True",
    "[",
    "]",
    '"',
    ".",
    ":",
    "urn:",
    ENT,
    "emails[",
    'members[value eq "a"',
    'emails[type eq "work"].nope',
    "name.givenName.x",
    "a" * 5000,
    {},
    [],
    [None],
    [[]],
    [{}],
    [1, "a"],
    {"value": None},
    {"value": []},
    {"value": {"value": {}}},
    {"": 1},
    {1: 2},
    {"$ref": None},
    {"primary": "maybe"},
    {"members": "x"},
    {"emails": [{"value": []}]},
    {ENT: {"manager": [[]]}},
    {ENT: "x"},
]
PATH_CHARS = 'abcemnrsvluxy.[]"= :$_-0'


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value] if depth % 2 else {"value": value}
    return value


def _mutate_text(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        position = rng.randint(0, len(chars))
        if choice < 0.4 and chars:
            del chars[min(position, len(chars) - 1)]
        elif choice < 0.8:
            chars.insert(position, rng.choice(PATH_CHARS))
        else:
            chars = [c.upper() if rng.random() < 0.5 else c for c in chars]
    return "".join(chars)


def _mutate_operation(rng: random.Random, operation: Any) -> Any:
    if not isinstance(operation, dict) or rng.random() < 0.05:
        return rng.choice(JUNK)
    operation = dict(operation)
    key = rng.choice(["op", "path", "value", "extra"])
    choice = rng.random()
    if choice < 0.2:
        operation.pop(key, None)
    elif choice < 0.45:
        operation[key] = rng.choice(JUNK)
    elif choice < 0.55:
        operation[key] = _deep(rng.randint(1, 200))
    elif choice < 0.8 and isinstance(operation.get("path"), str):
        operation["path"] = _mutate_text(rng, operation["path"])
    elif isinstance(operation.get("value"), dict):
        value = dict(operation["value"])
        if value:
            name = rng.choice(list(value))
            value[name] = rng.choice(JUNK)
            if isinstance(name, str):
                value[_mutate_text(rng, name)] = value.pop(name)
        operation["value"] = value
    elif isinstance(operation.get("value"), list):
        operation["value"] = [*operation["value"], rng.choice(JUNK)]
    else:
        operation[key.upper()] = rng.choice(JUNK)
    return operation


def _mutated_requests(seeds: list[dict[str, Any]], seed: int, count: int) -> list[Any]:
    rng = random.Random(seed)
    requests: list[Any] = []
    for _ in range(count):
        if rng.random() < 0.02:
            requests.append(rng.choice(JUNK))
            continue
        operations = [copy.deepcopy(rng.choice(seeds)) for _ in range(rng.randint(1, 4))]
        for _ in range(rng.randint(1, 3)):
            index = rng.randrange(len(operations))
            operations[index] = _mutate_operation(rng, operations[index])
        requests.append(operations)
    return requests


@pytest.mark.parametrize(
    ("engine", "resource", "seeds"),
    [
        pytest.param(apply_user_patch, user, USER_SEEDS, id="users"),
        pytest.param(plan_group_patch, group, GROUP_SEEDS, id="groups"),
    ],
)
def test_mutated_requests_only_raise_patch_error(
    engine: Any, resource: Any, seeds: list[dict[str, Any]]
) -> None:
    """Any malformed input yields PatchError (never TypeError/KeyError/...) or a result.

    A fixed seed keeps the run reproducible; the corpus starts from real IdP payloads and
    mutates names, paths and values with junk, deep nesting and case changes.
    """
    outcomes = {"ok": 0, "error": 0}
    for operations in _mutated_requests(seeds, seed=7643, count=3000):
        original = resource()
        try:
            engine(original, operations)
        except PatchError as exc:
            assert exc.scim_type
            outcomes["error"] += 1
        else:
            outcomes["ok"] += 1
        assert original == resource()
    # The corpus exercises both outcomes, so it is not trivially rejecting everything.
    assert outcomes["ok"] > 100 and outcomes["error"] > 100, outcomes
