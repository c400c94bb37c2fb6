"""Tests for the SCIM filter -> Django ``Q`` translator (RFC 7644 §3.4.2.2, §3.4.2.3).

Tables of filter string -> expected ``Q``. Column filters compare ``Q`` objects by equality;
filters on multi-valued attributes become ``EXISTS`` subqueries, whose ``Q`` objects do not
compare equal, so those rows compare the SQL of ``Identity.objects.filter(q)`` instead. No
database is touched; behaviour on real rows is in ``test_to_q_db.py``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db.models import Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact, GreaterThan, LessThanOrEqual

from governance.identities.models import DirectoryGroup, GroupMembership, Identity, IdentityEmail
from scim_api.filtering.parser import (
    MAX_FILTER_LENGTH,
    And,
    AttrPath,
    Compare,
    Expr,
    FilterError,
    Not,
    Present,
    parse_filter,
)
from scim_api.filtering.to_q import (
    group_filter_q,
    group_sort_key,
    user_filter_q,
    user_sort_key,
)

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
UID = "2819c223-7f76-453a-919d-413861904646"
NEVER = Q(pk__in=[])
ALWAYS = ~Q(pk__in=[])


def case(text: str, expected: Any, case_id: str) -> Any:
    return pytest.param(text, expected, id=case_id)


def ci_eq(column: str, value: str) -> Q:
    """Case-insensitive equality as the translator writes it: LOWER(col) = LOWER(value)."""
    return Q(Exact(Lower(column), Lower(Value(value))))


def when(year: int, month: int, day: int, *time: int, tz: timezone = UTC) -> datetime:
    return datetime(year, month, day, *time, tzinfo=tz)


def sql(model: type, q: Q) -> str:
    return str(model.objects.filter(q).query)


def emails_exist(inner: Q) -> Q:
    return Q(Exists(IdentityEmail.objects.filter(identity=OuterRef("pk")).filter(inner)))


def groups_exist(inner: Q) -> Q:
    memberships = GroupMembership.objects.filter(identity=OuterRef("pk"))
    return Q(Exists(memberships.filter(group__deleted_at__isnull=True).filter(inner)))


def members_exist(inner: Q) -> Q:
    return Q(Exists(GroupMembership.objects.filter(group=OuterRef("pk")).filter(inner)))


# --------------------------------------------------------------------------------------------
# Users: single-valued columns (Q equality)
# --------------------------------------------------------------------------------------------

USER_COLUMNS = [
    # Case: caseExact decides (RFC 7643 §2.3.1). userName is case-insensitive and uses LOWER
    # on both sides so PostgreSQL can use the Lower("user_name") index.
    case('userName eq "X@Y.COM"', ci_eq("user_name", "X@Y.COM"), "username-eq-ci"),
    case('userName eq "bjensen"', ci_eq("user_name", "bjensen"), "rfc-username-eq"),
    case(
        'userName eq "JANE.DOE@NORTHWIND.EXAMPLE"',
        ci_eq("user_name", "JANE.DOE@NORTHWIND.EXAMPLE"),
        "okta-upper-cased-username-value",
    ),
    case('USERNAME eq "jdoe"', ci_eq("user_name", "jdoe"), "attribute-name-case-insensitive"),
    case(f'{CORE}:userName eq "jdoe"', ci_eq("user_name", "jdoe"), "urn-qualified-core"),
    case('externalId eq "x"', Q(external_id="x"), "externalid-eq-case-exact"),
    case("externalId eq jyoung", Q(external_id="jyoung"), "entra-bare-word-value"),
    case('externalId co "Ab"', Q(external_id__contains="Ab"), "externalid-co-case-exact"),
    case('externalId sw "Ab"', Q(external_id__startswith="Ab"), "externalid-sw-case-exact"),
    case('externalId ew "Ab"', Q(external_id__endswith="Ab"), "externalid-ew-case-exact"),
    case('externalId gt "Ab"', Q(external_id__gt="Ab"), "externalid-gt-case-exact"),
    case('externalId le "Ab"', Q(external_id__lte="Ab"), "externalid-le-case-exact"),
    case('userName sw "J"', Q(user_name__istartswith="J"), "rfc-username-sw"),
    case('userName co "oe"', Q(user_name__icontains="oe"), "username-co"),
    case('userName ew ".example"', Q(user_name__iendswith=".example"), "username-ew"),
    case(
        'userName gt "M"',
        Q(GreaterThan(Lower("user_name"), Lower(Value("M")))),
        "username-gt-lower-cased",
    ),
    case(
        'userName le "M"',
        Q(LessThanOrEqual(Lower("user_name"), Lower(Value("M")))),
        "username-le-lower-cased",
    ),
    case('displayName eq "Babs"', ci_eq("display_name", "Babs"), "displayname"),
    case('nickName eq "Babs"', ci_eq("nick_name", "Babs"), "nickname"),
    case('title eq "CTO"', ci_eq("title", "CTO"), "title"),
    case('userType eq "Employee"', ci_eq("user_type", "Employee"), "usertype"),
    case('preferredLanguage eq "en"', ci_eq("preferred_language", "en"), "preferredlanguage"),
    case('locale eq "en-US"', ci_eq("locale", "en-US"), "locale"),
    case('timezone eq "Europe/Paris"', ci_eq("timezone", "Europe/Paris"), "timezone"),
    case('profileUrl sw "https://"', Q(profile_url__istartswith="https://"), "profileurl"),
    case('name.givenName eq "Barbara"', ci_eq("given_name", "Barbara"), "name-givenname"),
    case('name.familyName co "O\'Malley"', Q(family_name__icontains="O'Malley"), "rfc-co"),
    case('name.middleName eq "Jane"', ci_eq("middle_name", "Jane"), "name-middlename"),
    case('name.formatted eq "Ms. B"', ci_eq("formatted_name", "Ms. B"), "name-formatted"),
    case('name.honorificPrefix eq "Ms."', ci_eq("honorific_prefix", "Ms."), "name-prefix"),
    case('name.honorificSuffix eq "III"', ci_eq("honorific_suffix", "III"), "name-suffix"),
    case(f'{CORE}:name.givenName eq "B"', ci_eq("given_name", "B"), "urn-qualified-sub-attribute"),
    case(
        'name[givenName eq "B" and familyName eq "J"]',
        ci_eq("given_name", "B") & ci_eq("family_name", "J"),
        "value-path-on-single-valued-complex",
    ),
    # ne is "not eq"; absent strings are "" so ne includes them. pr means "not empty".
    case('title ne "CTO"', ~ci_eq("title", "CTO"), "ne-is-not-eq"),
    case('externalId ne "x"', ~Q(external_id="x"), "ne-case-exact"),
    case("title pr", ~Q(title=""), "rfc-pr"),
    case("title eq null", Q(title=""), "eq-null-is-absent"),
    case("title ne null", ~Q(title=""), "ne-null-is-present"),
    # Type coercion for string attributes (bare words arrive as numbers or booleans).
    case("employeeNumber eq 701984", ci_eq("employee_number", "701984"), "number-as-text"),
    case("title eq 1.5", ci_eq("title", "1.5"), "float-as-text"),
    case("title eq true", ci_eq("title", "true"), "boolean-as-json-text"),
    # Enterprise extension, with and without the URN prefix.
    case('employeeNumber eq "701984"', ci_eq("employee_number", "701984"), "employeenumber"),
    case(
        f'{ENTERPRISE}:employeeNumber eq "701984"',
        ci_eq("employee_number", "701984"),
        "employeenumber-urn",
    ),
    case('costCenter eq "4130"', ci_eq("cost_center", "4130"), "costcenter"),
    case('organization eq "Universal"', ci_eq("organization", "Universal"), "organization"),
    case('division eq "Theme Park"', ci_eq("division", "Theme Park"), "division"),
    case('department eq "Tour"', ci_eq("department", "Tour"), "department"),
    case(f'{ENTERPRISE}:department sw "T"', Q(department__istartswith="T"), "department-urn"),
    case(
        f'{ENTERPRISE}:manager.value eq "{UID}"',
        Q(manager_ref=UID) | Q(manager_id=uuid.UUID(UID)),
        "manager-value-uuid-or-raw-urn",
    ),
    case(
        'manager.value eq "boss-42"',
        Q(manager_ref="boss-42"),
        "manager-value-raw-reference",
    ),
    case(
        'manager.value ne "boss-42"',
        ~Q(manager_ref="boss-42"),
        "manager-value-ne",
    ),
    case(
        "manager.value pr",
        Q(manager__isnull=False) | ~Q(manager_ref=""),
        "manager-value-pr",
    ),
    # Booleans: JSON true/false, or the strings "true"/"false" in any case.
    case("active eq true", Q(active=True), "active-true"),
    case("active eq false", Q(active=False), "active-false"),
    case('active eq "TRUE"', Q(active=True), "active-string-upper"),
    case('active eq "False"', Q(active=False), "active-string-mixed"),
    case("active ne false", ~Q(active=False), "active-ne"),
    case("active pr", ALWAYS, "boolean-pr-always-true"),
    case("not (active pr)", NEVER, "boolean-not-pr-never"),
    case("active eq null", NEVER, "boolean-eq-null-never"),
    # id is a UUID; anything else matches nothing, never an error.
    case(f'id eq "{UID}"', Q(id=uuid.UUID(UID)), "id-eq"),
    case(f'id eq "{UID.upper()}"', Q(id=uuid.UUID(UID)), "id-eq-upper-case-uuid"),
    case('id eq "not-a-uuid"', NEVER, "id-not-uuid-never"),
    case("id eq 42", NEVER, "id-number-never"),
    case('id ne "not-a-uuid"', ALWAYS, "id-ne-not-uuid-always"),
    case(f'id ne "{UID}"', ~Q(id=uuid.UUID(UID)), "id-ne"),
    # dateTime: ISO 8601, aware, naive = UTC; eq compares the instant exactly.
    case(
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        Q(updated_at__gt=when(2011, 5, 13, 4, 42, 34)),
        "rfc-lastmodified-gt",
    ),
    case(
        'meta.lastModified ge "2011-05-13T04:42:34Z"',
        Q(updated_at__gte=when(2011, 5, 13, 4, 42, 34)),
        "lastmodified-ge",
    ),
    case(
        'meta.lastModified lt "2011-05-13T04:42:34Z"',
        Q(updated_at__lt=when(2011, 5, 13, 4, 42, 34)),
        "lastmodified-lt",
    ),
    case(
        'meta.lastModified le "2011-05-13T04:42:34Z"',
        Q(updated_at__lte=when(2011, 5, 13, 4, 42, 34)),
        "lastmodified-le",
    ),
    case(
        'meta.created eq "2011-05-13T04:42:34.123456"',
        Q(created_at=when(2011, 5, 13, 4, 42, 34, 123456)),
        "created-eq-naive-is-utc",
    ),
    case(
        'meta.created lt "2011-05-13T04:42:34+02:00"',
        Q(created_at__lt=when(2011, 5, 13, 4, 42, 34, tz=timezone(timedelta(hours=2)))),
        "created-lt-offset",
    ),
    case("meta.created pr", Q(created_at__isnull=False), "created-pr"),
    case(f"{CORE}:meta.created ne null", Q(created_at__isnull=False), "created-ne-null"),
    # Logic: and/or chains flatten; not negates.
    case(
        'title pr and userType eq "Employee"',
        ~Q(title="") & ci_eq("user_type", "Employee"),
        "rfc-pr-and",
    ),
    case(
        'title pr or userType eq "Intern"',
        ~Q(title="") | ci_eq("user_type", "Intern"),
        "rfc-pr-or",
    ),
    case(
        'title eq "a" or title eq "b" or title eq "c" or title eq "d"',
        ci_eq("title", "a") | ci_eq("title", "b") | ci_eq("title", "c") | ci_eq("title", "d"),
        "or-chain-flattened",
    ),
    case(
        'userName eq "a" and (title eq "b" or not (department eq "c"))',
        ci_eq("user_name", "a") & (ci_eq("title", "b") | ~ci_eq("department", "c")),
        "and-or-not",
    ),
    case("not (not (title pr))", ~Q(title=""), "double-not"),
]


@pytest.mark.parametrize(("text", "expected"), USER_COLUMNS)
def test_user_filter_on_columns(text: str, expected: Q) -> None:
    """Each User filter becomes exactly the expected Q on Identity's columns."""
    assert user_filter_q(parse_filter(text)) == expected


# --------------------------------------------------------------------------------------------
# Users: multi-valued attributes (EXISTS; compared as SQL)
# --------------------------------------------------------------------------------------------

USER_EXISTS = [
    case(
        'emails[type eq "work"].value eq "a@b.com"',
        emails_exist(ci_eq("type", "work") & ci_eq("value", "a@b.com")),
        "entra-value-path-with-sub-attribute",
    ),
    case(
        'emails[type eq "work" and value co "@x.com"]',
        emails_exist(ci_eq("type", "work") & Q(value__icontains="@x.com")),
        "rfc-value-path-same-row",
    ),
    case(
        'emails[not (type eq "work") or primary eq true]',
        emails_exist(~ci_eq("type", "work") | Q(primary=True)),
        "value-path-not-or",
    ),
    case(
        f'{CORE}:emails[value ew "@x.com"]',
        emails_exist(Q(value__iendswith="@x.com")),
        "value-path-urn",
    ),
    case('emails co "@x.com"', emails_exist(Q(value__icontains="@x.com")), "emails-compares-value"),
    case('emails.value eq "A@B.com"', emails_exist(ci_eq("value", "A@B.com")), "emails-value"),
    case('emails.type eq "work"', emails_exist(ci_eq("type", "work")), "emails-type"),
    case('emails.display eq "Work"', emails_exist(ci_eq("display", "Work")), "emails-display"),
    case("emails.primary eq true", emails_exist(Q(primary=True)), "emails-primary"),
    case('emails.primary eq "true"', emails_exist(Q(primary=True)), "emails-primary-string"),
    case("emails pr", emails_exist(Q()), "emails-pr"),
    case("emails.value pr", emails_exist(~Q(value="")), "emails-value-pr"),
    case("not (emails pr)", ~emails_exist(Q()), "emails-not-pr"),
    case("emails eq null", ~emails_exist(~Q(value="")), "emails-eq-null"),
    case(
        'emails.type ne "work"',
        ~emails_exist(ci_eq("type", "work")),
        "multi-valued-ne-means-no-element-equals",
    ),
    case(
        'emails[type ne "work"]',
        emails_exist(~ci_eq("type", "work")),
        "value-path-ne-is-per-element",
    ),
    case(f'groups eq "{UID}"', groups_exist(Q(group_id=uuid.UUID(UID))), "groups"),
    case(f'groups.value eq "{UID}"', groups_exist(Q(group_id=uuid.UUID(UID))), "groups-value"),
    case('groups eq "nope"', groups_exist(NEVER), "groups-not-uuid-never"),
    case("groups pr", groups_exist(Q()), "groups-pr"),
    case(
        f'userType eq "Employee" and emails[type eq "work"] and groups eq "{UID}"',
        ci_eq("user_type", "Employee")
        & emails_exist(ci_eq("type", "work"))
        & groups_exist(Q(group_id=uuid.UUID(UID))),
        "columns-and-exists",
    ),
]


@pytest.mark.parametrize(("text", "expected"), USER_EXISTS)
def test_user_filter_on_multi_valued_attributes(text: str, expected: Q) -> None:
    """Multi-valued attributes become one correlated EXISTS each (never a join)."""
    q = user_filter_q(parse_filter(text))
    assert sql(Identity, q) == sql(Identity, expected)
    assert " JOIN " not in sql(Identity, q).split("EXISTS")[0]


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------

GROUP_COLUMNS = [
    case('displayName eq "Admins"', ci_eq("display_name", "Admins"), "displayname-ci"),
    case(f'{GROUP}:displayName eq "A"', ci_eq("display_name", "A"), "displayname-urn"),
    case('displayName sw "Ad"', Q(display_name__istartswith="Ad"), "displayname-sw"),
    case('externalId eq "G-1"', Q(external_id="G-1"), "externalid-case-exact"),
    case(f'id eq "{UID}"', Q(id=uuid.UUID(UID)), "id"),
    case('id eq "x"', NEVER, "id-not-uuid"),
    case(
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        Q(updated_at__gt=when(2011, 5, 13, 4, 42, 34)),
        "lastmodified",
    ),
    case(
        'meta.created le "2011-05-13"',
        Q(created_at__lte=when(2011, 5, 13)),
        "created-date-only-midnight-utc",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GROUP_COLUMNS)
def test_group_filter_on_columns(text: str, expected: Q) -> None:
    """Each Group filter becomes exactly the expected Q on DirectoryGroup's columns."""
    assert group_filter_q(parse_filter(text)) == expected


GROUP_EXISTS = [
    case(f'members eq "{UID}"', members_exist(Q(identity_id=uuid.UUID(UID))), "members"),
    case(
        f'members.value eq "{UID}"',
        members_exist(Q(identity_id=uuid.UUID(UID))),
        "members-value",
    ),
    case(
        f'members[value eq "{UID}"]',
        members_exist(Q(identity_id=uuid.UUID(UID))),
        "members-value-path",
    ),
    case("members pr", members_exist(Q()), "members-pr"),
    case(
        'displayName eq "A" and not (members pr)',
        ci_eq("display_name", "A") & ~members_exist(Q()),
        "empty-groups",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GROUP_EXISTS)
def test_group_filter_on_members(text: str, expected: Q) -> None:
    """members is matched with EXISTS over GroupMembership."""
    assert sql(DirectoryGroup, group_filter_q(parse_filter(text))) == sql(DirectoryGroup, expected)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

USER_ERRORS = [
    # Unknown attributes are errors, never dropped from the filter.
    case("secret eq 2", 'Unknown attribute "secret"', "unknown"),
    case('userName eq "a" and secret eq 2', 'Unknown attribute "secret"', "unknown-in-and"),
    case('userName eq "a" or secret eq 2', 'Unknown attribute "secret"', "unknown-in-or"),
    case("not (secret pr)", 'Unknown attribute "secret"', "unknown-in-not"),
    case('emails.foo eq "x"', 'Unknown attribute "emails.foo"', "unknown-sub-attribute"),
    case('emails[foo eq "x"]', 'Unknown attribute "emails.foo"', "unknown-in-value-path"),
    case('userName.value eq "x"', 'Unknown attribute "userName.value"', "sub-of-simple"),
    case(f'{GROUP}:displayName eq "x"', "is not a schema of the User", "group-urn-on-users"),
    case('urn:example:x:title eq "x"', "is not a schema of the User", "unknown-urn"),
    case(f'{ENTERPRISE}:title eq "x"', "not an attribute of schema", "core-name-enterprise-urn"),
    # Known to the schema but not stored in a column.
    *(
        case(text, f'Attribute "{name}" cannot be used in a filter', f"unstored-{name}")
        for text, name in [
            ('phoneNumbers eq "555"', "phoneNumbers"),
            ('phoneNumbers.value eq "555"', "phoneNumbers.value"),
            ('addresses[type eq "work"]', "addresses"),
            ("ims pr", "ims"),
            ("photos pr", "photos"),
            ('roles eq "admin"', "roles"),
            ('entitlements eq "x"', "entitlements"),
            ("x509Certificates pr", "x509Certificates"),
            ('password eq "hunter2"', "password"),
            ('name eq "Barbara"', "name"),
            ("name pr", "name"),
            ('meta.version eq "W/\\"1\\""', "meta.version"),
            ("meta.location pr", "meta.location"),
            ('meta.resourceType eq "User"', "meta.resourceType"),
            ('groups.display eq "Admins"', "groups.display"),
            ('groups.type eq "direct"', "groups.type"),
            ('manager.displayName eq "Boss"', "manager.displayName"),
            ('manager eq "boss"', "manager"),
            ('groups[value pr].$ref eq "x"', "groups.$ref"),
        ]
    ),
    case('userName eq "a" and roles eq "x"', 'Attribute "roles" cannot', "unstored-in-and"),
    case('title[value eq "x"]', "a value filter needs a complex attribute", "value-path-simple"),
    # Operators the attribute type does not support.
    case('active co "t"', 'Operator "co" cannot be used with "active"', "boolean-co"),
    case('active gt "true"', 'Operator "gt" cannot be used with "active"', "boolean-gt"),
    case('emails.primary sw "t"', 'Operator "sw" cannot be used with "emails.primary"', "bool-sw"),
    case('meta.created co "2011"', 'Operator "co" cannot be used with "meta.created"', "date-co"),
    case('meta.created sw "2011"', 'Operator "sw" cannot be used', "date-sw"),
    case('id co "2819"', 'Operator "co" cannot be used with "id"', "id-co"),
    case(f'id gt "{UID}"', 'Operator "gt" cannot be used with "id"', "id-gt"),
    case('groups.value sw "2819"', 'Operator "sw" cannot be used', "groups-value-sw"),
    case('manager.value co "boss"', 'Operator "co" cannot be used', "manager-co"),
    # Values of the wrong type.
    case('active eq "yes"', '"active" is a boolean: expected true or false, not "yes"', "bool-s"),
    case("active eq 1", '"active" is a boolean: expected true or false, not 1', "bool-number"),
    case('emails[primary eq "y"]', '"emails.primary" is a boolean', "bool-in-value-path"),
    case('meta.created eq "yesterday"', '"meta.created" is a dateTime', "date-invalid"),
    case('meta.created gt "2011-13-45T00:00:00Z"', "is a dateTime", "date-out-of-range"),
    case("meta.lastModified gt 1305261754", "is a dateTime", "date-number"),
    case('meta.created eq "2011-05-13T04:42:34Q"', "is a dateTime", "date-bad-suffix"),
    case('userName eq "a\\u0000b"', "contains a NUL character", "nul-in-string"),
]


@pytest.mark.parametrize(("text", "message"), USER_ERRORS)
def test_user_filter_errors(text: str, message: str) -> None:
    """Unknown or unsupported terms raise FilterError (400 invalidFilter) naming the problem."""
    with pytest.raises(FilterError) as info:
        user_filter_q(parse_filter(text))
    assert message in str(info.value)


GROUP_ERRORS = [
    case('userName eq "a"', 'Unknown attribute "userName"', "user-attribute"),
    case(f'{CORE}:displayName eq "a"', "is not a schema of the Group", "user-urn"),
    case('members.display eq "Babs"', 'Attribute "members.display" cannot', "members-display"),
    case('members[type eq "User"]', 'Attribute "members.type" cannot', "members-type"),
    case("members.$ref pr", 'Attribute "members.$ref" cannot', "members-ref"),
    case('displayName eq "a" and secret pr', 'Unknown attribute "secret"', "unknown-in-and"),
]


@pytest.mark.parametrize(("text", "message"), GROUP_ERRORS)
def test_group_filter_errors(text: str, message: str) -> None:
    """Group filters reject User attributes, unknown and unstored attributes."""
    with pytest.raises(FilterError) as info:
        group_filter_q(parse_filter(text))
    assert message in str(info.value)


def test_filter_text_is_parsed() -> None:
    """Passing the filter text instead of an AST parses it first (errors stay FilterError)."""
    assert user_filter_q('externalId eq "x"') == Q(external_id="x")
    with pytest.raises(FilterError, match="position"):
        user_filter_q('externalId eq "x')


# --------------------------------------------------------------------------------------------
# Resource limits
# --------------------------------------------------------------------------------------------


def _left_deep(kind: type[And], leaves: int) -> Expr:
    expr: Expr = Compare(AttrPath(None, "title", None), "eq", "t0")
    for i in range(1, leaves):
        expr = kind(expr, Compare(AttrPath(None, "title", None), "eq", f"t{i}"))
    return expr


def test_long_unbalanced_chain_does_not_recurse() -> None:
    """A 20,000-term left-deep and-chain (deeper than the recursion limit) becomes one flat Q."""
    q = user_filter_q(_left_deep(And, 20_000))
    assert len(q.children) == 20_000
    assert q.children[-1] == Exact(Lower("title"), Lower(Value("t19999")))
    assert "t19999" in sql(Identity, q)


def test_deep_not_nesting_does_not_recurse() -> None:
    """5,001 nested nots (programmatic; the parser caps nesting) fold without recursion."""
    expr: Expr = Present(AttrPath(None, "title", None))
    for _ in range(5_001):
        expr = Not(expr)
    assert user_filter_q(expr) == Q(title="")


def test_longest_parsed_filter_translates() -> None:
    """The longest filter the parser accepts (a balanced or-chain) translates and compiles."""
    term = 'title eq "x" or '
    text = (term * (MAX_FILTER_LENGTH // len(term)))[: -len(" or ")]
    assert len(text) <= MAX_FILTER_LENGTH
    q = user_filter_q(parse_filter(text))
    assert q.connector == Q.OR
    assert len(q.children) == MAX_FILTER_LENGTH // len(term)
    sql(Identity, q)


# --------------------------------------------------------------------------------------------
# sortBy (RFC 7644 §3.4.2.3)
# --------------------------------------------------------------------------------------------

USER_SORT_KEYS = [
    case("userName", Lower("user_name"), "username-case-insensitive"),
    case("USERNAME", Lower("user_name"), "name-case-insensitive"),
    case(f"{CORE}:userName", Lower("user_name"), "urn"),
    case("externalId", F("external_id"), "externalid-case-exact"),
    case("id", F("id"), "id"),
    case("name.familyName", Lower("family_name"), "name-familyname"),
    case("displayName", Lower("display_name"), "displayname"),
    case("title", Lower("title"), "title"),
    case("active", F("active"), "active"),
    case("meta.created", F("created_at"), "created"),
    case("meta.lastModified", F("updated_at"), "lastmodified"),
    case("employeeNumber", Lower("employee_number"), "enterprise"),
    case(f"{ENTERPRISE}:department", Lower("department"), "enterprise-urn"),
]


@pytest.mark.parametrize(("sort_by", "expected"), USER_SORT_KEYS)
def test_user_sort_key(sort_by: str, expected: Any) -> None:
    """sortBy maps to a column; case-insensitive strings order by LOWER(column)."""
    assert user_sort_key(sort_by) == expected


def test_user_sort_by_emails_uses_primary_then_first() -> None:
    """emails sorts by the primary address, else the first (RFC 7644 §3.4.2.3)."""
    first = (
        IdentityEmail.objects.filter(identity=OuterRef("pk"))
        .order_by("-primary", "position", "pk")
        .values_list(Lower("value"))[:1]
    )
    expected = str(Identity.objects.order_by(Subquery(first).asc()).query)
    for sort_by in ("emails", "emails.value"):
        key = user_sort_key(sort_by)
        assert str(Identity.objects.order_by(key.asc()).query) == expected


@pytest.mark.parametrize(
    ("sort_by", "expected"),
    [
        case("displayName", Lower("display_name"), "displayname"),
        case("externalId", F("external_id"), "externalid"),
        case("meta.lastModified", F("updated_at"), "lastmodified"),
        case("id", F("id"), "id"),
    ],
)
def test_group_sort_key(sort_by: str, expected: Any) -> None:
    """Group sortBy maps to DirectoryGroup columns."""
    assert group_sort_key(sort_by) == expected


@pytest.mark.parametrize(
    ("sort_by", "message"),
    [
        case("bogus", 'Unknown attribute "bogus"', "unknown"),
        case("password", 'Attribute "password" cannot be used in sortBy', "unstored"),
        case("phoneNumbers", 'Attribute "phoneNumbers" cannot be used in sortBy', "unstored-mv"),
        case("groups", 'Attribute "groups" cannot be used in sortBy', "groups"),
        case("manager.value", 'Attribute "manager.value" cannot be used in sortBy', "manager"),
        case("name", 'use "name.formatted"', "complex-without-sub"),
        case('emails[type eq "work"]', "expected an attribute path", "value-path"),
        case("user name", "at position", "malformed"),
        case("", "Empty", "empty"),
    ],
)
def test_user_sort_key_errors(sort_by: str, message: str) -> None:
    """Unknown or unsortable sortBy raises FilterError."""
    with pytest.raises(FilterError) as info:
        user_sort_key(sort_by)
    assert message in str(info.value)


def test_group_sort_by_members_is_an_error() -> None:
    """members has no order to sort by."""
    with pytest.raises(FilterError, match="members"):
        group_sort_key("members")
