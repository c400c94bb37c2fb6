"""Pure SCIM PATCH engine (RFC 7644 §3.5.2) for Users and Groups.

Why a pure module: PATCH semantics are the part of SCIM where identity providers differ
most (Microsoft Entra ID's default and ``aadOptscim062020`` dialects, Okta, JumpCloud), and
the rules are easiest to get right, and to prove right, as a function from
``(resource, operations)`` to a new resource. Nothing here touches the database or imports
Django: the view loads the resource, calls the engine, diffs the old and new
representations and calls the domain services inside one transaction.

* :func:`apply_user_patch` returns a new User representation with every operation applied
  in order. It is atomic: the input is deep-copied and never mutated, and the first failing
  operation raises :class:`PatchError` (RFC 7644 §3.5.2: "the operations are applied
  sequentially ... if any operation fails, the entire request fails").
* :func:`plan_group_patch` never needs the group's members. A group may have 100,000
  members; member operations become :class:`MemberOp` entries the caller applies in SQL, so
  the cost is O(k) in the number of members named in the request.

Every malformed input becomes a :class:`PatchError` carrying the RFC 7644 §3.12 ``scimType``
(``invalidSyntax``, ``invalidPath``, ``noTarget``, ``invalidValue``, ``mutability`` or
``invalidFilter``); no ``TypeError``/``KeyError``/``AttributeError`` escapes for any JSON
the client can send.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from scim_api.filtering.parser import (
    And,
    AttrPath,
    Compare,
    Expr,
    FilterError,
    Not,
    Or,
    PathError,
    Present,
    matches,
    parse_path,
)
from scim_api.schema import (
    GROUP,
    GROUP_RESOURCE_TYPE,
    USER_RESOURCE_TYPE,
    Attribute,
    ResourceSchema,
    ResourceType,
    UnknownAttribute,
    resolve,
)

__all__ = [
    "MAX_OPERATIONS",
    "SCIM_TYPES",
    "GroupPatch",
    "MemberOp",
    "PatchError",
    "apply_user_patch",
    "plan_group_patch",
]

#: Most operations accepted in one PATCH request; a bound on work per request.
MAX_OPERATIONS = 1000

#: The ``scimType`` values a PATCH can fail with (RFC 7644 §3.12, table 9).
SCIM_TYPES = frozenset(
    {"invalidSyntax", "invalidPath", "noTarget", "invalidValue", "mutability", "invalidFilter"}
)

_OPS = ("add", "remove", "replace")
_MISSING: Any = object()


class PatchError(ValueError):
    """A PATCH request the engine refuses; the view answers ``400`` with this ``scimType``.

    ``scim_type`` is one of :data:`SCIM_TYPES` (RFC 7644 §3.12) and ``detail`` is a message
    meant for the SCIM client (it names the failing operation and attribute).
    """

    def __init__(self, scim_type: str, detail: str) -> None:
        if scim_type not in SCIM_TYPES:
            raise ValueError(f"unknown scimType {scim_type!r}")
        super().__init__(detail)
        self.scim_type = scim_type
        self.detail = detail

    def __repr__(self) -> str:
        return f"PatchError({self.scim_type!r}, {self.detail!r})"


@dataclass
class MemberOp:
    """One change to a group's membership, to be applied by the caller in order.

    ``add``: add ``values`` (user/group ids); ``remove``: remove only ``values``;
    ``replace``: the membership becomes exactly ``values``; ``remove_all``: empty the group
    (``values`` is empty).
    """

    action: Literal["add", "remove", "replace", "remove_all"]
    values: list[str]
    #: ``display`` texts the client sent with added members, kept as sent (id -> text).
    displays: dict[str, str] = field(default_factory=dict)


@dataclass
class GroupPatch:
    """The outcome of :func:`plan_group_patch`.

    ``resource`` is the group's representation without members after the patch (new
    ``displayName``/``externalId``); ``member_ops`` are the membership changes in request
    order, to be applied in the same database transaction as the attribute changes.
    """

    resource: dict[str, Any]
    member_ops: list[MemberOp] = field(default_factory=list)


def apply_user_patch(resource: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """Apply PATCH ``operations`` (the request's ``Operations`` array) to a User.

    ``resource`` is the User's SCIM representation with canonical keys: core attributes at
    the top level and Enterprise User attributes under the extension URN. The result has
    the same shape; attribute names the client spelled in any case are stored canonically
    (RFC 7643 §2.1). Raises :class:`PatchError`; ``resource`` is never modified.
    """
    ops = _parse_operations(operations)
    document = _Document(USER_RESOURCE_TYPE, resource)
    for op in ops:
        document.run(op)
    return document.finish()


def plan_group_patch(resource: dict[str, Any], operations: list[Any]) -> GroupPatch:
    """Apply PATCH ``operations`` to a Group's attributes and plan its membership changes.

    ``resource`` is the Group without ``members``. Member operations are translated without
    reading current members (see the module docstring), accepting the dialects IdPs use:

    * ``add`` ``members`` with a list of ``{"value": id}`` objects -> ``add``;
    * ``remove`` ``members`` without a value -> ``remove_all`` (RFC 7644 §3.5.2.2);
    * ``remove`` ``members`` with a list of ``{"value": id}`` (Entra ID's default dialect,
      JumpCloud) -> ``remove`` of only those ids, never the whole group;
    * ``remove`` ``members[value eq "id"]`` (optionally or-ed) -> ``remove`` of those ids;
    * ``replace`` ``members`` -> ``replace``; a path-less ``add``/``replace`` whose value
      object has ``members`` -> ``add``/``replace``.
    """
    ops = _parse_operations(operations)
    document = _GroupDocument(resource)
    for op in ops:
        document.run(op)
    return GroupPatch(resource=document.finish(), member_ops=document.member_ops)


# --------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    index: int
    op: str  # "add" | "remove" | "replace"
    path: str | None
    value: Any  # _MISSING when the operation has no "value" member


def _parse_operations(operations: Any) -> list[_Operation]:
    """Validate the ``Operations`` array (RFC 7644 §3.5.2).

    Member names (``op``/``path``/``value``) and ``op`` values are matched
    case-insensitively because Entra ID sends ``"op": "Replace"``; unknown members are
    ignored. An empty ``path`` is treated as absent.
    """
    if not isinstance(operations, list | tuple):
        raise PatchError("invalidSyntax", "'Operations' must be an array of operation objects")
    if not operations:
        raise PatchError("invalidSyntax", "'Operations' must contain at least one operation")
    if len(operations) > MAX_OPERATIONS:
        raise PatchError(
            "invalidValue",
            f"too many operations ({len(operations)}); at most {MAX_OPERATIONS} per request",
        )
    parsed = []
    for index, raw in enumerate(operations):
        where = f"Operations[{index}]"
        if not isinstance(raw, Mapping):
            raise PatchError("invalidSyntax", f"{where} must be an object, not {_kind(raw)}")
        members: dict[str, Any] = {}
        for key, val in raw.items():
            if not isinstance(key, str):
                raise PatchError("invalidSyntax", f"{where} has a non-string member name")
            if key.lower() in members:
                raise PatchError("invalidSyntax", f"{where} repeats the member {key!r}")
            members[key.lower()] = val
        op = members.get("op")
        if not isinstance(op, str) or op.lower() not in _OPS:
            raise PatchError(
                "invalidSyntax",
                f"{where}: 'op' must be one of add, remove, replace, not {_brief(op)}",
            )
        op = op.lower()
        path = members.get("path")
        if path is not None and not isinstance(path, str):
            raise PatchError("invalidPath", f"{where}: 'path' must be a string")
        if path is not None and not path.strip():
            path = None
        value = members.get("value", _MISSING)
        if op != "remove" and value is _MISSING:
            # RFC 7644 §3.5.2.1/§3.5.2.3: add and replace MUST carry a "value".
            raise PatchError("invalidValue", f"{where}: '{op}' requires a 'value'")
        parsed.append(_Operation(index, op, path, value))
    return parsed


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """The JSON type name of ``value``, for error messages that never echo deep junk."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _brief(value: Any) -> str:
    """A short rendering of a client value: short strings quoted, anything else by type."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, bool) or value is None:
        return _kind(value) if value is None else str(value).lower()
    return _kind(value)


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _coerce(attr: Attribute, value: Any, label: str) -> Any:
    """Check a simple value against the attribute's type (RFC 7643 §2.3).

    Booleans sent as strings (``"True"``, ``"false"``) are converted because Entra ID's
    default dialect sends ``"value": "False"`` for ``active``. Strings are stored as sent
    (Entra guidance); a number, object or array where a string is expected is refused
    rather than stringified, so a misconfigured mapping surfaces as an error.
    """
    kind = attr.type
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise PatchError("invalidValue", f"{label} must be a boolean, not {_brief(value)}")
    if kind in ("string", "reference", "binary"):
        if isinstance(value, str):
            return value
        raise PatchError("invalidValue", f"{label} must be a string, not {_brief(value)}")
    if kind == "dateTime":
        if isinstance(value, str) and _is_datetime(value):
            return value
        raise PatchError(
            "invalidValue", f"{label} must be an xsd:dateTime string, not {_brief(value)}"
        )
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PatchError("invalidValue", f"{label} must be an integer, not {_brief(value)}")
    if kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
        raise PatchError("invalidValue", f"{label} must be a number, not {_brief(value)}")
    raise PatchError("invalidValue", f"{label} is complex and needs an object value")


def _values_equal(attr: Attribute | None, left: Any, right: Any) -> bool:
    """Equality honouring ``caseExact`` (RFC 7643 §2.3.1) for string values."""
    if isinstance(left, str) and isinstance(right, str) and not (attr and attr.case_exact):
        return left.casefold() == right.casefold()
    return bool(left == right) and type(left) is type(right)


def _same_element(attr: Attribute, left: Any, right: Any) -> bool:
    """Whether two elements of a multi-valued complex attribute are the same value."""
    if not (isinstance(left, Mapping) and isinstance(right, Mapping)):
        return False
    if left.keys() != right.keys():
        return False
    return all(_values_equal(attr.sub_attribute(k), left[k], right[k]) for k in left)


def _contains(attr: Attribute, element: Any, pattern: Mapping[str, Any]) -> bool:
    """Whether ``element`` has every sub-attribute value given in ``pattern``."""
    if not isinstance(element, Mapping) or not pattern:
        return False
    return all(
        k in element and _values_equal(attr.sub_attribute(k), element[k], v)
        for k, v in pattern.items()
    )


def _merge(existing: Any, patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge sub-attributes into a complex value; ``None`` removes a sub-attribute.

    RFC 7644 §3.5.2.1/§3.5.2.3: sub-attributes not named in the value are left unchanged.
    """
    result = dict(existing) if isinstance(existing, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def _drop_stale(attr: Attribute, current: Any, result: dict[str, Any], given: set[str]) -> None:
    """Drop server-derived (readOnly) sub-attributes once the value they describe changed.

    ``manager.displayName`` is the name of the manager ``manager.value`` points at; when an
    IdP sets a new ``manager.value`` the old name would be wrong, so it is removed and the
    service provider fills it in again. Sub-attributes the client sent are kept so the
    mutability check can judge them.
    """
    old = current if isinstance(current, Mapping) else {}
    changed = any(
        sub.mutability != "readOnly" and _read(old, sub.name) != _read(result, sub.name)
        for sub in attr.sub_attributes
    )
    if changed:
        for sub in attr.sub_attributes:
            if sub.mutability == "readOnly" and sub.name not in given:
                result.pop(sub.name, None)


def _label(schema: ResourceSchema, rt: ResourceType, attr: Attribute, sub: Attribute | None) -> str:
    path = attr.name if sub is None else f"{attr.name}.{sub.name}"
    return path if schema is rt.schema else f"{schema.id}:{path}"


@dataclass(frozen=True)
class _Target:
    """A resolved operation target: ``attr[filter].sub`` in ``schema``."""

    schema: ResourceSchema
    attr: Attribute
    sub: Attribute | None
    filter: Expr | None
    label: str


# --------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------


class _Document:
    """A working copy of one resource that operations are applied to, one at a time."""

    def __init__(self, resource_type: ResourceType, resource: Mapping[str, Any]) -> None:
        if not isinstance(resource, Mapping):
            raise TypeError("resource must be a mapping")  # a caller bug, not client input
        self.rt = resource_type
        self.data: dict[str, Any] = copy.deepcopy(dict(resource))
        self._touched_extensions: set[str] = set()

    # -- driving ----------------------------------------------------------------------

    def run(self, op: _Operation) -> None:
        """Apply one operation and check the schema invariants it may have broken.

        Errors are re-raised with the operation's index so the client can find it.
        """
        before = copy.deepcopy(self.data)
        try:
            self.apply(op)
            self.check_invariants(before)
        except PatchError as exc:
            where = f"Operations[{op.index}] ({op.op}"
            if op.path is not None:
                where += f" {_brief(op.path)}"
            raise PatchError(exc.scim_type, f"{where}): {exc.detail}") from None

    def apply(self, op: _Operation) -> None:
        value = None if op.value is _MISSING else op.value
        if op.path is None:
            if op.op == "remove":
                raise PatchError("noTarget", "'remove' requires a 'path' (RFC 7644 §3.5.2.2)")
            self.apply_value_object(op.op, op.value, None)
            return
        schema = self._schema_for_urn(op.path)
        if schema is not None:
            # The path is a schema URN: the whole extension (RFC 7644 §3.5.2, "path" may
            # name the schema whose attributes the value object holds).
            if op.op == "remove":
                if schema is self.rt.schema:
                    raise PatchError("noTarget", "the resource itself cannot be removed")
                for attr in schema.attributes:
                    self.delete(schema, attr)
                return
            self.apply_value_object(op.op, op.value, schema)
            return
        target = self.target(op.path)
        if op.op == "remove":
            self.remove(target, value)
        else:
            self.set(op.op, target, value)

    def apply_value_object(self, op: str, value: Any, schema: ResourceSchema | None) -> None:
        """A path-less ``add``/``replace``: every key of the value object is a target.

        RFC 7644 §3.5.2.1/§3.5.2.3 define the value object as attributes of the resource.
        Keys may be plain names in any case, dotted paths (``"name.givenName"``) or
        URN-qualified paths; Entra ID's ``aadOptscim062020`` dialect sends the latter two,
        so they are applied as paths and never stored as literal keys. An extension URN key
        holds an object of that extension's attributes. ``schemas`` is ignored.
        """
        if not isinstance(value, Mapping):
            raise PatchError(
                "invalidValue",
                f"'{op}' without a path needs an object value, not {_kind(value)} "
                "(RFC 7644 §3.5.2)",
            )
        for key, item in value.items():
            if not isinstance(key, str):
                raise PatchError("invalidPath", "attribute names must be strings")
            if key.lower() == "schemas" and (schema is None or schema is not self.rt.schema):
                continue  # resource-level and extension objects may echo their schemas
            nested = self._schema_for_urn(key) if schema is None else None
            if nested is not None:
                if item is None:
                    if nested is self.rt.schema:
                        raise PatchError("invalidValue", f"{key} must be an object, not null")
                    for attr in nested.attributes:
                        self.delete(nested, attr)
                    continue
                self.apply_value_object(op, item, nested)
                continue
            self.set(op, self.target(key, schema), item)

    # -- storage ------------------------------------------------------------------------

    def _container(self, schema: ResourceSchema, *, create: bool) -> dict[str, Any] | None:
        if schema is self.rt.schema:
            return self.data
        box = self.data.get(schema.id)
        if isinstance(box, dict):
            return box
        if not create:
            return None
        box = {}
        self.data[schema.id] = box
        return box

    def get(self, schema: ResourceSchema, attr: Attribute) -> Any:
        box = self._container(schema, create=False)
        if box is None:
            return _MISSING
        value = box.get(attr.name, _MISSING)
        return _MISSING if value is None else value

    def put(self, schema: ResourceSchema, attr: Attribute, value: Any) -> None:
        if schema is not self.rt.schema:
            self._touched_extensions.add(schema.id)
        box = self._container(schema, create=True)
        assert box is not None
        box[attr.name] = value

    def delete(self, schema: ResourceSchema, attr: Attribute) -> None:
        box = self._container(schema, create=False)
        if box is not None and attr.name in box:
            if schema is not self.rt.schema:
                self._touched_extensions.add(schema.id)
            del box[attr.name]

    def finish(self) -> dict[str, Any]:
        """Drop emptied extension objects and keep ``schemas`` in step (RFC 7643 §3)."""
        schemas = self.data.get("schemas")
        for urn in sorted(self._touched_extensions):
            box = self.data.get(urn)
            present = isinstance(box, dict) and bool(box)
            if not present:
                self.data.pop(urn, None)
            if isinstance(schemas, list):
                if present and urn not in schemas:
                    schemas.append(urn)
                elif not present and urn in schemas:
                    schemas.remove(urn)
        return self.data

    # -- targets ------------------------------------------------------------------------

    def _schema_for_urn(self, text: str) -> ResourceSchema | None:
        lowered = text.strip().lower()
        return next((s for s in self.rt.schemas() if s.id.lower() == lowered), None)

    def target(self, path: str, schema: ResourceSchema | None = None) -> _Target:
        """Parse and resolve a path (RFC 7644 §3.5.2 ``attrPath / valuePath [subAttr]``).

        ``schema`` is the extension whose value object the path appeared in, if any.
        """
        try:
            parsed = parse_path(path)
        except PathError as exc:
            raise PatchError("invalidPath", f"invalid path {_brief(path)}: {exc}") from None
        attr_path = parsed.attr
        if attr_path.sub is not None and parsed.sub is not None:  # pragma: no cover
            raise PatchError("invalidPath", f"invalid path {_brief(path)}")
        uri = attr_path.uri
        if uri is None and schema is not None:
            uri = schema.id
        try:
            found_schema, attr, sub = resolve(
                self.rt, uri, attr_path.name, attr_path.sub or parsed.sub
            )
        except UnknownAttribute as exc:
            raise PatchError("invalidPath", str(exc)) from None
        label = _label(found_schema, self.rt, attr, sub)
        value_filter = None
        if parsed.filter is not None:
            if not attr.multi_valued:
                raise PatchError(
                    "invalidPath",
                    f"{label} is single-valued; a [filter] needs a multi-valued attribute",
                )
            value_filter = self._canonical_filter(attr, parsed.filter)
        return _Target(found_schema, attr, sub, value_filter, label)

    def _canonical_filter(self, attr: Attribute, expr: Any) -> Expr:
        """Check a value filter's names against ``attr``'s sub-attributes, canonicalised.

        An unknown sub-attribute in a filter is ``invalidFilter`` (RFC 7644 §3.12); the
        parser guarantees nesting depth is bounded, so the recursion is too.
        """
        if isinstance(expr, And | Or):
            return type(expr)(
                self._canonical_filter(attr, expr.left), self._canonical_filter(attr, expr.right)
            )
        if isinstance(expr, Not):
            return Not(self._canonical_filter(attr, expr.expr))
        if isinstance(expr, Compare | Present):
            name = expr.attr
            sub = attr.sub_attribute(name.name) if name.uri is None and name.sub is None else None
            if sub is None:
                raise PatchError(
                    "invalidFilter", f"{str(name)!r} is not a sub-attribute of {attr.name}"
                )
            canonical = AttrPath(None, sub.name, None)
            if isinstance(expr, Present):
                return Present(canonical)
            return Compare(canonical, expr.op, expr.value)
        raise PatchError("invalidFilter", f"unsupported expression in the filter on {attr.name}")

    def _matching(self, target: _Target, elements: list[Any]) -> list[dict[str, Any]]:
        attr = target.attr
        assert target.filter is not None

        def case_exact(name: str) -> bool:
            sub = attr.sub_attribute(name)
            return bool(sub and sub.case_exact)

        try:
            return [
                element
                for element in elements
                if isinstance(element, dict)
                and matches(target.filter, element, case_exact=case_exact)
            ]
        except (FilterError, ValueError, TypeError) as exc:
            raise PatchError("invalidFilter", f"cannot evaluate the filter: {exc}") from None

    def _element_from_filter(self, target: _Target) -> dict[str, Any]:
        """The new element a non-matching value path describes.

        Entra ID sends ``replace emails[type eq "work"].value`` to a user without a work
        email and expects it to be added, so ``eq`` terms joined by ``and`` become the new
        element's sub-attributes. Any other filter cannot describe one element: noTarget
        (RFC 7644 §3.12: "the specified path did not yield an attribute ... that could be
        operated on").
        """
        terms: list[Compare] = []
        pending: list[Any] = [target.filter]
        while pending:
            expr = pending.pop()
            if isinstance(expr, And):
                pending.extend((expr.right, expr.left))
            elif isinstance(expr, Compare) and expr.op == "eq" and expr.value is not None:
                terms.append(expr)
            else:
                raise PatchError(
                    "noTarget",
                    f"no {target.attr.name} value matches the filter, and only a filter of "
                    "'eq' comparisons joined by 'and' can describe a value to add",
                )
        element: dict[str, Any] = {}
        for term in terms:
            sub = target.attr.sub_attribute(term.attr.name)
            assert sub is not None  # the filter was canonicalised
            value = _coerce(sub, term.value, f"{target.attr.name}.{sub.name} in the filter")
            if sub.name in element and not _values_equal(sub, element[sub.name], value):
                raise PatchError("noTarget", f"the filter on {target.attr.name} contradicts itself")
            element[sub.name] = value
        return element

    # -- value normalisation ------------------------------------------------------------

    def _complex_value(self, attr: Attribute, value: Any, label: str) -> dict[str, Any]:
        """Canonicalise an object of sub-attributes; ``None`` values are kept as removals.

        Sub-attribute names are case-insensitive (RFC 7643 §2.1). An unknown name is
        ``invalidPath`` unless its value is null (nothing to store, e.g. ``"$ref": null``
        which Entra ID sends).
        """
        if not isinstance(value, Mapping):
            raise PatchError("invalidValue", f"{label} must be an object, not {_kind(value)}")
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = attr.sub_attribute(key) if isinstance(key, str) else None
            if sub is None:
                if item is None:
                    continue
                raise PatchError(
                    "invalidPath", f"{_brief(key)} is not a sub-attribute of {attr.name}"
                )
            if sub.name in out:
                raise PatchError("invalidValue", f"{label} names {sub.name!r} twice")
            out[sub.name] = None if item is None else _coerce(sub, item, f"{label}.{sub.name}")
        return out

    def _elements(self, attr: Attribute, value: Any, label: str) -> list[dict[str, Any]]:
        """The elements of a multi-valued value; a single object is taken as one element."""
        if isinstance(value, Mapping):
            items: list[Any] = [value]
        elif isinstance(value, list):
            items = value
        else:
            raise PatchError(
                "invalidValue", f"{label} is multi-valued; expected an array, not {_kind(value)}"
            )
        elements = []
        for position, item in enumerate(items):
            if item is None:
                continue
            element = self._complex_value(attr, item, f"{label}[{position}]")
            element = {k: v for k, v in element.items() if v is not None}
            if element:
                elements.append(element)
        return elements

    def _single_object(self, attr: Attribute, value: Any, label: str) -> Any:
        """Unwrap the shapes IdPs send for one complex value.

        Entra ID sends ``manager`` as ``[{"$ref": null, "value": "id"}]`` or as a bare
        ``"id"``; both mean ``{"value": "id"}``.
        """
        if isinstance(value, list):
            if len(value) != 1:
                raise PatchError(
                    "invalidValue",
                    f"{label} takes one object, not an array of {len(value)} items",
                )
            value = value[0]
        if isinstance(value, str) and attr.sub_attribute("value") is not None:
            value = {"value": value}
        return value

    def _settle_primary(
        self, target: _Target, elements: list[Any], chosen: Iterable[dict[str, Any]]
    ) -> None:
        """At most one element may have ``primary: true`` (RFC 7643 §2.4).

        ``chosen`` are the elements this operation made primary; others lose the flag.
        """
        if target.attr.sub_attribute("primary") is None:
            return
        primaries: list[dict[str, Any]] = []
        for element in chosen:
            if element.get("primary") is True and not any(element is p for p in primaries):
                primaries.append(element)
        if len(primaries) > 1:
            raise PatchError(
                "invalidValue",
                f"only one {target.attr.name} value may have primary true (RFC 7643 §2.4)",
            )
        if primaries:
            for element in elements:
                if (
                    isinstance(element, dict)
                    and element is not primaries[0]
                    and element.get("primary") is True
                ):
                    element["primary"] = False

    def _list(self, target: _Target) -> list[Any]:
        current = self.get(target.schema, target.attr)
        return list(current) if isinstance(current, list) else []

    def _store_list(self, target: _Target, elements: list[Any]) -> None:
        kept = [e for e in elements if not (isinstance(e, dict) and not e)]
        if kept:
            self.put(target.schema, target.attr, kept)
        else:
            self.delete(target.schema, target.attr)

    # -- add / replace ------------------------------------------------------------------

    def set(self, op: str, target: _Target, value: Any) -> None:
        """``add`` or ``replace`` ``value`` at ``target`` (RFC 7644 §3.5.2.1, §3.5.2.3).

        For single-valued attributes add and replace are the same (SCIM interop profile),
        and a ``null`` value removes the attribute, because IdPs send nulls for unmapped
        attributes.
        """
        attr = target.attr
        if attr.multi_valued:
            self._set_multi(op, target, value)
        elif target.sub is not None:
            current = self.get(target.schema, attr)
            result = dict(current) if isinstance(current, Mapping) else {}
            if value is None:
                result.pop(target.sub.name, None)
            else:
                result[target.sub.name] = _coerce(target.sub, value, target.label)
            _drop_stale(attr, current, result, {target.sub.name})
            self._store_complex(target, result)
        elif attr.type == "complex":
            if value is None:
                self.delete(target.schema, attr)
                return
            value = self._single_object(attr, value, target.label)
            patch = self._complex_value(attr, value, target.label)
            current = self.get(target.schema, attr)
            result = _merge(current, patch)
            _drop_stale(attr, current, result, set(patch))
            self._store_complex(target, result)
        elif value is None:
            self.delete(target.schema, attr)
        else:
            self.put(target.schema, attr, _coerce(attr, value, target.label))

    def _store_complex(self, target: _Target, value: dict[str, Any]) -> None:
        if value:
            self.put(target.schema, target.attr, value)
        else:
            self.delete(target.schema, target.attr)

    def _set_multi(self, op: str, target: _Target, value: Any) -> None:
        attr, sub, label = target.attr, target.sub, target.label
        if value is None and op == "add":
            return  # nothing to add; "replace" with null removes the target below
        elements = self._list(target)
        chosen: list[dict[str, Any]] = []
        if target.filter is None and sub is None:
            # RFC 7644 §3.5.2.1: add appends; §3.5.2.3: replace without filter replaces all.
            if value is None:
                self.delete(target.schema, attr)
                return
            result: list[Any] = [] if op == "replace" else elements
            for element in self._elements(attr, value, label):
                existing = next((e for e in result if _same_element(attr, e, element)), None)
                if existing is None:
                    result.append(element)
                    chosen.append(element)
                else:
                    chosen.append(existing)
            self._settle_primary(target, result, chosen)
            self._store_list(target, result)
            return
        if target.filter is None:
            # "emails.type" without a filter: the sub-attribute of every element.
            assert sub is not None
            if value is None:
                for element in elements:
                    if isinstance(element, dict):
                        element.pop(sub.name, None)
            else:
                coerced = _coerce(sub, value, label)
                if not elements:
                    elements.append({})
                for element in elements:
                    if isinstance(element, dict):
                        element[sub.name] = coerced
                        if sub.name == "primary":
                            chosen.append(element)
            self._settle_primary(target, elements, chosen)
            self._store_list(target, elements)
            return
        matched = self._matching(target, elements)
        if sub is not None:
            if value is None:
                for element in matched:
                    element.pop(sub.name, None)
            else:
                coerced = _coerce(sub, value, label)
                if not matched:
                    new = self._element_from_filter(target)
                    elements.append(new)
                    matched = [new]
                for element in matched:
                    element[sub.name] = coerced
                if sub.name == "primary":
                    chosen = matched
        elif value is None:
            elements = [e for e in elements if not any(e is m for m in matched)]
        else:
            # RFC 7644 §3.5.2.3: matching values are replaced; sub-attributes the value does
            # not name are kept, as for any complex value, so a partial object sent by an
            # IdP cannot silently drop e.g. the "type" the filter selected on.
            patch = self._complex_value(attr, self._single_object(attr, value, label), label)
            if not matched:
                new = self._element_from_filter(target)
                elements.append(new)
                matched = [new]
            for element in matched:
                for key, item in patch.items():
                    if item is None:
                        element.pop(key, None)
                    else:
                        element[key] = item
            if patch.get("primary") is True:
                chosen = matched
        self._settle_primary(target, elements, chosen)
        self._store_list(target, elements)

    # -- remove -------------------------------------------------------------------------

    def remove(self, target: _Target, value: Any) -> None:
        """``remove`` (RFC 7644 §3.5.2.2). Removing something already absent is a no-op.

        RFC 7644 allows ``noTarget`` when a filter matches nothing, but IdPs retry
        operations and expect removal to be idempotent, so Steward succeeds instead. A
        ``value`` on a multi-valued attribute removes only the elements it describes
        (Entra ID's dialect); without one the whole attribute goes.
        """
        attr, sub = target.attr, target.sub
        if not attr.multi_valued:
            if sub is None:
                self.delete(target.schema, attr)
                return
            current = self.get(target.schema, attr)
            if isinstance(current, Mapping):
                result = dict(current)
                result.pop(sub.name, None)
                self._store_complex(target, result)
            return
        elements = self._list(target)
        if target.filter is None and sub is None:
            if value is None:
                self.delete(target.schema, attr)
                return
            patterns = self._elements(attr, value, target.label)
            elements = [e for e in elements if not any(_contains(attr, e, p) for p in patterns)]
        elif target.filter is None:
            assert sub is not None
            for element in elements:
                if isinstance(element, dict):
                    element.pop(sub.name, None)
        else:
            matched = self._matching(target, elements)
            if sub is None:
                elements = [e for e in elements if not any(e is m for m in matched)]
            else:
                for element in matched:
                    element.pop(sub.name, None)
        self._store_list(target, elements)

    # -- invariants ---------------------------------------------------------------------

    def _skip_invariants(self, attr: Attribute) -> bool:
        return False

    def check_invariants(self, before: dict[str, Any]) -> None:
        """Refuse changes the schema forbids (RFC 7643 §2.2 ``mutability``/``required``).

        Comparing before and after each operation, rather than checking every code path,
        means a value equal to the current one is accepted: Okta renames a group with
        ``{"op": "replace", "value": {"id": "<its id>", "displayName": "New"}}``.
        """
        for schema in self.rt.schemas():
            old_box = before if schema is self.rt.schema else before.get(schema.id)
            new_box = self._container(schema, create=False)
            for attr in schema.attributes:
                if self._skip_invariants(attr):
                    continue
                old = _read(old_box, attr.name)
                new = _read(new_box, attr.name)
                if old == new and type(old) is type(new):
                    continue
                label = _label(schema, self.rt, attr, None)
                if attr.mutability == "readOnly":
                    raise PatchError("mutability", f"{label} is readOnly and cannot be changed")
                if attr.mutability == "immutable" and old is not _MISSING:
                    raise PatchError("mutability", f"{label} is immutable and already has a value")
                if attr.required and new is _MISSING:
                    raise PatchError("mutability", f"{label} is required and cannot be removed")
                if attr.required and new == "":
                    raise PatchError("invalidValue", f"{label} is required and cannot be empty")
                if attr.type == "complex" and not attr.multi_valued and isinstance(new, dict):
                    self._check_sub_invariants(schema, attr, old, new)

    def _check_sub_invariants(
        self, schema: ResourceSchema, attr: Attribute, old: Any, new: dict[str, Any]
    ) -> None:
        """Read-only sub-attributes (``manager.displayName``) are set by Steward only.

        Their removal is allowed (see :func:`_drop_stale`); giving them a value is not.
        """
        old_value = old if isinstance(old, dict) else {}
        for sub in attr.sub_attributes:
            if sub.mutability not in ("readOnly", "immutable"):
                continue
            before = _read(old_value, sub.name)
            after = _read(new, sub.name)
            if before == after and type(before) is type(after):
                continue
            label = _label(schema, self.rt, attr, sub)
            if sub.mutability == "readOnly":
                if after is not _MISSING:
                    raise PatchError("mutability", f"{label} is readOnly and cannot be set")
            elif before is not _MISSING:
                raise PatchError("mutability", f"{label} is immutable and already has a value")


def _read(box: Any, name: str) -> Any:
    if not isinstance(box, Mapping):
        return _MISSING
    value = box.get(name, _MISSING)
    return _MISSING if value is None else value


# --------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------

_MEMBERS = GROUP.attribute("members")
_MEMBER_FILTER_HINT = (
    'a members filter may only select ids, e.g. members[value eq "2819c223"] or '
    'members[value eq "a" or value eq "b"]'
)


def _member_ids(value: Any) -> list[str]:
    """Ids from member objects ``[{"value": id, ...}]``; other sub-attributes are ignored."""
    if isinstance(value, Mapping):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise PatchError(
            "invalidValue",
            f"members must be an array of objects with a string 'value', not {_kind(value)}",
        )
    ids: list[str] = []
    seen: set[str] = set()
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise PatchError(
                "invalidValue",
                f"members[{position}] must be an object with a string 'value', not {_kind(item)}",
            )
        member_id = next(
            (v for k, v in item.items() if isinstance(k, str) and k.lower() == "value"),
            None,
        )
        if not isinstance(member_id, str) or not member_id.strip():
            raise PatchError(
                "invalidValue",
                f"members[{position}].value must be a non-empty string, not {_brief(member_id)}",
            )
        if member_id not in seen:
            seen.add(member_id)
            ids.append(member_id)
    return ids


def _member_displays(value: Any) -> dict[str, str]:
    """``display`` texts sent with members (validated by :func:`_member_ids` first)."""
    items = [value] if isinstance(value, Mapping) else value
    displays: dict[str, str] = {}
    for item in items:
        lowered = {k.lower(): v for k, v in item.items() if isinstance(k, str)}
        if isinstance(lowered.get("display"), str) and lowered["display"]:
            displays[lowered["value"]] = lowered["display"][:300]
    return displays


def _member_filter_ids(expr: Any) -> list[str]:
    """Ids selected by ``value eq "id"`` terms joined with ``or``; anything else refused.

    Selecting members by other criteria would require reading the membership, which the
    engine must never do (see the module docstring).
    """
    ids: list[str] = []
    pending = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, Or):
            pending.extend((node.right, node.left))
            continue
        if (
            isinstance(node, Compare)
            and node.attr.name == "value"
            and node.op == "eq"
            and isinstance(node.value, str | int)
            and not isinstance(node.value, bool)
        ):
            member_id = str(node.value)  # bare-word numeric ids are parsed as ints
            if member_id not in ids:
                ids.append(member_id)
            continue
        raise PatchError("invalidFilter", f"unsupported members filter: {_MEMBER_FILTER_HINT}")
    return ids


class _GroupDocument(_Document):
    """A Group without members; operations on ``members`` are recorded as MemberOps."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        super().__init__(GROUP_RESOURCE_TYPE, resource)
        self.member_ops: list[MemberOp] = []

    def _skip_invariants(self, attr: Attribute) -> bool:
        return attr is _MEMBERS

    def _emit(
        self,
        action: Literal["add", "remove", "replace", "remove_all"],
        ids: list[str],
        displays: dict[str, str] | None = None,
    ):
        self.member_ops.append(MemberOp(action, ids, displays or {}))

    def set(self, op: str, target: _Target, value: Any) -> None:
        if target.attr is not _MEMBERS:
            super().set(op, target, value)
            return
        if target.filter is not None or target.sub is not None:
            raise PatchError(
                "invalidPath",
                f"'{op}' on members needs the path 'members'; filters select members to remove",
            )
        if value is None:
            if op == "replace":
                self._emit("remove_all", [])
            return
        ids = _member_ids(value)
        displays = _member_displays(value)
        if op == "replace":
            self._emit("replace", ids, displays)
        elif ids:
            self._emit("add", ids, displays)

    def remove(self, target: _Target, value: Any) -> None:
        if target.attr is not _MEMBERS:
            super().remove(target, value)
            return
        if target.sub is not None:
            raise PatchError(
                "invalidPath", "a member's sub-attributes cannot be removed; remove the member"
            )
        if target.filter is not None:
            ids = _member_filter_ids(target.filter)
        elif value is None:
            self._emit("remove_all", [])
            return
        else:
            ids = _member_ids(value)
        if ids:
            self._emit("remove", ids)
