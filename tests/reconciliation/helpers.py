"""A planted world for reconciliation tests: one manual application, its intended state in
Steward, and CSV exports of its actual state with every kind of drift and its look-alikes."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from governance.access.models import Account, Grant
from governance.core.actor import Actor
from governance.identities.models import GroupMembership
from governance.lifecycle.models import ProvisioningProfile
from governance.reconciliation import services
from governance.reconciliation.models import Finding, ReconciliationRun
from governance.risk.models import AccessException
from tests.factories import (
    AccessPolicyFactory,
    AccountFactory,
    ApplicationFactory,
    DirectoryGroupFactory,
    EntitlementFactory,
    GrantFactory,
    IdentityFactory,
    NonHumanIdentityFactory,
    UserFactory,
)

HEADER = ["User ID", "Login", "Name", "Mail", "Enabled", "Last logon", "Roles", "Human", "Used by"]
MAPPING = {
    "external_id": "User ID",
    "username": "Login",
    "display_name": "Name",
    "email": "Mail",
    "active": "Enabled",
    "last_login": "Last logon",
    "entitlements": "Roles",
    "interactive_login": "Human",
    "used_by": "Used by",
}


@dataclass
class World:
    app: object
    owner: object
    security: object
    ents: dict
    accounts: dict
    rows: dict = field(default_factory=dict)

    def csv(self, drop: tuple[str, ...] = (), change: dict | None = None) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for key, row in self.rows.items():
            if key in drop:
                continue
            row = {**row, **((change or {}).get(key, {}))}
            writer.writerow([row.get(h, "") for h in HEADER])
        return out.getvalue().encode()


def build_world() -> World:
    now = timezone.now()
    owner = UserFactory(username="owner", roles=["App owner"])
    security = UserFactory(username="security", roles=["Security admin"])
    app = ApplicationFactory(name="Payables", provisioning_mode="manual")
    app.owners.add(owner)
    ProvisioningProfile.objects.create(application=app, lag_budget_minutes=60)
    ents = {
        "clerk": EntitlementFactory(application=app, name="Clerk", external_value="clerk"),
        "approver": EntitlementFactory(
            application=app, name="Approver", external_value="approver", privileged=True
        ),
        "admin": EntitlementFactory(
            application=app, name="Admin", external_value="admin", privileged=True
        ),
    }
    group = DirectoryGroupFactory(display_name="AP clerks")
    AccessPolicyFactory(directory_group=group).entitlements.add(ents["clerk"])
    AccessPolicyFactory(
        directory_group=None, attribute="department", attribute_value="finance"
    ).entitlements.add(ents["clerk"])

    def person(name, **fields):
        return IdentityFactory(user_name=f"{name}@northwind.example", **fields)

    def account(name, holder=None, nhi=None, **fields):
        return AccountFactory(application=app, username=name, identity=holder, nhi=nhi, **fields)

    alice = person("alice", department="Engineering")
    GroupMembership.objects.create(group=group, identity=alice)
    accounts = {
        "alice": account("alice", alice, external_id="u-1"),
        "bob": account("bob", person("bob", department="Finance"), external_id="u-2"),
        "carol": account("carol", person("carol", active=False), external_id="u-3"),
        "dave": account("dave.old", person("dave"), external_id="u-4"),
        "temp": account("temp", None, external_id="u-5"),
        "bot": account("svc-bot", None, NonHumanIdentityFactory(name="svc-bot"), external_id="u-6"),
        "erin": account("erin", person("erin"), external_id="u-7"),
        "frank": account("ap.shared", person("frank"), external_id="u-8"),
        "gina": account("gina", person("gina"), external_id="u-9"),
        "hank": account("hank", person("hank"), external_id="u-10"),
        "ivan": account("ivan", person("ivan"), external_id="u-11"),
    }
    old = now - timedelta(days=30)
    GrantFactory(account=accounts["dave"], entitlement=ents["approver"], origin="request")
    GrantFactory(
        account=accounts["ivan"],
        entitlement=ents["approver"],
        origin="manual",
        last_reviewed_at=old,
    )
    revoked = GrantFactory(account=accounts["gina"], entitlement=ents["admin"], origin="manual")
    Grant.objects.filter(pk=revoked.pk).update(
        status="revoked", revoked_at=now - timedelta(minutes=5), granted_at=old - timedelta(days=1)
    )
    Grant.objects.exclude(pk=revoked.pk).update(granted_at=old)
    Account.objects.filter(application=app).update(created_at=old)
    AccessException.objects.create(
        title="Hank keeps admin during the migration",
        exception_type=AccessException.Type.RETAINED_ACCESS,
        status=AccessException.Status.APPROVED,
        application=app,
        entitlement=ents["admin"],
        account=accounts["hank"],
        justification="Migration lead until year end.",
        risk_rating="medium",
        requested_by=owner,
        approver=security,
        expires_on=timezone.localdate() + timedelta(days=60),
    )
    recent = f"{now - timedelta(days=2):%Y-%m-%d}"

    def row(ext, login, roles="", **extra):
        return {
            "User ID": ext,
            "Login": login,
            "Name": login.title(),
            "Mail": f"{login}@northwind.example",
            "Enabled": "yes",
            "Last logon": recent,
            "Roles": roles,
            **extra,
        }

    world = World(app=app, owner=owner, security=security, ents=ents, accounts=accounts)
    world.rows = {
        "alice": row("u-1", "alice", "clerk;admin"),  # excess (privileged: high)
        "bob": row("u-2", "bob", ""),  # missing clerk (attribute policy)
        "carol": row("u-3", "carol", ""),  # stale: carol left
        "dave": row("u-4", "dave.new", "approver"),  # renamed, matched by id; request grant
        "temp": row("u-5", "temp", ""),  # orphan: an account with no holder
        "ghost": row("u-99", "ghost", ""),  # orphan: unknown to Steward
        "bot": row("u-6", "svc-bot", "", Human="yes"),  # NHI used interactively
        "erin": row("u-7", "erin", **{"Last logon": "2025-01-01"}),  # dormant
        "frank": row("u-8", "ap.shared", "", **{"Used by": "x@n.example;y@n.example"}),  # shared
        "gina": row("u-9", "gina", "admin"),  # excess, but revoked 5 minutes ago: in flight
        "hank": row("u-10", "hank", "admin"),  # excess covered by an approved exception
        "ivan": row("u-11", "ivan", "approver"),  # approved in a review: justified
    }
    return world


def import_csv(world: World, data: bytes, capture, *, actor_user=None) -> ReconciliationRun:
    actor = Actor.for_user(actor_user or world.owner)
    run = services.run_upload_csv(
        actor=actor, application=world.app, upload=io.BytesIO(data), name="export.csv"
    )
    with capture(execute=True):
        services.run_confirm(actor=actor, run=run, mapping=MAPPING)
    run.refresh_from_db()
    return run


def summary(app) -> set[tuple[str, str, str]]:
    """(kind, subject up to " @", status) of the application's findings."""
    return {
        (f.kind, f.subject.split(" @ ")[0], f.status)
        for f in Finding.objects.filter(application=app)
    }
