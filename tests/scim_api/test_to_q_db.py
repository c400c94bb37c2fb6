"""SCIM filters (RFC 7644 §3.4.2.2) and sortBy (§3.4.2.3) run against real rows.

Runs on SQLite and on PostgreSQL (``DATABASE_URL=postgres://...``); the index test runs on
PostgreSQL only.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from governance.identities.models import (
    DirectoryGroup,
    GroupMembership,
    Identity,
    IdentityEmail,
)
from scim_api.filtering.parser import FilterError
from scim_api.filtering.to_q import group_filter_q, group_sort_key, user_filter_q, user_sort_key
from scim_api.schema import GROUP_RESOURCE_TYPE, USER_RESOURCE_TYPE, ResourceType
from tests.factories import DirectoryGroupFactory, IdentityFactory, IdentitySourceFactory

pytestmark = pytest.mark.django_db


def users(text: str) -> set[str]:
    """userNames matched by a User filter (scope first, as the view does)."""
    rows = Identity.objects.filter(deleted_at__isnull=True).filter(user_filter_q(text))
    names = [row.user_name for row in rows]
    assert len(names) == len(set(names)), f"duplicate rows for {text!r}"
    return set(names)


def groups(text: str) -> set[str]:
    rows = DirectoryGroup.objects.filter(deleted_at__isnull=True).filter(group_filter_q(text))
    names = [row.display_name for row in rows]
    assert len(names) == len(set(names)), f"duplicate rows for {text!r}"
    return set(names)


def email(person: Identity, value: str, type: str = "", *, primary: bool = False, position=0):
    return IdentityEmail.objects.create(
        identity=person, value=value, type=type, primary=primary, position=position
    )


def test_username_is_case_insensitive():
    """userName eq matches regardless of case, as Okta and Entra send it."""
    IdentityFactory(user_name="Jane.Doe@Northwind.example")
    IdentityFactory(user_name="john@northwind.example")
    assert users('userName eq "JANE.DOE@NORTHWIND.EXAMPLE"') == {"Jane.Doe@Northwind.example"}
    assert users('userName eq "jane.doe@northwind.example"') == {"Jane.Doe@Northwind.example"}
    assert users('userName sw "JA"') == {"Jane.Doe@Northwind.example"}
    assert users('userName gt "JANE"') == {"Jane.Doe@Northwind.example", "john@northwind.example"}
    assert users('userName lt "JANE.DOE@NORTHWIND.EXAMPLF"') == {"Jane.Doe@Northwind.example"}


def test_external_id_is_case_exact():
    """externalId is caseExact (RFC 7643 §3.1): a different case does not match."""
    IdentityFactory(user_name="a@x", external_id="AbC-1")
    IdentityFactory(user_name="b@x", external_id="abc-1")
    assert users('externalId eq "AbC-1"') == {"a@x"}
    assert users('externalId eq "ABC-1"') == set()
    assert users('externalId gt "AbC-0"') == {"a@x", "b@x"}
    assert users('externalId lt "abc-0"') == {"a@x"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's LIKE ignores ASCII case")
def test_external_id_substring_operators_are_case_exact():
    """co/sw/ew on a caseExact attribute are case-sensitive (PostgreSQL LIKE)."""
    IdentityFactory(user_name="a@x", external_id="AbC-1")
    IdentityFactory(user_name="b@x", external_id="abc-1")
    assert users('externalId sw "Ab"') == {"a@x"}
    assert users('externalId co "bC"') == {"a@x"}
    assert users('externalId ew "c-1"') == {"b@x"}


def test_emails_value_path_terms_apply_to_the_same_row():
    """emails[type eq "work" and value co "@x.com"] needs one e-mail meeting both terms."""
    split = IdentityFactory(user_name="split@x")
    email(split, "a@other.com", "work")
    email(split, "b@x.com", "home")
    work = IdentityFactory(user_name="work@x")
    email(work, "C@X.com", "Work")
    assert users('emails[type eq "work" and value co "@x.com"]') == {"work@x"}
    # Entra ID's form of the same question.
    assert users('emails[type eq "work"].value eq "c@x.com"') == {"work@x"}
    assert users('emails[type eq "work"].value eq "b@x.com"') == set()
    # Without brackets the terms may match different addresses.
    assert users('emails.type eq "work" and emails.value co "@x.com"') == {"split@x", "work@x"}


def test_two_matching_emails_return_the_person_once():
    """EXISTS, not a join: a person with two matching addresses is one result."""
    person = IdentityFactory(user_name="two@x")
    email(person, "one@x.com", "work")
    email(person, "two@x.com", "home")
    q = user_filter_q('emails co "@x.com" or emails.type eq "work"')
    assert Identity.objects.filter(q).count() == 1
    assert users('emails co "@x.com"') == {"two@x"}


def test_emails_pr_ne_and_primary():
    """pr, ne and primary on a multi-valued attribute."""
    home_only = IdentityFactory(user_name="home@x")
    email(home_only, "h@x.com", "home", primary=True)
    work = IdentityFactory(user_name="work@x")
    email(work, "w@x.com", "work")
    IdentityFactory(user_name="none@x")
    assert users("emails pr") == {"home@x", "work@x"}
    assert users("not (emails pr)") == {"none@x"}
    assert users("emails eq null") == {"none@x"}
    assert users('emails.type ne "work"') == {"home@x", "none@x"}
    assert users("emails.primary eq true") == {"home@x"}
    assert users('emails[primary eq "false"]') == {"work@x"}


def test_groups_and_members():
    """A user's groups and a group's members match by id (UUID) through EXISTS."""
    ana = IdentityFactory(user_name="ana@x")
    bo = IdentityFactory(user_name="bo@x")
    admins = DirectoryGroupFactory(display_name="Admins")
    staff = DirectoryGroupFactory(display_name="Staff")
    gone = DirectoryGroupFactory(display_name="Gone", deleted_at=datetime.now(UTC))
    DirectoryGroupFactory(display_name="Empty")
    for group, person in [(admins, ana), (staff, ana), (staff, bo), (gone, bo)]:
        GroupMembership.objects.create(group=group, identity=person)

    assert users(f'groups eq "{admins.pk}"') == {"ana@x"}
    assert users(f'groups.value eq "{staff.pk}"') == {"ana@x", "bo@x"}
    assert users(f'groups[value eq "{gone.pk}"]') == set()  # deleted groups are not shown
    assert users('groups eq "not-a-uuid"') == set()
    assert users(f'groups eq "{admins.pk}" or groups eq "{staff.pk}"') == {"ana@x", "bo@x"}
    assert users(f'not (groups eq "{admins.pk}")') == {"bo@x"}

    assert groups(f'members eq "{bo.pk}"') == {"Staff"}
    assert groups(f'members.value eq "{ana.pk}"') == {"Admins", "Staff"}
    assert groups("members pr") == {"Admins", "Staff"}
    assert groups("not (members pr)") == {"Empty"}
    assert groups('displayName eq "ADMINS"') == {"Admins"}
    assert groups(f'id eq "{staff.pk}"') == {"Staff"}
    assert groups('id eq "Staff"') == set()


def test_manager_value_matches_resolved_id_or_raw_reference():
    """manager.value matches the manager's id when it is a UUID, or the raw value sent."""
    boss = IdentityFactory(user_name="boss@x")
    IdentityFactory(user_name="resolved@x", manager=boss)
    IdentityFactory(user_name="raw@x", manager_ref="EXT-42")
    assert users(f'manager.value eq "{boss.pk}"') == {"resolved@x"}
    assert users('manager.value eq "EXT-42"') == {"raw@x"}
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert users(f'{enterprise}:manager.value eq "EXT-42"') == {"raw@x"}
    assert users("manager.value pr") == {"resolved@x", "raw@x"}
    assert users(f'manager.value ne "{boss.pk}"') == {"boss@x", "raw@x"}


def test_meta_dates():
    """meta.created / meta.lastModified compare aware instants; eq is exact to the microsecond."""
    old = IdentityFactory(user_name="old@x")
    new = IdentityFactory(user_name="new@x")
    moment = datetime(2011, 5, 13, 4, 42, 34, 123456, tzinfo=UTC)
    Identity.objects.filter(pk=old.pk).update(created_at=moment, updated_at=moment)
    later = moment + timedelta(days=400)
    Identity.objects.filter(pk=new.pk).update(created_at=later, updated_at=later)

    assert users('meta.lastModified gt "2011-05-13T04:42:34Z"') == {"old@x", "new@x"}
    assert users('meta.lastModified gt "2011-05-13T04:42:34.123456Z"') == {"new@x"}
    assert users('meta.created eq "2011-05-13T04:42:34.123456Z"') == {"old@x"}
    assert users('meta.created eq "2011-05-13T04:42:34Z"') == set()
    assert users('meta.created eq "2011-05-13T06:42:34.123456+02:00"') == {"old@x"}
    assert users('meta.created lt "2012-01-01"') == {"old@x"}
    assert users('meta.created ge "2012-01-01T00:00:00"') == {"new@x"}


def test_not_or_and_pr_combinations():
    """ne includes absent values (stored as ""), pr excludes them; not/or combine."""
    IdentityFactory(user_name="cto@x", title="CTO", department="Exec")
    IdentityFactory(user_name="dev@x", title="Developer", department="Engineering")
    IdentityFactory(user_name="blank@x", title="", department="Engineering", active=False)
    assert users("title pr") == {"cto@x", "dev@x"}
    assert users("not (title pr)") == {"blank@x"}
    assert users('title ne "cto"') == {"dev@x", "blank@x"}
    assert users('title eq "cto" or not (department eq "engineering")') == {"cto@x"}
    assert users('department eq "Engineering" and not (title sw "dev")') == {"blank@x"}
    assert users('active eq "FALSE"') == {"blank@x"}
    assert users("active pr") == {"cto@x", "dev@x", "blank@x"}
    assert users("employeeNumber eq 701984") == set()


def test_string_values_from_bare_numbers():
    """employeeNumber eq 701984 (an unquoted number) compares the text."""
    IdentityFactory(user_name="e@x", employee_number="701984")
    assert users("employeeNumber eq 701984") == {"e@x"}


def test_scope_is_applied_before_the_filter():
    """The view's scope Q and the filter Q combine; the filter cannot widen the scope."""
    mine, theirs = IdentitySourceFactory(name="mine"), IdentitySourceFactory(name="theirs")
    IdentityFactory(user_name="m@x", source=mine, title="Eng")
    IdentityFactory(user_name="t@x", source=theirs, title="Eng")
    q = user_filter_q('title eq "eng" or not (title eq "eng")')
    assert {i.user_name for i in Identity.objects.filter(source=mine).filter(q)} == {"m@x"}


def test_filter_runs_in_one_query(django_assert_num_queries):
    """A filter with several EXISTS terms is a single SQL statement."""
    person = IdentityFactory(user_name="q@x", title="CTO")
    email(person, "q@x.com", "work")
    group = DirectoryGroupFactory()
    GroupMembership.objects.create(group=group, identity=person)
    q = user_filter_q(
        f'title pr and emails[type eq "work" and value co "@x.com"] and groups eq "{group.pk}"'
        ' and not (emails.primary eq true) and meta.created gt "2000-01-01T00:00:00Z"'
    )
    with django_assert_num_queries(1):
        rows = list(Identity.objects.filter(q))
    assert rows == [person]


def test_sort_keys_order_rows():
    """sortBy userName is case-insensitive; emails sorts by the primary address, else first."""
    b = IdentityFactory(user_name="b@x")
    a = IdentityFactory(user_name="A@x")
    c = IdentityFactory(user_name="C@x")
    email(a, "z@x.com", position=0)
    email(a, "m@x.com", primary=True, position=1)  # primary wins over the first
    email(b, "B@x.com", position=0)
    email(b, "a@x.com", position=1)  # no primary: the first wins
    email(c, "c@x.com")
    by_name = Identity.objects.order_by(user_sort_key("userName").asc())
    assert [i.user_name for i in by_name] == ["A@x", "b@x", "C@x"]
    by_email = Identity.objects.order_by(user_sort_key("emails").asc(), "pk")
    assert [i.user_name for i in by_email] == ["b@x", "C@x", "A@x"]
    by_email_desc = Identity.objects.order_by(user_sort_key("emails.value").desc(), "pk")
    assert [i.user_name for i in by_email_desc] == ["A@x", "C@x", "b@x"]
    DirectoryGroupFactory(display_name="beta")
    DirectoryGroupFactory(display_name="Alpha")
    by_display = DirectoryGroup.objects.order_by(group_sort_key("displayName").desc())
    assert [g.display_name for g in by_display] == ["beta", "Alpha"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL planner check")
def test_username_eq_uses_the_lower_index():
    """userName eq compiles to LOWER(user_name) = LOWER(%s), which the Lower index serves."""
    IdentityFactory.create_batch(5)
    qs = Identity.objects.filter(user_filter_q('userName eq "PERSON1@NORTHWIND.EXAMPLE"'))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = qs.explain()
    assert "identity_username_lower_idx" in plan or "identity_username_ci_unique" in plan


def _attribute_paths(rt: ResourceType) -> list[str]:
    paths = []
    for schema in rt.schemas():
        prefix = "" if schema is rt.schema else f"{schema.id}:"
        for attr in schema.attributes:
            paths.append(prefix + attr.name)
            paths.extend(f"{prefix}{attr.name}.{sub.name}" for sub in attr.sub_attributes)
    return paths


@pytest.mark.parametrize(
    ("rt", "to_q", "model"),
    [
        (USER_RESOURCE_TYPE, user_filter_q, Identity),
        (GROUP_RESOURCE_TYPE, group_filter_q, DirectoryGroup),
    ],
    ids=["users", "groups"],
)
def test_every_attribute_operator_and_value_runs_or_is_rejected(rt, to_q, model):
    """Every schema attribute x operator x value kind gives a runnable Q or a FilterError."""
    values = ['"x"', '"2011-05-13T04:42:34Z"', f'"{uuid.uuid4()}"', "42", "1.5", "true", "null"]
    ops = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
    translated = rejected = 0
    for path in _attribute_paths(rt):
        texts = [f"{path} pr"] + [f"{path} {op} {v}" for op, v in itertools.product(ops, values)]
        for text in texts:
            try:
                q = to_q(text)
            except FilterError:
                rejected += 1
                continue
            list(model.objects.filter(q)[:1])
            translated += 1
    assert translated > 100 and rejected > 100
