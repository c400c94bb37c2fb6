"""Portal accounts and their roles."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group
from django.db import transaction

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import Conflict, DomainError
from governance.identities.models import Identity
from governance.portal.models import Role, User


@transaction.atomic
def portal_user_create(
    *,
    actor: Actor,
    username: str,
    email: str = "",
    password: str | None = None,
    identity: Identity | None = None,
    roles: Iterable[str] = (),
    superuser: bool = False,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Create a portal account. Anyone with a role is staff, so they can use the admin."""
    roles = list(roles)
    unknown = set(roles) - set(Role.values)
    if unknown:
        raise DomainError(f"Unknown roles: {', '.join(sorted(unknown))}", field="roles")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"A portal user {username!r} already exists.", field="username")
    user = User(
        username=username,
        email=email,
        identity=identity,
        first_name=first_name,
        last_name=last_name,
        is_staff=bool(roles) or superuser,
        is_superuser=superuser,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    if roles:
        user.groups.set(Group.objects.filter(name__in=roles))
    record(
        actor=actor,
        action="portal_user.created",
        target=user,
        after={
            "username": username,
            "roles": sorted(roles),
            "superuser": superuser,
            "identity": str(identity.pk) if identity else None,
        },
    )
    return user


_SENSITIVE = {"password", "last_login"}


@transaction.atomic
def portal_user_save(*, actor: Actor, user: User, changed_fields: list[str], is_new: bool) -> User:
    """Save a portal account edited in the admin and record what changed (never the hash)."""
    user.save()
    changed = sorted(set(changed_fields))
    after = {
        name: ("(changed)" if name in _SENSITIVE else getattr(user, name, None))
        for name in changed
        if name not in {"groups", "user_permissions"}
    }
    if "identity" in after:
        after["identity"] = str(user.identity_id) if user.identity_id else None
    record(
        actor=actor,
        action="portal_user.created" if is_new else "portal_user.updated",
        target=user,
        after=after,
    )
    return user


@transaction.atomic
def portal_user_roles_recorded(
    *, actor: Actor, user: User, before: set[str], after: set[str]
) -> None:
    """Record a change of role membership (the admin saves the m2m rows itself)."""
    if before != after:
        record(
            actor=actor,
            action="portal_user.roles_changed",
            target=user,
            before={"roles": sorted(before)},
            after={"roles": sorted(after)},
        )
