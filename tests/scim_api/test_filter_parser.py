"""Tests for the pure SCIM filter / PATCH-path parser (RFC 7644 §3.4.2.2 and §3.5.2).

Table-driven: each table row is ``(input, expected)`` with a readable id, so a failure names the
exact filter that regressed. No Django: run with ``-p no:django``.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any

import pytest

from scim_api.filtering import (
    MAX_FILTER_LENGTH,
    MAX_NESTING_DEPTH,
    And,
    AttrPath,
    Compare,
    Expr,
    FilterError,
    Not,
    Or,
    PatchPath,
    PathError,
    Present,
    ValuePath,
    matches,
    parse_filter,
    parse_path,
)

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def attr(name: str, sub: str | None = None, uri: str | None = None) -> AttrPath:
    return AttrPath(uri, name, sub)


def cmp(name: str, op: str, value: Any, sub: str | None = None, uri: str | None = None) -> Compare:
    return Compare(attr(name, sub, uri), op, value)


def pr(name: str, sub: str | None = None, uri: str | None = None) -> Present:
    return Present(attr(name, sub, uri))


def case(text: str, expected: Any, case_id: str) -> Any:
    return pytest.param(text, expected, id=case_id)


def ast_depth(expr: Expr) -> int:
    if isinstance(expr, And | Or):
        return 1 + max(ast_depth(expr.left), ast_depth(expr.right))
    if isinstance(expr, Not):
        return 1 + ast_depth(expr.expr)
    if isinstance(expr, ValuePath):
        return 1 + ast_depth(expr.filter)
    return 1


# --------------------------------------------------------------------------------------------
# Valid filters
# --------------------------------------------------------------------------------------------

RFC_EXAMPLES = [
    # RFC 7644 §3.4.2.2, the example filters listed after table 3 / figure 2.
    case('userName eq "bjensen"', cmp("userName", "eq", "bjensen"), "rfc-eq"),
    case('name.familyName co "O\'Malley"', cmp("name", "co", "O'Malley", "familyName"), "rfc-co"),
    case('userName sw "J"', cmp("userName", "sw", "J"), "rfc-sw"),
    case(
        f'{CORE_USER}:userName sw "J"',
        cmp("userName", "sw", "J", uri=CORE_USER),
        "rfc-urn-qualified",
    ),
    case("title pr", pr("title"), "rfc-pr"),
    *(
        case(
            f'meta.lastModified {op} "2011-05-13T04:42:34Z"',
            cmp("meta", op, "2011-05-13T04:42:34Z", "lastModified"),
            f"rfc-datetime-{op}",
        )
        for op in ("gt", "ge", "lt", "le")
    ),
    case(
        'title pr and userType eq "Employee"',
        And(pr("title"), cmp("userType", "eq", "Employee")),
        "rfc-pr-and",
    ),
    case(
        'title pr or userType eq "Intern"',
        Or(pr("title"), cmp("userType", "eq", "Intern")),
        "rfc-pr-or",
    ),
    case(
        f'schemas eq "{ENTERPRISE_USER}"',
        cmp("schemas", "eq", ENTERPRISE_USER),
        "rfc-schemas-eq-urn-value",
    ),
    case(
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
        And(
            cmp("userType", "eq", "Employee"),
            Or(cmp("emails", "co", "example.com"), cmp("emails", "co", "example.org", "value")),
        ),
        "rfc-and-grouped-or",
    ),
    case(
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        And(
            cmp("userType", "ne", "Employee"),
            Not(
                Or(cmp("emails", "co", "example.com"), cmp("emails", "co", "example.org", "value"))
            ),
        ),
        "rfc-and-not-grouped-or",
    ),
    case(
        'userType eq "Employee" and (emails.type eq "work")',
        And(cmp("userType", "eq", "Employee"), cmp("emails", "eq", "work", "type")),
        "rfc-and-parenthesised-single",
    ),
    case(
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        And(
            cmp("userType", "eq", "Employee"),
            ValuePath(
                attr("emails"),
                And(cmp("type", "eq", "work"), cmp("value", "co", "@example.com")),
            ),
        ),
        "rfc-and-value-path",
    ),
    case(
        'emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]',
        Or(
            ValuePath(
                attr("emails"), And(cmp("type", "eq", "work"), cmp("value", "co", "@example.com"))
            ),
            ValuePath(attr("ims"), And(cmp("type", "eq", "xmpp"), cmp("value", "co", "@foo.com"))),
        ),
        "rfc-value-path-or-value-path",
    ),
    case(
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]',
        Or(
            And(
                cmp("userType", "eq", "Employee"),
                ValuePath(
                    attr("emails"),
                    And(cmp("type", "eq", "work"), cmp("value", "co", "@example.com")),
                ),
            ),
            ValuePath(attr("ims"), And(cmp("type", "eq", "xmpp"), cmp("value", "co", "@foo.com"))),
        ),
        "rfc-and-binds-tighter-than-or-with-value-paths",
    ),
]

CLIENT_SHAPES = [
    # Filters Microsoft Entra ID and Okta send during provisioning.
    case('userName eq "test@contoso.com"', cmp("userName", "eq", "test@contoso.com"), "entra-user"),
    case(
        'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"',
        cmp("externalId", "eq", "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"),
        "entra-external-id",
    ),
    case('displayName eq "Group A"', cmp("displayName", "eq", "Group A"), "entra-group"),
    case(
        'emails[type eq "work"].value eq "a@b.com"',
        ValuePath(attr("emails"), And(cmp("type", "eq", "work"), cmp("value", "eq", "a@b.com"))),
        "entra-value-path-sub-attr-compare",
    ),
    case(
        'emails[type eq "work"].value pr',
        ValuePath(attr("emails"), And(cmp("type", "eq", "work"), pr("value"))),
        "entra-value-path-sub-attr-present",
    ),
    case(
        'emails[type eq "work" or type eq "home"].value eq "a@b.com" and active eq true',
        And(
            ValuePath(
                attr("emails"),
                And(
                    Or(cmp("type", "eq", "work"), cmp("type", "eq", "home")),
                    cmp("value", "eq", "a@b.com"),
                ),
            ),
            cmp("active", "eq", True),
        ),
        "entra-value-path-sub-attr-keeps-inner-or-grouped",
    ),
    case('userName EQ "x"', cmp("userName", "eq", "x"), "upper-case-eq"),
    case(
        'userName Eq "x" AND title PR',
        And(cmp("userName", "eq", "x"), pr("title")),
        "mixed-case-and-pr",
    ),
    case(
        "NOT (active Eq TRUE) Or title pr",
        Or(Not(cmp("active", "eq", True)), pr("title")),
        "upper-case-not-or-true",
    ),
    case("externalId eq jyoung", cmp("externalId", "eq", "jyoung"), "entra-bare-word-value"),
    case(
        "externalId eq 0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        cmp("externalId", "eq", "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"),
        "bare-word-that-starts-with-a-digit",
    ),
    case(
        f'{ENTERPRISE_USER}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"',
        cmp("manager", "eq", "26118915-6090-4610-87e4-49d8ca9f808d", "value", ENTERPRISE_USER),
        "enterprise-manager-value",
    ),
    case(
        f'{ENTERPRISE_USER}:employeeNumber eq "701984"',
        cmp("employeeNumber", "eq", "701984", uri=ENTERPRISE_USER),
        "enterprise-employee-number",
    ),
    case(
        'members[value eq "abc"]', ValuePath(attr("members"), cmp("value", "eq", "abc")), "members"
    ),
    case(
        'members[$ref eq "https://x/Users/1"]',
        ValuePath(attr("members"), cmp("$ref", "eq", "https://x/Users/1")),
        "dollar-ref-sub-attribute",
    ),
    case(
        'emails[not (type eq "work")]',
        ValuePath(attr("emails"), Not(cmp("type", "eq", "work"))),
        "not-inside-value-filter",
    ),
]

LOGIC_AND_GROUPING = [
    case(
        "a pr or b pr and c pr",
        Or(pr("a"), And(pr("b"), pr("c"))),
        "and-binds-tighter-than-or",
    ),
    case(
        "(a pr or b pr) and c pr",
        And(Or(pr("a"), pr("b")), pr("c")),
        "parentheses-override-precedence",
    ),
    case("a pr and b pr and c pr", And(And(pr("a"), pr("b")), pr("c")), "and-chain-of-three"),
    case("a pr or b pr or c pr", Or(Or(pr("a"), pr("b")), pr("c")), "or-chain-of-three"),
    case(
        "a pr or b pr or c pr or d pr",
        Or(Or(pr("a"), pr("b")), Or(pr("c"), pr("d"))),
        "or-chain-of-four-is-balanced",
    ),
    case("not(a pr)", Not(pr("a")), "not-without-space"),
    case("not (not (a pr))", Not(Not(pr("a"))), "double-not"),
    case(
        "not (a pr) and b pr",
        And(Not(pr("a")), pr("b")),
        "not-binds-tighter-than-and",
    ),
    case("((a pr))", pr("a"), "redundant-parentheses"),
    case('  \tuserName\teq\t"x"  ', cmp("userName", "eq", "x"), "tabs-and-spaces"),
    case('userName eq"x"', cmp("userName", "eq", "x"), "no-space-before-string"),
    case('(userName eq "x")and(title pr)', And(cmp("userName", "eq", "x"), pr("title")), "tight"),
]

VALUES = [
    case('a eq "q\\"uote"', cmp("a", "eq", 'q"uote'), "escaped-quote"),
    case('a eq "back\\\\slash"', cmp("a", "eq", "back\\slash"), "escaped-backslash"),
    case('a eq "caf\\u00e9"', cmp("a", "eq", "café"), "unicode-escape"),
    case('a eq "\\ud83d\\ude00"', cmp("a", "eq", "\U0001f600"), "surrogate-pair-escape"),
    case('a eq "and or not ) ( ] ["', cmp("a", "eq", "and or not ) ( ] ["), "keywords-in-string"),
    case('a eq ""', cmp("a", "eq", ""), "empty-string"),
    case("a eq 42", cmp("a", "eq", 42), "integer"),
    case("a gt -7", cmp("a", "gt", -7), "negative-integer"),
    case("a le 1.5", cmp("a", "le", 1.5), "decimal"),
    case("a lt -2.5e3", cmp("a", "lt", -2500.0), "exponent"),
    case("a eq 1E2", cmp("a", "eq", 100.0), "upper-case-exponent"),
    case("a eq true", cmp("a", "eq", True), "true"),
    case("a eq False", cmp("a", "eq", False), "false-mixed-case"),
    case("a eq NULL", cmp("a", "eq", None), "null"),
    case("a ne null", cmp("a", "ne", None), "ne-null"),
    case("a eq 007", cmp("a", "eq", "007"), "non-json-number-is-bare-string"),
    case(
        'meta.lastModified gt "2011-05-13T04:42:34.123+02:00"',
        cmp("meta", "gt", "2011-05-13T04:42:34.123+02:00", "lastModified"),
        "datetime-stays-string",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), RFC_EXAMPLES + CLIENT_SHAPES + LOGIC_AND_GROUPING + VALUES
)
def test_parse_filter_valid(text: str, expected: Expr) -> None:
    """Valid filters (RFC 7644 §3.4.2.2 examples, Entra/Okta shapes) parse to the expected AST."""
    assert parse_filter(text) == expected


def test_attr_path_key_is_case_insensitive() -> None:
    """Attribute names and schema URIs are case-insensitive (RFC 7643 §2.1, RFC 7644 §3.10)."""
    upper = parse_filter(f'{ENTERPRISE_USER.upper()}:MANAGER.VALUE eq "x"')
    lower = parse_filter(f'{ENTERPRISE_USER}:manager.value eq "x"')
    assert isinstance(upper, Compare) and isinstance(lower, Compare)
    assert upper.attr.name == "MANAGER"  # spelling is preserved as written
    assert upper.attr.key() == lower.attr.key() == (ENTERPRISE_USER.lower(), "manager", "value")
    assert str(lower.attr) == f"{ENTERPRISE_USER}:manager.value"


def test_filter_at_max_length_and_depth_is_accepted() -> None:
    """The limits are inclusive: exactly 4096 characters and 50 nested groups are fine."""
    prefix = 'userName eq "'
    text = prefix + "x" * (MAX_FILTER_LENGTH - len(prefix) - 1) + '"'
    assert len(text) == MAX_FILTER_LENGTH
    assert parse_filter(text) == cmp("userName", "eq", "x" * (MAX_FILTER_LENGTH - len(prefix) - 1))
    nested = "(" * MAX_NESTING_DEPTH + "a pr" + ")" * MAX_NESTING_DEPTH
    assert parse_filter(nested) == pr("a")


def test_long_chains_stay_shallow() -> None:
    """A 4 KB ``or`` chain parses to a balanced tree, so ==, repr and matches() cannot overflow."""
    clause = 'id eq "x" or '
    count = MAX_FILTER_LENGTH // len(clause)
    text = (clause * count)[: -len(" or ")]
    expr = parse_filter(text)
    assert ast_depth(expr) <= 12
    assert expr == parse_filter(text)
    assert "Or(" in repr(expr)
    assert matches(expr, {"id": "X"})


# --------------------------------------------------------------------------------------------
# Invalid filters
# --------------------------------------------------------------------------------------------

INVALID_FILTERS = [
    case("", "Empty filter at position 0", "empty"),
    case("   \t ", "Empty filter", "whitespace-only"),
    case("userName eq", 'end of input at position 11: expected a value after "eq"', "no-value"),
    case("userName eq and", 'Unexpected token "and" at position 12', "keyword-as-value"),
    case('userName eq "x" and', "end of input at position 19", "dangling-and"),
    case('or userName eq "x"', 'Unexpected keyword "or" at position 0', "leading-or"),
    case('userName like "x"', 'Unknown operator "like" at position 9', "unknown-operator"),
    case('userName "x"', 'Unexpected string "x" at position 9: expected an operator', "no-op"),
    case("userName", "end of input at position 8: expected an operator", "attribute-only"),
    case('title pr "x"', '"pr" does not take a value', "value-after-pr"),
    case("title pr yes", '"pr" does not take a value', "bare-value-after-pr"),
    case("pr", 'Unexpected keyword "pr" at position 0', "pr-alone"),
    case('pr eq "x"', 'Unexpected keyword "pr"', "pr-as-attribute"),
    case("userName eq pr", 'Unexpected token "pr" at position 12', "pr-as-value"),
    case("(pr)", 'Unexpected keyword "pr" at position 1', "pr-in-parentheses"),
    case("emails[pr]", 'Unexpected keyword "pr" at position 7', "pr-in-value-filter"),
    case("title pr pr", 'Unexpected token "pr" at position 9', "pr-twice"),
    case('userName eq "x" garbage', 'Unexpected token "garbage" at position 16', "trailing-word"),
    case('userName eq "x" "y"', 'Unexpected string "y" at position 16', "trailing-string"),
    case('userName eq "x")', 'Unexpected ")" at position 15: no matching "("', "extra-close-paren"),
    case('userName eq "x"]', 'Unexpected "]" at position 15: no matching "["', "stray-bracket"),
    case('(userName eq "x"', 'missing ")" for "(" at position 0', "unclosed-paren"),
    case("((a pr) or (b pr)", 'missing ")" for "(" at position 0', "unbalanced-nested-parens"),
    case(
        "(a eq 1 b pr)", 'Unexpected token "b" at position 8: expected "and", "or" or ")"', "junk"
    ),
    case("()", 'Unexpected ")" at position 1: expected an attribute path', "empty-parens"),
    case('userName eq "abc', "Unterminated string at position 12", "unterminated-string"),
    case('userName eq "abc\\"', "Unterminated string at position 12", "escaped-final-quote"),
    case('a eq "\\x41"', "Invalid escape sequence in string at position 6", "bad-escape"),
    case('a eq "\\u12"', "Invalid escape sequence in string", "short-unicode-escape"),
    case('a eq "\\ud800"', "unpaired UTF-16 surrogate", "lone-surrogate"),
    case("a eq 1e999", 'Number "1e999" is out of range at position 5', "infinite-number"),
    case(
        'not a eq "x"', 'Unexpected token "a" at position 4: expected "(" after "not"', "not-paren"
    ),
    case("not", 'end of input at position 3: expected "(" after "not"', "not-alone"),
    case('name..x eq "y"', 'Invalid attribute path "name..x" at position 0', "double-dot"),
    case('.name eq "y"', 'Invalid attribute path ".name" at position 0', "leading-dot"),
    case('name.a.b eq "y"', 'Invalid attribute path "name.a.b"', "two-sub-attributes"),
    case('name. eq "y"', 'Invalid attribute path "name."', "trailing-dot"),
    case('1name eq "y"', 'Invalid attribute path "1name"', "name-starts-with-digit"),
    case('user@name eq "y"', 'Invalid attribute path "user@name"', "bad-name-character"),
    case('foo:userName eq "y"', 'Invalid schema URN "foo"', "non-urn-prefix"),
    case(f'{CORE_USER}: eq "y"', "Invalid attribute path", "urn-without-attribute"),
    case('urn::x:userName eq "y"', "Invalid schema URN", "urn-empty-segment"),
    case("emails[", "end of input at position 7: expected an attribute path", "open-bracket"),
    case('emails[type eq "work"', 'missing "]" for "[" at position 6', "unclosed-bracket"),
    case('emails[type eq "work")', 'expected "and", "or" or "]"', "bracket-closed-by-paren"),
    case("emails[]", 'Unexpected "]" at position 7: expected an attribute path', "empty-brackets"),
    case(
        'emails[type eq "work" and x[value pr]]',
        'Unexpected "[" at position 27: value filters cannot be nested',
        "nested-value-filter",
    ),
    case(
        'emails[name.value eq "x"]',
        'Invalid sub-attribute "name.value" in value filter at position 7',
        "dotted-path-in-value-filter",
    ),
    case(
        'name.givenName[value eq "x"]',
        'Invalid value path "name.givenName" at position 0',
        "value-filter-on-sub-attribute",
    ),
    case('emails[type eq "work"].value', "expected an operator after", "entra-form-without-op"),
    case('emails[type eq "work"]value eq "x"', 'Unexpected token "value"', "missing-dot"),
    case('emails[type eq "work"].a.b eq "x"', 'Invalid sub-attribute ".a.b"', "bad-sub-after"),
    case("a gt true", 'Operator "gt" cannot compare with true', "ordering-boolean"),
    case("a lt null", 'Operator "lt" cannot compare with null', "ordering-null"),
    case("a co 5", 'Operator "co" requires a string value', "substring-number"),
    case("a sw null", 'Operator "sw" requires a string value', "substring-null"),
    case(
        "(" * (MAX_NESTING_DEPTH + 1) + "a pr" + ")" * (MAX_NESTING_DEPTH + 1),
        "Nesting deeper than 50 levels at position 50",
        "nesting-51",
    ),
    case("not (" * 600 + "a pr" + ")" * 600, "Nesting deeper than 50 levels", "deep-not"),
    case("(" * 4000, "Nesting deeper than 50 levels", "deep-open-parens"),
    case(
        'userName eq "' + "x" * MAX_FILTER_LENGTH + '"',
        "too long (4110 characters, maximum 4096) at position 4096",
        "too-long",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID_FILTERS)
def test_parse_filter_invalid(text: str, message: str) -> None:
    """Malformed filters raise FilterError (-> 400 invalidFilter) naming what and where."""
    with pytest.raises(FilterError) as excinfo:
        parse_filter(text)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_filter_error_carries_position() -> None:
    """The 0-based offset is also exposed as ``.position`` for callers that want it."""
    with pytest.raises(FilterError) as excinfo:
        parse_filter("userName eq and")
    assert excinfo.value.position == 12
    assert (
        str(excinfo.value) == 'Unexpected token "and" at position 12: expected a value after "eq"'
    )


@pytest.mark.parametrize("value", [None, 42, b'userName eq "x"'], ids=["none", "int", "bytes"])
def test_parse_filter_rejects_non_strings(value: Any) -> None:
    """Even a wrongly typed argument yields FilterError, never TypeError/AttributeError."""
    with pytest.raises(FilterError, match="must be a string"):
        parse_filter(value)


# --------------------------------------------------------------------------------------------
# PATCH paths
# --------------------------------------------------------------------------------------------

VALID_PATHS = [
    case("members", PatchPath(attr("members"), None, None), "simple"),
    case("name.givenName", PatchPath(attr("name", "givenName"), None, None), "sub-attribute"),
    case(
        'emails[type eq "work"].value',
        PatchPath(attr("emails"), cmp("type", "eq", "work"), "value"),
        "value-path-with-sub",
    ),
    case(
        'members[value eq "2819c223"]',
        PatchPath(attr("members"), cmp("value", "eq", "2819c223"), None),
        "value-path",
    ),
    case(
        f"{ENTERPRISE_USER}:employeeNumber",
        PatchPath(attr("employeeNumber", uri=ENTERPRISE_USER), None, None),
        "enterprise-attribute",
    ),
    case(
        f"{ENTERPRISE_USER}:manager",
        PatchPath(attr("manager", uri=ENTERPRISE_USER), None, None),
        "enterprise-manager",
    ),
    case(
        f"{ENTERPRISE_USER}:manager.value",
        PatchPath(attr("manager", "value", ENTERPRISE_USER), None, None),
        "enterprise-manager-value",
    ),
    case(
        'addresses[type eq "work"].streetAddress',
        PatchPath(attr("addresses"), cmp("type", "eq", "work"), "streetAddress"),
        "addresses-street",
    ),
    case(
        'emails[type eq "work" and primary eq true]',
        PatchPath(attr("emails"), And(cmp("type", "eq", "work"), cmp("primary", "eq", True)), None),
        "value-path-with-logic",
    ),
    case(
        f'{CORE_USER}:emails[type eq "work"].value',
        PatchPath(attr("emails", uri=CORE_USER), cmp("type", "eq", "work"), "value"),
        "urn-qualified-value-path",
    ),
    case(" members ", PatchPath(attr("members"), None, None), "surrounding-whitespace"),
    case("MEMBERS", PatchPath(attr("MEMBERS"), None, None), "spelling-preserved"),
]


@pytest.mark.parametrize(("text", "expected"), VALID_PATHS)
def test_parse_path_valid(text: str, expected: PatchPath) -> None:
    """PATCH paths (RFC 7644 §3.5.2: attrPath / valuePath [subAttr]) parse as expected."""
    assert parse_path(text) == expected


INVALID_PATHS = [
    case("", "Empty path at position 0", "empty"),
    case("  ", "Empty path", "blank"),
    case("name..x", 'Invalid attribute path "name..x"', "double-dot"),
    case(".name", 'Invalid attribute path ".name"', "leading-dot"),
    case("emails[", "end of input at position 7", "open-bracket"),
    case('emails[type eq "work"', 'missing "]" for "[" at position 6', "unclosed-bracket"),
    case('emails[type eq "work"]]', 'Unexpected "]" at position 22', "extra-bracket"),
    case('emails[type eq "work"].value.x', 'Invalid sub-attribute ".value.x"', "deep-sub"),
    case('emails[type eq "work"].value eq "x"', 'Unexpected token "eq"', "filter-not-path"),
    case('emails[type eq "work"]value', 'Unexpected token "value"', "missing-dot"),
    case("members extra", 'Unexpected token "extra"', "trailing-junk"),
    case("(members)", 'Unexpected "(" at position 0', "parenthesised"),
    case('members[value eq "x" and', "end of input", "truncated-filter"),
    case("members[value like 1]", 'Unknown operator "like"', "bad-operator-in-filter"),
    case("name.givenName[value pr]", "Invalid value path", "filter-on-sub-attribute"),
    case("emails[type[value pr]]", "value filters cannot be nested", "nested-filter"),
    case('"members"', 'Unexpected string "members"', "quoted"),
    case("and", 'Unexpected keyword "and"', "keyword"),
    case("x" * (MAX_FILTER_LENGTH + 1), "path is too long", "too-long"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_PATHS)
def test_parse_path_invalid(text: str, message: str) -> None:
    """Malformed paths raise PathError (-> 400 invalidPath), never FilterError."""
    with pytest.raises(PathError) as excinfo:
        parse_path(text)
    assert message in str(excinfo.value)
    assert not isinstance(excinfo.value, FilterError)


# --------------------------------------------------------------------------------------------
# In-memory matching
# --------------------------------------------------------------------------------------------

WORK_EMAIL = {"type": "work", "value": "Babs@Example.com", "primary": True}
HOME_EMAIL = {"Type": "home", "Value": "babs@home.org", "display": ""}
NUMBERS = {"count": 5, "ratio": 0.5, "tags": ["Red", "green"], "empty": [], "blank": None}
DATED = {"when": datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "naive": datetime(2024, 5, 1, 12, 0)}

MATCHES = [
    case(('type eq "work"', WORK_EMAIL), True, "eq"),
    case(('type eq "WORK"', WORK_EMAIL), True, "eq-case-insensitive-value"),
    case(('TYPE eq "home"', HOME_EMAIL), True, "eq-case-insensitive-key"),
    case(('type eq "home"', WORK_EMAIL), False, "eq-mismatch"),
    case(('type ne "home"', WORK_EMAIL), True, "ne"),
    case(('type ne "work"', WORK_EMAIL), False, "ne-equal"),
    case(('missing ne "x"', WORK_EMAIL), True, "ne-missing-is-true"),
    case(('missing eq "x"', WORK_EMAIL), False, "eq-missing-is-false"),
    case(('value co "@example"', WORK_EMAIL), True, "co"),
    case(('value sw "babs@"', WORK_EMAIL), True, "sw"),
    case(('value ew ".COM"', WORK_EMAIL), True, "ew"),
    case(('value ew ".org"', WORK_EMAIL), False, "ew-mismatch"),
    case(('value gt "a"', WORK_EMAIL), True, "gt-string-lexicographic"),
    case(('value lt "a"', WORK_EMAIL), False, "lt-string-lexicographic"),
    case(("primary eq true", WORK_EMAIL), True, "eq-boolean"),
    case(("primary eq false", WORK_EMAIL), False, "eq-boolean-mismatch"),
    case(('primary eq "true"', WORK_EMAIL), False, "boolean-vs-string-never-equal"),
    case(("primary pr", WORK_EMAIL), True, "pr"),
    case(("primary pr", HOME_EMAIL), False, "pr-missing"),
    case(("display pr", HOME_EMAIL), False, "pr-empty-string"),
    case(("empty pr", NUMBERS), False, "pr-empty-list"),
    case(("blank pr", NUMBERS), False, "pr-null"),
    case(("blank eq null", NUMBERS), True, "eq-null-absent"),
    case(("missing eq null", NUMBERS), True, "eq-null-missing"),
    case(("count eq null", NUMBERS), False, "eq-null-present"),
    case(("count ne null", NUMBERS), True, "ne-null-present"),
    case(("count gt 4", NUMBERS), True, "gt-number"),
    case(("count ge 5", NUMBERS), True, "ge-number"),
    case(("count lt 5", NUMBERS), False, "lt-number"),
    case(("ratio le 0.5", NUMBERS), True, "le-float"),
    case(("count eq 5.0", NUMBERS), True, "int-float-equal"),
    case(('count eq "5"', NUMBERS), False, "number-vs-string"),
    case(("primary eq 1", WORK_EMAIL), False, "bool-is-not-a-number"),
    case(('tags eq "GREEN"', NUMBERS), True, "multi-valued-any"),
    case(('tags ne "green"', NUMBERS), False, "multi-valued-ne-is-not-any-eq"),
    case(('when gt "2024-05-01T11:00:00Z"', DATED), True, "datetime-chronological"),
    case(('when gt "2024-05-01T13:00:00+02:00"', DATED), True, "datetime-other-offset"),
    case(('naive eq "2024-05-01T12:00:00Z"', DATED), True, "naive-datetime-is-utc"),
    case(('when eq "not a date"', DATED), False, "unparseable-datetime"),
    case(('type eq "work" and value co "example"', WORK_EMAIL), True, "and"),
    case(('type eq "home" or value co "example"', WORK_EMAIL), True, "or"),
    case(('not (type eq "work")', WORK_EMAIL), False, "not"),
    case(
        ('type eq "work" and not (primary eq false) or type eq "x"', WORK_EMAIL),
        True,
        "combined",
    ),
]


@pytest.mark.parametrize(("given", "expected"), MATCHES)
def test_matches(given: tuple[str, dict[str, Any]], expected: bool) -> None:
    """Value filters evaluate in memory like RFC 7644 §3.4.2.2 describes, case-insensitively."""
    text, element = given
    assert matches(parse_filter(text), element) is expected


def test_matches_case_exact() -> None:
    """caseExact sub-attributes (RFC 7643 §2.3.1) compare strings exactly; others do not."""
    expr = parse_filter('value eq "Babs@Example.com" and type eq "WORK"')
    asked: list[str] = []

    def case_exact(name: str) -> bool:
        asked.append(name)
        return name == "value"

    assert matches(expr, WORK_EMAIL, case_exact=case_exact)
    assert not matches(
        parse_filter('value eq "babs@example.com"'), WORK_EMAIL, case_exact=case_exact
    )
    assert asked[:2] == ["value", "type"]


def test_matches_value_path_and_sub_attribute() -> None:
    """A whole-resource filter with a value path matches when one element satisfies it all."""
    user = {"userName": "babs", "emails": [WORK_EMAIL, HOME_EMAIL], "name": {"givenName": "Barb"}}
    assert matches(parse_filter('emails[type eq "home" and value co "home"]'), user)
    assert not matches(parse_filter('emails[type eq "home" and value co "example"]'), user)
    assert matches(parse_filter('emails[type eq "work"].value eq "babs@example.com"'), user)
    assert matches(parse_filter('name.givenName sw "b"'), user)
    assert matches(parse_filter('emails.value co "home.org"'), user)
    assert not matches(parse_filter('emails[type eq "work"]'), {"emails": "not-a-list"})


# --------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------

SEED_FILTERS = [
    'userName eq "bjensen"',
    'name.familyName co "O\'Malley" and not (title pr)',
    f'{ENTERPRISE_USER}:manager.value eq "26118915"',
    'userType eq "Employee" and emails[type eq "work" and value co "@example.com"] or '
    'ims[type eq "xmpp" and value co "@foo.com"]',
    'emails[type eq "work"].value eq "a@b.com"',
    'meta.lastModified gt "2011-05-13T04:42:34Z" or count le -1.5e3',
    'a eq "caf\\u00e9 \\"q\\" \\\\" and b eq true and c ne null',
    'members[value eq "2819c223"]',
]
VOCABULARY = [
    "(", ")", "[", "]", '"', "\\", "\\u", " ", "\t", ".", ":", "and", "or", "not", "eq", "pr",
    "gt", "co", "userName", "emails", ".value", "urn:x:y", '"x"', "1e5", "-", "true", "null",
    "$ref", "\x00", "é", "\ud800",
]  # fmt: skip


def _mutations(rng: random.Random) -> list[str]:
    cases: list[str] = []
    alphabet = string.printable + "é\u00a0\ud800"
    for _ in range(2500):
        seed = rng.choice(SEED_FILTERS)
        roll = rng.random()
        if roll < 0.3:
            cases.append(seed[: rng.randrange(len(seed) + 1)])
        elif roll < 0.55:
            i = rng.randrange(len(seed))
            cases.append(seed[:i] + seed[i + 1 :])
        elif roll < 0.8:
            i = rng.randrange(len(seed) + 1)
            cases.append(seed[:i] + rng.choice(alphabet) + seed[i:])
        else:
            cases.append("".join(rng.choice(VOCABULARY) for _ in range(rng.randrange(1, 15))))
    return cases


def test_fuzz_only_filter_and_path_errors() -> None:
    """Random junk and mutated filters only ever raise FilterError / PathError (never a crash),
    and whatever does parse can be evaluated by matches() without raising."""
    rng = random.Random(20240501)
    element = {"type": "work", "value": "x", "primary": True, "count": 3}
    parsed = 0
    for text in _mutations(rng):
        try:
            expr = parse_filter(text)
        except FilterError:
            pass
        else:
            parsed += 1
            assert isinstance(matches(expr, element), bool)
        try:
            parse_path(text)
        except PathError:
            pass
    assert parsed > 100  # the mutations exercise the accepting paths too
