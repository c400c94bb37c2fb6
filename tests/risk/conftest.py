"""Northwind-like world for exceptions and controls: Grace owns Ledgerly (SCIM partial) and
VaultFin (manual), Lena (her colleague) owns GitHub (full SCIM); Sam and Sara are security
admins, Alex the auditor, and the outsider is staff without a role."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.core.actor import Actor
from governance.portal.models import Role
from governance.reconciliation.models import Finding
from governance.risk import services
from tests.factories import (
    AccountFactory,
    ApplicationFactory,
    EntitlementFactory,
    UserFactory,
)


class World:
    def __init__(self):
        self.today = timezone.localdate()
        self.grace = UserFactory(username="grace", email="grace@x.com", roles=[Role.APP_OWNER])
        self.lena = UserFactory(username="lena", email="lena@x.com", roles=[Role.APP_OWNER])
        self.sam = UserFactory(username="sam", email="sam@x.com", roles=[Role.SECURITY_ADMIN])
        self.sara = UserFactory(username="sara", email="sara@x.com", roles=[Role.SECURITY_ADMIN])
        self.alex = UserFactory(username="alex", roles=[Role.AUDITOR])
        self.outsider = UserFactory(username="outsider")
        self.ledgerly = ApplicationFactory(name="Ledgerly", provisioning_mode="scim_partial")
        self.vaultfin = ApplicationFactory(name="VaultFin", provisioning_mode="manual")
        self.github = ApplicationFactory(name="GitHub", provisioning_mode="scim")
        self.ledgerly.owners.add(self.grace)
        self.vaultfin.owners.add(self.grace)
        self.github.owners.add(self.lena)
        self.ledgerly_role = EntitlementFactory(application=self.ledgerly, name="Ledger Admin")
        self.github_role = EntitlementFactory(application=self.github, name="Org owner")
        self.ledgerly_account = AccountFactory(application=self.ledgerly, username="daniel")
        self.github_account = AccountFactory(application=self.github, username="priya")

    def actor(self, user):
        return Actor.for_user(user)

    def control(self, app=None, owner=None, **fields):
        app = app or self.ledgerly
        owner = owner or self.grace
        fields.setdefault("name", f"Monthly reconciliation of {app}")
        fields.setdefault("kind", "periodic_reconciliation")
        fields.setdefault("frequency", "monthly")
        fields.setdefault("next_due_on", self.today + timedelta(days=10))
        actor = self.sam if not app.owners.filter(pk=owner.pk).exists() else owner
        return services.control_create(
            actor=Actor.for_user(actor), application=app, owner=owner, **fields
        )

    def draft(self, app=None, by=None, controls=None, **fields):
        app = app or self.ledgerly
        by = by or self.grace
        fields.setdefault("title", "Role changes handled by monthly reconciliation")
        fields.setdefault("exception_type", "scim_partial")
        fields.setdefault("justification", "No role updates over SCIM.")
        fields.setdefault("risk_rating", "medium")
        fields.setdefault("expires_on", self.today + timedelta(days=180))
        if controls is None:
            controls = [self.control(app)] if app.provisioning_mode != "scim" else []
        return services.exception_create(
            actor=Actor.for_user(by), application=app, controls=controls, **fields
        )

    def submitted(self, **kwargs):
        exception = self.draft(**kwargs)
        by = kwargs.get("by") or self.grace
        return services.exception_submit(actor=Actor.for_user(by), exception=exception)

    def approved(self, approver=None, **kwargs):
        exception = self.submitted(**kwargs)
        return services.exception_approve(
            actor=Actor.for_user(approver or self.sam), exception=exception, comment="ok"
        )

    def finding(self, app=None, kind="excess", **fields):
        app = app or self.ledgerly
        n = Finding.objects.count()
        return Finding.objects.create(
            kind=kind,
            severity="medium",
            fingerprint=fields.pop("fingerprint", f"test:{n}"),
            subject=f"{kind} {n}",
            application=app,
            opened_at=timezone.now(),
            **fields,
        )


@pytest.fixture
def world(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return World()
