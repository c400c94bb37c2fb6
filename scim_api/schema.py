"""Declarative SCIM 2.0 schema definitions for the resources Steward serves.

This module is the single source of truth for the shape of SCIM resources in Steward:
the core ``User`` schema (RFC 7643 §4.1), the Enterprise User extension (RFC 7643 §4.3)
and the core ``Group`` schema (RFC 7643 §4.2), plus the common attributes ``id``,
``externalId`` and ``meta`` that every resource carries (RFC 7643 §3.1).

Everything that needs to know about attribute characteristics reads them from here:

* the PATCH engine (``scim_api.patching``) uses :func:`resolve` to turn case-insensitive
  attribute names written by identity providers into canonical names and to enforce
  ``mutability``, ``required`` and the value ``type``;
* the discovery endpoints ``/Schemas`` and ``/ResourceTypes`` (RFC 7644 §4) render
  :func:`schema_representation` and :func:`resource_type_representation`.

The module deliberately has no Django imports so it can be unit-tested and reused in
pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BULK_REQUEST_SCHEMA",
    "BULK_RESPONSE_SCHEMA",
    "COMMON_ATTRIBUTES",
    "ENTERPRISE_USER",
    "ENTERPRISE_USER_SCHEMA",
    "ERROR_SCHEMA",
    "GROUP",
    "GROUP_RESOURCE_TYPE",
    "GROUP_SCHEMA",
    "LIST_RESPONSE_SCHEMA",
    "MUTABILITIES",
    "PATCH_OP_SCHEMA",
    "RESOURCE_TYPES",
    "RESOURCE_TYPE_SCHEMA",
    "RETURNED",
    "SCHEMAS",
    "SCHEMA_SCHEMA",
    "SEARCH_REQUEST_SCHEMA",
    "TYPES",
    "UNIQUENESS",
    "USER",
    "USER_RESOURCE_TYPE",
    "USER_SCHEMA",
    "Attribute",
    "ResourceSchema",
    "ResourceType",
    "UnknownAttribute",
    "canonical_name",
    "get_resource_type",
    "get_schema",
    "resolve",
    "resource_type_representation",
    "schema_representation",
]

# --------------------------------------------------------------------------------------
# URNs (RFC 7643 §8.7 for resource schemas, RFC 7644 §3 for protocol messages)
# --------------------------------------------------------------------------------------

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
SEARCH_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

# --------------------------------------------------------------------------------------
# Characteristic vocabularies (RFC 7643 §2.2, §2.3 and §7)
# --------------------------------------------------------------------------------------

TYPES = frozenset(
    {"string", "boolean", "decimal", "integer", "dateTime", "reference", "complex", "binary"}
)
MUTABILITIES = frozenset({"readOnly", "readWrite", "immutable", "writeOnly"})
RETURNED = frozenset({"always", "never", "default", "request"})
UNIQUENESS = frozenset({"none", "server", "global"})
# caseExact is meaningful for these types only (RFC 7643 §2.3.1, §2.3.6, §2.3.7, §7).
_CASE_SENSITIVE_TYPES = frozenset({"string", "reference", "binary"})


class UnknownAttribute(KeyError):
    """An attribute name, sub-attribute name or schema URN that the resource type lacks.

    It subclasses :class:`KeyError` because it is a failed lookup, but ``str()`` returns
    the plain message (``KeyError`` would wrap it in quotes) so it can be shown to a
    SCIM client verbatim in an ``invalidPath`` error (RFC 7644 §3.12).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Attribute:
    """One attribute definition with all characteristics of RFC 7643 §2.2 and §7.

    Defaults follow RFC 7643 §2.2 ("If not otherwise stated..."): a single-valued,
    optional, case-insensitive, readWrite string, returned by default, not unique.
    Definitions are validated at import time so a typo in a characteristic is a crash
    at start-up, not a malformed ``/Schemas`` document at run time.
    """

    name: str
    type: str = "string"
    description: str = ""
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()
    _index: dict[str, Attribute] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("empty name")
        if self.type not in TYPES:
            problems.append(f"type {self.type!r}")
        if self.mutability not in MUTABILITIES:
            problems.append(f"mutability {self.mutability!r}")
        if self.returned not in RETURNED:
            problems.append(f"returned {self.returned!r}")
        if self.uniqueness not in UNIQUENESS:
            problems.append(f"uniqueness {self.uniqueness!r}")
        if (self.type == "complex") != bool(self.sub_attributes):
            problems.append("sub-attributes are required for, and only allowed on, complex")
        if (self.type == "reference") != bool(self.reference_types):
            problems.append("referenceTypes are required for, and only allowed on, reference")
        if any(sub.type == "complex" for sub in self.sub_attributes):
            # RFC 7643 §2.3.8: a complex attribute MUST NOT contain sub-attributes that
            # have sub-attributes.
            problems.append("nested complex sub-attribute")
        if problems:
            raise ValueError(f"invalid SCIM attribute {self.name!r}: {', '.join(problems)}")
        for sub in self.sub_attributes:
            key = sub.name.lower()
            if key in self._index:
                raise ValueError(f"duplicate sub-attribute {sub.name!r} in {self.name!r}")
            self._index[key] = sub

    def sub_attribute(self, name: str) -> Attribute | None:
        """Return the sub-attribute called ``name`` (case-insensitive, RFC 7643 §2.1)."""
        if not isinstance(name, str):
            return None
        return self._index.get(name.lower())

    def representation(self) -> dict[str, Any]:
        """The attribute as a ``/Schemas`` ``attributes`` entry (RFC 7643 §7).

        Empty optional characteristics are omitted rather than sent as ``null``: Microsoft
        Entra ID rejects ``null`` in discovery documents, and RFC 7643 §7 only requires
        ``canonicalValues``/``referenceTypes``/``subAttributes`` where they apply.
        """
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            out["subAttributes"] = [sub.representation() for sub in self.sub_attributes]
        return out


@dataclass(frozen=True)
class ResourceSchema:
    """A schema (RFC 7643 §7): its URN ``id``, a ``name``, and its attributes."""

    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    _index: dict[str, Attribute] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for attr in self.attributes:
            key = attr.name.lower()
            if key in self._index:
                raise ValueError(f"duplicate attribute {attr.name!r} in schema {self.id}")
            self._index[key] = attr

    @property
    def urn(self) -> str:
        """Alias of ``id``: a schema's id is its URN (RFC 7643 §7)."""
        return self.id

    def attribute(self, name: str) -> Attribute | None:
        """Return the top-level attribute ``name`` (case-insensitive, RFC 7643 §2.1)."""
        if not isinstance(name, str):
            return None
        return self._index.get(name.lower())


@dataclass
class ResourceType:
    """A resource type (RFC 7643 §6): endpoint, base schema and schema extensions.

    ``schema`` is the base :class:`ResourceSchema`; ``extensions`` lists
    ``(urn, required)`` pairs exactly as ``schemaExtensions`` is rendered.
    """

    name: str
    endpoint: str
    schema: ResourceSchema
    extensions: list[tuple[str, bool]] = field(default_factory=list)
    description: str = ""

    @property
    def id(self) -> str:
        return self.name

    def extension_schemas(self) -> list[ResourceSchema]:
        """The extension schemas, in declaration order."""
        return [SCHEMAS[urn] for urn, _required in self.extensions]

    def schemas(self) -> list[ResourceSchema]:
        """The base schema followed by the extension schemas (lookup order)."""
        return [self.schema, *self.extension_schemas()]


# --------------------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------------------


def _multi(
    name: str,
    description: str,
    types: tuple[str, ...] = (),
    *,
    value_type: str = "string",
    value_reference_types: tuple[str, ...] = (),
) -> Attribute:
    """The usual multi-valued shape (RFC 7643 §2.4): value, display, type, primary."""
    return Attribute(
        name,
        "complex",
        description,
        multi_valued=True,
        sub_attributes=(
            Attribute(
                "value",
                value_type,
                f"The value of the {name} entry.",
                reference_types=value_reference_types,
            ),
            Attribute("display", description="A human-readable name, primarily for display."),
            Attribute(
                "type",
                description=f"A label indicating the {name} entry's function.",
                canonical_values=types,
            ),
            Attribute(
                "primary",
                "boolean",
                "Whether this is the preferred entry; 'true' may appear at most once.",
            ),
        ),
    )


def _common_attributes(resource_type: str) -> tuple[Attribute, ...]:
    """``id``, ``externalId`` and ``meta`` (RFC 7643 §3.1).

    RFC 7643 §3.1 says common attributes belong to every base resource schema; listing
    them explicitly lets lookups and mutability checks treat them like any other
    attribute (``id`` and ``meta`` are readOnly, ``id`` is returned always).
    """
    return (
        Attribute(
            "id",
            description="A unique identifier for the resource, assigned by the service provider.",
            case_exact=True,
            mutability="readOnly",
            returned="always",
            uniqueness="server",
        ),
        Attribute(
            "externalId",
            description="An identifier for the resource as defined by the provisioning client.",
            case_exact=True,
        ),
        Attribute(
            "meta",
            "complex",
            "Resource metadata maintained by the service provider.",
            mutability="readOnly",
            sub_attributes=(
                Attribute(
                    "resourceType",
                    description=f"The resource type; always '{resource_type}'.",
                    case_exact=True,
                    mutability="readOnly",
                ),
                Attribute(
                    "created",
                    "dateTime",
                    "When the resource was added to the service provider.",
                    mutability="readOnly",
                ),
                Attribute(
                    "lastModified",
                    "dateTime",
                    "When the resource was last updated.",
                    mutability="readOnly",
                ),
                Attribute(
                    "location",
                    "reference",
                    "The URI of the resource.",
                    case_exact=True,
                    mutability="readOnly",
                    reference_types=("uri",),
                ),
                Attribute(
                    "version",
                    description="The entity tag (ETag) of the resource version.",
                    case_exact=True,
                    mutability="readOnly",
                ),
            ),
        ),
    )


COMMON_ATTRIBUTES = _common_attributes("User")

USER = ResourceSchema(
    id=USER_SCHEMA,
    name="User",
    description="User Account",
    attributes=(
        *COMMON_ATTRIBUTES,
        Attribute(
            "userName",
            description=(
                "Unique identifier for the User, typically used to authenticate to the "
                "service provider."
            ),
            required=True,
            uniqueness="server",
        ),
        Attribute(
            "name",
            "complex",
            "The components of the user's real name.",
            sub_attributes=(
                Attribute("formatted", description="The full name, formatted for display."),
                Attribute("familyName", description="The family name (last name)."),
                Attribute("givenName", description="The given name (first name)."),
                Attribute("middleName", description="The middle name(s)."),
                Attribute("honorificPrefix", description="The honorific prefix(es), e.g. 'Ms.'"),
                Attribute("honorificSuffix", description="The honorific suffix(es), e.g. 'III'."),
            ),
        ),
        Attribute("displayName", description="The name of the User, suitable for display."),
        Attribute("nickName", description="The casual way to address the user."),
        Attribute(
            "profileUrl",
            "reference",
            "A fully qualified URL pointing to the user's online profile.",
            reference_types=("external",),
        ),
        Attribute("title", description="The user's title, such as 'Vice President'."),
        Attribute("userType", description="The relationship between organization and user."),
        Attribute("preferredLanguage", description="The user's preferred written language."),
        Attribute("locale", description="The user's default location, e.g. 'en-US'."),
        Attribute("timezone", description="The user's time zone in IANA format."),
        Attribute("active", "boolean", "The user's administrative status."),
        Attribute(
            "password",
            description="The user's cleartext password; never returned.",
            mutability="writeOnly",
            returned="never",
        ),
        _multi("emails", "Email addresses for the user.", ("work", "home", "other")),
        _multi(
            "phoneNumbers",
            "Phone numbers for the user.",
            ("work", "home", "mobile", "fax", "pager", "other"),
        ),
        _multi(
            "ims",
            "Instant messaging addresses for the user.",
            ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
        ),
        _multi(
            "photos",
            "URLs of photos of the user.",
            ("photo", "thumbnail"),
            value_type="reference",
            value_reference_types=("external",),
        ),
        Attribute(
            "addresses",
            "complex",
            "A physical mailing address for this user.",
            multi_valued=True,
            sub_attributes=(
                Attribute("formatted", description="The full mailing address, for display."),
                Attribute("streetAddress", description="The full street address component."),
                Attribute("locality", description="The city or locality component."),
                Attribute("region", description="The state or region component."),
                Attribute("postalCode", description="The zip code or postal code component."),
                Attribute("country", description="The country name component (ISO 3166-1)."),
                Attribute(
                    "type",
                    description="A label indicating the address's function.",
                    canonical_values=("work", "home", "other"),
                ),
                Attribute(
                    "primary",
                    "boolean",
                    "Whether this is the preferred address; 'true' may appear at most once.",
                ),
            ),
        ),
        Attribute(
            "groups",
            "complex",
            "Groups the user belongs to; maintained through the Group resource.",
            multi_valued=True,
            mutability="readOnly",
            sub_attributes=(
                Attribute(
                    "value",
                    description="The identifier of the user's group.",
                    mutability="readOnly",
                ),
                Attribute(
                    "$ref",
                    "reference",
                    "The URI of the corresponding Group resource.",
                    mutability="readOnly",
                    reference_types=("User", "Group"),
                ),
                Attribute(
                    "display",
                    description="A human-readable name of the group.",
                    mutability="readOnly",
                ),
                Attribute(
                    "type",
                    description="Direct or indirect (nested) membership.",
                    mutability="readOnly",
                    canonical_values=("direct", "indirect"),
                ),
            ),
        ),
        _multi("entitlements", "A list of entitlements for the user.", ()),
        _multi("roles", "A list of roles for the user.", ()),
        _multi(
            "x509Certificates",
            "A list of DER-encoded X.509 certificates issued to the user.",
            (),
            value_type="binary",
        ),
    ),
)

ENTERPRISE_USER = ResourceSchema(
    id=ENTERPRISE_USER_SCHEMA,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        Attribute("employeeNumber", description="Numeric or alphanumeric employee identifier."),
        Attribute("costCenter", description="Identifies the name of a cost center."),
        Attribute("organization", description="Identifies the name of an organization."),
        Attribute("division", description="Identifies the name of a division."),
        Attribute("department", description="Identifies the name of a department."),
        Attribute(
            "manager",
            "complex",
            "The user's manager.",
            sub_attributes=(
                Attribute("value", description="The id of the SCIM resource of the manager."),
                Attribute(
                    "$ref",
                    "reference",
                    "The URI of the SCIM resource representing the manager.",
                    reference_types=("User",),
                ),
                Attribute(
                    "displayName",
                    description="The displayName of the manager; set by the service provider.",
                    mutability="readOnly",
                ),
            ),
        ),
    ),
)

GROUP = ResourceSchema(
    id=GROUP_SCHEMA,
    name="Group",
    description="Group",
    attributes=(
        *_common_attributes("Group"),
        Attribute(
            "displayName",
            description="A human-readable name for the Group; unique within Steward.",
            required=True,
            uniqueness="server",
        ),
        Attribute(
            "members",
            "complex",
            "A list of members of the Group.",
            multi_valued=True,
            sub_attributes=(
                Attribute(
                    "value",
                    description="Identifier of the member of this Group.",
                    mutability="immutable",
                ),
                Attribute(
                    "$ref",
                    "reference",
                    "The URI of the member resource.",
                    mutability="immutable",
                    reference_types=("User", "Group"),
                ),
                Attribute(
                    "display",
                    description="A human-readable name of the member.",
                    mutability="immutable",
                ),
                Attribute(
                    "type",
                    description="The type of the member.",
                    mutability="immutable",
                    canonical_values=("User", "Group"),
                ),
            ),
        ),
    ),
)

SCHEMAS: dict[str, ResourceSchema] = {s.id: s for s in (USER, ENTERPRISE_USER, GROUP)}

USER_RESOURCE_TYPE = ResourceType(
    name="User",
    endpoint="/Users",
    schema=USER,
    extensions=[(ENTERPRISE_USER_SCHEMA, False)],
    description="User Account",
)
GROUP_RESOURCE_TYPE = ResourceType(
    name="Group",
    endpoint="/Groups",
    schema=GROUP,
    description="Group",
)
RESOURCE_TYPES: dict[str, ResourceType] = {
    rt.name: rt for rt in (USER_RESOURCE_TYPE, GROUP_RESOURCE_TYPE)
}


# --------------------------------------------------------------------------------------
# Lookups
# --------------------------------------------------------------------------------------


def get_schema(urn: str) -> ResourceSchema | None:
    """The schema with this URN (case-insensitive, RFC 7643 §2.1), or ``None``."""
    if not isinstance(urn, str):
        return None
    wanted = urn.lower()
    return next((s for s in SCHEMAS.values() if s.id.lower() == wanted), None)


def get_resource_type(name: str) -> ResourceType | None:
    """The resource type with this name (case-insensitive), or ``None``."""
    if not isinstance(name, str):
        return None
    wanted = name.lower()
    return next((rt for rt in RESOURCE_TYPES.values() if rt.name.lower() == wanted), None)


def resolve(
    resource_type: ResourceType,
    attr_path_uri: str | None,
    name: str,
    sub: str | None = None,
) -> tuple[ResourceSchema, Attribute, Attribute | None]:
    """Find the schema, attribute and sub-attribute an attribute path refers to.

    Attribute names and URNs are case-insensitive (RFC 7643 §2.1, RFC 7644 §3.10), so
    ``"UserName"``, ``"name.GIVENNAME"`` and a lower-cased enterprise URN all resolve.

    ``attr_path_uri`` may be the base schema URN, an extension URN of the resource type,
    or ``None``. Without a URN the base schema is searched first and then the extensions
    in order (RFC 7644 §3.10 lets clients omit the URN when the name is unambiguous), so
    ``"employeeNumber"`` resolves to the enterprise attribute while ``"displayName"``
    stays the core one.

    Raises :class:`UnknownAttribute` for an unknown name or sub-attribute, for a
    sub-attribute of a non-complex attribute, and for a URN the resource type lacks.
    """
    if not isinstance(name, str) or not name:
        raise UnknownAttribute(f"{name!r} is not a valid attribute name")
    if attr_path_uri is not None:
        schema = next(
            (
                s
                for s in resource_type.schemas()
                if isinstance(attr_path_uri, str) and s.id.lower() == attr_path_uri.lower()
            ),
            None,
        )
        if schema is None:
            raise UnknownAttribute(
                f"{attr_path_uri!r} is not a schema of the {resource_type.name} resource type"
            )
        attr = schema.attribute(name)
        if attr is None:
            raise UnknownAttribute(f"{name!r} is not an attribute of schema {schema.id}")
    else:
        for schema in resource_type.schemas():
            attr = schema.attribute(name)
            if attr is not None:
                break
        else:
            raise UnknownAttribute(
                f"{name!r} is not an attribute of the {resource_type.name} resource type"
            )
    if sub is None:
        return schema, attr, None
    if attr.type != "complex":
        raise UnknownAttribute(f"{attr.name!r} is a {attr.type} attribute without sub-attributes")
    sub_attr = attr.sub_attribute(sub)
    if sub_attr is None:
        raise UnknownAttribute(f"{sub!r} is not a sub-attribute of {attr.name!r}")
    return schema, attr, sub_attr


def canonical_name(
    resource_type: ResourceType,
    attr_path_uri: str | None,
    name: str,
    sub: str | None = None,
) -> str:
    """The canonical spelling of an attribute path, e.g. ``"name.givenName"``.

    Base-schema attributes are written without their URN; extension attributes are
    always URN-qualified (``"urn:...:enterprise:2.0:User:manager.value"``) so the result
    is unambiguous. Raises :class:`UnknownAttribute` like :func:`resolve`.
    """
    schema, attr, sub_attr = resolve(resource_type, attr_path_uri, name, sub)
    path = attr.name if sub_attr is None else f"{attr.name}.{sub_attr.name}"
    if schema is resource_type.schema:
        return path
    return f"{schema.id}:{path}"


# --------------------------------------------------------------------------------------
# Discovery representations (RFC 7644 §4, RFC 7643 §6 and §7)
# --------------------------------------------------------------------------------------


def _location(location_base: str, collection: str, ident: str) -> str:
    return f"{location_base.rstrip('/')}/{collection}/{ident}"


_COMMON_NAMES = frozenset({"id", "externalId", "meta"})


def schema_representation(schema: ResourceSchema, location_base: str) -> dict[str, Any]:
    """The JSON body of ``GET /Schemas/{urn}`` (RFC 7643 §7, example in §8.7.1).

    ``location_base`` is the SCIM service root (e.g. ``"https://steward/scim/v2"``);
    ``meta.location`` becomes ``{location_base}/Schemas/{urn}``. No value in the result
    is ``None``: Entra ID's SCIM validator rejects nulls in discovery documents.
    """
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": [
            attr.representation()
            for attr in schema.attributes
            if attr.name not in _COMMON_NAMES  # RFC 7643 §8.7.1 lists them apart (§3.1)
        ],
        "meta": {
            "resourceType": "Schema",
            "location": _location(location_base, "Schemas", schema.id),
        },
    }


def resource_type_representation(rt: ResourceType, location_base: str) -> dict[str, Any]:
    """The JSON body of ``GET /ResourceTypes/{name}`` (RFC 7643 §6, example in §8.6).

    ``schemaExtensions`` is always a list (empty for Group) so clients never see null.
    """
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.id,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": [
            {"schema": urn, "required": required} for urn, required in rt.extensions
        ],
        "meta": {
            "resourceType": "ResourceType",
            "location": _location(location_base, "ResourceTypes", rt.name),
        },
    }
