"""Applications, what they grant, who holds it, and the birthright policies that say who should."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from governance.core.choices import RiskLevel


class Application(models.Model):
    class ProvisioningMode(models.TextChoices):
        SCIM = "scim", "SCIM (full)"
        SCIM_PARTIAL = "scim_partial", "SCIM (create and deactivate only)"
        MANUAL = "manual", "Manual (disconnected)"

    class ReviewFrequency(models.TextChoices):
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        SEMIANNUAL = "semiannual", "Every six months"
        ANNUAL = "annual", "Annually"

    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    owners = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="owned_applications",
        help_text="Portal users accountable for this application.",
    )
    risk_tier = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    provisioning_mode = models.CharField(
        max_length=20, choices=ProvisioningMode.choices, default=ProvisioningMode.MANUAL
    )
    deprovisioning_sla_hours = models.PositiveIntegerField(
        default=24, help_text="Hours within which a leaver's access must be removed."
    )
    review_frequency = models.CharField(
        max_length=20, choices=ReviewFrequency.choices, default=ReviewFrequency.QUARTERLY
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(deprovisioning_sla_hours__gte=1), name="application_sla_positive"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Entitlement(models.Model):
    """A role, group or permission inside an application."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="entitlements"
    )
    name = models.CharField(max_length=200)
    external_value = models.CharField(
        max_length=255, help_text="The identifier the application uses for this entitlement."
    )
    description = models.TextField(blank=True)
    privileged = models.BooleanField(default=False, db_index=True)
    risk = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.LOW)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_entitlements",
    )

    class Meta:
        ordering = ["application__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "external_value"], name="entitlement_value_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.application.name}: {self.name}"


class Account(models.Model):
    """An identity's or NHI's account in an application. One with neither is an orphan."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"
        DELETED = "deleted", "Deleted"

    class Origin(models.TextChoices):
        PROVISIONED = "provisioned", "Provisioned by Steward"
        IMPORTED = "imported", "Imported from the application"
        MANUAL = "manual", "Created manually"

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="accounts")
    username = models.CharField(max_length=255)
    external_id = models.CharField(max_length=255, blank=True)
    identity = models.ForeignKey(
        "identities.Identity",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="accounts",
    )
    nhi = models.ForeignKey(
        "nhi.NonHumanIdentity",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="accounts",
        verbose_name="non-human identity",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    last_login_at = models.DateTimeField(null=True, blank=True)
    origin = models.CharField(max_length=12, choices=Origin.choices, default=Origin.PROVISIONED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application__name", "username"]
        constraints = [
            models.UniqueConstraint(
                "application", Lower("username"), name="account_username_ci_unique"
            ),
            models.CheckConstraint(
                condition=Q(identity__isnull=True) | Q(nhi__isnull=True),
                name="account_single_holder",
                violation_error_message="An account belongs to a person or an NHI, not both.",
            ),
        ]
        indexes = [models.Index(fields=["application", "status"], name="account_app_status_idx")]

    def __str__(self) -> str:
        return f"{self.username} @ {self.application.name}"

    @property
    def is_orphan(self) -> bool:
        return self.identity_id is None and self.nhi_id is None


class Grant(models.Model):
    """An account holding an entitlement, and why it does."""

    class Origin(models.TextChoices):
        POLICY = "policy", "Birthright policy"
        REQUEST = "request", "Approved request"
        MANUAL = "manual", "Manual"
        EXCEPTION = "exception", "Exception"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="grants")
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="grants")
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MANUAL)
    policy = models.ForeignKey(
        "access.AccessPolicy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="grants",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    granted_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "entitlement"],
                condition=Q(status="active"),
                name="grant_active_unique",
                violation_error_message="This account already holds this entitlement.",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("granted_at")),
                name="grant_expiry_after_grant",
            ),
        ]
        indexes = [models.Index(fields=["entitlement", "status"], name="grant_ent_status_idx")]

    def __str__(self) -> str:
        return f"{self.account.username} holds {self.entitlement.name}"


class AccessPolicy(models.Model):
    """A birthright rule: members of a directory group, or people whose attribute matches a
    value, should hold the listed entitlements. Policies define the desired state."""

    class Attribute(models.TextChoices):
        DEPARTMENT = "department", "Department"
        DIVISION = "division", "Division"
        TITLE = "title", "Title"
        COST_CENTER = "cost_center", "Cost center"
        ORGANIZATION = "organization", "Organization"
        USER_TYPE = "user_type", "User type"

    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    directory_group = models.ForeignKey(
        "identities.DirectoryGroup",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="policies",
    )
    attribute = models.CharField(max_length=20, choices=Attribute.choices, blank=True)
    attribute_value = models.CharField(max_length=200, blank=True)
    entitlements = models.ManyToManyField(Entitlement, related_name="policies")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "access policies"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(directory_group__isnull=False, attribute="", attribute_value="")
                    | (Q(directory_group__isnull=True) & ~Q(attribute="") & ~Q(attribute_value=""))
                ),
                name="policy_one_condition",
                violation_error_message="A policy needs either a directory group or an "
                "attribute condition (attribute and value), not both.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def condition_label(self) -> str:
        if self.directory_group_id:
            return f"member of {self.directory_group}"
        return f"{self.get_attribute_display()} = {self.attribute_value}"
