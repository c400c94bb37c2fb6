"""Northwind demo rows for this app, called by ``seed_demo`` (idempotent).

Credential policies; what the demo NHIs run on and who uses them; their credentials (some
overdue, one expiring, one used in production and staging, one shared password known by
several people including a leaver); an ownership transfer; an API token for the security
admin. The leavers are deactivated after this runs, so their hand-offs and rotation tasks
are created by the real leaver flow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from governance.core.actor import Actor
from governance.core.services import model_save
from governance.nhi import services
from governance.nhi.models import Credential, CredentialPolicy, NonHumanIdentity

ACTOR = Actor.system("seed_demo")

POLICIES = [
    # kind, environment, max age, warn, description
    ("", "", 180, 14, "Default for every NHI credential."),
    ("", "production", 90, 14, "Production secrets: quarterly rotation."),
    ("ai_agent", "", 30, 7, "AI agents act autonomously: short-lived secrets only."),
    ("", "development", 365, 30, "Development secrets: yearly rotation."),
]

PROFILES = {
    # name: (platform, auth method, owning team, consumers, purpose)
    "svc-gh-deployer": (
        "GitHub Actions",
        "oidc_federation",
        "Platform",
        ["deploy pipeline"],
        "Deploys services from GitHub Actions.",
    ),
    "terraform-ci": (
        "GitHub Actions",
        "static_secret",
        "Platform",
        ["terraform plan", "terraform apply"],
        "Applies infrastructure changes to AWS from CI.",
    ),
    "dd-api-key-prod": (
        "Datadog",
        "static_secret",
        "Platform",
        ["metrics agent"],
        "Ships production metrics to Datadog.",
    ),
    "sf-marketing-sync": (
        "Salesforce",
        "oauth_client_credentials",
        "Marketing Ops",
        ["Marketing Cloud", "HubSpot", "Segment"],
        "Synchronises leads between marketing tools and Salesforce.",
    ),
    "ledgerly-bank-feed": (
        "On-premises SFTP",
        "static_secret",
        "Finance Systems",
        ["bank statement import"],
        "Imports daily bank statements into Ledgerly.",
    ),
    "vaultfin-export-job": (
        "Kubernetes",
        "certificate",
        "Finance Systems",
        ["month-end export"],
        "Exports payments for the month-end close.",
    ),
    "workday-hris-connector": (
        "Workday",
        "oauth_client_credentials",
        "People Systems",
        ["Entra ID provisioning"],
        "Feeds HR data to the identity provider.",
    ),
    "legacy-ftp-upload": (
        "On-premises SFTP",
        "static_secret",
        "Finance Systems",
        ["payment file upload"],
        "Uploads payment files to the bank.",
    ),
}

CREDENTIALS = [
    # nhi, name, type, in vault, location, issued days ago, rotated days ago, expires in days,
    # environments, known by
    (
        "svc-gh-deployer",
        "deploy key",
        "ssh_key",
        True,
        "vault:kv/platform/gh-deployer",
        400,
        30,
        None,
        ["production"],
        [],
    ),
    (
        "dd-api-key-prod",
        "Datadog API key",
        "api_key",
        False,
        "CI variables of the metrics pipeline",
        200,
        None,
        None,
        ["production", "staging"],
        ["priya.shah"],
    ),
    (
        "terraform-ci",
        "AWS access key",
        "api_key",
        True,
        "vault:kv/platform/terraform-ci",
        120,
        None,
        None,
        ["production"],
        ["marco.rossi", "priya.shah"],
    ),
    (
        "ledgerly-bank-feed",
        "SFTP password",
        "password",
        False,
        "Finance team password manager",
        60,
        None,
        None,
        ["production"],
        ["grace.liu", "ines.quist", "daniel.okafor"],
    ),
    (
        "vaultfin-export-job",
        "client certificate",
        "certificate",
        True,
        "vault:pki/finance/vaultfin-export",
        60,
        None,
        10,
        ["production"],
        [],
    ),
    (
        "workday-hris-connector",
        "OAuth client secret",
        "oauth_secret",
        True,
        "vault:kv/people/workday",
        40,
        None,
        320,
        ["production"],
        [],
    ),
    (
        "legacy-ftp-upload",
        "FTP password",
        "password",
        False,
        "Spreadsheet on the finance share",
        900,
        None,
        None,
        ["production"],
        ["ines.quist"],
    ),
    (
        "gh-copilot-agent",
        "GitHub token",
        "token",
        True,
        "vault:kv/eng/copilot-agent",
        20,
        None,
        70,
        ["development"],
        [],
    ),
]


def _policies(result) -> None:
    for kind, environment, max_age, warn, description in POLICIES:
        if CredentialPolicy.objects.filter(nhi_kind=kind, environment=environment).exists():
            continue
        model_save(
            actor=ACTOR,
            instance=CredentialPolicy(
                nhi_kind=kind,
                environment=environment,
                max_age_days=max_age,
                warn_days=warn,
                description=description,
            ),
        )
        result.bump("credential policies")


def _profiles(nhis: dict[str, NonHumanIdentity], result) -> None:
    now = timezone.now()
    for name, (platform, auth, team, consumers, purpose) in PROFILES.items():
        nhi = nhis.get(name)
        if nhi is None or nhi.platform:
            continue
        services.nhi_update(
            actor=ACTOR,
            nhi=nhi,
            platform=platform,
            auth_method=auth,
            owning_team=team,
            consumers=consumers,
            purpose=purpose,
            source_created_at=now - timedelta(days=700),
            last_used_at=now - timedelta(hours=3),
        )
        result.bump("NHI profiles")
    staging_loader = nhis.get("sf-dataloader-staging")
    if staging_loader is not None and staging_loader.human_use_observed_at is None:
        # Someone logged in with it interactively from a browser (NHI10).
        services.nhi_update(
            actor=ACTOR, nhi=staging_loader, human_use_observed_at=now - timedelta(days=2)
        )


def _credentials(nhis, people, result) -> None:
    now = timezone.now()
    for row in CREDENTIALS:
        nhi_name, name, kind, vault, location, issued, rotated, expires, envs, knowers = row
        nhi = nhis.get(nhi_name)
        if nhi is None or Credential.objects.filter(nhi=nhi, name__iexact=name).exists():
            continue
        services.credential_create(
            actor=ACTOR,
            nhi=nhi,
            name=name,
            type=kind,
            in_vault=vault,
            location=location,
            issued_at=now - timedelta(days=issued),
            last_rotated_at=now - timedelta(days=rotated) if rotated is not None else None,
            expires_at=now + timedelta(days=expires) if expires is not None else None,
            environments=envs,
            known_by=[people[k] for k in knowers if k in people],
        )
        result.bump("credentials")


def _transfer(nhis, people, result) -> None:
    """Jira automation moved from Priya to Lena's team: one ownership transfer on record."""
    bot, lena = nhis.get("jira-sync-bot"), people.get("lena.fischer")
    if bot is None or lena is None or bot.owner_id == lena.pk:
        return
    services.nhi_assign_owner(
        actor=ACTOR,
        nhi=bot,
        owner=lena,
        reason="Team reorganisation: Jira automation moved to Developer Experience.",
    )
    result.bump("ownership transfers")


def _privileged_grant(nhis, result) -> None:
    """terraform-ci applies infrastructure with the AWS PowerUser role (NHI5)."""
    from governance.access.models import Entitlement, Grant
    from governance.access.services import grant_create

    nhi = nhis.get("terraform-ci")
    account = nhi.accounts.filter(status="active").first() if nhi else None
    if account is None:
        return
    role = Entitlement.objects.filter(
        application_id=account.application_id, privileged=True
    ).first()
    if role is None or Grant.objects.filter(account=account, entitlement=role).exists():
        return
    grant_create(actor=ACTOR, account=account, entitlement=role)
    result.bump("grants")


def _api_token(result) -> None:
    from governance.api.models import ApiToken
    from governance.api.tokens import token_create
    from governance.portal.models import User

    sam = User.objects.filter(username="sam.patel").first()
    if sam is None or ApiToken.objects.filter(user=sam).exists():
        return
    token_create(actor=ACTOR, user=sam, label="NHI registration pipeline (demo)")
    result.bump("API tokens")


def seed(*, people: dict[str, Any], apps: dict[str, Any], leavers: list[Any], result: Any) -> None:
    """Create this app's demo rows unless they exist."""
    _policies(result)
    nhis = {n.name: n for n in NonHumanIdentity.objects.all()}
    _profiles(nhis, result)
    nhis = {n.name: n for n in NonHumanIdentity.objects.all()}
    _credentials(nhis, people, result)
    _transfer(nhis, people, result)
    _privileged_grant(nhis, result)
    _api_token(result)
    counts = services.rotation_sweep(notify=False)
    if counts["overdue"] or counts["expiring"]:
        result.bump("rotation tasks", counts["overdue"] + counts["expiring"])
