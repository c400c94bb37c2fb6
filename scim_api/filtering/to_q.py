"""Translate parsed SCIM filters into Django ``Q`` objects, and ``sortBy`` into orderings.

RFC 7644 §3.4.2.2 defines the filter language; :mod:`scim_api.filtering.parser` turns the text
into an AST and this module maps that AST onto Steward's indexed columns. The view applies the
identity source's scope first and this filter second::

    Identity.objects.filter(scope).filter(user_filter_q(parse_filter(text)))

Why a hand-written translator rather than a generic query builder (see STYLE.md "SCIM
parsing"): every term must either map to a column or be rejected. An unknown attribute, or a
known one Steward does not store in a column (``phoneNumbers``, ``roles``, ``password``...),
raises :class:`FilterError` (a SCIM ``400 invalidFilter``, RFC 7644 §3.12); a term is never
dropped, because ``userName eq "a" and secret eq "b"`` answered as ``userName eq "a"`` leaks
and misleads.

Semantics, with the RFC sections that make them subtle:

* Case. String comparisons follow each attribute's ``caseExact`` (RFC 7643 §2.3.1, §7;
  RFC 7644 §3.4.2.2 "the attribute's caseExact characteristic"). Case-exact attributes
  (``id``, ``externalId``) use plain ``exact``/``contains``/``gt``... lookups. Case-insensitive
  ones compare ``LOWER(column)`` with ``LOWER(value)`` for eq/gt/ge/lt/le and use
  ``icontains``/``istartswith``/``iendswith`` for co/sw/ew. ``LOWER`` rather than Django's
  ``iexact`` because ``iexact`` renders ``UPPER(col::text) = UPPER(%s)`` on PostgreSQL, which
  cannot use the ``Lower("user_name")`` / ``Lower("display_name")`` / ``Lower("value")``
  indexes, and because ``LOWER`` on both sides is exactly the notion of "same userName" that
  the case-insensitive unique constraints enforce. (SQLite, for local development only,
  makes every ``LIKE`` ignore ASCII case, so there case-exact co/sw/ew do too.)
* ``ne`` is ``not eq`` and ``eq null`` is ``not pr`` (RFC 7644 §3.4.2.2 table 3). Steward
  stores an absent string as ``""``, so ``title ne "x"`` includes people without a title and
  ``title pr`` means ``title <> ''``. Booleans are never absent: ``active pr`` is always true.
* Multi-valued attributes (``emails``, a user's ``groups``, a group's ``members``) are matched
  with ``EXISTS`` subqueries correlated on the outer primary key, never joins, so a person
  with two matching e-mail addresses is returned once and the view's COUNT stays right.
  A value path (``emails[type eq "work" and value co "@x.com"]``, RFC 7644 §3.4.2.2
  "valuePath") is one ``EXISTS`` whose inner filter holds all terms, so they must be true of
  the *same* e-mail row. RFC 7644 §3.4.2.2 asks for a sub-attribute on complex attributes,
  yet its own examples write ``emails co "example.com"``; like most servers we read a
  multi-valued attribute without one as its ``value`` sub-attribute. ``emails.type ne
  "work"`` is ``not (emails.type eq "work")``, "has no work address", while the value path
  ``emails[type ne "work"]`` means "has an address whose type is not work".
* dateTime values are ISO 8601 strings (RFC 7643 §2.3.5) parsed into aware datetimes (a naive
  value is UTC); ``eq`` compares the instant exactly.
* Values written as bare words may reach us as numbers (``employeeNumber eq 701984``); for
  string attributes they are compared as their text. Booleans accept JSON ``true``/``false``
  and the strings ``"true"``/``"false"`` in any case (some clients quote them).

The translator walks the AST with an explicit stack and flattens chains of ``and``/``or`` into
one ``Q`` node each, so neither it nor Django's SQL compiler recurses once per term.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from typing import Final, TypeAlias

from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models import Value as SqlValue
from django.db.models.expressions import BaseExpression
from django.db.models.functions import Lower
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
    Lookup,
)

from governance.identities.models import GroupMembership, IdentityEmail
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
    Value,
    ValuePath,
    parse_filter,
    parse_path,
)
from scim_api.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE_TYPE,
    GROUP_SCHEMA,
    USER_RESOURCE_TYPE,
    USER_SCHEMA,
    Attribute,
    ResourceType,
    UnknownAttribute,
    resolve,
)

__all__ = ["SortKey", "group_filter_q", "group_sort_key", "user_filter_q", "user_sort_key"]

#: What the ``*_sort_key`` functions return: an expression the view orders by with
#: ``.asc()`` / ``.desc()`` (RFC 7644 §3.4.2.3 ``sortOrder``).
SortKey: TypeAlias = F | BaseExpression

# --------------------------------------------------------------------------------------------
# Attribute -> storage maps
# --------------------------------------------------------------------------------------------

_STRING: Final = "string"
_BOOLEAN: Final = "boolean"
_DATETIME: Final = "dateTime"
_UUID: Final = "uuid"
_MANAGER: Final = "manager"


@dataclass(frozen=True)
class _Column:
    """A single value stored in ``field`` of the row being filtered (or of a related row).

    ``kind`` picks the comparison rules: ``string`` (case from the schema), ``boolean``,
    ``dateTime``, ``uuid`` (primary / foreign keys: eq, ne and pr only) or ``manager`` (the
    enterprise ``manager.value``, stored as ``manager_id`` and/or ``manager_ref``).
    """

    field: str
    kind: str = _STRING
    sortable: bool = True


@dataclass(frozen=True)
class _Complex:
    """A single-valued complex attribute whose sub-attributes are columns of the same row."""

    subs: Mapping[str, _Column]


@dataclass(frozen=True)
class _Related:
    """A multi-valued attribute stored as rows of ``model``; always matched with EXISTS.

    ``outer`` is the foreign key on ``model`` pointing at the filtered row; ``scope`` limits
    the rows to those the SCIM representation shows (a user's ``groups`` omit deleted
    groups, as ``scim_api.resources.user_resource`` does). ``sortable`` allows ``sortBy`` on
    the attribute: RFC 7644 §3.4.2.3 sorts by the primary value, else the first, which needs
    ``primary`` and ``position`` columns.
    """

    model: type[models.Model]
    outer: str
    subs: Mapping[str, _Column]
    scope: Q = field(default_factory=Q)
    sortable: bool = False


_Spec: TypeAlias = _Column | _Complex | _Related
_Table: TypeAlias = Mapping[tuple[str, str], _Spec]

_META: Final = _Complex(
    {
        "created": _Column("created_at", _DATETIME),
        "lastModified": _Column("updated_at", _DATETIME),
    }
)

#: (schema URN, canonical attribute name) -> storage, for the User resource type.
_USER_TABLE: Final[_Table] = {
    (USER_SCHEMA, "id"): _Column("id", _UUID),
    (USER_SCHEMA, "externalId"): _Column("external_id"),
    (USER_SCHEMA, "meta"): _META,
    (USER_SCHEMA, "userName"): _Column("user_name"),
    (USER_SCHEMA, "name"): _Complex(
        {
            "formatted": _Column("formatted_name"),
            "familyName": _Column("family_name"),
            "givenName": _Column("given_name"),
            "middleName": _Column("middle_name"),
            "honorificPrefix": _Column("honorific_prefix"),
            "honorificSuffix": _Column("honorific_suffix"),
        }
    ),
    (USER_SCHEMA, "displayName"): _Column("display_name"),
    (USER_SCHEMA, "nickName"): _Column("nick_name"),
    (USER_SCHEMA, "profileUrl"): _Column("profile_url"),
    (USER_SCHEMA, "title"): _Column("title"),
    (USER_SCHEMA, "userType"): _Column("user_type"),
    (USER_SCHEMA, "preferredLanguage"): _Column("preferred_language"),
    (USER_SCHEMA, "locale"): _Column("locale"),
    (USER_SCHEMA, "timezone"): _Column("timezone"),
    (USER_SCHEMA, "active"): _Column("active", _BOOLEAN),
    (USER_SCHEMA, "emails"): _Related(
        IdentityEmail,
        "identity",
        {
            "value": _Column("value"),
            "display": _Column("display"),
            "type": _Column("type"),
            "primary": _Column("primary", _BOOLEAN),
        },
        sortable=True,
    ),
    (USER_SCHEMA, "groups"): _Related(
        GroupMembership,
        "identity",
        {"value": _Column("group_id", _UUID)},
        scope=Q(group__deleted_at__isnull=True),
    ),
    (ENTERPRISE_USER_SCHEMA, "employeeNumber"): _Column("employee_number"),
    (ENTERPRISE_USER_SCHEMA, "costCenter"): _Column("cost_center"),
    (ENTERPRISE_USER_SCHEMA, "organization"): _Column("organization"),
    (ENTERPRISE_USER_SCHEMA, "division"): _Column("division"),
    (ENTERPRISE_USER_SCHEMA, "department"): _Column("department"),
    (ENTERPRISE_USER_SCHEMA, "manager"): _Complex(
        {"value": _Column("manager", _MANAGER, sortable=False)}
    ),
}

#: (schema URN, canonical attribute name) -> storage, for the Group resource type.
_GROUP_TABLE: Final[_Table] = {
    (GROUP_SCHEMA, "id"): _Column("id", _UUID),
    (GROUP_SCHEMA, "externalId"): _Column("external_id"),
    (GROUP_SCHEMA, "meta"): _META,
    (GROUP_SCHEMA, "displayName"): _Column("display_name"),
    (GROUP_SCHEMA, "members"): _Related(
        GroupMembership, "group", {"value": _Column("identity_id", _UUID)}
    ),
}


def _check_table(resource_type: ResourceType, table: _Table) -> None:
    """Fail at import time if a map entry names an attribute the schema lacks (a typo)."""
    for (urn, name), spec in table.items():
        _, attr, _ = resolve(resource_type, urn, name)
        subs = spec.subs if isinstance(spec, _Complex | _Related) else {}
        if attr.name != name or any(attr.sub_attribute(sub) is None for sub in subs):
            raise ValueError(f"filter map for {resource_type.name} is out of date: {name}")


_check_table(USER_RESOURCE_TYPE, _USER_TABLE)
_check_table(GROUP_RESOURCE_TYPE, _GROUP_TABLE)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def user_filter_q(expr: Expr | str) -> Q:
    """``Q`` over :class:`Identity` for a User filter (RFC 7644 §3.4.2.2).

    ``expr`` is a parsed filter (or the filter text, parsed here). Raises
    :class:`FilterError` for unknown attributes, attributes Steward cannot filter on,
    operators the attribute's type does not support and malformed values.
    """
    return _Translator(USER_RESOURCE_TYPE, _USER_TABLE).filter_q(_parsed(expr))


def group_filter_q(expr: Expr | str) -> Q:
    """``Q`` over :class:`DirectoryGroup` for a Group filter (RFC 7644 §3.4.2.2)."""
    return _Translator(GROUP_RESOURCE_TYPE, _GROUP_TABLE).filter_q(_parsed(expr))


def user_sort_key(sort_by: str) -> SortKey:
    """Ordering expression over :class:`Identity` for ``sortBy`` (RFC 7644 §3.4.2.3).

    Case-insensitive strings sort by ``Lower(column)`` ("case-insensitive Unicode alphabetic
    sort order"); ``emails`` / ``emails.value`` sort by the primary address, else the first.
    The caller applies ``.asc()`` or ``.desc()`` and should add ``pk`` as a tie-breaker for
    stable paging. Raises :class:`FilterError` for unknown or unsortable attributes.
    """
    return _Translator(USER_RESOURCE_TYPE, _USER_TABLE).sort_key(sort_by)


def group_sort_key(sort_by: str) -> SortKey:
    """Ordering expression over :class:`DirectoryGroup` for ``sortBy`` (RFC 7644 §3.4.2.3)."""
    return _Translator(GROUP_RESOURCE_TYPE, _GROUP_TABLE).sort_key(sort_by)


def _parsed(expr: Expr | str) -> Expr:
    return parse_filter(expr) if isinstance(expr, str) else expr


# --------------------------------------------------------------------------------------------
# Translation
# --------------------------------------------------------------------------------------------

_Leaf: TypeAlias = Compare | Present | ValuePath


def _always_false() -> Q:
    """A Q no row satisfies; Django compiles it to ``False`` and it negates to "everything"."""
    return Q(pk__in=[])


def _always_true() -> Q:
    """A Q every row satisfies. Not ``Q()``: ``~Q()`` is also empty, i.e. still "everything"."""
    return ~Q(pk__in=[])


def _translate(expr: Expr, leaf: Callable[[_Leaf], Q]) -> Q:
    """Fold ``expr`` into a Q with an explicit stack (no recursion per AST level).

    Same-operator chains become one flat Q node, built with ``&`` / ``|`` so the result
    equals what a person would write by hand (tests compare Q objects by equality).
    """
    results: list[Q] = []
    # Work items: ("visit", node) or ("build", node, operand count); popped LIFO.
    stack: list[tuple[str, Expr, int]] = [("visit", expr, 0)]
    while stack:
        action, node, count = stack.pop()
        if action == "build":
            operands = results[-count:]
            del results[-count:]
            if isinstance(node, Not):
                results.append(~operands[0])
            else:
                combine = operator.and_ if isinstance(node, And) else operator.or_
                results.append(reduce(combine, operands))
        elif isinstance(node, And | Or):
            children = _chain(node)
            stack.append(("build", node, len(children)))
            stack.extend(("visit", child, 0) for child in reversed(children))
        elif isinstance(node, Not):
            stack.append(("build", node, 1))
            stack.append(("visit", node.expr, 0))
        elif isinstance(node, Compare | Present | ValuePath):
            results.append(leaf(node))
        else:
            raise FilterError(f"Not a SCIM filter expression: {type(node).__name__}")
    return results[0]


def _chain(node: And | Or) -> list[Expr]:
    """The operands of a chain of ``node``'s operator, left to right, found iteratively."""
    kind = type(node)
    operands: list[Expr] = []
    pending: list[Expr] = [node]
    while pending:
        current = pending.pop()
        if type(current) is kind:
            assert isinstance(current, And | Or)
            pending.append(current.right)
            pending.append(current.left)
        else:
            operands.append(current)
    return operands


class _Translator:
    """Maps the attribute paths of one resource type to its storage table."""

    def __init__(self, resource_type: ResourceType, table: _Table) -> None:
        self.resource_type = resource_type
        self.table = table

    # -- filters -----------------------------------------------------------------------------

    def filter_q(self, expr: Expr) -> Q:
        return _translate(expr, self.leaf_q)

    def resolve(
        self, path: AttrPath, *, sorting: bool = False
    ) -> tuple[Attribute, Attribute | None, _Spec]:
        """Schema attribute, sub-attribute and storage for ``path``, or FilterError."""
        try:
            schema, attr, sub = resolve(self.resource_type, path.uri, path.name, path.sub)
        except UnknownAttribute as exc:
            raise FilterError(f'Unknown attribute "{_shown(path)}": {exc}') from None
        spec = self.table.get((schema.id, attr.name))
        if spec is None:
            raise _unusable(path, sorting=sorting)
        return attr, sub, spec

    def leaf_q(self, node: _Leaf) -> Q:
        if isinstance(node, ValuePath):
            return self.value_path_q(node)
        path = node.attr
        attr, sub, spec = self.resolve(path)
        if isinstance(spec, _Column):
            return _column_q(spec, attr, node, _shown(path))
        if isinstance(spec, _Complex):
            if sub is None:
                first = next(iter(spec.subs))
                raise _unusable(path, hint=f'use a sub-attribute such as "{attr.name}.{first}"')
            return _column_q(_sub_column(spec, sub, path), sub, node, _shown(path))
        return self.related_q(spec, attr, sub, node, path)

    def related_q(
        self,
        spec: _Related,
        attr: Attribute,
        sub: Attribute | None,
        node: Compare | Present,
        path: AttrPath,
    ) -> Q:
        """EXISTS over the rows of a multi-valued attribute (RFC 7644 §3.4.2.2)."""
        if sub is None and isinstance(node, Compare):
            sub = attr.sub_attribute("value")  # RFC 7644 §3.4.2.2: compare the "value"
            assert sub is not None
        if isinstance(node, Compare) and node.op == "ne":
            # "ne" of a multi-valued attribute: no element equals the value.
            return ~self.related_q(spec, attr, sub, Compare(node.attr, "eq", node.value), path)
        if isinstance(node, Compare) and node.value is None:
            present = self.related_q(spec, attr, sub, Present(node.attr), path)
            return ~present  # "eq null": no element has the attribute
        if sub is None:
            return Q(_exists(spec, Q()))
        column = _sub_column(spec, sub, path)
        return Q(_exists(spec, _column_q(column, sub, node, _shown(path))))

    def value_path_q(self, node: ValuePath) -> Q:
        """``attr[filter]``: all of ``filter`` holds for one element (RFC 7644 §3.4.2.2)."""
        attr, sub, spec = self.resolve(node.attr)
        parent = _shown(node.attr)
        if isinstance(spec, _Column) or sub is not None:
            raise FilterError(
                f'"{parent}[...]" is not allowed: a value filter needs a complex attribute'
            )
        complex_spec = spec

        def inner_leaf(leaf: _Leaf) -> Q:
            if isinstance(leaf, ValuePath) or leaf.attr.uri or leaf.attr.sub:
                raise FilterError(f'Only plain sub-attributes can be used inside "{parent}[...]"')
            label = f"{parent}.{leaf.attr.name}"
            sub_attr = attr.sub_attribute(leaf.attr.name)
            if sub_attr is None:
                raise FilterError(
                    f'Unknown attribute "{label}": {leaf.attr.name!r} is not a sub-attribute '
                    f"of {attr.name!r}"
                )
            full_path = AttrPath(node.attr.uri, attr.name, sub_attr.name)
            column = _sub_column(complex_spec, sub_attr, full_path)
            return _column_q(column, sub_attr, leaf, label)

        inner = _translate(node.filter, inner_leaf)
        if isinstance(spec, _Complex):
            return inner
        return Q(_exists(spec, inner))

    # -- sorting -----------------------------------------------------------------------------

    def sort_key(self, sort_by: str) -> SortKey:
        try:
            parsed = parse_path(sort_by)
        except PathError as exc:
            raise FilterError(str(exc), exc.position) from None
        path = parsed.attr
        if parsed.filter is not None or parsed.sub is not None:
            raise FilterError(f'Cannot sort by "{_truncate(sort_by)}": expected an attribute path')
        attr, sub, spec = self.resolve(path, sorting=True)
        if isinstance(spec, _Complex | _Related) and sub is None:
            if isinstance(spec, _Complex):
                first = next(iter(spec.subs))
                raise _unusable(path, sorting=True, hint=f'use "{attr.name}.{first}"')
            sub = attr.sub_attribute("value")
        if isinstance(spec, _Column):
            column, schema_attr = spec, attr
        else:
            assert sub is not None
            column, schema_attr = _sub_column(spec, sub, path, sorting=True), sub
        if not column.sortable or (isinstance(spec, _Related) and not spec.sortable):
            raise _unusable(path, sorting=True)
        expression: SortKey
        if column.kind == _STRING and not schema_attr.case_exact:
            expression = Lower(column.field)
        else:
            expression = F(column.field)
        if not isinstance(spec, _Related):
            return expression
        # RFC 7644 §3.4.2.3: a multi-valued attribute sorts by its primary value, if any,
        # else by the first value.
        first = (
            spec.model._default_manager.filter(**{spec.outer: OuterRef("pk")})
            .filter(spec.scope)
            .order_by("-primary", "position", "pk")
            .values_list(expression)[:1]
        )
        return Subquery(first)


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------

_ORDERING_LOOKUPS: Final[dict[str, type[Lookup]]] = {
    "gt": GreaterThan,
    "ge": GreaterThanOrEqual,
    "lt": LessThan,
    "le": LessThanOrEqual,
}
_SUBSTRING_LOOKUPS: Final = {"co": "contains", "sw": "startswith", "ew": "endswith"}
_FIELD_LOOKUPS: Final = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}


def _exists(spec: _Related, inner: Q) -> Exists:
    rows = spec.model._default_manager.filter(**{spec.outer: OuterRef("pk")})
    return Exists(rows.filter(spec.scope).filter(inner))


def _sub_column(
    spec: _Complex | _Related, sub: Attribute, path: AttrPath, *, sorting: bool = False
) -> _Column:
    column = spec.subs.get(sub.name)
    if column is None:
        raise _unusable(path, sorting=sorting)
    return column


def _column_q(column: _Column, attr: Attribute, node: Compare | Present, label: str) -> Q:
    """The Q for one comparison (or ``pr``) on one column; ``attr`` carries ``caseExact``."""
    if isinstance(node, Present):
        return _present_q(column)
    op, value = node.op, node.value
    if op == "ne":
        return ~_column_q(column, attr, Compare(node.attr, "eq", value), label)
    if value is None:  # "eq null" (the parser allows null with eq and ne only)
        return ~_present_q(column)
    if column.kind == _STRING:
        return _string_q(column.field, attr.case_exact, op, _as_text(value, label))
    if op != "eq" and column.kind != _DATETIME:
        raise _bad_operator(op, label, column.kind)
    if column.kind == _BOOLEAN:
        return Q(**{column.field: _as_bool(value, label)})
    if column.kind == _DATETIME:
        if op in _SUBSTRING_LOOKUPS:
            raise _bad_operator(op, label, column.kind)
        return Q(**{_lookup_key(column.field, op): _as_datetime(value, label)})
    if column.kind == _UUID:
        key = _as_uuid(value)
        return _always_false() if key is None else Q(**{column.field: key})
    # _MANAGER: the IdP's raw value, or the id of the resolved manager.
    text = _as_text(value, label)
    by_ref = Q(manager_ref=text)
    key = _as_uuid(text)
    return by_ref if key is None else by_ref | Q(manager_id=key)


def _string_q(field_name: str, case_exact: bool, op: str, text: str) -> Q:
    if op in _SUBSTRING_LOOKUPS:
        lookup = _SUBSTRING_LOOKUPS[op] if case_exact else "i" + _SUBSTRING_LOOKUPS[op]
        return Q(**{f"{field_name}__{lookup}": text})
    if case_exact:
        return Q(**{_lookup_key(field_name, op): text})
    lookup_class = Exact if op == "eq" else _ORDERING_LOOKUPS[op]
    return Q(lookup_class(Lower(field_name), Lower(SqlValue(text))))


def _lookup_key(field_name: str, op: str) -> str:
    """``field`` for eq (so Q(external_id="x") reads naturally), ``field__gte`` for ge..."""
    return field_name if op == "eq" else f"{field_name}__{_FIELD_LOOKUPS[op]}"


def _present_q(column: _Column) -> Q:
    """``pr``: has a non-empty value (RFC 7644 §3.4.2.2); absent strings are stored as ""."""
    if column.kind == _STRING:
        return ~Q(**{column.field: ""})
    if column.kind == _BOOLEAN:
        return _always_true()
    if column.kind == _MANAGER:
        return Q(manager__isnull=False) | ~Q(manager_ref="")
    return Q(**{f"{column.field}__isnull": False})


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _as_text(value: Value, label: str) -> str:
    """A string comparison value; bare-word numbers and booleans become their JSON text."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the driver.
        raise FilterError(f'The value for "{label}" contains a NUL character')
    return text


def _as_bool(value: Value, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise FilterError(f'"{label}" is a boolean: expected true or false, not {_show(value)}')


def _as_datetime(value: Value, label: str) -> datetime:
    """Parse an ISO 8601 dateTime (RFC 7643 §2.3.5); naive values are UTC."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    raise FilterError(
        f'"{label}" is a dateTime: expected an ISO 8601 string such as '
        f'"2011-05-13T04:42:34Z", not {_show(value)}'
    )


def _as_uuid(value: Value) -> uuid.UUID | None:
    """Ids are UUIDs; anything else matches no row (never an error or a 500)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def _truncate(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(path: AttrPath) -> str:
    return _truncate(str(path))


def _show(value: Value) -> str:
    if isinstance(value, str):
        return f'"{_truncate(value)}"'
    return "null" if value is None else str(value).lower()


def _unusable(path: AttrPath, *, sorting: bool = False, hint: str = "") -> FilterError:
    """A known attribute Steward does not store in a column (or cannot order by)."""
    use = "sortBy" if sorting else "a filter"
    message = f'Attribute "{_shown(path)}" cannot be used in {use}'
    return FilterError(f"{message}: {hint}" if hint else message)


def _bad_operator(op: str, label: str, kind: str) -> FilterError:
    kinds = {_UUID: "an id", _MANAGER: "a reference", _BOOLEAN: "a boolean"}
    what = kinds.get(kind, "a dateTime")
    allowed = "eq, ne, gt, ge, lt, le and pr" if kind == _DATETIME else "eq, ne and pr"
    return FilterError(f'Operator "{op}" cannot be used with "{label}": {what} allows {allowed}')
