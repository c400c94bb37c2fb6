"""Steward's domain objects as SCIM resources and back (RFC 7643 §4).

Outbound: ``user_resource`` / ``group_resource`` build the full representation; ``project``
applies ``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5). Inbound:
``normalise_user`` turns any accepted request body (capitalised names, string booleans,
dotted or URN keys, nulls for unmapped attributes) into the canonical representation by
running it through the PATCH engine as one no-path replace, so POST, PUT and PATCH share one
set of parsing rules; ``user_fields`` maps that representation onto ``Identity`` columns.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from governance.identities.models import DirectoryGroup, Identity
from scim_api.errors import ScimError
from scim_api.patching import PatchError, apply_user_patch, plan_group_patch
from scim_api.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE_TYPE,
    GROUP_SCHEMA,
    USER_RESOURCE_TYPE,
    USER_SCHEMA,
    ResourceType,
    UnknownAttribute,
    resolve,
)

# Read-only or server-owned keys a client may echo back (Okta PUTs the whole object).
_IGNORED_ON_WRITE = {"id", "meta", "schemas", "groups", "password"}
# SCIM attributes kept as sent in Identity.attributes.
JSON_ATTRIBUTES = (
    "phoneNumbers",
    "addresses",
    "ims",
    "photos",
    "roles",
    "entitlements",
    "x509Certificates",
)
# (SCIM path, Identity column) for simple string attributes.
CORE_COLUMNS = (
    ("externalId", "external_id"),
    ("displayName", "display_name"),
    ("nickName", "nick_name"),
    ("title", "title"),
    ("userType", "user_type"),
    ("preferredLanguage", "preferred_language"),
    ("locale", "locale"),
    ("timezone", "timezone"),
    ("profileUrl", "profile_url"),
)
NAME_COLUMNS = (
    ("formatted", "formatted_name"),
    ("familyName", "family_name"),
    ("givenName", "given_name"),
    ("middleName", "middle_name"),
    ("honorificPrefix", "honorific_prefix"),
    ("honorificSuffix", "honorific_suffix"),
)
ENTERPRISE_COLUMNS = (
    ("employeeNumber", "employee_number"),
    ("costCenter", "cost_center"),
    ("organization", "organization"),
    ("division", "division"),
    ("department", "department"),
)


def _etag(version: int) -> str:
    return f'W/"{version}"'


def _iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def user_resource(identity: Identity, base: str, *, with_groups: bool = True) -> dict[str, Any]:
    """The full SCIM User for ``identity``; expects emails (and memberships) prefetched."""
    location = f"{base}/Users/{identity.pk}"
    data: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "id": str(identity.pk),
        "userName": identity.user_name,
        "active": identity.active,
    }
    for path, column in CORE_COLUMNS:
        value = getattr(identity, column)
        if value:
            data[path] = value
    name = {path: getattr(identity, col) for path, col in NAME_COLUMNS if getattr(identity, col)}
    if name:
        data["name"] = name
    emails = []
    for email in identity.emails.all():
        item: dict[str, Any] = {"value": email.value}
        if email.type:
            item["type"] = email.type
        # Always present: a client that sent "primary": false reads it back as sent.
        item["primary"] = email.primary
        if email.display:
            item["display"] = email.display
        emails.append(item)
    if emails:
        data["emails"] = emails
    for key in JSON_ATTRIBUTES:
        if identity.attributes.get(key):
            data[key] = copy.deepcopy(identity.attributes[key])
    enterprise = {
        path: getattr(identity, col) for path, col in ENTERPRISE_COLUMNS if getattr(identity, col)
    }
    if identity.manager_id is not None or identity.manager_ref:
        manager: dict[str, Any] = {"value": str(identity.manager_id or identity.manager_ref)}
        if identity.manager_id is not None:
            manager["$ref"] = f"{base}/Users/{identity.manager_id}"
            # manager.displayName is read-only and optional (RFC 7643 §4.3); Steward leaves it
            # out so that what a client wrote reads back unchanged.
        enterprise["manager"] = manager
    if enterprise:
        data["schemas"].append(ENTERPRISE_USER_SCHEMA)
        data[ENTERPRISE_USER_SCHEMA] = enterprise
    if with_groups:
        groups = [
            {
                "value": str(m.group_id),
                "$ref": f"{base}/Groups/{m.group_id}",
                "display": m.group.display_name,
                "type": "direct",
            }
            for m in identity.memberships.all()
            if m.group.deleted_at is None
        ]
        if groups:
            data["groups"] = groups
    data["meta"] = {
        "resourceType": "User",
        "created": _iso(identity.created_at),
        "lastModified": _iso(identity.updated_at),
        "location": location,
        "version": _etag(identity.version),
    }
    return data


def group_resource(
    group: DirectoryGroup, base: str, *, members: Iterable[Any] | None = None
) -> dict[str, Any]:
    """The SCIM Group; ``members`` are membership rows (with identity) or None to omit."""
    data: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "id": str(group.pk),
        "displayName": group.display_name,
    }
    if group.external_id:
        data["externalId"] = group.external_id
    if members is not None:
        data["members"] = [
            {
                "value": str(m.identity_id),
                "$ref": f"{base}/Users/{m.identity_id}",
                "display": m.display or str(m.identity),  # as sent, else the current name
                "type": "User",
            }
            for m in members
        ]
    data["meta"] = {
        "resourceType": "Group",
        "created": _iso(group.created_at),
        "lastModified": _iso(group.updated_at),
        "location": f"{base}/Groups/{group.pk}",
        "version": _etag(group.version),
    }
    return data


# ------------------------------------------------------------------ attribute projection


def parse_attribute_list(raw: str | list | None, rt: ResourceType) -> list[tuple[str, str | None]]:
    """``attributes=userName,name.givenName,urn:…:User:department`` -> canonical
    (attribute key, sub) pairs; unknown names are 400 invalidValue (RFC 7644 §3.4.2.5)."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else str(raw).split(",")
    result = []
    for item in items:
        if not isinstance(item, str):
            raise ScimError(400, "attributes must be a list of attribute names.", "invalidValue")
        text = item.strip()
        if not text:
            continue
        uri, name = None, text
        if text.lower().startswith("urn:"):
            # A whole extension (``urn:…:enterprise:2.0:User``) or one attribute of a schema.
            ext = next((s for s in rt.extension_schemas() if s.id.lower() == text.lower()), None)
            if ext is not None:
                result.append((ext.id, None))
                continue
            uri, _, name = text.rpartition(":")
        attr_name, _, sub = name.partition(".")
        try:
            schema, attr, sub_attr = resolve(rt, uri, attr_name, sub or None)
        except UnknownAttribute as exc:
            raise ScimError(
                400, f"Unknown attribute in attribute list: {exc}", "invalidValue"
            ) from None
        key = attr.name if schema is rt.schema else f"{schema.id}:{attr.name}"
        result.append((key, sub_attr.name if sub_attr else None))
    return result


_ALWAYS = {"id", "schemas"}


def wants(
    key: str, attributes: list[tuple[str, str | None]], excluded: list[tuple[str, str | None]]
) -> bool:
    """Whether top-level attribute ``key`` will be returned (to skip loading it)."""
    if key in _ALWAYS:
        return True
    if attributes:
        return any(a == key or a.split(":")[-1] == key for a, _ in attributes) or any(
            a.endswith(":" + key) for a, _ in attributes
        )
    return not any(a == key and s is None for a, s in excluded)


def project(
    resource: dict[str, Any],
    attributes: list[tuple[str, str | None]],
    excluded: list[tuple[str, str | None]],
) -> dict[str, Any]:
    """Apply attributes/excludedAttributes; ``id`` and ``schemas`` are always returned."""
    if not attributes and not excluded:
        return resource
    result: dict[str, Any] = {}
    if attributes:
        for key, value in resource.items():
            if key in _ALWAYS:
                result[key] = value
                continue
            if key.startswith("urn:") and isinstance(value, dict):
                # extension: requested wholesale or by attribute
                if any(a == key for a, _ in attributes):
                    result[key] = value
                    continue
                picked = _pick(
                    value,
                    [(a[len(key) + 1 :], s) for a, s in attributes if a.startswith(key + ":")],
                )
                if picked:
                    result[key] = picked
                continue
            wanted_subs = [s for a, s in attributes if a == key]
            if not wanted_subs:
                continue
            if None in wanted_subs or not isinstance(value, dict | list):
                result[key] = value
            else:
                result[key] = _subset(value, wanted_subs)
        return result
    result = copy.copy(resource)
    for key, sub in excluded:
        if key in _ALWAYS:
            continue
        if ":" in key and key.startswith("urn:") and key in result and sub is None:
            result.pop(key, None)
            continue
        if key.startswith("urn:"):
            ext, _, attr = key.rpartition(":")
            if ext in result and isinstance(result[ext], dict):
                inner = dict(result[ext])
                if sub is None:
                    inner.pop(attr, None)
                elif isinstance(inner.get(attr), dict):
                    inner[attr] = {k: v for k, v in inner[attr].items() if k != sub}
                result[ext] = inner
            continue
        if sub is None:
            result.pop(key, None)
        elif key in result:
            result[key] = _without(result[key], sub)
    return result


def _pick(ext: dict, wanted: list[tuple[str, str | None]]) -> dict:
    out = {}
    for attr, sub in wanted:
        if attr in ext:
            if sub is None or not isinstance(ext[attr], dict):
                out[attr] = ext[attr]
            else:
                out.setdefault(attr, {})
                if sub in ext[attr]:
                    out[attr][sub] = ext[attr][sub]
    return out


def _subset(value, subs):
    if isinstance(value, list):
        return [
            {k: v for k, v in item.items() if k in subs} for item in value if isinstance(item, dict)
        ]
    return {k: v for k, v in value.items() if k in subs}


def _without(value, sub):
    if isinstance(value, list):
        return [
            {k: v for k, v in item.items() if k != sub} for item in value if isinstance(item, dict)
        ]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != sub}
    return value


# ------------------------------------------------------------------ inbound


def _patch_error(exc: PatchError) -> ScimError:
    return ScimError(400, exc.detail, exc.scim_type)


def _body_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ScimError(400, "The request body must be a JSON object.", "invalidSyntax")
    return {k: v for k, v in payload.items() if str(k).lower() not in _IGNORED_ON_WRITE}


def normalise_user(payload: Any, *, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """A POST/PUT body as the canonical User representation (RFC 7644 §3.3, §3.5.1).

    For PUT, attributes the body leaves out are cleared (a replace of the whole resource);
    read-only values the client echoes back (``id``, ``meta``, ``groups``) are ignored.
    """
    body = _body_object(payload)
    try:
        return apply_user_patch({}, [{"op": "replace", "value": body}]) if body else {}
    except PatchError as exc:
        raise _patch_error(exc) from None


def patch_user(current: dict[str, Any], operations: Any) -> dict[str, Any]:
    try:
        return apply_user_patch(current, operations)
    except PatchError as exc:
        raise _patch_error(exc) from None


def normalise_group(payload: Any):
    """A POST/PUT Group body -> (displayName, externalId, member ids or None, displays)."""
    body = _body_object(payload)
    try:
        plan = plan_group_patch({}, [{"op": "replace", "value": body}]) if body else None
    except PatchError as exc:
        raise _patch_error(exc) from None
    resource = plan.resource if plan else {}
    member_ids = None
    displays: dict[str, str] = {}
    if plan:
        for op in plan.member_ops:
            if op.action == "replace":
                member_ids = list(op.values)
            elif op.action == "add":
                member_ids = (member_ids or []) + list(op.values)
            elif op.action == "remove_all":
                member_ids = []
            displays.update(op.displays)
    return resource.get("displayName"), resource.get("externalId"), member_ids, displays


def patch_group(current: dict[str, Any], operations: Any):
    try:
        return plan_group_patch(current, operations)
    except PatchError as exc:
        raise _patch_error(exc) from None


def user_fields(resource: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Canonical User representation -> (Identity column values, e-mail rows).

    Every mapped column gets a value (absent = ""), so the result describes the whole
    resource; callers diff it against the stored identity.
    """
    user_name = resource.get("userName")
    if not isinstance(user_name, str) or not user_name.strip():
        raise ScimError(400, "userName is required and must be a non-empty string.", "invalidValue")
    fields: dict[str, Any] = {"user_name": user_name}
    for path, column in CORE_COLUMNS:
        fields[column] = _text(resource.get(path), path)
    name = resource.get("name") or {}
    for path, column in NAME_COLUMNS:
        fields[column] = _text(name.get(path), f"name.{path}")
    enterprise = resource.get(ENTERPRISE_USER_SCHEMA) or {}
    for path, column in ENTERPRISE_COLUMNS:
        fields[column] = _text(enterprise.get(path), path)
    manager = enterprise.get("manager")
    manager_value = manager.get("value") if isinstance(manager, dict) else None
    fields["manager_ref"] = _text(manager_value, "manager.value")
    active = resource.get("active", True)
    fields["active"] = bool(active) if active is not None else True
    fields["attributes"] = {k: resource[k] for k in JSON_ATTRIBUTES if resource.get(k)}
    emails = [e for e in resource.get("emails") or [] if isinstance(e, dict) and e.get("value")]
    return fields, emails


def _text(value: Any, label: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ScimError(400, f"{label} must be a string.", "invalidValue")


def identity_fields(identity: Identity) -> dict[str, Any]:
    """The stored counterpart of ``user_fields`` for diffing."""
    names = [c for _, c in CORE_COLUMNS + NAME_COLUMNS + ENTERPRISE_COLUMNS]
    data = {c: getattr(identity, c) for c in names}
    data.update(
        user_name=identity.user_name,
        manager_ref=identity.manager_ref
        or (str(identity.manager_id) if identity.manager_id else ""),
        active=identity.active,
        attributes={
            k: identity.attributes[k] for k in JSON_ATTRIBUTES if identity.attributes.get(k)
        },
    )
    return data


def identity_emails(identity: Identity) -> list[dict[str, Any]]:
    return [
        {
            k: v
            for k, v in (
                ("value", e.value),
                ("type", e.type),
                ("primary", e.primary),
                ("display", e.display),
            )
            if v
        }
        for e in identity.emails.all()
    ]


RESOURCE_TYPES = {"Users": USER_RESOURCE_TYPE, "Groups": GROUP_RESOURCE_TYPE}
