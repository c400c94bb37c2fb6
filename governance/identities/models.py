"""The directory as identity providers provision it: sources, people, groups, memberships."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class IdentitySource(models.Model):
    """One identity-provider connection. Its SCIM bearer tokens are stored hashed."""

    class Kind(models.TextChoices):
        ENTRA = "entra", "Microsoft Entra ID"
        OKTA = "okta", "Okta"
        ONELOGIN = "onelogin", "OneLogin"
        JUMPCLOUD = "jumpcloud", "JumpCloud"
        GOOGLE = "google", "Google Workspace"
        GENERIC = "generic", "Generic SCIM client"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GENERIC)
    enabled = models.BooleanField(default=True)
    authoritative_for_all = models.BooleanField(
        default=False,
        help_text="When set, this source sees and changes every identity and group, "
        "not only those it provisioned.",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Identity(models.Model):
    """A person: SCIM core User plus the enterprise extension (RFC 7643 §4.1, §4.3).

    Never hard-deleted: SCIM DELETE sets ``deleted_at`` (and deactivates) so history stays.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(
        IdentitySource, null=True, blank=True, on_delete=models.PROTECT, related_name="identities"
    )
    user_name = models.CharField("userName", max_length=255)
    external_id = models.CharField("externalId", max_length=255, blank=True, db_index=True)
    given_name = models.CharField(max_length=150, blank=True)
    family_name = models.CharField(max_length=150, blank=True)
    middle_name = models.CharField(max_length=150, blank=True)
    honorific_prefix = models.CharField(max_length=50, blank=True)
    honorific_suffix = models.CharField(max_length=50, blank=True)
    formatted_name = models.CharField(max_length=300, blank=True)
    display_name = models.CharField("displayName", max_length=300, blank=True)
    nick_name = models.CharField(max_length=150, blank=True)
    title = models.CharField(max_length=200, blank=True)
    user_type = models.CharField(max_length=100, blank=True)
    preferred_language = models.CharField(max_length=50, blank=True)
    locale = models.CharField(max_length=50, blank=True)
    timezone = models.CharField(max_length=64, blank=True)
    profile_url = models.CharField(max_length=500, blank=True)
    # Enterprise extension
    employee_number = models.CharField(max_length=100, blank=True)
    cost_center = models.CharField(max_length=100, blank=True)
    organization = models.CharField(max_length=200, blank=True)
    division = models.CharField(max_length=200, blank=True)
    department = models.CharField(max_length=200, blank=True, db_index=True)
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    manager_ref = models.CharField(
        max_length=255,
        blank=True,
        help_text="The manager value as the identity provider sent it; resolved to "
        "'manager' when that person is known.",
    )
    # Other SCIM attributes kept as sent (phoneNumbers, addresses, ims, photos, roles, ...).
    attributes = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by SCIM DELETE; the row is kept for history."
    )
    version = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name_plural = "identities"
        ordering = ["family_name", "given_name", "user_name"]
        constraints = [
            models.UniqueConstraint(
                Lower("user_name"),
                condition=Q(deleted_at__isnull=True),
                name="identity_username_ci_unique",
                violation_error_message="An identity with this userName already exists.",
            ),
            models.CheckConstraint(condition=~Q(user_name=""), name="identity_username_not_empty"),
        ]
        indexes = [models.Index(Lower("user_name"), name="identity_username_lower_idx")]

    def __str__(self) -> str:
        return self.display_name or self.full_name or self.user_name

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.given_name, self.family_name) if p)


class IdentityEmail(models.Model):
    """One of a person's e-mail addresses, kept as a row so filters can use an index."""

    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="emails")
    value = models.CharField(max_length=320)
    type = models.CharField(max_length=50, blank=True)
    primary = models.BooleanField(default=False)
    display = models.CharField(max_length=320, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(Lower("value"), name="identity_email_lower_idx")]

    def __str__(self) -> str:
        return self.value


class DirectoryGroup(models.Model):
    """A SCIM Group (RFC 7643 §4.2). Display names are unique case-insensitively."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(
        IdentitySource, null=True, blank=True, on_delete=models.PROTECT, related_name="groups"
    )
    display_name = models.CharField("displayName", max_length=255)
    external_id = models.CharField("externalId", max_length=255, blank=True, db_index=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(
        Identity, through="GroupMembership", related_name="directory_groups"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["display_name"]
        verbose_name = "directory group"
        constraints = [
            models.UniqueConstraint(
                Lower("display_name"),
                condition=Q(deleted_at__isnull=True),
                name="group_displayname_ci_unique",
                violation_error_message="A group with this displayName already exists.",
            ),
        ]
        indexes = [models.Index(Lower("display_name"), name="group_displayname_lower_idx")]

    def __str__(self) -> str:
        return self.display_name


class GroupMembership(models.Model):
    group = models.ForeignKey(DirectoryGroup, on_delete=models.CASCADE, related_name="memberships")
    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="memberships")
    display = models.CharField(
        max_length=300, blank=True, help_text="The member's display text as the IdP sent it."
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "identity"], name="membership_unique"),
        ]
        indexes = [models.Index(fields=["identity", "group"], name="membership_identity_idx")]

    def __str__(self) -> str:
        return f"{self.identity} in {self.group}"
