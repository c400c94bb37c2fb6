"""Steward benchmark: cost ratios measured in one run, never absolute timings in tests.

SCIM targets (RFC 7644 endpoints at /scim/v2/):
  * adding k members to a group costs the same whatever the group's size (O(k), not O(m));
  * a userName filter costs the same whatever the directory's size (index, not scan);
  * a page of 100 users costs a bounded number of SQL queries.

Access reviews:
  * launching a campaign costs the same per grant at 20,000 grants as at 2,000 (at most
    1.5x), and every full 5,000-item batch costs the same number of queries.

Reconciliation (PostgreSQL only; ``python bench/run.py reconciliation`` runs it alone):
  * one application with 100,000 accounts and 300,000 grants reconciles (CSV import,
    comparison, findings) in under 60 s, and costs per account no more than 1.5x a
    10,000-account run.

Runs against a throwaway database: a temporary SQLite file, or, when DATABASE_URL points at
PostgreSQL, a database named ``<name>_bench`` created and dropped by this script.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
os.environ.setdefault("DEBUG", "true")
_tmp = None
if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
    _tmp = tempfile.mkdtemp(prefix="steward-bench-")
    os.environ["DATABASE_URL"] = f"sqlite:///{_tmp}/bench.sqlite3"
else:
    os.environ["DATABASE_URL"] = os.environ["DATABASE_URL"].rstrip("/") + "_bench"

import django  # noqa: E402
import django.utils.timezone  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _admin_connection():
    import psycopg

    params = settings.DATABASES["default"]
    conninfo = (
        f"host={params['HOST']} port={params['PORT'] or 5432} user={params['USER']} dbname=postgres"
    )
    if params.get("PASSWORD"):
        conninfo += f" password={params['PASSWORD']}"
    return psycopg.connect(conninfo, autocommit=True)


def _create_database() -> None:
    if connection.vendor != "postgresql":
        return
    name = settings.DATABASES["default"]["NAME"]
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database() -> None:
    if connection.vendor != "postgresql":
        return
    connection.close()
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{settings.DATABASES["default"]["NAME"]}"')


def _bulk_people(source, count: int, prefix: str) -> list[uuid.UUID]:
    """Set-up rows straight into the tables: the benchmark measures requests, not seeding."""
    from governance.identities.models import Identity

    people = [
        Identity(
            source=source, user_name=f"{prefix}{i:06d}@bench.example", external_id=f"{prefix}{i}"
        )
        for i in range(count)
    ]
    Identity.objects.bulk_create(people, batch_size=5000)
    return [p.pk for p in people]


def _timed(fn, repeat: int = 7) -> tuple[float, int]:
    samples, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        queries = len(ctx.captured_queries)
    return statistics.median(samples), queries


def _launch_population(source, people: list, count: int, name: str):
    """A draft campaign over a fresh application with ``count`` grants (10 per account),
    bulk-created; the holders report to a manager who has a portal account."""
    from governance.access.models import Account, Application, Entitlement, Grant
    from governance.identities.models import Identity
    from governance.portal.models import User
    from governance.reviews.models import Campaign

    per_account = 10
    holders = people[: count // per_account]
    manager = Identity.objects.create(source=source, user_name=f"{name}-manager@bench.example")
    User.objects.create(username=f"{name}-manager", identity=manager)
    Identity.objects.filter(pk__in=holders).update(manager=manager)
    app = Application.objects.create(name=f"bench {name}")
    ents = Entitlement.objects.bulk_create(
        [
            Entitlement(application=app, name=f"Role {i}", external_value=f"r{i}")
            for i in range(per_account)
        ]
    )
    accounts = Account.objects.bulk_create(
        [Account(application=app, identity_id=pk, username=f"{name}-{pk}") for pk in holders],
        batch_size=5000,
    )
    now = django.utils.timezone.now()
    Grant.objects.bulk_create(
        [Grant(account=a, entitlement=e, granted_at=now) for a in accounts for e in ents],
        batch_size=5000,
    )
    campaign = Campaign.objects.create(
        name=f"bench {name}",
        reviewer_strategy=Campaign.Strategy.MANAGER,
        fallback_reviewer=User.objects.create(username=f"{name}-fallback"),
    )
    campaign.applications.add(app)
    return campaign


def _launch(campaign) -> tuple[float, list[str]]:
    """Launch and build the snapshot (what the Celery task does after commit)."""
    from governance.core.actor import Actor
    from governance.reviews import services
    from governance.reviews.models import Campaign, ReviewItem

    ReviewItem.objects.filter(campaign=campaign).delete()
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.DRAFT, launched_at=None)
    with CaptureQueriesContext(connection) as ctx:
        start = time.perf_counter()
        # autocommit: the on-commit build_population task runs (eagerly) before this returns
        services.campaign_launch(actor=Actor.system("bench"), campaign=campaign)
        elapsed = time.perf_counter() - start
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.ACTIVE, campaign.state
    assert campaign.population_count == campaign.launch_total, campaign.population_count
    return elapsed, [q["sql"] for q in ctx.captured_queries]


def _queries_per_batch(queries: list[str]) -> list[int]:
    """Queries between consecutive progress updates: one entry per 5,000-item batch."""
    marks = [
        i
        for i, sql in enumerate(queries)
        if sql.startswith('UPDATE "reviews_campaign" SET "launch_done" = ')
        and not sql.startswith('UPDATE "reviews_campaign" SET "launch_done" = 0 ')
    ]
    return [b - a for a, b in itertools.pairwise(marks)]


def _reconciliation_world(source, n_accounts: int, name: str):
    """One manual application with ``n_accounts`` accounts of people, three entitlements per
    account in its export (two by birthright policy, one by approved request), and about 3%
    drift: unknown accounts, leavers still active, excess admin rights, missing roles.
    Steward-side rows are bulk-inserted; returns (application, CSV bytes)."""
    import csv
    import io

    from governance.access.models import AccessPolicy, Account, Application, Entitlement, Grant
    from governance.identities.models import DirectoryGroup, GroupMembership, Identity

    app = Application.objects.create(name=f"bench recon {name}", provisioning_mode="manual")
    ents = Entitlement.objects.bulk_create(
        [
            Entitlement(application=app, name=f"Role {v}", external_value=v, privileged=v == "adm")
            for v in ("base", "dept", "req", "adm")
        ]
    )
    base, dept, req, _adm = ents
    group = DirectoryGroup.objects.create(source=source, display_name=f"recon {name}")
    AccessPolicy.objects.create(name=f"recon {name} base", directory_group=group).entitlements.add(
        base
    )
    AccessPolicy.objects.create(
        name=f"recon {name} dept", attribute="department", attribute_value=f"dept-{name}"
    ).entitlements.add(dept)
    people = [
        Identity(
            source=source,
            user_name=f"r{name}{i:07d}@bench.example",
            department=f"dept-{name}",
            active=i % 97 != 0,  # ~1% leavers
        )
        for i in range(n_accounts)
    ]
    Identity.objects.bulk_create(people, batch_size=10000)
    GroupMembership.objects.bulk_create(
        [GroupMembership(group=group, identity=p) for p in people], batch_size=10000
    )
    accounts = Account.objects.bulk_create(
        [
            Account(application=app, identity=p, username=f"u{i:07d}", external_id=f"x{i}")
            for i, p in enumerate(people)
        ],
        batch_size=10000,
    )
    old = django.utils.timezone.now() - django.utils.timezone.timedelta(days=30)
    Account.objects.filter(application=app).update(created_at=old)
    Grant.objects.bulk_create(
        [Grant(account=a, entitlement=req, origin="request", granted_at=old) for a in accounts],
        batch_size=10000,
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "username", "active", "last login", "roles"])
    for i in range(n_accounts):
        roles = ["base", "dept", "req"]
        if i % 101 == 0:
            roles[2] = "adm"  # ~1% excess privileged
        if i % 103 == 0:
            roles = roles[1:]  # ~1% missing birthright
        writer.writerow([f"x{i}", f"u{i:07d}", "yes", "2026-11-01", ";".join(roles)])
    for i in range(n_accounts // 100):  # ~1% unknown accounts
        writer.writerow([f"ghost{i}", f"ghost{i:05d}", "yes", "2026-11-01", "base;dept;req"])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # a live database has planner statistics
            cursor.execute("ANALYZE")
    return app, out.getvalue().encode()


def _reconcile(source, n_accounts: int, name: str) -> tuple[float, object]:
    """Time one reconciliation run (CSV import + comparison + findings) end to end."""
    import io

    from governance.core.actor import Actor
    from governance.reconciliation import services
    from governance.reconciliation.models import ReconciliationRun

    app, data = _reconciliation_world(source, n_accounts, name)
    actor = Actor.system("bench")
    run = services.run_upload_csv(
        actor=actor, application=app, upload=io.BytesIO(data), name=f"{name}.csv"
    )
    ReconciliationRun.objects.filter(pk=run.pk).update(status="queued")
    start = time.perf_counter()
    services.run_execute(run.pk)
    elapsed = time.perf_counter() - start
    run.refresh_from_db()
    assert run.status == "completed", run.error
    return elapsed, run


def reconciliation_case(source) -> list[tuple[str, float, int, int, float | None]]:
    """Reconcile 10,000 accounts / 30,000 grants, then 100,000 / 300,000 (the target: under
    60 s on two cores); the cost per account should stay flat."""
    if connection.vendor != "postgresql":
        print("bench: reconciliation case skipped (it measures PostgreSQL: set DATABASE_URL)")
        return []
    small_n, large_n = 10_000, 100_000
    print(f"bench: reconciling {small_n:,} accounts / {3 * small_n:,} grants", flush=True)
    t_small, small = _reconcile(source, small_n, "small")
    print(f"bench: reconciling {large_n:,} accounts / {3 * large_n:,} grants", flush=True)
    t_large, large = _reconcile(source, large_n, "large")
    print(
        f"bench: reconciliation {small.accounts_seen:,} accounts / {small.grants_seen:,} grants "
        f"in {t_small:.2f}s ({small.findings_opened} findings); {large.accounts_seen:,} / "
        f"{large.grants_seen:,} in {t_large:.2f}s ({large.findings_opened} findings); "
        f"target under 60 s: {'met' if t_large < 60 else 'MISSED'}"
    )
    ratio = (t_large / large_n) / (t_small / small_n)
    return [
        ("reconciliation cost per account: 100,000 vs 10,000 (no query cmp)", ratio, 0, 0, 1.5),
        ("reconciliation of 100,000 accounts: seconds / 60 s target", t_large / 60, 0, 0, 1.0),
    ]


def main() -> int:
    _create_database()
    call_command("migrate", verbosity=0)
    setup_test_environment()
    from governance.core.actor import Actor
    from governance.identities.models import DirectoryGroup, GroupMembership, IdentitySource
    from scim_api.tokens import token_create

    source = IdentitySource.objects.create(name="bench", kind="entra")
    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="steward-bench-media-")
    if sys.argv[1:] == ["reconciliation"]:  # this case alone
        return _report(reconciliation_case(source))
    _, token = token_create(actor=Actor.system("bench"), source=source)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    small_m, large_m, k = 100, 20_000, 10
    members = _bulk_people(source, large_m + 40 * k, "p")
    results = []

    def group_with(m: int, name: str) -> DirectoryGroup:
        group = DirectoryGroup.objects.create(source=source, display_name=name)
        GroupMembership.objects.bulk_create(
            [GroupMembership(group=group, identity_id=i) for i in members[:m]], batch_size=5000
        )
        return group

    small, large = group_with(small_m, "small"), group_with(large_m, "large")
    pool = iter(members[large_m:])

    def add_members(group):
        def run():
            body = {
                "schemas": [PATCH],
                "Operations": [
                    {
                        "op": "Add",
                        "path": "members",
                        "value": [{"value": str(next(pool))} for _ in range(k)],
                    }
                ],
            }
            response = client.patch(
                f"/scim/v2/Groups/{group.pk}",
                json.dumps(body),
                content_type="application/scim+json",
            )
            assert response.status_code == 204, response.content

        return run

    t_small, q_small = _timed(add_members(small))
    t_large, q_large = _timed(add_members(large))
    results.append(
        ("group PATCH add 10 members: m=20,000 vs m=100", t_large / t_small, q_small, q_large, 3.0)
    )

    def lookup(name):
        def run():
            r = client.get("/scim/v2/Users", {"filter": f'userName eq "{name}"'})
            assert r.status_code == 200 and r.json()["totalResults"] == 1, r.content

        return run

    # directory of ~20,400 people vs the same query repeated on a tiny source
    small_source = IdentitySource.objects.create(name="bench-small", kind="okta")
    _, small_token = token_create(actor=Actor.system("bench"), source=small_source)
    _bulk_people(small_source, 50, "s")
    big_client = client
    client = Client(HTTP_AUTHORIZATION=f"Bearer {small_token}")
    t_tiny, q_tiny = _timed(lookup("s000025@bench.example"))
    client = big_client
    t_big, q_big = _timed(lookup("P000025@BENCH.EXAMPLE"))
    results.append(("userName eq filter: 20,400 people vs 50", t_big / t_tiny, q_tiny, q_big, 3.0))

    def page(count):
        def run():
            r = client.get("/scim/v2/Users", {"count": count, "startIndex": 1000})
            assert r.status_code == 200 and len(r.json()["Resources"]) == count

        return run

    t_1, q_1 = _timed(page(1))
    t_100, q_100 = _timed(page(100))
    results.append(
        ("page of 100 users vs page of 1 (queries must not grow)", t_100 / t_1, q_1, q_100, None)
    )

    small_n, large_n = 2_000, 20_000
    print(f"bench: seeding {small_n:,} + {large_n:,} grants for campaign launches", flush=True)
    small_campaign = _launch_population(source, members, small_n, "small")
    large_campaign = _launch_population(source, members, large_n, "large")
    small_runs = []
    for run in range(3):
        print(f"bench: launching {small_n:,} grants (run {run + 1}/3)", flush=True)
        small_runs.append(_launch(small_campaign)[0])
    print(f"bench: launching {large_n:,} grants", flush=True)
    t_launch_large, large_queries = _launch(large_campaign)
    per_batch = _queries_per_batch(large_queries)
    per_grant_ratio = (t_launch_large / large_n) / (statistics.median(small_runs) / small_n)
    print(
        f"bench: launch {small_n:,} in {statistics.median(small_runs):.2f}s, "
        f"{large_n:,} in {t_launch_large:.2f}s; queries per 5,000-item batch: {per_batch}"
    )
    results.append(
        (
            "launch cost per grant: 20,000 vs 2,000 (queries/batch)",
            per_grant_ratio,
            per_batch[0],
            per_batch[-1],
            1.5,
        )
    )

    results.extend(reconciliation_case(source))
    return _report(results)


def _report(results) -> int:
    print(f"Steward benchmark on {connection.vendor}")
    print(f"{'measure':60} {'time ratio':>10} {'queries':>12}  verdict")
    failed = False
    for label, ratio, qa, qb, limit in results:
        ok = qa == qb and (limit is None or ratio <= limit)
        failed |= not ok
        print(f"{label:60} {ratio:10.2f} {qa:>5} vs {qb:<5}  {'ok' if ok else 'OVER TARGET'}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        _drop_database()
    sys.exit(code)
