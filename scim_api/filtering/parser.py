"""Pure SCIM 2.0 filter and PATCH-path parser (RFC 7644 §3.4.2.2 and §3.5.2).

Why hand-written: the SCIM filter grammar (RFC 7644 §3.4.2.2, figure 1) is small, but clients
(Microsoft Entra ID, Okta, ...) deviate from it in a few well-known ways, and every malformed
input must turn into a SCIM ``400 invalidFilter`` / ``invalidPath`` error with a message that
points at the offending position. A tokenizer plus a recursive-descent parser gives us exact
control over both, without a third-party parser dependency. Nothing here imports Django: the
module is shared by the query translator (filter -> ORM) and the PATCH engine (path -> target).

Grammar accepted (case-insensitive keywords; ``not`` > ``and`` > ``or``; parentheses group)::

    filter    = orExpr
    orExpr    = andExpr *("or" andExpr)
    andExpr   = unary *("and" unary)
    unary     = "not" "(" orExpr ")" / "(" orExpr ")" / attrExp
    attrExp   = attrPath "pr"
              / attrPath compareOp compValue
              / attrPath "[" valFilter "]" [ "." subAttr ( compareOp compValue / "pr" ) ]
    valFilter = orExpr without "[" (RFC 7644: value filters cannot nest)
    compValue = JSON string / JSON number / true / false / null / bare word (Entra leniency)
    attrPath  = [URI ":"] ATTRNAME ["." ATTRNAME]

    PATH (RFC 7644 §3.5.2) = attrPath / valuePath ["." subAttr]

Deliberate leniencies (each documented where implemented): the Entra ID form
``emails[type eq "work"].value eq "x"``, unquoted bare-word values (``externalId eq jyoung``),
``not(`` without a space, and ``$ref`` as an attribute name.

Resource limits: inputs longer than :data:`MAX_FILTER_LENGTH` characters and parenthesis /
bracket nesting deeper than :data:`MAX_NESTING_DEPTH` are rejected, and chains of the same
logical operator are built as balanced binary trees, so the AST depth stays small and no
consumer recursing over it can hit ``RecursionError``. Parsing never raises anything other than
:class:`FilterError` (or :class:`PathError` from :func:`parse_path`).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NoReturn, TypeAlias

__all__ = [
    "COMPARE_OPS",
    "MAX_FILTER_LENGTH",
    "MAX_NESTING_DEPTH",
    "And",
    "AttrPath",
    "Compare",
    "Expr",
    "FilterError",
    "Not",
    "Or",
    "PatchPath",
    "PathError",
    "Present",
    "Value",
    "ValuePath",
    "matches",
    "parse_filter",
    "parse_path",
]

#: Longest filter / path accepted, in characters (defence against oversized query strings).
MAX_FILTER_LENGTH: Final = 4096
#: Deepest nesting of "(" / "not (" / "[" accepted.
MAX_NESTING_DEPTH: Final = 50

#: Binary comparison operators of RFC 7644 §3.4.2.2 table 3 (lower-case); "pr" is unary.
COMPARE_OPS: Final = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
_ORDERING_OPS: Final = frozenset({"gt", "ge", "lt", "le"})
_SUBSTRING_OPS: Final = frozenset({"co", "sw", "ew"})
_KEYWORDS: Final = COMPARE_OPS | {"pr", "and", "or", "not"}
_OPS_HINT: Final = "expected one of eq, ne, co, sw, ew, gt, ge, lt, le, pr"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class FilterError(ValueError):
    """Malformed filter: the view answers 400 with ``scimType: invalidFilter`` (RFC 7644 §3.12).

    ``str(error)`` is a human-readable message that names the 0-based character position of the
    problem; the same offset is available as :attr:`position` (``None`` when not applicable).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class PathError(ValueError):
    """Malformed PATCH ``path``: 400 with ``scimType: invalidPath`` (RFC 7644 §3.5.2, §3.12)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


def _fail(problem: str, position: int, hint: str | None = None) -> NoReturn:
    """Raise a :class:`FilterError` formatted as ``<problem> at position N[: <hint>]``."""
    message = f"{problem} at position {position}"
    if hint:
        message = f"{message}: {hint}"
    raise FilterError(message, position)


def _truncate(text: str, limit: int = 40) -> str:
    """Shorten user input quoted in an error message so messages stay readable."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quote(text: str) -> str:
    return f'"{_truncate(text)}"'


# --------------------------------------------------------------------------------------------
# AST
# --------------------------------------------------------------------------------------------

#: A comparison value (RFC 7644 §3.4.2.2 compValue). Datetimes stay strings.
Value: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True)
class AttrPath:
    """An attribute reference, spelled as the client wrote it (RFC 7644 §3.10).

    ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`` becomes
    ``AttrPath(uri="urn:...:2.0:User", name="manager", sub="value")``. Attribute names are
    case-insensitive (RFC 7643 §2.1), so lookups should go through :meth:`key`.
    """

    uri: str | None
    name: str
    sub: str | None

    def key(self) -> tuple[str | None, str, str | None]:
        """Lower-cased ``(uri, name, sub)`` for case-insensitive lookups."""
        return (
            self.uri.lower() if self.uri is not None else None,
            self.name.lower(),
            self.sub.lower() if self.sub is not None else None,
        )

    def __str__(self) -> str:
        text = f"{self.uri}:{self.name}" if self.uri is not None else self.name
        return f"{text}.{self.sub}" if self.sub is not None else text


@dataclass(frozen=True)
class Compare:
    """``attr op value``; ``op`` is lower-cased and one of :data:`COMPARE_OPS`."""

    attr: AttrPath
    op: str
    value: Value


@dataclass(frozen=True)
class Present:
    """``attr pr``: the attribute has a non-empty value (RFC 7644 §3.4.2.2)."""

    attr: AttrPath


@dataclass(frozen=True)
class And:
    """Logical and. Chains (``a and b and c``) are balanced trees; and is associative."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    """Logical or. Chains (``a or b or c``) are balanced trees; or is associative."""

    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    """``not (expr)``; RFC 7644 requires the parentheses."""

    expr: Expr


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: some element of multi-valued ``attr`` matches ``filter`` as a whole.

    ``attr.sub`` is always ``None``; inside ``filter`` every :class:`AttrPath` is a plain
    sub-attribute of ``attr`` such as ``AttrPath(None, "type", None)``.
    """

    attr: AttrPath
    filter: Expr


Expr: TypeAlias = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH operation ``path`` (RFC 7644 §3.5.2: ``attrPath / valuePath [subAttr]``).

    ``name.givenName`` -> ``attr=AttrPath(None, "name", "givenName")``;
    ``emails[type eq "work"].value`` -> ``attr=AttrPath(None, "emails", None)``,
    ``filter=Compare(...)``, ``sub="value"``.
    """

    attr: AttrPath
    filter: Expr | None
    sub: str | None


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

_WHITESPACE: Final = " \t\r\n"
_PUNCTUATION: Final = "()[]"
_WORD_BREAKS: Final = frozenset(_WHITESPACE + _PUNCTUATION + '"')

_END: Final = "end"
_STRING: Final = "string"
_WORD: Final = "word"


@dataclass(frozen=True)
class _Token:
    """One lexeme. ``kind`` is "(", ")", "[", "]", "string", "word" or "end"."""

    kind: str
    text: str
    pos: int
    value: str | None = None  # decoded JSON string for kind == "string"

    def describe(self) -> str:
        if self.kind == _END:
            return "Unexpected end of input"
        if self.kind == _STRING:
            return f"Unexpected string {_truncate(self.text)}"
        if self.kind != _WORD:
            return f'Unexpected "{self.kind}"'
        return f"Unexpected token {_quote(self.text)}"


def _tokenize(text: str) -> list[_Token]:
    """Split ``text`` into tokens.

    A *word* is any run of characters other than whitespace, parentheses, brackets and double
    quotes; the parser decides whether it is a keyword, an attribute path, a ``.subAttr`` after
    ``]`` or a bare value. That keeps URNs (``urn:...:2.0:User:manager.value``) one token.
    """
    tokens: list[_Token] = []
    i, length = 0, len(text)
    while i < length:
        char = text[i]
        if char in _WHITESPACE:
            i += 1
        elif char in _PUNCTUATION:
            tokens.append(_Token(char, char, i))
            i += 1
        elif char == '"':
            token = _read_string(text, i)
            tokens.append(token)
            i += len(token.text)
        else:
            start = i
            while i < length and text[i] not in _WORD_BREAKS:
                i += 1
            tokens.append(_Token(_WORD, text[start:i], start))
    tokens.append(_Token(_END, "", length))
    return tokens


def _read_string(text: str, start: int) -> _Token:
    """Read the JSON string literal that opens at ``start`` (RFC 7644: compValue is JSON)."""
    i, length = start + 1, len(text)
    while i < length:
        char = text[i]
        if char == "\\":
            i += 2
        elif char == '"':
            raw = text[start : i + 1]
            return _Token(_STRING, raw, start, _decode_string(raw, start))
        else:
            i += 1
    _fail("Unterminated string", start, 'missing closing "')


def _decode_string(raw: str, start: int) -> str:
    """Decode JSON escapes; reject bad escapes and unpaired ``\\uD800``-style surrogates.

    Raw control characters (e.g. a literal tab) are tolerated for leniency.
    """
    try:
        value = json.loads(raw, strict=False)
    except ValueError as exc:  # json.JSONDecodeError
        position = start + getattr(exc, "pos", 0)
        _fail(
            "Invalid escape sequence in string", position, 'use JSON escapes such as \\" or \\u00e9'
        )
    if not isinstance(value, str):  # pragma: no cover - cannot happen for a "..." literal
        _fail("Invalid string", start)
    if any("\ud800" <= char <= "\udfff" for char in value):
        _fail("Invalid \\u escape in string", start, "unpaired UTF-16 surrogate")
    return value


# --------------------------------------------------------------------------------------------
# Attribute paths and values
# --------------------------------------------------------------------------------------------

# RFC 7644 §3.10: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA;
# "$ref" (RFC 7643 §2.3.7) is accepted as well.
_NAME: Final = r"(?:[A-Za-z][A-Za-z0-9_-]*|\$ref)"
_NAME_RE: Final = re.compile(_NAME)
_ATTR_RE: Final = re.compile(rf"({_NAME})(?:\.({_NAME}))?")
# Schema URNs (RFC 7643 §3, RFC 8141), e.g. urn:ietf:params:scim:schemas:core:2.0:User.
_URN_RE: Final = re.compile(r"urn(?::[A-Za-z0-9._-]+)+", re.IGNORECASE)
# JSON number (RFC 8259 §6).
_NUMBER_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_LITERALS: Final[dict[str, Value]] = {"true": True, "false": False, "null": None}


def _parse_attr_path(text: str, pos: int) -> AttrPath:
    """Parse ``[URI ":"] name ["." sub]``; the last ``:`` separates the schema URN."""
    uri, colon, rest = text.rpartition(":")
    if colon and not _URN_RE.fullmatch(uri):
        _fail(f"Invalid schema URN {_quote(uri)} in attribute path", pos)
    match = _ATTR_RE.fullmatch(rest)
    if match is None:
        _fail(
            f"Invalid attribute path {_quote(text)}",
            pos,
            "expected name, name.subAttribute or urn:...:name",
        )
    return AttrPath(uri if colon else None, match[1], match[2])


def _parse_sub_attr(text: str, pos: int) -> str:
    """Parse the ``.subAttr`` word that may follow ``]``."""
    name = text[1:]
    if not _NAME_RE.fullmatch(name):
        _fail(f"Invalid sub-attribute {_quote(text)}", pos, 'expected ".name" after "]"')
    return name


def _is_keyword(token: _Token, *words: str) -> bool:
    if token.kind != _WORD:
        return False
    lowered = token.text.lower()
    return lowered in words if words else lowered in _KEYWORDS


def _word_value(token: _Token) -> Value:
    """Interpret an unquoted value: literal, JSON number, or (Entra leniency) a bare string."""
    lowered = token.text.lower()
    if lowered in _LITERALS:
        return _LITERALS[lowered]
    match = _NUMBER_RE.fullmatch(token.text)
    if match is None:
        return token.text  # e.g. `externalId eq jyoung` as sent by some Entra samples
    if match[1] is None and match[2] is None:
        return int(token.text)
    number = float(token.text)
    if not math.isfinite(number):
        _fail(f"Number {_quote(token.text)} is out of range", token.pos)
    return number


def _check_operand(op: str, value: Value, token: _Token) -> None:
    """Reject operator/value pairs RFC 7644 §3.4.2.2 defines as invalidFilter.

    Ordering operators on booleans are explicitly a 400; co/sw/ew are substring tests and
    only make sense on strings; ``null`` is only meaningful with eq/ne (absent / present).
    """
    if op in _SUBSTRING_OPS and not isinstance(value, str):
        _fail(f'Operator "{op}" requires a string value', token.pos)
    if op in _ORDERING_OPS and (value is None or isinstance(value, bool)):
        _fail(f'Operator "{op}" cannot compare with {token.text.lower()}', token.pos)


def _balanced(node: type[And] | type[Or], operands: Sequence[Expr]) -> Expr:
    """Combine a same-operator chain into a balanced tree (left-leaning for odd counts).

    ``a or b or c`` -> ``Or(Or(a, b), c)``; long chains keep logarithmic depth so that
    dataclass ``==``/``repr`` and recursive consumers cannot overflow the stack.
    """
    if len(operands) == 1:
        return operands[0]
    middle = (len(operands) + 1) // 2
    return node(_balanced(node, operands[:middle]), _balanced(node, operands[middle:]))


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


class _Parser:
    """Recursive-descent parser over the token list; raises :class:`FilterError` only."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    # -- token helpers -----------------------------------------------------------------------

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != _END:
            self.index += 1
        return token

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            _fail(f"Nesting deeper than {MAX_NESTING_DEPTH} levels", token.pos)

    def expect_end(self, what: str) -> None:
        token = self.peek()
        if token.kind == _END:
            return
        if token.kind in ")]":
            opener = "(" if token.kind == ")" else "["
            _fail(f'Unexpected "{token.kind}"', token.pos, f'no matching "{opener}"')
        _fail(token.describe(), token.pos, f'expected "and", "or" or end of {what}')

    # -- filters -----------------------------------------------------------------------------

    def parse_filter(self) -> Expr:
        expr = self.parse_or(in_value_filter=False)
        self.expect_end("filter")
        return expr

    def parse_or(self, *, in_value_filter: bool) -> Expr:
        operands = [self.parse_and(in_value_filter=in_value_filter)]
        while _is_keyword(self.peek(), "or"):
            self.advance()
            operands.append(self.parse_and(in_value_filter=in_value_filter))
        return _balanced(Or, operands)

    def parse_and(self, *, in_value_filter: bool) -> Expr:
        operands = [self.parse_unary(in_value_filter=in_value_filter)]
        while _is_keyword(self.peek(), "and"):
            self.advance()
            operands.append(self.parse_unary(in_value_filter=in_value_filter))
        return _balanced(And, operands)

    def parse_unary(self, *, in_value_filter: bool) -> Expr:
        token = self.peek()
        if token.kind == "(":
            return self.parse_group(in_value_filter=in_value_filter)
        if _is_keyword(token, "not"):
            self.advance()
            if self.peek().kind != "(":
                _fail(self.peek().describe(), self.peek().pos, 'expected "(" after "not"')
            return Not(self.parse_group(in_value_filter=in_value_filter))
        return self.parse_attr_expr(in_value_filter=in_value_filter)

    def parse_group(self, *, in_value_filter: bool) -> Expr:
        opener = self.advance()
        self.enter(opener)
        expr = self.parse_or(in_value_filter=in_value_filter)
        closer = self.peek()
        if closer.kind != ")":
            hint = (
                f'missing ")" for "(" at position {opener.pos}'
                if closer.kind == _END
                else 'expected "and", "or" or ")"'
            )
            _fail(closer.describe(), closer.pos, hint)
        self.advance()
        self.depth -= 1
        return expr

    def parse_attr_path_token(self) -> tuple[_Token, AttrPath]:
        token = self.peek()
        if token.kind != _WORD or _is_keyword(token):
            problem = (
                f"Unexpected keyword {_quote(token.text)}"
                if token.kind == _WORD
                else token.describe()
            )
            _fail(problem, token.pos, "expected an attribute path")
        self.advance()
        return token, _parse_attr_path(token.text, token.pos)

    def parse_attr_expr(self, *, in_value_filter: bool) -> Expr:
        token, attr = self.parse_attr_path_token()
        if in_value_filter and (attr.uri is not None or attr.sub is not None):
            _fail(
                f"Invalid sub-attribute {_quote(token.text)} in value filter",
                token.pos,
                "expected a plain sub-attribute name such as type or value",
            )
        if self.peek().kind == "[":
            if in_value_filter:
                _fail('Unexpected "["', self.peek().pos, "value filters cannot be nested")
            return self.parse_value_path(token, attr)
        return self.parse_comparison(token, attr)

    def parse_comparison(self, attr_token: _Token, attr: AttrPath) -> Expr:
        op_token = self.peek()
        after = f"expected an operator after {_quote(attr_token.text)}"
        if op_token.kind != _WORD:
            _fail(op_token.describe(), op_token.pos, after)
        op = op_token.text.lower()
        if op == "pr":
            self.advance()
            extra = self.peek()
            if extra.kind == _STRING or (extra.kind == _WORD and not _is_keyword(extra)):
                _fail(extra.describe(), extra.pos, '"pr" does not take a value')
            return Present(attr)
        if op not in COMPARE_OPS:
            if _is_keyword(op_token):
                _fail(op_token.describe(), op_token.pos, after)
            _fail(f"Unknown operator {_quote(op_token.text)}", op_token.pos, _OPS_HINT)
        self.advance()
        value_token = self.peek()
        value = self.parse_value(op_token)
        _check_operand(op, value, value_token)
        return Compare(attr, op, value)

    def parse_value(self, op_token: _Token) -> Value:
        token = self.peek()
        if token.kind == _STRING:
            self.advance()
            return token.value
        if token.kind == _WORD and not _is_keyword(token):
            self.advance()
            return _word_value(token)
        _fail(token.describe(), token.pos, f"expected a value after {_quote(op_token.text)}")

    def parse_value_filter(self, attr_token: _Token, attr: AttrPath) -> Expr:
        """Parse ``[valFilter]`` after a multi-valued attribute (RFC 7644 §3.4.2.2 valuePath)."""
        if attr.sub is not None:
            _fail(
                f"Invalid value path {_quote(attr_token.text)}",
                attr_token.pos,
                '"[" must follow a multi-valued attribute, not a sub-attribute',
            )
        opener = self.advance()
        self.enter(opener)
        inner = self.parse_or(in_value_filter=True)
        closer = self.peek()
        if closer.kind != "]":
            hint = (
                f'missing "]" for "[" at position {opener.pos}'
                if closer.kind == _END
                else 'expected "and", "or" or "]"'
            )
            _fail(closer.describe(), closer.pos, hint)
        self.advance()
        self.depth -= 1
        return inner

    def take_sub_attr(self) -> tuple[_Token, str] | None:
        """Consume a ``.subAttr`` word directly following ``]``, if there is one."""
        token = self.peek()
        if token.kind != _WORD or not token.text.startswith("."):
            return None
        self.advance()
        return token, _parse_sub_attr(token.text, token.pos)

    def parse_value_path(self, attr_token: _Token, attr: AttrPath) -> Expr:
        inner = self.parse_value_filter(attr_token, attr)
        sub = self.take_sub_attr()
        if sub is None:
            return ValuePath(attr, inner)
        # Entra ID sends `emails[type eq "work"].value eq "x"`, which RFC 7644 does not allow
        # in filters. It means "an element with type work whose value is x", i.e. one
        # value path whose filter requires both conditions of the same element.
        sub_token, sub_name = sub
        condition = self.parse_comparison(sub_token, AttrPath(None, sub_name, None))
        return ValuePath(attr, And(inner, condition))

    # -- PATCH paths -------------------------------------------------------------------------

    def parse_patch_path(self) -> PatchPath:
        _, attr = self.parse_attr_path_token()
        if self.peek().kind != "[":
            self.expect_end("path")
            return PatchPath(attr, None, None)
        attr_token = self.tokens[self.index - 1]
        value_filter = self.parse_value_filter(attr_token, attr)
        sub = self.take_sub_attr()
        token = self.peek()
        if token.kind != _END:
            _fail(token.describe(), token.pos, "expected end of path")
        return PatchPath(attr, value_filter, sub[1] if sub else None)


# --------------------------------------------------------------------------------------------
# Public parsing API
# --------------------------------------------------------------------------------------------


def _check_input(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise FilterError(f"The {what} must be a string, not {type(text).__name__}", None)
    if len(text) > MAX_FILTER_LENGTH:
        _fail(
            f"The {what} is too long ({len(text)} characters, maximum {MAX_FILTER_LENGTH})",
            MAX_FILTER_LENGTH,
        )
    if not text.strip(_WHITESPACE):
        _fail(f"Empty {what}", 0)
    return text


def parse_filter(text: str) -> Expr:
    """Parse a SCIM ``filter`` query parameter (RFC 7644 §3.4.2.2) into an :data:`Expr`.

    ``text`` must already be URL-decoded. Raises :class:`FilterError` (and nothing else) for
    any malformed input, with the 0-based position of the problem in the message.
    """
    return _Parser(_check_input(text, "filter")).parse_filter()


def parse_path(text: str) -> PatchPath:
    """Parse a PATCH operation ``path`` (RFC 7644 §3.5.2) into a :class:`PatchPath`.

    Raises :class:`PathError` (and nothing else) for malformed input; a malformed value
    filter inside the path is also a PathError, since the whole ``path`` is what is invalid.
    """
    try:
        return _Parser(_check_input(text, "path")).parse_patch_path()
    except FilterError as exc:
        raise PathError(str(exc), exc.position) from exc


# --------------------------------------------------------------------------------------------
# In-memory evaluation (PATCH engine)
# --------------------------------------------------------------------------------------------

_MISSING: Final = object()

_COMPARATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "co": lambda actual, expected: expected in actual,
    "sw": lambda actual, expected: actual.startswith(expected),
    "ew": lambda actual, expected: actual.endswith(expected),
}


def _never_case_exact(name: str) -> bool:
    return False


def matches(
    expr: Expr,
    element: Mapping[str, Any],
    *,
    case_exact: Callable[[str], bool] = _never_case_exact,
) -> bool:
    """Evaluate ``expr`` against one element of a multi-valued complex attribute.

    Used by the PATCH engine to select targets of ``emails[type eq "work"]`` (RFC 7644
    §3.5.2). Semantics follow RFC 7644 §3.4.2.2:

    * sub-attribute names match the element's keys case-insensitively (RFC 7643 §2.1);
    * strings compare case-insensitively unless ``case_exact(name)`` is true for the
      sub-attribute name as written in the filter (RFC 7643 §2.3.1 "caseExact");
    * gt/ge/lt/le compare strings lexicographically, numbers numerically and ``datetime``
      element values chronologically; values of mismatched types never match;
    * ``pr`` means present and not null / "" / [] / {}; ``eq null`` means absent and
      ``ne null`` present;
    * ``ne`` is the negation of ``eq``, so it is true for a missing attribute;
    * a list value (multi-valued attribute) matches if any of its items matches.
    """
    if isinstance(expr, And):
        return matches(expr.left, element, case_exact=case_exact) and matches(
            expr.right, element, case_exact=case_exact
        )
    if isinstance(expr, Or):
        return matches(expr.left, element, case_exact=case_exact) or matches(
            expr.right, element, case_exact=case_exact
        )
    if isinstance(expr, Not):
        return not matches(expr.expr, element, case_exact=case_exact)
    if isinstance(expr, Present):
        return _is_present(_resolve(element, expr.attr))
    if isinstance(expr, Compare):
        exact = bool(case_exact(expr.attr.sub or expr.attr.name))
        return _compare(expr.op, _resolve(element, expr.attr), expr.value, exact)
    if isinstance(expr, ValuePath):
        items = _lookup(element, expr.attr.name)
        candidates = items if isinstance(items, list | tuple) else [items]
        return any(
            isinstance(item, Mapping) and matches(expr.filter, item, case_exact=case_exact)
            for item in candidates
        )
    raise TypeError(f"Not a SCIM filter expression: {expr!r}")


def _lookup(container: Any, name: str) -> Any:
    """Case-insensitive key lookup; ``_MISSING`` when absent or not a mapping."""
    if not isinstance(container, Mapping):
        return _MISSING
    if name in container:
        return container[name]
    lowered = name.lower()
    for key, value in container.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return _MISSING


def _resolve(element: Mapping[str, Any], attr: AttrPath) -> Any:
    """Fetch ``attr`` (and ``attr.sub``) from ``element``; the schema URI is not consulted."""
    value = _lookup(element, attr.name)
    if attr.sub is None:
        return value
    if isinstance(value, list | tuple):
        found = [_lookup(item, attr.sub) for item in value]
        return [item for item in found if item is not _MISSING] or _MISSING
    return _lookup(value, attr.sub)


def _is_present(value: Any) -> bool:
    if value is _MISSING or value is None:
        return False
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def _compare(op: str, actual: Any, expected: Value, exact: bool) -> bool:
    if expected is None:
        if op == "eq":
            return not _is_present(actual)
        return _is_present(actual) if op == "ne" else False
    if op == "ne":
        return not _compare("eq", actual, expected, exact)
    if op not in _COMPARATORS:
        raise ValueError(f"Unknown SCIM comparison operator {op!r}")
    values = actual if isinstance(actual, list | tuple) else [actual]
    return any(_compare_one(op, value, expected, exact) for value in values)


def _compare_one(op: str, actual: Any, expected: Value, exact: bool) -> bool:
    operands = _coerce(actual, expected, exact)
    if operands is None:
        return False
    left, right = operands
    if op in _SUBSTRING_OPS and not (isinstance(left, str) and isinstance(right, str)):
        return False
    return bool(_COMPARATORS[op](left, right))


def _coerce(actual: Any, expected: Value, exact: bool) -> tuple[Any, Any] | None:
    """Bring both operands to one comparable type, or ``None`` when the types differ."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        both_bool = isinstance(expected, bool) and isinstance(actual, bool)
        return (actual, expected) if both_bool else None
    if isinstance(expected, int | float):
        return (actual, expected) if isinstance(actual, int | float) else None
    if isinstance(expected, str):
        if isinstance(actual, str):
            return (actual, expected) if exact else (actual.casefold(), expected.casefold())
        if isinstance(actual, datetime):
            moment = _parse_datetime(expected)
            return None if moment is None else (_aware(actual), moment)
    return None


def _parse_datetime(text: str) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        return None


def _aware(moment: datetime) -> datetime:
    """Treat naive datetimes as UTC so naive and aware values can be compared."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
