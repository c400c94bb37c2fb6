"""Reads about non-human identities: ownership, credential age and the OWASP NHI Top 10
(2025) risk flags.

Every flag is a set-based predicate (a ``Q`` over annotations and ``Exists`` subqueries), so
a list of any length is flagged in one query. The rules:

NHI1 Improper offboarding
    Not retired or disabled, and orphaned, without owner, or owned by an inactive person.
NHI4 Insecure authentication
    Authenticates with a static secret although federation is available: auth method
    "static secret", kind service account, integration or workload, and a platform that
    offers OIDC workload identity federation (``FEDERATION_PLATFORMS``, case-insensitive).
NHI5 Overprivileged
    An active grant of a privileged entitlement through one of its active accounts.
NHI7 Long-lived secrets
    An active credential older than its policy's maximum age (counted from the last
    rotation, else from creation) or past its expiry date.
NHI8 Environment isolation
    One active credential used in production and also in staging or development.
NHI9 Reuse
    More than one consumer recorded for the NHI.
NHI10 Human use
    An interactive login was observed, or an unresolved reconciliation finding of kind
    "NHI showing human use" about it (a finding accepted by exception no longer flags).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from governance.access.models import Account, Grant
from governance.nhi.models import (
    Credential,
    CredentialPolicy,
    Environment,
    Handoff,
    NonHumanIdentity,
    RotationTask,
)

DEFAULT_MAX_AGE_DAYS = 90
DEFAULT_WARN_DAYS = 14
#: Platforms that let a workload prove who it is with a short-lived OIDC token instead of a
#: stored secret (GitHub/GitLab/CircleCI/Bitbucket CI, the three clouds, Kubernetes
#: service-account tokens, Terraform Cloud dynamic credentials).
FEDERATION_PLATFORMS = (
    "GitHub Actions",
    "GitLab CI",
    "CircleCI",
    "Bitbucket Pipelines",
    "AWS",
    "Azure",
    "Google Cloud",
    "Kubernetes",
    "Terraform Cloud",
)
FEDERABLE_KINDS = (
    NonHumanIdentity.Kind.SERVICE_ACCOUNT,
    NonHumanIdentity.Kind.INTEGRATION,
    NonHumanIdentity.Kind.WORKLOAD,
)
#: Finding states that still flag NHI10: open work, not yet accepted by exception or closed.
HUMAN_USE_FINDING_STATES = ("open", "in_flight", "remediating", "in_review")
B = BooleanField()
INACTIVE_NHI = (NonHumanIdentity.Status.RETIRED, NonHumanIdentity.Status.DISABLED)

FLAGS: dict[str, str] = {
    "NHI1": "Improper offboarding",
    "NHI4": "Insecure authentication",
    "NHI5": "Overprivileged",
    "NHI7": "Long-lived secret",
    "NHI8": "Environment isolation",
    "NHI9": "Reuse across consumers",
    "NHI10": "Human use",
}


class JSONArrayLength(Func):
    """Length of a JSON array column (0 for a missing value), on SQLite and PostgreSQL."""

    function = "JSON_ARRAY_LENGTH"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


# ------------------------------------------------------------------------------ ownership


def unowned_nhis() -> QuerySet[NonHumanIdentity]:
    """NHIs with no owner, or whose owner is no longer an active person (NHI1:2025)."""
    return NonHumanIdentity.objects.exclude(status__in=INACTIVE_NHI).filter(nhi1_q())


def nhis_for_user(user, queryset: QuerySet[NonHumanIdentity] | None = None):
    """What a portal user may see: everything for security admins and auditors, the NHIs of
    their applications for an application owner, nothing otherwise."""
    from governance.core.admin_base import sees_everything

    qs = NonHumanIdentity.objects.all() if queryset is None else queryset
    if sees_everything(user):
        return qs
    return qs.filter(application__owners=user).distinct()


def open_handoffs() -> QuerySet[Handoff]:
    return Handoff.objects.filter(state=Handoff.State.PROPOSED)


# ------------------------------------------------------------------------------ credentials


@dataclass(frozen=True)
class Rule:
    max_age_days: int
    warn_days: int


class PolicyBook:
    """The credential policies, loaded once; answers "which rule applies" for a kind and
    environment with the most specific row, else the built-in default."""

    def __init__(self, policies: list[CredentialPolicy] | None = None):
        rows = list(CredentialPolicy.objects.all()) if policies is None else policies
        self._rows = {(p.nhi_kind, p.environment): p for p in rows}

    def rule(self, kind: str, environment: str) -> Rule:
        for key in ((kind, environment), (kind, ""), ("", environment), ("", "")):
            policy = self._rows.get(key)
            if policy is not None:
                return Rule(policy.max_age_days, policy.warn_days)
        return Rule(DEFAULT_MAX_AGE_DAYS, DEFAULT_WARN_DAYS)

    def rule_for(self, credential: Credential) -> Rule:
        return self.rule(credential.nhi.kind, policy_environment(credential))


def policy_environment(credential: Credential) -> str:
    """The environment whose policy applies: the most sensitive one the credential is used
    in, else the NHI's own environment."""
    for env in credential.environments:
        return env
    return credential.nhi.environment


def _policy_env_expression():
    return Case(
        When(used_in_production=True, then=Value(Environment.PRODUCTION)),
        When(used_in_staging=True, then=Value(Environment.STAGING)),
        When(used_in_development=True, then=Value(Environment.DEVELOPMENT)),
        default=F("nhi__environment"),
        output_field=CharField(),
    )


def _age_q(book: PolicyBook, *, older_than) -> Q:
    """Credentials whose age base is before ``older_than(rule)`` for their kind and policy
    environment. The predicate is built from the (few) kinds and environments, not the rows."""
    q = Q(pk__in=[])
    for kind in NonHumanIdentity.Kind.values:
        for env in Environment.values:
            q |= Q(
                nhi__kind=kind,
                _policy_env=env,
                _age_base__lt=older_than(book.rule(kind, env)),
            )
    return q


def credentials_annotated(queryset: QuerySet[Credential] | None = None) -> QuerySet[Credential]:
    qs = Credential.objects.all() if queryset is None else queryset
    return qs.annotate(
        _policy_env=_policy_env_expression(),
        _age_base=Coalesce("last_rotated_at", "issued_at"),
    )


def overdue_q(now: datetime, book: PolicyBook | None = None) -> Q:
    """Active credentials older than policy or past expiry (NHI7). Needs
    :func:`credentials_annotated`."""
    book = book or PolicyBook()
    too_old = _age_q(book, older_than=lambda rule: now - timedelta(days=rule.max_age_days))
    return Q(status=Credential.Status.ACTIVE) & (too_old | Q(expires_at__lte=now))


def expiring_q(now: datetime, book: PolicyBook | None = None) -> Q:
    """Active credentials not overdue yet but within their policy's warning window."""
    book = book or PolicyBook()
    soon_old = _age_q(
        book,
        older_than=lambda rule: now - timedelta(days=max(rule.max_age_days - rule.warn_days, 0)),
    )
    warn_by_expiry = Q(pk__in=[])
    for kind in NonHumanIdentity.Kind.values:
        for env in Environment.values:
            rule = book.rule(kind, env)
            warn_by_expiry |= Q(
                nhi__kind=kind,
                _policy_env=env,
                expires_at__lte=now + timedelta(days=rule.warn_days),
            )
    return Q(status=Credential.Status.ACTIVE) & (soon_old | warn_by_expiry) & ~overdue_q(now, book)


def overdue_credentials(now: datetime | None = None) -> QuerySet[Credential]:
    now = now or timezone.now()
    return credentials_annotated().filter(overdue_q(now))


def expiring_credentials(now: datetime | None = None) -> QuerySet[Credential]:
    now = now or timezone.now()
    return credentials_annotated().filter(expiring_q(now))


def credential_state_annotated(
    queryset: QuerySet[Credential] | None = None, now: datetime | None = None
) -> QuerySet[Credential]:
    """Credentials with ``rotation_state``: "overdue", "expiring", "ok" or "revoked"."""
    now = now or timezone.now()
    book = PolicyBook()
    return credentials_annotated(queryset).annotate(
        rotation_state=Case(
            When(status=Credential.Status.REVOKED, then=Value("revoked")),
            When(overdue_q(now, book), then=Value("overdue")),
            When(expiring_q(now, book), then=Value("expiring")),
            default=Value("ok"),
            output_field=CharField(),
        )
    )


def open_rotation_tasks() -> QuerySet[RotationTask]:
    return RotationTask.objects.filter(state=RotationTask.State.OPEN)


# ------------------------------------------------------------------------------ risk flags


def nhi1_q() -> Q:
    return (
        Q(status=NonHumanIdentity.Status.ORPHANED)
        | Q(owner__isnull=True)
        | Q(owner__active=False)
        | Q(owner__deleted_at__isnull=False)
    )


def nhi4_q() -> Q:
    platform = Q(pk__in=[])
    for name in FEDERATION_PLATFORMS:
        platform |= Q(platform__iexact=name)
    return (
        Q(auth_method=NonHumanIdentity.AuthMethod.STATIC_SECRET)
        & Q(kind__in=FEDERABLE_KINDS)
        & platform
    )


def _privileged_grant():
    return Exists(
        Grant.objects.filter(
            account__nhi=OuterRef("pk"),
            account__status=Account.Status.ACTIVE,
            status=Grant.Status.ACTIVE,
            entitlement__privileged=True,
        )
    )


def _long_lived_credential(now: datetime, book: PolicyBook):
    return Exists(credentials_annotated().filter(nhi=OuterRef("pk")).filter(overdue_q(now, book)))


def _mixed_environment_credential():
    return Exists(
        Credential.objects.filter(
            nhi=OuterRef("pk"), status=Credential.Status.ACTIVE, used_in_production=True
        ).filter(Q(used_in_staging=True) | Q(used_in_development=True))
    )


def _human_use_finding():
    from governance.reconciliation.models import Finding

    return Exists(
        Finding.objects.filter(
            nhi=OuterRef("pk"),
            kind=Finding.Kind.NHI_HUMAN_USE,
            status__in=HUMAN_USE_FINDING_STATES,
        )
    )


def with_risk_flags(
    queryset: QuerySet[NonHumanIdentity] | None = None, now: datetime | None = None
) -> QuerySet[NonHumanIdentity]:
    """Annotate each NHI with one boolean per flag (``flag_nhi1`` ...): one query for any
    number of rows."""
    now = now or timezone.now()
    book = PolicyBook()
    qs = NonHumanIdentity.objects.all() if queryset is None else queryset
    active = ~Q(status__in=INACTIVE_NHI)
    return qs.annotate(
        _consumer_count=Coalesce(JSONArrayLength("consumers"), Value(0)),
        flag_nhi1=Case(When(active & nhi1_q(), then=True), default=False, output_field=B),
        flag_nhi4=Case(When(active & nhi4_q(), then=True), default=False, output_field=B),
        flag_nhi5=_privileged_grant(),
        flag_nhi7=_long_lived_credential(now, book),
        flag_nhi8=_mixed_environment_credential(),
        flag_nhi9=Case(When(_consumer_count__gt=1, then=True), default=False, output_field=B),
        flag_nhi10=Case(
            When(Q(human_use_observed_at__isnull=False), then=True),
            When(_human_use_finding(), then=True),
            default=False,
            output_field=B,
        ),
    )


def flag_q(flag: str) -> Q:
    """Filter for one flag on a queryset from :func:`with_risk_flags`."""
    if flag not in FLAGS:
        raise KeyError(flag)
    return Q(**{f"flag_{flag.lower()}": True})


def any_flag_q() -> Q:
    q = Q(pk__in=[])
    for flag in FLAGS:
        q |= flag_q(flag)
    return q


def flags_of(nhi: NonHumanIdentity) -> list[str]:
    """The flag ids raised on an NHI loaded through :func:`with_risk_flags`."""
    return [flag for flag in FLAGS if getattr(nhi, f"flag_{flag.lower()}", False)]
