"""The comparison of one run: observed state against intended state, set-based.

Every step is a handful of SQL statements over the whole run (``INSERT … SELECT`` built from
ORM querysets, ``UPDATE … WHERE … IN (subquery)``), never a Python loop over accounts or
grants, so a run over 100,000 accounts costs a bounded number of statements.

The steps, in order (:func:`compare`):

1. match observed accounts to Steward's accounts: by external id first, then by username
   (case-insensitive) where neither side names a different external id; a renamed account
   matched by its external id is the same account, not an orphan;
2. observed grant values were mapped to entitlements as they were written
   (``Entitlement.external_value``, then name: :func:`entitlement_lookup`);
3. write what Steward intends each matched account to hold (:class:`ExpectedGrant`): birthright
   policies (group and attribute), and grants carrying an approved request, an exception, or a
   review approval;
4. write every drift the run sees as a :class:`FindingCandidate` with its fingerprint, and mark
   those still inside the application's lag budget as in flight;
5. merge the candidates into the findings: existing ones are refreshed (and move between open
   and in flight), new ones are inserted, and open findings the run no longer sees resolve.

Matching uses ``UPDATE … FROM`` (PostgreSQL, and SQLite 3.33 or later): the account table has
no index on external id, and a join is what keeps 100,000 lookups linear.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    Exists,
    ExpressionWrapper,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat, JSONObject, Left, Lower
from django.utils import timezone

from governance.access.models import AccessPolicy, Account, Application, Entitlement, Grant
from governance.core.choices import RiskLevel
from governance.lifecycle.models import LifecycleEvent, ProvisioningProfile, ProvisioningTask
from governance.nhi.models import NonHumanIdentity
from governance.reconciliation.models import (
    ExpectedGrant,
    Finding,
    FindingCandidate,
    ObservedAccount,
    ObservedGrant,
    ReconciliationRun,
)

K = Finding.Kind
S = Finding.Status
DRIFT_KINDS = (
    K.ORPHAN,
    K.STALE,
    K.EXCESS,
    K.MISSING,
    K.DORMANT,
    K.SHARED,
    K.NHI_HUMAN_USE,
)
DEFAULT_LAG_MINUTES = 60
DEFAULT_DORMANT_DAYS = 90


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model, field: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)


def insert_select(model, columns: list[str], queryset: QuerySet) -> int:
    """``INSERT INTO model (columns) SELECT …`` where the SELECT is ``queryset``'s, compiled
    for the current database; returns the number of rows written. ``queryset`` must select
    exactly ``columns`` (as annotations ``c0``, ``c1``… in that order, see :func:`_select`)."""
    sql, params = queryset.query.sql_with_params()
    cols = ", ".join(_column(model, c) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {_table(model)} ({cols}) {sql}", params)
        return max(cursor.rowcount, 0)


def _select(queryset: QuerySet, values: dict[str, Any]) -> tuple[list[str], QuerySet]:
    """Annotate ``queryset`` with one expression per target column, in order."""
    names = [f"c{i}" for i in range(len(values))]
    annotated = queryset.annotate(
        **{name: _expr(value) for name, value in zip(names, values.values(), strict=True)}
    )
    return list(values), annotated.values_list(*names).order_by()


def _expr(value):
    if hasattr(value, "resolve_expression"):
        return value
    if isinstance(value, bool):
        return Value(value, output_field=BooleanField())
    return Value(value)


def _text(value) -> Cast:
    return Cast(value, output_field=CharField())


def entitlements_observed(run: ReconciliationRun) -> bool:
    """Whether the run read entitlements at all (a CSV without an entitlements column, a
    SCIM read without groups): if not, nothing can be concluded about excess or missing
    entitlements, and no grant or revocation can be verified."""
    mapping = run.column_mapping or {}
    if run.source == ReconciliationRun.Source.CSV:
        return bool((mapping.get("fields") or {}).get("entitlements"))
    return bool(mapping.get("entitlements_observed"))


def lag_budget_minutes(application: Application) -> int:
    """The application's lag budget (its provisioning profile's), or the default."""
    try:
        return application.provisioning_profile.lag_budget_minutes
    except ProvisioningProfile.DoesNotExist:
        return DEFAULT_LAG_MINUTES


def lag_cutoff(application: Application, at: datetime) -> datetime:
    return at - timedelta(minutes=lag_budget_minutes(application))


def dormant_days(application: Application) -> int:
    from governance.reconciliation.models import ReconciliationSettings

    days = (
        ReconciliationSettings.objects.filter(application=application)
        .values_list("dormant_after_days", flat=True)
        .first()
    )
    return days or DEFAULT_DORMANT_DAYS


# --------------------------------------------------------------------------- 1. matching


def match_accounts(run: ReconciliationRun) -> None:
    # Table names come from the models' metadata, quoted by the backend; values are bound.
    oa, acc = _table(ObservedAccount), _table(Account)
    by_external_id = (
        f"UPDATE {oa} SET account_id = a.id FROM {acc} a "  # noqa: S608
        f"WHERE {oa}.run_id = %s AND {oa}.external_id <> '' "
        f"AND a.application_id = %s AND a.external_id = {oa}.external_id"
    )
    by_username = (
        f"UPDATE {oa} SET account_id = a.id FROM {acc} a "  # noqa: S608
        f"WHERE {oa}.run_id = %s AND {oa}.account_id IS NULL "
        f"AND a.application_id = %s AND LOWER(a.username) = LOWER({oa}.username) "
        f"AND (a.external_id = '' OR {oa}.external_id = '') "
        f"AND NOT EXISTS (SELECT 1 FROM {oa} o2 WHERE o2.run_id = %s AND o2.account_id = a.id)"
    )
    with connection.cursor() as cursor:
        # By external id first: a renamed account keeps its id.
        cursor.execute(by_external_id, [run.pk, run.application_id])
        # Then by username, unless both sides name different external ids, and never an
        # account another observed account of this run already matched.
        cursor.execute(by_username, [run.pk, run.application_id, run.pk])


def entitlement_lookup(application_id: int):
    """value -> entitlement id for one application's grants as the application names them:
    ``Entitlement.external_value`` exactly, else the entitlement's name (any case). An
    application has few entitlements, so the observations are mapped as they are written."""
    by_value: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for pk, value, name in Entitlement.objects.filter(application_id=application_id).values_list(
        "pk", "external_value", "name"
    ):
        by_value[value] = pk
        by_name.setdefault(name.lower(), pk)

    def lookup(value: str) -> int | None:
        found = by_value.get(value)
        return found if found is not None else by_name.get(value.lower())

    return lookup


# --------------------------------------------------------------------------- 2. intended


def build_expected(run: ReconciliationRun) -> None:
    app_id = run.application_id
    live_people = ObservedAccount.objects.filter(
        run=run,
        active=True,
        account__isnull=False,
        account__identity__active=True,
        account__identity__deleted_at__isnull=True,
    )
    columns = ["run_id", "account_id", "entitlement_id", "by_policy"]
    via = "account__identity__memberships__group__policies"
    # Duplicates (two groups giving one entitlement) are harmless here: the rows are only
    # probed with EXISTS, and candidates are deduplicated by fingerprint.
    by_group = live_people.filter(
        **{
            "account__identity__memberships__group__deleted_at__isnull": True,
            f"{via}__enabled": True,
            f"{via}__entitlements__application_id": app_id,
        }
    )
    cols, qs = _select(
        by_group,
        {
            "run_id": Value(run.pk),
            "account_id": F("account_id"),
            "entitlement_id": F(f"{via}__entitlements"),
            "by_policy": True,
        },
    )
    insert_select(ExpectedGrant, cols, qs)
    attribute_policies = (
        AccessPolicy.objects.filter(
            enabled=True, directory_group__isnull=True, entitlements__application_id=app_id
        )
        .distinct()
        .prefetch_related("entitlements")
    )
    for policy in attribute_policies:
        people = live_people.filter(
            **{f"account__identity__{policy.attribute}__iexact": policy.attribute_value}
        )
        for ent in policy.entitlements.all():
            if ent.application_id != app_id:
                continue
            cols, qs = _select(
                people,
                {
                    "run_id": Value(run.pk),
                    "account_id": F("account_id"),
                    "entitlement_id": Value(ent.pk),
                    "by_policy": True,
                },
            )
            insert_select(ExpectedGrant, cols, qs)
    approved = (
        Grant.objects.filter(status=Grant.Status.ACTIVE, entitlement__application_id=app_id)
        .filter(
            Q(origin__in=[Grant.Origin.REQUEST, Grant.Origin.EXCEPTION])
            | Q(last_reviewed_at__isnull=False)
        )
        .exclude(account__identity__active=False)
        .filter(
            Exists(
                ObservedAccount.objects.filter(
                    run=run, active=True, account_id=OuterRef("account_id")
                )
            )
        )
    )
    cols, qs = _select(
        approved,
        {
            "run_id": Value(run.pk),
            "account_id": F("account_id"),
            "entitlement_id": F("entitlement_id"),
            "by_policy": False,
        },
    )
    insert_select(ExpectedGrant, cols, qs)
    assert cols == columns


# --------------------------------------------------------------------------- 3. candidates


def _account_key(prefix: str = ""):
    """A stable key for an observed account: Steward's account id when matched, else the
    application's id for it, else its username (lower case)."""
    return Case(
        When(
            **{f"{prefix}account__isnull": False},
            then=Concat(Value("a"), _text(F(f"{prefix}account_id"))),
        ),
        When(
            ~Q(**{f"{prefix}external_id": ""}),
            then=Concat(Value("x"), F(f"{prefix}external_id")),
        ),
        default=Concat(Value("u"), Lower(f"{prefix}username")),
        output_field=CharField(),
    )


def _privileged_held(run: ReconciliationRun):
    return Exists(
        ObservedGrant.objects.filter(
            run=run, observed_account=OuterRef("pk"), entitlement__privileged=True
        )
    )


def _account_evidence(run: ReconciliationRun, prefix: str = "", **extra):
    return JSONObject(
        run=Value(run.pk),
        username=F(f"{prefix}username"),
        external_id=F(f"{prefix}external_id"),
        display_name=F(f"{prefix}display_name"),
        email=F(f"{prefix}email"),
        active=F(f"{prefix}active"),
        last_login_at=F(f"{prefix}last_login_at"),
        **extra,
    )


CANDIDATE_COLUMNS = [
    "run_id",
    "kind",
    "fingerprint",
    "severity",
    "subject",
    "account_id",
    "identity_id",
    "nhi_id",
    "entitlement_id",
    "evidence",
    "in_flight",
]


def _account_candidates(
    run: ReconciliationRun, app: Application, kind: str, queryset, severity, **evidence
) -> int:
    values = {
        "run_id": Value(run.pk),
        "kind": Value(kind),
        "fingerprint": Left(Concat(Value(f"{app.pk}:"), _account_key()), 200),
        "severity": severity,
        "subject": Left(Concat(F("username"), Value(f" @ {app.name}")), 300),
        "account_id": F("account_id"),
        "identity_id": F("account__identity_id"),
        "nhi_id": F("account__nhi_id"),
        "entitlement_id": Cast(Value(None), output_field=BigIntegerField()),
        "evidence": _account_evidence(run, **evidence),
        "in_flight": False,
    }
    cols, qs = _select(queryset, values)
    return insert_select(FindingCandidate, cols, qs)


def _high_if_privileged(run, otherwise: str):
    return Case(
        When(_privileged_held(run), then=Value(RiskLevel.HIGH)),
        default=Value(otherwise),
        output_field=CharField(),
    )


def build_candidates(run: ReconciliationRun, app: Application, now: datetime) -> None:
    observed = ObservedAccount.objects.filter(run=run)
    active = observed.filter(active=True)
    # Orphan: nobody in Steward, or an account that belongs to no person and no NHI.
    _account_candidates(
        run,
        app,
        K.ORPHAN,
        active.filter(
            Q(account__isnull=True) | Q(account__identity__isnull=True, account__nhi__isnull=True)
        ),
        _high_if_privileged(run, RiskLevel.MEDIUM),
        matched=ExpressionWrapper(Q(account__isnull=False), output_field=BooleanField()),
    )
    # Stale: the person left (or the NHI was retired) and the application still lets it in.
    _account_candidates(
        run,
        app,
        K.STALE,
        active.filter(
            Q(account__identity__active=False)
            | Q(account__identity__deleted_at__isnull=False)
            | Q(
                account__nhi__status__in=[
                    NonHumanIdentity.Status.DISABLED,
                    NonHumanIdentity.Status.RETIRED,
                ]
            )
        ),
        Value(RiskLevel.HIGH),
    )
    # Dormant: no sign-in for the application's threshold.
    days = dormant_days(app)
    _account_candidates(
        run,
        app,
        K.DORMANT,
        active.filter(account__isnull=False, last_login_at__lt=now - timedelta(days=days)).filter(
            Q(account__identity__isnull=False) | Q(account__nhi__isnull=False)
        ),
        Case(
            When(_privileged_held(run), then=Value(RiskLevel.MEDIUM)),
            default=Value(RiskLevel.LOW),
            output_field=CharField(),
        ),
        dormant_after_days=Value(days),
    )
    # Shared: several people seen using one account.
    _account_candidates(
        run,
        app,
        K.SHARED,
        active.filter(used_by_count__gt=1),
        _high_if_privileged(run, RiskLevel.MEDIUM),
        used_by=F("used_by"),
    )
    # An NHI's account signed in interactively: a person is using it (OWASP NHI10).
    _account_candidates(
        run,
        app,
        K.NHI_HUMAN_USE,
        observed.filter(interactive_login=True, account__nhi__isnull=False),
        Value(RiskLevel.HIGH),
        interactive_login=Value(True),
    )
    if entitlements_observed(run):
        _excess_candidates(run, app)
        _missing_candidates(run, app)
    # Two observed accounts matched to one of ours would repeat a fingerprint: keep one.
    keep = (
        FindingCandidate.objects.filter(run=run)
        .values("kind", "fingerprint")
        .annotate(first=Min("pk"))
        .values("first")
    )
    FindingCandidate.objects.filter(run=run).exclude(pk__in=keep).delete()


def _excess_candidates(run: ReconciliationRun, app: Application) -> int:
    """Observed grants of live people and NHIs that nothing Steward intends justifies.
    Orphan and stale accounts are findings of their own, and a disabled account grants
    nothing, so their grants are not repeated here."""
    p = "observed_account__"
    grants = (
        ObservedGrant.objects.filter(run=run, observed_account__active=True)
        .filter(observed_account__account__isnull=False)
        .filter(
            Q(
                observed_account__account__identity__active=True,
                observed_account__account__identity__deleted_at__isnull=True,
            )
            | Q(
                observed_account__account__nhi__isnull=False,
                observed_account__account__nhi__status__in=[
                    NonHumanIdentity.Status.ACTIVE,
                    NonHumanIdentity.Status.ORPHANED,
                ],
            )
        )
        .exclude(
            Exists(
                ExpectedGrant.objects.filter(
                    run=run,
                    account_id=OuterRef("observed_account__account_id"),
                    entitlement_id=OuterRef("entitlement_id"),
                )
            )
        )
    )
    entitlement_key = Case(
        When(entitlement__isnull=False, then=Concat(Value("e"), _text(F("entitlement_id")))),
        default=Concat(Value("v"), F("value")),
        output_field=CharField(),
    )
    values = {
        "run_id": Value(run.pk),
        "kind": Value(K.EXCESS),
        "fingerprint": Left(
            Concat(Value(f"{app.pk}:"), _account_key(p), Value(":"), entitlement_key), 200
        ),
        "severity": Case(
            When(entitlement__privileged=True, then=Value(RiskLevel.HIGH)),
            default=Value(RiskLevel.MEDIUM),
            output_field=CharField(),
        ),
        "subject": Left(
            Concat(
                F(f"{p}username"),
                Value(" holds "),
                Coalesce(F("entitlement__name"), F("value")),
                Value(f" @ {app.name}"),
            ),
            300,
        ),
        "account_id": F(f"{p}account_id"),
        "identity_id": F(f"{p}account__identity_id"),
        "nhi_id": F(f"{p}account__nhi_id"),
        "entitlement_id": F("entitlement_id"),
        "evidence": _account_evidence(
            run,
            p,
            value=F("value"),
            known_entitlement=ExpressionWrapper(
                Q(entitlement__isnull=False), output_field=BooleanField()
            ),
            privileged=Coalesce(F("entitlement__privileged"), Value(False)),
        ),
        "in_flight": False,
    }
    cols, qs = _select(grants, values)
    return insert_select(FindingCandidate, cols, qs)


def _missing_candidates(run: ReconciliationRun, app: Application) -> int:
    """Birthright entitlements an observed, active account of a live person lacks."""
    missing = ExpectedGrant.objects.filter(run=run, by_policy=True).exclude(
        Exists(
            ObservedGrant.objects.filter(
                run=run,
                observed_account__account_id=OuterRef("account_id"),
                entitlement_id=OuterRef("entitlement_id"),
            )
        )
    )
    values = {
        "run_id": Value(run.pk),
        "kind": Value(K.MISSING),
        "fingerprint": Left(
            Concat(
                Value(f"{app.pk}:a"),
                _text(F("account_id")),
                Value(":e"),
                _text(F("entitlement_id")),
            ),
            200,
        ),
        "severity": Value(RiskLevel.LOW),
        "subject": Left(
            Concat(
                F("account__username"),
                Value(" lacks "),
                F("entitlement__name"),
                Value(f" @ {app.name}"),
            ),
            300,
        ),
        "account_id": F("account_id"),
        "identity_id": F("account__identity_id"),
        "nhi_id": F("account__nhi_id"),
        "entitlement_id": F("entitlement_id"),
        "evidence": JSONObject(
            run=Value(run.pk),
            username=F("account__username"),
            entitlement=F("entitlement__name"),
            value=F("entitlement__external_value"),
            reason=Value("a birthright policy gives it"),
        ),
        "in_flight": False,
    }
    cols, qs = _select(missing, values)
    return insert_select(FindingCandidate, cols, qs)


def mark_in_flight(run: ReconciliationRun, app: Application, at: datetime) -> int:
    """Candidates whose account or person changed within the lag budget are in flight: the
    application may simply not show the change yet."""
    cutoff = lag_cutoff(app, at)
    recent_tasks = ProvisioningTask.objects.filter(application=app).filter(
        Q(created_at__gte=cutoff) | Q(executed_at__gte=cutoff) | Q(verified_at__gte=cutoff)
    )
    by_account = recent_tasks.filter(account__isnull=False).values("account_id")
    by_identity = recent_tasks.filter(identity__isnull=False).values("identity_id")
    changed_grants = Grant.objects.filter(entitlement__application=app).filter(
        Q(granted_at__gte=cutoff) | Q(revoked_at__gte=cutoff)
    )
    new_accounts = Account.objects.filter(application=app, created_at__gte=cutoff)
    events = LifecycleEvent.objects.filter(occurred_at__gte=cutoff).values("identity_id")
    candidates = FindingCandidate.objects.filter(run=run, in_flight=False)
    return candidates.filter(
        Q(account_id__in=by_account)
        | Q(identity_id__in=by_identity)
        | Q(account_id__in=changed_grants.values("account_id"))
        | Q(account_id__in=new_accounts.values("pk"))
        | Q(identity_id__in=events)
    ).update(in_flight=True)


# --------------------------------------------------------------------------- 4. merge


def _candidate(run: ReconciliationRun, **extra):
    return FindingCandidate.objects.filter(
        run=run, kind=OuterRef("kind"), fingerprint=OuterRef("fingerprint"), **extra
    )


def merge(run: ReconciliationRun, app: Application, owner_id: int | None, now: datetime):
    """Fold the run's candidates into the findings; returns (opened, resolved)."""
    from django.db.models import Subquery

    live = Finding.objects.filter(
        application=app, kind__in=DRIFT_KINDS, status__in=Finding.OPEN_STATUSES
    )
    live.filter(status=S.IN_FLIGHT).filter(Exists(_candidate(run, in_flight=False))).update(
        status=S.OPEN, updated_at=now
    )
    live.filter(status=S.OPEN).filter(Exists(_candidate(run, in_flight=True))).update(
        status=S.IN_FLIGHT, updated_at=now
    )
    live.filter(Exists(_candidate(run))).update(
        last_seen_run=run,
        evidence=Subquery(_candidate(run).values("evidence")[:1]),
        severity=Subquery(_candidate(run).values("severity")[:1]),
        updated_at=now,
    )
    resolved = (
        live.exclude(last_seen_run=run)
        .exclude(Exists(_candidate(run)))
        .update(
            status=S.RESOLVED,
            resolved_at=now,
            resolution=f"Run #{run.pk} no longer shows this drift.",
            updated_at=now,
        )
    )
    # New drift: nothing live for the fingerprint, and nobody called it a false positive.
    known = Finding.objects.filter(
        kind=OuterRef("kind"),
        fingerprint=OuterRef("fingerprint"),
        status__in=[*Finding.OPEN_STATUSES, S.FALSE_POSITIVE],
    )
    fresh = FindingCandidate.objects.filter(run=run).exclude(Exists(known))
    cols, qs = _select(
        fresh,
        {
            "kind": F("kind"),
            "severity": F("severity"),
            "status": Case(
                When(in_flight=True, then=Value(S.IN_FLIGHT)),
                default=Value(S.OPEN),
                output_field=CharField(),
            ),
            "fingerprint": F("fingerprint"),
            "subject": F("subject"),
            "application_id": Value(app.pk),
            "account_id": F("account_id"),
            "identity_id": F("identity_id"),
            "nhi_id": F("nhi_id"),
            "entitlement_id": F("entitlement_id"),
            "evidence": F("evidence"),
            "owner_id": Cast(Value(owner_id), output_field=BigIntegerField()),
            "first_seen_run_id": Value(run.pk),
            "last_seen_run_id": Value(run.pk),
            "resolution": Value(""),
            "opened_at": Value(now),
            "updated_at": Value(now),
        },
    )
    opened = insert_select(Finding, cols, qs)
    return opened, resolved


# --------------------------------------------------------------------------- 5. verification


def confirmed_tasks(run: ReconciliationRun) -> QuerySet[ProvisioningTask]:
    """Executed work the run's observations confirm (removals gone, additions present)."""
    Op = ProvisioningTask.Operation
    seen = ObservedAccount.objects.filter(run=run, account_id=OuterRef("account_id"))
    holds = ObservedGrant.objects.filter(
        run=run,
        observed_account__account_id=OuterRef("account_id"),
        entitlement_id=OuterRef("entitlement_id"),
    )
    entitlement_ops = Q(operation__in=[Op.GRANT, Op.REVOKE])
    if not entitlements_observed(run):
        entitlement_ops = Q(pk__in=[])
    return (
        ProvisioningTask.objects.filter(
            application_id=run.application_id,
            state=ProvisioningTask.State.EXECUTED,
            executed_at__lte=run.created_at,
            account__isnull=False,
        )
        .filter(
            entitlement_ops & Q(operation=Op.REVOKE, entitlement__isnull=False) & ~Exists(holds)
            | entitlement_ops & Q(operation=Op.GRANT, entitlement__isnull=False) & Exists(holds)
            | Q(operation=Op.DISABLE_ACCOUNT) & ~Exists(seen.filter(active=True))
            | Q(operation=Op.ENABLE_ACCOUNT) & Exists(seen.filter(active=True))
            | Q(operation=Op.CREATE_ACCOUNT) & Exists(seen)
        )
        .order_by("pk")
    )


def counts_by_kind(app: Application) -> dict[str, int]:
    from django.db.models import Count

    rows = (
        Finding.objects.filter(
            application=app,
            status__in=[S.OPEN, S.IN_FLIGHT, S.REMEDIATING, S.IN_REVIEW],
        )
        .values("kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = dict.fromkeys(DRIFT_KINDS, 0)
    counts.update({row["kind"]: row["n"] for row in rows})
    return {str(k): v for k, v in counts.items()}


def analyze(*models) -> None:
    """Freshly written working tables get planner statistics (PostgreSQL): without them the
    planner takes 100,000 rows for a handful and picks nested loops."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {_table(model)}")


def compare(run: ReconciliationRun, *, now: datetime | None = None) -> dict[str, int]:
    """Steps 1-5 for one run whose observations are written. The caller holds the
    transaction."""
    now = now or timezone.now()
    app = Application.objects.select_related("provisioning_profile").get(pk=run.application_id)
    analyze(ObservedAccount, ObservedGrant)
    match_accounts(run)
    analyze(ObservedAccount)
    build_expected(run)
    analyze(ExpectedGrant)
    build_candidates(run, app, now)
    analyze(FindingCandidate)
    mark_in_flight(run, app, run.started_at or now)
    owner_id = app.owners.order_by("pk").values_list("pk", flat=True).first()
    opened, resolved = merge(run, app, owner_id, now)
    FindingCandidate.objects.filter(run=run).delete()
    ExpectedGrant.objects.filter(run=run).delete()
    return {"opened": opened, "resolved": resolved}
