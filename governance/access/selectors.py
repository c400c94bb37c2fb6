"""Reads over accounts, grants and policies. Set-based: each is one query."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from governance.access.models import AccessPolicy, Account, Entitlement, Grant
from governance.identities.models import GroupMembership, Identity


def orphan_accounts() -> QuerySet[Account]:
    """Accounts that belong to no person and no NHI (AC-2(3)(b))."""
    return Account.objects.filter(identity__isnull=True, nhi__isnull=True).exclude(
        status=Account.Status.DELETED
    )


def stale_accounts() -> QuerySet[Account]:
    """Active accounts whose person has left."""
    return Account.objects.filter(status=Account.Status.ACTIVE, identity__active=False)


def active_grants() -> QuerySet[Grant]:
    return Grant.objects.filter(status=Grant.Status.ACTIVE)


def policies_for_identity(identity: Identity) -> QuerySet[AccessPolicy]:
    """Enabled birthright policies whose condition this person meets."""
    in_group = GroupMembership.objects.filter(
        identity=identity, group_id=OuterRef("directory_group_id")
    )
    attribute_match = Q()
    for attribute, _label in AccessPolicy.Attribute.choices:
        value = getattr(identity, attribute, "")
        if value:
            attribute_match |= Q(attribute=attribute, attribute_value__iexact=value)
    condition = Q(directory_group__isnull=False) & Exists(in_group)
    if attribute_match:
        condition |= attribute_match
    return AccessPolicy.objects.filter(enabled=True).filter(condition)


def desired_entitlements(identity: Identity) -> QuerySet[Entitlement]:
    """What policy says this person should hold (nothing when inactive)."""
    if not identity.active or identity.deleted_at is not None:
        return Entitlement.objects.none()
    return Entitlement.objects.filter(policies__in=policies_for_identity(identity)).distinct()


def excess_privileged_grants() -> QuerySet[Grant]:
    """Active privileged grants held by a person that no policy justifies."""
    justified = AccessPolicy.objects.filter(
        enabled=True, entitlements=OuterRef("entitlement_id")
    ).filter(
        Q(
            directory_group__memberships__identity_id=OuterRef("account__identity_id"),
        )
    )
    return (
        active_grants()
        .filter(entitlement__privileged=True, account__identity__isnull=False)
        .exclude(origin=Grant.Origin.EXCEPTION)
        .exclude(Exists(justified))
        .exclude(origin=Grant.Origin.POLICY)
    )


@dataclass(frozen=True)
class DesiredEntitlement:
    entitlement: Entitlement
    reason: str  # "policy" | "request" | "exception"
    detail: str  # the policy's name, or the grant that carries the approval


def desired_access(holder) -> list[DesiredEntitlement]:
    """What a person or NHI should hold, and why: birthright policies (people only), and
    grants that carry an approved request or an exception. Inactive people should hold
    nothing."""
    from governance.identities.models import Identity

    result: dict[int, DesiredEntitlement] = {}
    is_person = isinstance(holder, Identity)
    if is_person and (not holder.active or holder.deleted_at is not None):
        return []
    if is_person:
        for policy in policies_for_identity(holder).prefetch_related("entitlements__application"):
            for ent in policy.entitlements.all():
                result.setdefault(ent.pk, DesiredEntitlement(ent, "policy", policy.name))
    holder_filter = {"account__identity": holder} if is_person else {"account__nhi": holder}
    approved = (
        active_grants()
        .filter(origin__in=[Grant.Origin.REQUEST, Grant.Origin.EXCEPTION], **holder_filter)
        .select_related("entitlement__application")
    )
    for grant in approved:
        result.setdefault(
            grant.entitlement_id,
            DesiredEntitlement(grant.entitlement, grant.origin, f"grant {grant.pk}"),
        )
    return sorted(
        result.values(), key=lambda d: (d.entitlement.application.name, d.entitlement.name)
    )
