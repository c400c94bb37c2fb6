"""Tests for the declarative SCIM schema module (RFC 7643 §2, §4, §6, §7)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from scim_api.schema import (
    BULK_REQUEST_SCHEMA,
    BULK_RESPONSE_SCHEMA,
    ENTERPRISE_USER,
    ENTERPRISE_USER_SCHEMA,
    ERROR_SCHEMA,
    GROUP,
    GROUP_RESOURCE_TYPE,
    GROUP_SCHEMA,
    LIST_RESPONSE_SCHEMA,
    MUTABILITIES,
    PATCH_OP_SCHEMA,
    RETURNED,
    SCHEMAS,
    SEARCH_REQUEST_SCHEMA,
    TYPES,
    UNIQUENESS,
    USER,
    USER_RESOURCE_TYPE,
    USER_SCHEMA,
    Attribute,
    ResourceSchema,
    UnknownAttribute,
    canonical_name,
    get_resource_type,
    get_schema,
    resolve,
    resource_type_representation,
    schema_representation,
)

BASE = "https://steward.example/scim/v2"
ALL_SCHEMAS = [USER, ENTERPRISE_USER, GROUP]
# RFC 7644 §3.10 ATTRNAME, plus "$ref" (RFC 7643 §2.3.7).
ATTRNAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*|\$ref")


def _walk(schemas: list[ResourceSchema]) -> Iterator[tuple[str, Attribute]]:
    for schema in schemas:
        for attr in schema.attributes:
            yield f"{schema.name}.{attr.name}", attr
            for sub in attr.sub_attributes:
                yield f"{schema.name}.{attr.name}.{sub.name}", sub


def _nulls(value: Any, where: str = "$") -> list[str]:
    """Every JSON path in ``value`` whose value is ``None``."""
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{where}[{i}]")]
    return []


# --------------------------------------------------------------------------------------
# URNs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constant", "urn"),
    [
        pytest.param(USER_SCHEMA, "urn:ietf:params:scim:schemas:core:2.0:User", id="user"),
        pytest.param(GROUP_SCHEMA, "urn:ietf:params:scim:schemas:core:2.0:Group", id="group"),
        pytest.param(
            ENTERPRISE_USER_SCHEMA,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            id="enterprise-user",
        ),
        pytest.param(ERROR_SCHEMA, "urn:ietf:params:scim:api:messages:2.0:Error", id="error"),
        pytest.param(
            LIST_RESPONSE_SCHEMA,
            "urn:ietf:params:scim:api:messages:2.0:ListResponse",
            id="list-response",
        ),
        pytest.param(
            PATCH_OP_SCHEMA, "urn:ietf:params:scim:api:messages:2.0:PatchOp", id="patch-op"
        ),
        pytest.param(
            BULK_REQUEST_SCHEMA,
            "urn:ietf:params:scim:api:messages:2.0:BulkRequest",
            id="bulk-request",
        ),
        pytest.param(
            BULK_RESPONSE_SCHEMA,
            "urn:ietf:params:scim:api:messages:2.0:BulkResponse",
            id="bulk-response",
        ),
        pytest.param(
            SEARCH_REQUEST_SCHEMA,
            "urn:ietf:params:scim:api:messages:2.0:SearchRequest",
            id="search-request",
        ),
    ],
)
def test_urn_constants(constant: str, urn: str) -> None:
    """The URN constants are exactly the ones RFC 7643 §8.7 and RFC 7644 §3 register."""
    assert constant == urn


# --------------------------------------------------------------------------------------
# Attribute definitions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "attr"), list(_walk(ALL_SCHEMAS)), ids=lambda v: str(v))
def test_every_attribute_has_valid_characteristics(where: str, attr: Attribute) -> None:
    """Each attribute uses only the characteristic vocabularies of RFC 7643 §2.2/§7."""
    assert ATTRNAME.fullmatch(attr.name), where
    assert attr.type in TYPES
    assert attr.mutability in MUTABILITIES
    assert attr.returned in RETURNED
    assert attr.uniqueness in UNIQUENESS
    assert isinstance(attr.description, str) and attr.description
    assert all(isinstance(v, str) for v in attr.canonical_values)
    assert (attr.type == "reference") == bool(attr.reference_types)
    assert (attr.type == "complex") == bool(attr.sub_attributes)
    assert all(sub.type != "complex" for sub in attr.sub_attributes)  # RFC 7643 §2.3.8


def test_multi_valued_attributes_are_complex() -> None:
    """The PATCH engine relies on every multi-valued attribute having sub-attributes."""
    multi = [where for where, attr in _walk(ALL_SCHEMAS) if attr.multi_valued]
    assert multi
    assert all(attr.type == "complex" for _, attr in _walk(ALL_SCHEMAS) if attr.multi_valued)


@pytest.mark.parametrize(
    ("schema", "names"),
    [
        pytest.param(
            USER,
            [
                "id", "externalId", "meta", "userName", "name", "displayName", "nickName",
                "profileUrl", "title", "userType", "preferredLanguage", "locale", "timezone",
                "active", "password", "emails", "phoneNumbers", "ims", "photos", "addresses",
                "groups", "entitlements", "roles", "x509Certificates",
            ],
            id="user-rfc7643-4.1",
        ),
        pytest.param(
            ENTERPRISE_USER,
            ["employeeNumber", "costCenter", "organization", "division", "department", "manager"],
            id="enterprise-rfc7643-4.3",
        ),
        pytest.param(
            GROUP, ["id", "externalId", "meta", "displayName", "members"], id="group-rfc7643-4.2"
        ),
    ],
)  # fmt: skip
def test_schemas_define_the_rfc_attributes(schema: ResourceSchema, names: list[str]) -> None:
    """Each schema has exactly the attributes of its RFC 7643 section, in order."""
    assert [attr.name for attr in schema.attributes] == names


@pytest.mark.parametrize(
    ("schema", "attr", "subs"),
    [
        pytest.param(
            USER,
            "name",
            [
                "formatted", "familyName", "givenName", "middleName", "honorificPrefix",
                "honorificSuffix",
            ],
            id="name",
        ),
        pytest.param(
            USER,
            "addresses",
            [
                "formatted", "streetAddress", "locality", "region", "postalCode", "country",
                "type", "primary",
            ],
            id="addresses",
        ),
        pytest.param(USER, "emails", ["value", "display", "type", "primary"], id="emails"),
        pytest.param(USER, "groups", ["value", "$ref", "display", "type"], id="groups"),
        pytest.param(
            ENTERPRISE_USER, "manager", ["value", "$ref", "displayName"], id="manager"
        ),
        pytest.param(GROUP, "members", ["value", "$ref", "display", "type"], id="members"),
    ],
)  # fmt: skip
def test_complex_attributes_have_rfc_sub_attributes(
    schema: ResourceSchema, attr: str, subs: list[str]
) -> None:
    """Complex attributes carry the sub-attributes RFC 7643 §4 lists for them."""
    found = schema.attribute(attr)
    assert found is not None
    assert [sub.name for sub in found.sub_attributes] == subs


def _char(schema: ResourceSchema, path: str) -> Attribute:
    name, _, sub = path.partition(".")
    attr = schema.attribute(name)
    assert attr is not None, path
    if not sub:
        return attr
    found = attr.sub_attribute(sub)
    assert found is not None, path
    return found


@pytest.mark.parametrize(
    ("schema", "path", "characteristic", "expected"),
    [
        pytest.param(USER, "userName", "required", True, id="userName-required"),
        pytest.param(USER, "userName", "case_exact", False, id="userName-caseExact-false"),
        pytest.param(USER, "userName", "uniqueness", "server", id="userName-unique-server"),
        pytest.param(USER, "id", "case_exact", True, id="id-caseExact"),
        pytest.param(USER, "id", "mutability", "readOnly", id="id-readOnly"),
        pytest.param(USER, "id", "returned", "always", id="id-returned-always"),
        pytest.param(USER, "externalId", "case_exact", True, id="externalId-caseExact"),
        pytest.param(USER, "meta", "mutability", "readOnly", id="meta-readOnly"),
        pytest.param(USER, "emails.value", "case_exact", False, id="email-value-caseless"),
        pytest.param(USER, "emails", "multi_valued", True, id="emails-multi"),
        pytest.param(USER, "password", "mutability", "writeOnly", id="password-writeOnly"),
        pytest.param(USER, "password", "returned", "never", id="password-never-returned"),
        pytest.param(USER, "groups", "mutability", "readOnly", id="groups-readOnly"),
        pytest.param(USER, "active", "type", "boolean", id="active-boolean"),
        pytest.param(USER, "profileUrl", "reference_types", ("external",), id="profileUrl-ref"),
        pytest.param(USER, "photos.value", "type", "reference", id="photo-value-reference"),
        pytest.param(USER, "x509Certificates.value", "type", "binary", id="cert-value-binary"),
        pytest.param(
            USER,
            "emails.type",
            "canonical_values",
            ("work", "home", "other"),
            id="email-type-canonical",
        ),
        pytest.param(
            ENTERPRISE_USER,
            "manager.displayName",
            "mutability",
            "readOnly",
            id="manager-displayName-readOnly",
        ),
        pytest.param(
            ENTERPRISE_USER,
            "manager.$ref",
            "reference_types",
            ("User",),
            id="manager-ref-user",
        ),
        pytest.param(GROUP, "displayName", "required", True, id="group-displayName-required"),
        pytest.param(GROUP, "displayName", "uniqueness", "server", id="group-displayName-unique"),
        pytest.param(GROUP, "members.value", "mutability", "immutable", id="member-value"),
        pytest.param(GROUP, "members.$ref", "mutability", "immutable", id="member-ref"),
    ],
)
def test_characteristics_follow_rfc_and_idp_practice(
    schema: ResourceSchema, path: str, characteristic: str, expected: Any
) -> None:
    """Key characteristics match RFC 7643 §3.1/§4/§8.7.1 and what IdPs rely on."""
    assert getattr(_char(schema, path), characteristic) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"name": "x", "type": "text"}, id="unknown-type"),
        pytest.param({"name": "x", "mutability": "sometimes"}, id="unknown-mutability"),
        pytest.param({"name": "x", "returned": "maybe"}, id="unknown-returned"),
        pytest.param({"name": "x", "uniqueness": "total"}, id="unknown-uniqueness"),
        pytest.param({"name": "x", "type": "complex"}, id="complex-without-subs"),
        pytest.param({"name": "x", "type": "reference"}, id="reference-without-types"),
        pytest.param({"name": "x", "sub_attributes": (Attribute("y"),)}, id="subs-on-simple-type"),
        pytest.param(
            {
                "name": "x",
                "type": "complex",
                "sub_attributes": (Attribute("y", "complex", sub_attributes=(Attribute("z"),)),),
            },
            id="nested-complex",
        ),
        pytest.param(
            {
                "name": "x",
                "type": "complex",
                "sub_attributes": (Attribute("y"), Attribute("Y")),
            },
            id="duplicate-sub-names",
        ),
        pytest.param({"name": ""}, id="empty-name"),
    ],
)
def test_invalid_definitions_fail_at_import_time(kwargs: dict[str, Any]) -> None:
    """A malformed definition raises at construction, not when /Schemas is rendered."""
    with pytest.raises(ValueError, match=r"SCIM attribute|duplicate"):
        Attribute(**kwargs)


def test_attribute_is_frozen() -> None:
    """Definitions are shared module state, so they are immutable."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        USER.attribute("userName").required = False  # type: ignore[misc, union-attr]


# --------------------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rt", "uri", "name", "sub", "expected"),
    [
        pytest.param(USER_RESOURCE_TYPE, None, "userName", None, (USER, "userName", None)),
        pytest.param(
            USER_RESOURCE_TYPE, None, "USERNAME", None, (USER, "userName", None), id="upper"
        ),
        pytest.param(
            USER_RESOURCE_TYPE, None, "username", None, (USER, "userName", None), id="lower"
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            None,
            "Name",
            "GIVENNAME",
            (USER, "name", "givenName"),
            id="sub-attribute-any-case",
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            USER_SCHEMA,
            "displayName",
            None,
            (USER, "displayName", None),
            id="core-urn-qualified",
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            USER_SCHEMA.upper(),
            "displayName",
            None,
            (USER, "displayName", None),
            id="core-urn-upper-case",
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            None,
            "displayName",
            None,
            (USER, "displayName", None),
            id="core-wins-without-urn",
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            None,
            "employeeNumber",
            None,
            (ENTERPRISE_USER, "employeeNumber", None),
            id="extension-found-without-urn",
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            ENTERPRISE_USER_SCHEMA.lower(),
            "MANAGER",
            "value",
            (ENTERPRISE_USER, "manager", "value"),
            id="extension-urn-lower-case",
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            None,
            "emails",
            "Value",
            (USER, "emails", "value"),
            id="multi-valued-sub",
        ),
        pytest.param(
            USER_RESOURCE_TYPE, None, "groups", "$REF", (USER, "groups", "$ref"), id="dollar-ref"
        ),
        pytest.param(
            GROUP_RESOURCE_TYPE,
            GROUP_SCHEMA,
            "Members",
            "value",
            (GROUP, "members", "value"),
            id="group-members",
        ),
    ],
)
def test_resolve_is_case_insensitive_and_urn_aware(
    rt: Any, uri: str | None, name: str, sub: str | None, expected: tuple[Any, str, str | None]
) -> None:
    """Names and URNs resolve case-insensitively (RFC 7643 §2.1, RFC 7644 §3.10)."""
    schema, attr, sub_attr = resolve(rt, uri, name, sub)
    assert schema is expected[0]
    assert attr.name == expected[1]
    assert (sub_attr.name if sub_attr else None) == expected[2]


@pytest.mark.parametrize(
    ("rt", "uri", "name", "sub", "message"),
    [
        pytest.param(USER_RESOURCE_TYPE, None, "nope", None, "'nope'", id="unknown-name"),
        pytest.param(USER_RESOURCE_TYPE, None, "name", "nope", "'nope'", id="unknown-sub"),
        pytest.param(
            USER_RESOURCE_TYPE, None, "userName", "x", "without sub-attributes", id="sub-simple"
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            GROUP_SCHEMA,
            "displayName",
            None,
            "is not a schema of the User",
            id="wrong-urn",
        ),
        pytest.param(
            USER_RESOURCE_TYPE,
            USER_SCHEMA,
            "employeeNumber",
            None,
            "not an attribute of schema",
            id="extension-name-under-core-urn",
        ),
        pytest.param(
            GROUP_RESOURCE_TYPE, None, "userName", None, "Group resource type", id="user-on-group"
        ),
        pytest.param(
            GROUP_RESOURCE_TYPE,
            None,
            "employeeNumber",
            None,
            "Group resource type",
            id="no-extension-on-group",
        ),
        pytest.param(USER_RESOURCE_TYPE, None, "", None, "not a valid", id="empty-name"),
    ],
)
def test_resolve_unknown_raises(
    rt: Any, uri: str | None, name: str, sub: str | None, message: str
) -> None:
    """Unknown names, subs and URNs raise UnknownAttribute with a readable message."""
    with pytest.raises(UnknownAttribute) as info:
        resolve(rt, uri, name, sub)
    assert message in str(info.value)
    assert isinstance(info.value, KeyError)
    assert not str(info.value).startswith('"'), "str() must not be KeyError's quoted repr"


@pytest.mark.parametrize(
    ("uri", "name", "sub", "expected"),
    [
        pytest.param(None, "USERNAME", None, "userName", id="core"),
        pytest.param(USER_SCHEMA, "name", "familyname", "name.familyName", id="core-urn-dropped"),
        pytest.param(
            None,
            "employeenumber",
            None,
            f"{ENTERPRISE_USER_SCHEMA}:employeeNumber",
            id="extension-qualified",
        ),
        pytest.param(
            ENTERPRISE_USER_SCHEMA.lower(),
            "manager",
            "VALUE",
            f"{ENTERPRISE_USER_SCHEMA}:manager.value",
            id="extension-sub",
        ),
    ],
)
def test_canonical_name(uri: str | None, name: str, sub: str | None, expected: str) -> None:
    """canonical_name spells paths canonically; extension paths keep their URN."""
    assert canonical_name(USER_RESOURCE_TYPE, uri, name, sub) == expected


def test_get_schema_and_resource_type_are_case_insensitive() -> None:
    """Discovery endpoints look URNs and names up case-insensitively (RFC 7643 §2.1)."""
    assert get_schema(ENTERPRISE_USER_SCHEMA.upper()) is ENTERPRISE_USER
    assert get_schema("urn:nope") is None
    assert get_resource_type("group") is GROUP_RESOURCE_TYPE
    assert get_resource_type("Device") is None
    assert set(SCHEMAS) == {USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA}


# --------------------------------------------------------------------------------------
# Representations
# --------------------------------------------------------------------------------------

ATTRIBUTE_KEYS = {
    "name",
    "type",
    "multiValued",
    "description",
    "required",
    "caseExact",
    "mutability",
    "returned",
    "uniqueness",
    "canonicalValues",
    "referenceTypes",
    "subAttributes",
}
REQUIRED_ATTRIBUTE_KEYS = ATTRIBUTE_KEYS - {"canonicalValues", "referenceTypes", "subAttributes"}


@pytest.mark.parametrize("schema", ALL_SCHEMAS, ids=lambda s: s.name)
def test_schema_representation_has_no_nulls(schema: ResourceSchema) -> None:
    """No value anywhere is null: Entra ID rejects nulls in discovery documents."""
    body = schema_representation(schema, BASE)
    assert _nulls(body) == []
    json.dumps(body)  # plain JSON types only


@pytest.mark.parametrize("schema", ALL_SCHEMAS, ids=lambda s: s.name)
def test_schema_representation_shape(schema: ResourceSchema) -> None:
    """GET /Schemas/{urn} has the RFC 7643 §7 shape with camel-cased characteristics."""
    body = schema_representation(schema, BASE + "/")
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
    assert body["id"] == schema.id
    assert body["name"] == schema.name
    assert body["description"] == schema.description
    assert body["meta"] == {"resourceType": "Schema", "location": f"{BASE}/Schemas/{schema.id}"}
    listed = [a for a in schema.attributes if a.name not in {"id", "externalId", "meta"}]
    assert [a["name"] for a in body["attributes"]] == [a.name for a in listed]

    def check(entry: dict[str, Any], attr: Attribute) -> None:
        assert REQUIRED_ATTRIBUTE_KEYS <= set(entry) <= ATTRIBUTE_KEYS
        assert entry["multiValued"] is attr.multi_valued
        assert entry["caseExact"] is attr.case_exact
        assert entry["mutability"] == attr.mutability
        assert ("subAttributes" in entry) == (attr.type == "complex")
        assert ("referenceTypes" in entry) == (attr.type == "reference")
        if attr.canonical_values:
            assert entry["canonicalValues"] == list(attr.canonical_values)
        for sub_entry, sub in zip(entry.get("subAttributes", []), attr.sub_attributes, strict=True):
            assert "subAttributes" not in sub_entry
            check(sub_entry, sub)

    for entry, attr in zip(body["attributes"], listed, strict=True):
        check(entry, attr)


def test_user_schema_representation_matches_rfc_example() -> None:
    """Spot-check against RFC 7643 §8.7.1: userName and emails as the RFC shows them."""
    body = schema_representation(USER, BASE)
    by_name = {a["name"]: a for a in body["attributes"]}
    assert by_name["userName"] == {
        "name": "userName",
        "type": "string",
        "multiValued": False,
        "description": by_name["userName"]["description"],
        "required": True,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "server",
    }
    email_type = by_name["emails"]["subAttributes"][2]
    assert email_type["name"] == "type"
    assert email_type["canonicalValues"] == ["work", "home", "other"]
    assert by_name["password"]["returned"] == "never"


@pytest.mark.parametrize(
    ("rt", "expected"),
    [
        pytest.param(
            USER_RESOURCE_TYPE,
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "User Account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": False}],
                "meta": {"resourceType": "ResourceType", "location": f"{BASE}/ResourceTypes/User"},
            },
            id="user",
        ),
        pytest.param(
            GROUP_RESOURCE_TYPE,
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": "Group",
                "name": "Group",
                "endpoint": "/Groups",
                "description": "Group",
                "schema": GROUP_SCHEMA,
                "schemaExtensions": [],
                "meta": {
                    "resourceType": "ResourceType",
                    "location": f"{BASE}/ResourceTypes/Group",
                },
            },
            id="group",
        ),
    ],
)
def test_resource_type_representation(rt: Any, expected: dict[str, Any]) -> None:
    """GET /ResourceTypes/{name} has the RFC 7643 §6 shape (example §8.6), with no nulls."""
    body = resource_type_representation(rt, BASE)
    assert body == expected
    assert _nulls(body) == []


def test_resource_types_expose_their_schemas() -> None:
    """The User type has the enterprise extension (optional); Group has none."""
    assert USER_RESOURCE_TYPE.schemas() == [USER, ENTERPRISE_USER]
    assert USER_RESOURCE_TYPE.extensions == [(ENTERPRISE_USER_SCHEMA, False)]
    assert GROUP_RESOURCE_TYPE.schemas() == [GROUP]
    assert USER.urn == USER_SCHEMA
