"""Reads over the directory."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from governance.identities.models import DirectoryGroup, Identity


def live_identities() -> QuerySet[Identity]:
    """People not deleted over SCIM (inactive ones included)."""
    return Identity.objects.filter(deleted_at__isnull=True)


def live_groups() -> QuerySet[DirectoryGroup]:
    return DirectoryGroup.objects.filter(deleted_at__isnull=True)


def groups_with_member_counts() -> QuerySet[DirectoryGroup]:
    return live_groups().annotate(member_count=Count("memberships"))


def departed_identities() -> QuerySet[Identity]:
    """Leavers: deactivated or deleted people."""
    return Identity.objects.filter(active=False)
