"""OWASP NHI Top 10 (2025) flags: each rule with a positive case and a look-alike that must
not be flagged, computed in one query for the whole list."""

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.nhi import selectors
from governance.reconciliation.models import Finding
from tests.factories import (
    AccountFactory,
    CredentialFactory,
    CredentialPolicyFactory,
    EntitlementFactory,
    GrantFactory,
    IdentityFactory,
    NonHumanIdentityFactory,
)

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def days(n):
    return NOW - timedelta(days=n)


# --- NHI1 improper offboarding
def nhi1_owner_left():
    return NonHumanIdentityFactory(owner=IdentityFactory(active=False))


def nhi1_orphaned():
    return NonHumanIdentityFactory(status="orphaned")


def nhi1_no_owner():
    return NonHumanIdentityFactory(owner=None)


def nhi1_retired_with_departed_owner():
    return NonHumanIdentityFactory(owner=IdentityFactory(active=False), status="retired")


def nhi1_backup_departed_only():
    return NonHumanIdentityFactory(backup_owner=IdentityFactory(active=False))


# --- NHI4 insecure authentication
def nhi4_static_secret_on_github_actions():
    return NonHumanIdentityFactory(
        kind="workload", auth_method="static_secret", platform="github actions"
    )


def nhi4_federated_on_github_actions():
    return NonHumanIdentityFactory(
        kind="workload", auth_method="oidc_federation", platform="GitHub Actions"
    )


def nhi4_static_secret_on_premises():
    return NonHumanIdentityFactory(
        kind="integration", auth_method="static_secret", platform="On-premises SFTP"
    )


def nhi4_static_secret_bot_on_aws():
    return NonHumanIdentityFactory(kind="bot", auth_method="static_secret", platform="AWS")


# --- NHI5 overprivileged
def _with_grant(privileged, *, grant_status="active", account_status="active"):
    nhi = NonHumanIdentityFactory()
    account = AccountFactory(identity=None, nhi=nhi, status=account_status)
    GrantFactory(
        account=account,
        entitlement=EntitlementFactory(application=account.application, privileged=privileged),
        status=grant_status,
    )
    return nhi


def nhi5_privileged_grant():
    return _with_grant(True)


def nhi5_standard_grant():
    return _with_grant(False)


def nhi5_revoked_privileged_grant():
    return _with_grant(True, grant_status="revoked")


# --- NHI7 long-lived secrets
def nhi7_older_than_policy():
    nhi = NonHumanIdentityFactory(environment="production")
    CredentialFactory(nhi=nhi, issued_at=days(91))
    return nhi


def nhi7_expired():
    nhi = NonHumanIdentityFactory()
    CredentialFactory(nhi=nhi, issued_at=days(1), expires_at=days(1))
    return nhi


def nhi7_rotated_recently():
    nhi = NonHumanIdentityFactory()
    CredentialFactory(nhi=nhi, issued_at=days(400), last_rotated_at=days(10))
    return nhi


def nhi7_old_but_revoked():
    nhi = NonHumanIdentityFactory()
    CredentialFactory(nhi=nhi, issued_at=days(400), status="revoked")
    return nhi


def nhi7_old_within_longer_policy():
    CredentialPolicyFactory(nhi_kind="service_account", environment="", max_age_days=365)
    nhi = NonHumanIdentityFactory(kind="service_account")
    CredentialFactory(nhi=nhi, issued_at=days(200))
    return nhi


# --- NHI8 environment isolation
def nhi8_prod_and_staging():
    nhi = NonHumanIdentityFactory()
    CredentialFactory(nhi=nhi, used_in_production=True, used_in_staging=True)
    return nhi


def nhi8_two_credentials_one_per_environment():
    nhi = NonHumanIdentityFactory()
    CredentialFactory(nhi=nhi, used_in_production=True)
    CredentialFactory(nhi=nhi, used_in_production=False, used_in_staging=True)
    return nhi


def nhi8_staging_and_development():
    nhi = NonHumanIdentityFactory()
    CredentialFactory(
        nhi=nhi, used_in_production=False, used_in_staging=True, used_in_development=True
    )
    return nhi


# --- NHI9 reuse
def nhi9_two_consumers():
    return NonHumanIdentityFactory(consumers=["billing job", "reporting job"])


def nhi9_one_consumer():
    return NonHumanIdentityFactory(consumers=["billing job"])


def nhi9_none():
    return NonHumanIdentityFactory(consumers=[])


# --- NHI10 human use
def nhi10_interactive_login():
    return NonHumanIdentityFactory(human_use_observed_at=days(1))


def _finding(nhi, status, kind="nhi_human_use"):
    Finding.objects.create(
        kind=kind,
        severity="high",
        status=status,
        fingerprint=f"{kind}:{nhi.pk}:{status}",
        subject=str(nhi),
        nhi=nhi,
        opened_at=NOW,
    )
    return nhi


def nhi10_open_finding():
    return _finding(NonHumanIdentityFactory(), "open")


def nhi10_resolved_finding():
    return _finding(NonHumanIdentityFactory(), "resolved")


def nhi10_other_finding_kind():
    return _finding(NonHumanIdentityFactory(), "open", kind="dormant")


CASES = [
    ("NHI1", nhi1_owner_left, True),
    ("NHI1", nhi1_orphaned, True),
    ("NHI1", nhi1_no_owner, True),
    ("NHI1", nhi1_retired_with_departed_owner, False),
    ("NHI1", nhi1_backup_departed_only, False),
    ("NHI4", nhi4_static_secret_on_github_actions, True),
    ("NHI4", nhi4_federated_on_github_actions, False),
    ("NHI4", nhi4_static_secret_on_premises, False),
    ("NHI4", nhi4_static_secret_bot_on_aws, False),
    ("NHI5", nhi5_privileged_grant, True),
    ("NHI5", nhi5_standard_grant, False),
    ("NHI5", nhi5_revoked_privileged_grant, False),
    ("NHI7", nhi7_older_than_policy, True),
    ("NHI7", nhi7_expired, True),
    ("NHI7", nhi7_rotated_recently, False),
    ("NHI7", nhi7_old_but_revoked, False),
    ("NHI7", nhi7_old_within_longer_policy, False),
    ("NHI8", nhi8_prod_and_staging, True),
    ("NHI8", nhi8_two_credentials_one_per_environment, False),
    ("NHI8", nhi8_staging_and_development, False),
    ("NHI9", nhi9_two_consumers, True),
    ("NHI9", nhi9_one_consumer, False),
    ("NHI9", nhi9_none, False),
    ("NHI10", nhi10_interactive_login, True),
    ("NHI10", nhi10_open_finding, True),
    ("NHI10", nhi10_resolved_finding, False),
    ("NHI10", nhi10_other_finding_kind, False),
]


@pytest.mark.parametrize(
    ("flag", "build", "expected"), CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES]
)
def test_flag_rule(flag, build, expected):
    nhi = build()
    flagged = selectors.with_risk_flags().get(pk=nhi.pk)
    assert (flag in selectors.flags_of(flagged)) is expected
    filtered = selectors.with_risk_flags().filter(selectors.flag_q(flag))
    assert filtered.filter(pk=nhi.pk).exists() is expected


def test_flags_of_a_long_list_take_one_query(django_assert_num_queries):
    for build in (nhi1_owner_left, nhi7_expired, nhi8_prod_and_staging, nhi9_two_consumers):
        build()
    NonHumanIdentityFactory.create_batch(20)
    with django_assert_num_queries(2):  # the policies, then the flagged list
        rows = list(selectors.with_risk_flags())
    assert len(rows) == 24
    assert sum(1 for r in rows if selectors.flags_of(r)) == 4


def test_policy_most_specific_row_wins_else_default():
    CredentialPolicyFactory(nhi_kind="", environment="", max_age_days=200)
    CredentialPolicyFactory(nhi_kind="", environment="production", max_age_days=90)
    CredentialPolicyFactory(nhi_kind="bot", environment="", max_age_days=60)
    CredentialPolicyFactory(nhi_kind="bot", environment="production", max_age_days=30)
    book = selectors.PolicyBook()
    assert book.rule("bot", "production").max_age_days == 30
    assert book.rule("bot", "staging").max_age_days == 60
    assert book.rule("workload", "production").max_age_days == 90
    assert book.rule("workload", "staging").max_age_days == 200
    assert selectors.PolicyBook([]).rule("bot", "production") == selectors.Rule(
        selectors.DEFAULT_MAX_AGE_DAYS, selectors.DEFAULT_WARN_DAYS
    )


@pytest.mark.parametrize(
    ("issued", "expires", "state"),
    [
        (days(10), None, "ok"),
        (days(80), None, "expiring"),  # 90-day default window, 14 days' warning
        (days(95), None, "overdue"),
        (days(10), NOW + timedelta(days=5), "expiring"),
        (days(10), NOW - timedelta(minutes=1), "overdue"),
    ],
    ids=["fresh", "near-max-age", "past-max-age", "expiry-soon", "expired"],
)
def test_credential_rotation_state(issued, expires, state):
    credential = CredentialFactory(issued_at=issued, expires_at=expires, nhi__environment="staging")
    assert selectors.credential_state_annotated().get(pk=credential.pk).rotation_state == state
    assert selectors.overdue_credentials().filter(pk=credential.pk).exists() is (state == "overdue")
    assert selectors.expiring_credentials().filter(pk=credential.pk).exists() is (
        state == "expiring"
    )


def test_policy_environment_is_the_most_sensitive_one_used():
    CredentialPolicyFactory(environment="production", max_age_days=30)
    CredentialPolicyFactory(environment="development", max_age_days=365)
    shared = CredentialFactory(
        issued_at=days(40),
        used_in_production=True,
        used_in_development=True,
        nhi__environment="development",
    )
    dev_only = CredentialFactory(
        issued_at=days(40), used_in_production=False, used_in_development=True
    )
    overdue = set(selectors.overdue_credentials().values_list("pk", flat=True))
    assert shared.pk in overdue and dev_only.pk not in overdue
