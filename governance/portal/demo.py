"""The Northwind demo organisation (see the acceptance scenarios): people with a manager
hierarchy, applications in every provisioning mode, birthright policies, accounts, grants,
non-human identities, and a few planted problems for the portal to find.

Everything is created through the domain services, so the demo also fills the audit log.
Running it again creates nothing new: every object is looked up by its natural key first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from governance.access import services as access_services
from governance.access.models import AccessPolicy, Account, Application, Entitlement, Grant
from governance.access.selectors import policies_for_identity
from governance.audit.services import record
from governance.core.actor import Actor
from governance.identities import services as identity_services
from governance.identities.models import DirectoryGroup, Identity, IdentitySource
from governance.nhi import demo as nhi_demo
from governance.nhi import services as nhi_services
from governance.nhi.models import NonHumanIdentity
from governance.portal import services as portal_services
from governance.portal.models import Role, User
from governance.reconciliation import demo as reconciliation_demo
from governance.reviews import services as review_services
from governance.reviews.delegation_services import delegation_create
from governance.reviews.models import Campaign, Delegation, ReviewItem
from governance.risk import demo as risk_demo
from scim_api.models import ScimToken
from scim_api.tokens import token_create

DEMO_PASSWORD = "steward-demo"  # noqa: S105 - printed demo credential, local only
DOMAIN = "northwind.example"
ACTOR = Actor.system("seed_demo")

FIRST = (
    "Ava Ben Chloe David Elena Farid Gita Hugo Ines Jakob Kira Liam Maya Noah Olga Pablo "
    "Quinn Rosa Stefan Tara Umar Vera Wei Ximena Yusuf Zoe Aaron Bianca Carlos Dana Emil "
    "Fatima Gustav Helena Ivan Julia Kenji Leila Mateo Nina Oscar Petra Rafael Sofia Tomas "
    "Ursula Viktor Wanda Yara Zane"
).split()
LAST = (
    "Andersen Bauer Costa Dubois Eriksen Fontaine Garcia Hansen Ivanova Jensen Kowalski "
    "Lindqvist Moreau Novak Olsen Petrov Quist Romero Schmidt Tanaka Ueda Varga Weber Xu "
    "Yilmaz Zimmermann Almeida Brennan Castillo Duarte Engel Fischer Gallo Horvat Ito "
    "Jovanovic Keller Lopez Meyer Nakamura"
).split()

# department -> (division, cost centre, titles for staff)
DEPARTMENTS = {
    "Engineering": ("Technology", "CC-100", ["Software Engineer", "Senior Software Engineer"]),
    "Platform": ("Technology", "CC-110", ["Platform Engineer", "Site Reliability Engineer"]),
    "Security": ("Technology", "CC-120", ["Security Engineer", "Security Analyst"]),
    "IT": ("Technology", "CC-130", ["IT Support Specialist", "Systems Administrator"]),
    "Accounts Payable": ("Finance", "CC-200", ["AP Clerk", "AP Specialist"]),
    "Accounts Receivable": ("Finance", "CC-210", ["AR Clerk", "Credit Analyst"]),
    "Finance": ("Finance", "CC-220", ["Financial Analyst", "Controller"]),
    "Sales": ("Revenue", "CC-300", ["Account Executive", "Sales Development Rep"]),
    "Sales Ops": ("Revenue", "CC-310", ["Sales Operations Analyst", "Deal Desk Analyst"]),
    "Marketing": ("Revenue", "CC-320", ["Marketing Manager", "Content Strategist"]),
    "Customer Support": ("Revenue", "CC-330", ["Support Engineer", "Support Specialist"]),
    "People": ("Operations", "CC-400", ["HR Business Partner", "Recruiter"]),
    "Legal": ("Operations", "CC-410", ["Counsel", "Paralegal"]),
}

# The named people of the scenarios: (given, family, department, title, manager key)
NAMED = [
    ("Nora", "Lindgren", "People", "Chief Executive Officer", None),
    ("Marco", "Rossi", "Platform", "Head of Platform", "nora.lindgren"),
    ("Priya", "Shah", "Platform", "Platform Engineer", "marco.rossi"),
    ("Lena", "Fischer", "Engineering", "VP Engineering", "nora.lindgren"),
    ("Omar", "Haddad", "Sales", "VP Sales", "nora.lindgren"),
    ("Hannah", "Kim", "Sales Ops", "Sales Operations Manager", "omar.haddad"),
    ("Grace", "Liu", "Finance", "Finance Systems Owner", "nora.lindgren"),
    ("Daniel", "Okafor", "Accounts Payable", "AP Specialist", "grace.liu"),
    ("Sam", "Patel", "Security", "CISO Delegate", "nora.lindgren"),
    ("Alex", "Morgan", "Legal", "Internal Auditor", "nora.lindgren"),
]

APPLICATIONS = [
    # name, mode, risk, sla hours, review frequency, owner usernames, entitlements
    (
        "GitHub Enterprise",
        "scim",
        "high",
        4,
        "quarterly",
        ["lena.fischer"],
        [
            ("Member", "member", False, "low"),
            ("Maintainer", "maintainer", False, "medium"),
            ("Organization owner", "org-admin", True, "critical"),
        ],
    ),
    (
        "Salesforce",
        "scim",
        "high",
        24,
        "quarterly",
        ["omar.haddad"],
        [
            ("Standard User", "standard", False, "low"),
            ("Sales Operations", "sales-ops", False, "medium"),
            ("System Administrator", "sysadmin", True, "critical"),
        ],
    ),
    (
        "Ledgerly",
        "scim_partial",
        "high",
        24,
        "quarterly",
        ["grace.liu"],
        [
            ("Viewer", "viewer", False, "low"),
            ("Journal Poster", "journal-poster", True, "high"),
        ],
    ),
    (
        "VaultFin",
        "manual",
        "critical",
        48,
        "monthly",
        ["grace.liu"],
        [
            ("Invoice Clerk", "invoice-clerk", False, "medium"),
            ("Invoice Approver", "invoice-approver", True, "high"),
            ("Payment Release", "payment-release", True, "critical"),
        ],
    ),
    (
        "Datadog",
        "scim",
        "medium",
        24,
        "semiannual",
        ["lena.fischer"],
        [
            ("Read Only", "ro", False, "low"),
            ("Standard", "standard", False, "low"),
            ("Admin", "admin", True, "high"),
        ],
    ),
    (
        "Jira",
        "scim",
        "medium",
        24,
        "semiannual",
        ["lena.fischer"],
        [
            ("User", "jira-users", False, "low"),
            ("Project Admin", "jira-admins", True, "medium"),
        ],
    ),
    (
        "Slack",
        "scim",
        "low",
        24,
        "annual",
        ["sam.patel"],
        [
            ("Member", "member", False, "low"),
            ("Workspace Admin", "workspace-admin", True, "high"),
        ],
    ),
    (
        "AWS Production",
        "scim_partial",
        "critical",
        4,
        "quarterly",
        ["marco.rossi"],
        [
            ("ReadOnly", "arn:aws:iam::role/ReadOnly", False, "medium"),
            ("PowerUser", "arn:aws:iam::role/PowerUser", True, "high"),
            ("Administrator", "arn:aws:iam::role/Administrator", True, "critical"),
        ],
    ),
    (
        "Workday",
        "manual",
        "high",
        24,
        "semiannual",
        ["sam.patel"],
        [
            ("Employee Self Service", "ess", False, "low"),
            ("HR Partner", "hr-partner", True, "high"),
        ],
    ),
]

# directory group -> departments whose people are in it
GROUPS = {
    "All Staff": list(DEPARTMENTS),
    "Engineering": ["Engineering", "Platform", "Security"],
    "Platform-Oncall": ["Platform"],
    "AP-Clerks": ["Accounts Payable"],
    "Finance": ["Accounts Payable", "Accounts Receivable", "Finance"],
    "Sales": ["Sales", "Sales Ops"],
    "Support": ["Customer Support"],
    "People-Team": ["People"],
}

# policy name -> (group or None, (attribute, value) or None, [(app, entitlement value)])
POLICIES = [
    (
        "Everyone: Slack and Jira",
        "All Staff",
        None,
        [("Slack", "member"), ("Jira", "jira-users"), ("Workday", "ess")],
    ),
    (
        "Engineering: GitHub and Datadog",
        "Engineering",
        None,
        [("GitHub Enterprise", "member"), ("Datadog", "standard")],
    ),
    (
        "Platform on-call: AWS read-only",
        "Platform-Oncall",
        None,
        [("AWS Production", "arn:aws:iam::role/ReadOnly"), ("GitHub Enterprise", "maintainer")],
    ),
    (
        "AP clerks: VaultFin invoices",
        "AP-Clerks",
        None,
        [("VaultFin", "invoice-clerk"), ("Ledgerly", "viewer")],
    ),
    ("Finance: Ledgerly", "Finance", None, [("Ledgerly", "viewer")]),
    ("Sales: Salesforce", "Sales", None, [("Salesforce", "standard")]),
    (
        "Sales Ops department: Salesforce ops",
        None,
        ("department", "Sales Ops"),
        [("Salesforce", "sales-ops")],
    ),
    ("Support: Datadog read-only", "Support", None, [("Datadog", "ro")]),
    ("People team: Workday HR", "People-Team", None, [("Workday", "hr-partner")]),
]

NHIS = [
    # name, kind, owner, backup, app, environment
    (
        "svc-gh-deployer",
        "integration",
        "priya.shah",
        "marco.rossi",
        "GitHub Enterprise",
        "production",
    ),
    ("jira-sync-bot", "bot", "priya.shah", None, "Jira", "production"),
    ("dd-api-key-prod", "api_client", "priya.shah", "marco.rossi", "Datadog", "production"),
    ("terraform-ci", "workload", "marco.rossi", "priya.shah", "AWS Production", "production"),
    ("aws-backup-runner", "service_account", "marco.rossi", None, "AWS Production", "production"),
    ("sf-marketing-sync", "integration", "omar.haddad", "hannah.kim", "Salesforce", "production"),
    ("sf-dataloader-staging", "service_account", "hannah.kim", None, "Salesforce", "staging"),
    ("slack-incident-bot", "bot", "sam.patel", None, "Slack", "production"),
    ("ledgerly-bank-feed", "integration", "grace.liu", None, "Ledgerly", "production"),
    (
        "vaultfin-export-job",
        "service_account",
        "grace.liu",
        "daniel.okafor",
        "VaultFin",
        "production",
    ),
    ("gh-copilot-agent", "ai_agent", "lena.fischer", None, "GitHub Enterprise", "development"),
    ("support-triage-agent", "ai_agent", None, None, "Jira", "production"),
    ("dd-synthetics-staging", "api_client", None, None, "Datadog", "staging"),
    ("workday-hris-connector", "oauth_app", "sam.patel", None, "Workday", "production"),
    ("legacy-ftp-upload", "service_account", None, None, "VaultFin", "production"),
    ("build-cache-writer", "workload", None, None, "AWS Production", "development"),
]
# Owners of the last four are departed people, chosen at seed time (NHI1 findings).


@dataclass
class DemoResult:
    created: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str]] = field(default_factory=list)
    scim_token: str | None = None

    def bump(self, key: str, n: int = 1) -> None:
        self.created[key] = self.created.get(key, 0) + n


def _username(given: str, family: str) -> str:
    return f"{given}.{family}".lower()


def _person_fields(given, family, department, title, manager_ref, number):
    division, cost_center, _ = DEPARTMENTS[department]
    return {
        "user_name": f"{_username(given, family)}@{DOMAIN}",
        "external_id": f"nw-{number:05d}",
        "given_name": given,
        "family_name": family,
        "display_name": f"{given} {family}",
        "formatted_name": f"{given} {family}",
        "title": title,
        "department": department,
        "division": division,
        "cost_center": cost_center,
        "organization": "Northwind",
        "employee_number": f"{number:05d}",
        "user_type": "Employee",
        "manager_ref": manager_ref or "",
        "locale": "en-US",
    }


def _ensure_person(source, fields, result, *, active=True) -> Identity:
    existing = Identity.objects.filter(user_name__iexact=fields["user_name"]).first()
    if existing is not None:
        return existing
    person = identity_services.identity_create(
        actor=Actor.for_source(source),
        source=source,
        emails=[{"value": fields["user_name"], "type": "work", "primary": True}],
        active=active,
        derive_lifecycle=False,  # the demo organisation was provisioned before Steward
        **fields,
    )
    result.bump("identities")
    return person


def _people(source, scale, result) -> dict[str, Identity]:
    by_key: dict[str, Identity] = {}
    number = 1
    for given, family, department, title, manager_key in NAMED:
        manager_ref = f"nw-{_number_of(manager_key):05d}" if manager_key else ""
        by_key[_username(given, family)] = _ensure_person(
            source, _person_fields(given, family, department, title, manager_ref, number), result
        )
        number += 1
    rng = random.Random(7)
    departments = list(DEPARTMENTS)
    heads: dict[str, str] = {}
    generated = 150 * scale
    for i in range(generated):
        given, family = FIRST[i % len(FIRST)], LAST[(i // len(FIRST) + i) % len(LAST)]
        suffix = "" if i < len(FIRST) * len(LAST) else str(i)
        family_key = f"{family}{suffix}"
        department = departments[i % len(departments)]
        if department not in heads:
            title = f"Head of {department}"
            manager_ref = "nw-00001"
        else:
            title = rng.choice(DEPARTMENTS[department][2])
            manager_ref = heads[department]
        key = _username(given, family_key)
        if key in by_key:
            continue
        fields = _person_fields(given, family_key, department, title, manager_ref, number)
        by_key[key] = _ensure_person(source, fields, result)
        if department not in heads:
            heads[department] = fields["external_id"]
        number += 1
    return by_key


_NAMED_INDEX = {_username(g, f): i + 1 for i, (g, f, *_rest) in enumerate(NAMED)}


def _number_of(key: str) -> int:
    return _NAMED_INDEX[key]


def _leavers(source, people, result) -> list[Identity]:
    """Three people who have left: deactivated by the identity provider."""
    leavers = []
    for key in ("jonas.weber", "tom.becker", "ines.quist"):
        given, family = key.split(".")
        fields = _person_fields(
            given.title(),
            family.title(),
            "Engineering",
            "Software Engineer",
            "nw-00004",
            900 + len(leavers),
        )
        person = _ensure_person(source, fields, result)
        people[key] = person
        leavers.append(person)
    return leavers


def _portal_users(people, result) -> None:
    wanted = [
        ("admin", None, [], True),
        ("sam.patel", "sam.patel", [Role.SECURITY_ADMIN], False),
        ("grace.liu", "grace.liu", [Role.APP_OWNER, Role.REVIEWER], False),
        ("lena.fischer", "lena.fischer", [Role.APP_OWNER, Role.REVIEWER], False),
        ("omar.haddad", "omar.haddad", [Role.APP_OWNER, Role.REVIEWER], False),
        ("marco.rossi", "marco.rossi", [Role.APP_OWNER, Role.REVIEWER], False),
        ("hannah.kim", "hannah.kim", [Role.REVIEWER], False),
        ("alex.morgan", "alex.morgan", [Role.AUDITOR], False),
    ]
    for username, person_key, roles, superuser in wanted:
        person = people.get(person_key) if person_key else None
        if not User.objects.filter(username=username).exists():
            portal_services.portal_user_create(
                actor=ACTOR,
                username=username,
                email=person.user_name if person else f"admin@{DOMAIN}",
                password=DEMO_PASSWORD,
                identity=person,
                roles=roles,
                superuser=superuser,
                first_name=person.given_name if person else "Steward",
                last_name=person.family_name if person else "Administrator",
            )
            result.bump("portal users")
        result.logins.append((username, ", ".join(roles) or "superuser"))


def _applications(result) -> dict[str, Application]:
    apps = {}
    for name, mode, risk, sla, freq, owners, ents in APPLICATIONS:
        app = Application.objects.filter(name=name).first()
        if app is None:
            app = access_services.application_create(
                actor=ACTOR,
                name=name,
                provisioning_mode=mode,
                risk_tier=risk,
                deprovisioning_sla_hours=sla,
                review_frequency=freq,
                owners=User.objects.filter(username__in=owners),
                description=f"{name} ({dict(Application.ProvisioningMode.choices)[mode]}).",
            )
            result.bump("applications")
        for ent_name, value, privileged, ent_risk in ents:
            if not Entitlement.objects.filter(application=app, external_value=value).exists():
                access_services.entitlement_create(
                    actor=ACTOR,
                    application=app,
                    name=ent_name,
                    external_value=value,
                    privileged=privileged,
                    risk=ent_risk,
                    owner=app.owners.first(),
                )
                result.bump("entitlements")
        apps[name] = app
    return apps


def _groups(source, people, result) -> dict[str, DirectoryGroup]:
    groups = {}
    for name, departments in GROUPS.items():
        group = DirectoryGroup.objects.filter(display_name=name, deleted_at__isnull=True).first()
        if group is None:
            members = [p.pk for p in people.values() if p.department in departments and p.active]
            group = identity_services.group_create(
                actor=Actor.for_source(source),
                source=source,
                display_name=name,
                external_id=f"grp-{name.lower()}",
                member_ids=members,
                derive_lifecycle=False,
            )
            result.bump("directory groups")
        groups[name] = group
    return groups


def _policies(groups, result) -> None:
    for name, group_name, attribute, ents in POLICIES:
        if AccessPolicy.objects.filter(name=name).exists():
            continue
        entitlements = [
            Entitlement.objects.get(application__name=app, external_value=value)
            for app, value in ents
        ]
        access_services.policy_create(
            actor=ACTOR,
            name=name,
            entitlements=entitlements,
            directory_group=groups[group_name] if group_name else None,
            attribute=attribute[0] if attribute else "",
            attribute_value=attribute[1] if attribute else "",
            description=f"Birthright access: {name}.",
        )
        result.bump("policies")


def _account(app, person=None, nhi=None, username=None, result=None, **extra) -> Account:
    username = username or (person.user_name if person else nhi.name)
    account = Account.objects.filter(application=app, username__iexact=username).first()
    if account is None:
        account = access_services.account_create(
            actor=ACTOR, application=app, username=username, identity=person, nhi=nhi, **extra
        )
        result.bump("accounts")
    return account


def _grant(account, entitlement, result, **extra) -> None:
    if Grant.objects.filter(account=account, entitlement=entitlement, status="active").exists():
        return
    access_services.grant_create(actor=ACTOR, account=account, entitlement=entitlement, **extra)
    result.bump("grants")


def _birthright_access(people, apps, result) -> None:
    now = timezone.now()
    rng = random.Random(11)
    for person in people.values():
        if not person.active:
            continue
        for policy in policies_for_identity(person).prefetch_related("entitlements__application"):
            for ent in policy.entitlements.all():
                account = _account(
                    ent.application,
                    person=person,
                    result=result,
                    origin=Account.Origin.PROVISIONED,
                    last_login_at=now - timedelta(days=rng.randint(0, 60)),
                )
                _grant(
                    account,
                    ent,
                    result,
                    origin=Grant.Origin.POLICY,
                    policy=policy,
                    granted_at=now - timedelta(days=rng.randint(30, 700)),
                )


def _planted_problems(people, apps, result) -> None:
    now = timezone.now()
    # 1. An orphan account: nobody in the directory matches it.
    _account(
        apps["VaultFin"],
        username="contractor.temp01",
        result=result,
        origin=Account.Origin.IMPORTED,
        last_login_at=now - timedelta(days=140),
    )
    # 2. A departed person whose Salesforce account is still active.
    leaver = people["tom.becker"]
    account = _account(
        apps["Salesforce"],
        person=leaver,
        result=result,
        origin=Account.Origin.PROVISIONED,
        last_login_at=now - timedelta(days=20),
    )
    _grant(
        account,
        apps["Salesforce"].entitlements.get(external_value="standard"),
        result,
        origin=Grant.Origin.MANUAL,
        granted_at=now - timedelta(days=400),
    )
    # 3. An excess privileged grant: a marketing person who is GitHub organisation owner.
    marketer = next(p for p in people.values() if p.department == "Marketing" and p.active)
    account = _account(
        apps["GitHub Enterprise"],
        person=marketer,
        result=result,
        origin=Account.Origin.MANUAL,
        last_login_at=now - timedelta(days=3),
    )
    _grant(
        account,
        apps["GitHub Enterprise"].entitlements.get(external_value="org-admin"),
        result,
        origin=Grant.Origin.MANUAL,
        granted_at=now - timedelta(days=90),
    )
    # 4. Daniel Okafor holds Invoice Approver in VaultFin (the mover scenario).
    daniel = people["daniel.okafor"]
    account = _account(
        apps["VaultFin"],
        person=daniel,
        result=result,
        origin=Account.Origin.MANUAL,
        last_login_at=now - timedelta(days=2),
    )
    _grant(
        account,
        apps["VaultFin"].entitlements.get(external_value="invoice-approver"),
        result,
        origin=Grant.Origin.REQUEST,
        granted_at=now - timedelta(days=200),
    )


def _nhis(source, people, apps, leavers, result) -> None:
    departed = iter(leavers + leavers)
    for name, kind, owner_key, backup_key, app_name, environment in NHIS:
        if NonHumanIdentity.objects.filter(name=name).exists():
            continue
        owner = people.get(owner_key) if owner_key else next(departed)
        backup = people.get(backup_key) if backup_key else None
        status = (
            NonHumanIdentity.Status.ACTIVE if owner.active else NonHumanIdentity.Status.ORPHANED
        )
        nhi = nhi_services.nhi_create(
            actor=ACTOR,
            name=name,
            kind=kind,
            owner=owner,
            backup_owner=backup,
            application=apps[app_name],
            environment=environment,
            status=status,
            description=f"{dict(NonHumanIdentity.Kind.choices)[kind]} for {app_name}.",
        )
        result.bump("non-human identities")
        _account(apps[app_name], nhi=nhi, result=result, origin=Account.Origin.IMPORTED)


REVIEW_CAMPAIGN = "Q4 2026 access review"


def _review_campaign(apps, result) -> None:
    """An active campaign over VaultFin and GitHub: Marco has approved his report's access,
    the marketer's GitHub organisation ownership is revoked (a manual removal is requested),
    and the rest is pending."""
    if Campaign.objects.filter(name=REVIEW_CAMPAIGN).exists():
        return
    now = timezone.now()
    sam = User.objects.get(username="sam.patel")
    campaign = Campaign.objects.create(
        name=REVIEW_CAMPAIGN,
        description="Quarterly review of payment and source-code access.",
        reviewer_strategy=Campaign.Strategy.MANAGER,
        fallback_reviewer=sam,
        starts_at=now,
        due_at=now + timedelta(days=14),
        escalate_after_days=10,
        recurrence=Campaign.Recurrence.QUARTERLY,
    )
    campaign.applications.set([apps["VaultFin"], apps["GitHub Enterprise"]])
    record(
        actor=ACTOR,
        action="campaign.created",
        target=campaign,
        after={"applications": ["VaultFin", "GitHub Enterprise"], "due_at": campaign.due_at},
    )
    review_services.campaign_launch(actor=ACTOR, campaign=campaign)
    # seed_demo is one transaction: the launch task runs on commit and finds the campaign
    # already built; build it now so the decisions below have items.
    review_services.build_population(campaign.pk)
    result.bump("review campaigns")
    items = ReviewItem.objects.filter(campaign=campaign).select_related("reviewer")
    for item in items.filter(reviewer__username__in=["hannah.kim", "marco.rossi"]):
        review_services.review_decide(
            actor=Actor.for_user(item.reviewer), item=item, decision=ReviewItem.Decision.APPROVE
        )
        result.bump("review decisions")
    excess = items.filter(privileged=True, subject_identity__department="Marketing").first()
    if excess is not None:
        review_services.review_decide(
            actor=Actor.for_user(excess.reviewer),
            item=excess,
            decision=ReviewItem.Decision.REVOKE,
            comment="Marketing does not administer GitHub; organisation ownership removed.",
        )
        result.bump("review decisions")


def _delegation(result) -> None:
    """Grace Liu is on leave this week: Lena Fischer decides her review items meanwhile."""
    grace = User.objects.get(username="grace.liu")
    lena = User.objects.get(username="lena.fischer")
    if Delegation.objects.filter(delegator=grace, delegate=lena).exists():
        return
    today = timezone.localdate()
    delegation_create(
        actor=Actor.for_user(grace),
        delegator=grace,
        delegate=lena,
        starts_on=today,
        ends_on=today + timedelta(days=7),
        reason="Annual leave",
    )
    result.bump("review delegations")


@transaction.atomic
def seed_demo(*, scale: int = 1) -> DemoResult:
    result = DemoResult()
    source = IdentitySource.objects.filter(name="Northwind Entra ID").first()
    if source is None:
        source = identity_services.source_create(
            actor=ACTOR,
            name="Northwind Entra ID",
            kind=IdentitySource.Kind.ENTRA,
            description="Microsoft Entra ID tenant of Northwind, provisioning over SCIM 2.0.",
        )
        result.bump("identity sources")
    people = _people(source, scale, result)
    leavers = _leavers(source, people, result)
    _portal_users(people, result)
    apps = _applications(result)
    groups = _groups(source, people, result)
    _policies(groups, result)
    _birthright_access(people, apps, result)
    _planted_problems(people, apps, result)
    _nhis(source, people, apps, leavers, result)
    nhi_demo.seed(people=people, apps=apps, leavers=leavers, result=result)
    # The leavers had access (and NHIs) before they left; the IdP deactivates them now, which
    # starts their leaver events: work items to remove their access, NHIs to hand off.
    for person in leavers:
        if person.active:
            identity_services.identity_deactivate(actor=Actor.for_source(source), identity=person)
    if not ScimToken.objects.filter(source=source).exists():
        _token, result.scim_token = token_create(actor=ACTOR, source=source, label="demo")
        result.bump("SCIM tokens")
    _review_campaign(apps, result)
    _delegation(result)
    risk_demo.seed(people=people, apps=apps, leavers=leavers, result=result)
    reconciliation_demo.seed(people=people, apps=apps, leavers=leavers, result=result)
    return result
