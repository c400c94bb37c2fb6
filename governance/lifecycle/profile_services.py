"""Audited saves of an application's provisioning (capability) profile.

The connector URL and token are stored encrypted and are secrets: the generic audited save
(:func:`governance.core.services.model_save`) would copy them in clear text into the audit
log, so profiles are saved here and the audit event only says whether a secret was set,
changed or removed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import DomainError, PermissionDenied
from governance.core.snapshot import changed, snapshot
from governance.lifecycle.models import ProvisioningProfile

SECRET_FIELDS = ("scim_base_url", "scim_token")
SET, NOT_SET, CHANGED, REMOVED = "(set)", "(not set)", "(changed)", "(removed)"
_url_validator = URLValidator(schemes=["http", "https"])


def validate_connector_url(url: str) -> None:
    """An http(s) URL without credentials in it (those belong in the token)."""
    if not url:
        return
    try:
        _url_validator(url)
    except ValidationError:
        raise DomainError(
            "Enter the connector's SCIM base URL as an http:// or https:// address.",
            field="scim_base_url",
        ) from None
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise DomainError(
            "Do not put credentials in the URL; enter the token in the token field.",
            field="scim_base_url",
        )


def _may_edit(actor: Actor, profile: ProvisioningProfile) -> bool:
    if actor.kind != "user":
        return True
    user = actor.user
    if user is None:
        return False
    if user.is_security_admin:
        return True
    return profile.application.owners.filter(pk=user.pk).exists()


def redacted_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    """(before, after) of the keys that changed, with secrets replaced by markers."""
    old, new = changed(before, after)
    for name in SECRET_FIELDS:
        if name not in new:
            continue
        was, now = bool(old.get(name)), bool(new.get(name))
        old[name] = SET if was else NOT_SET
        new[name] = (CHANGED if was else SET) if now else REMOVED
    return old, new


def _with_secrets(profile: ProvisioningProfile) -> dict[str, Any]:
    """The snapshot (which only marks secrets as set) plus the secrets themselves, so a
    change of token is detected; they are replaced by markers before anything is recorded."""
    data = snapshot(profile)
    data.update({name: getattr(profile, name) for name in SECRET_FIELDS})
    return data


def _redacted(data: dict[str, Any]) -> dict[str, Any]:
    return {k: ((SET if v else NOT_SET) if k in SECRET_FIELDS else v) for k, v in data.items()}


@transaction.atomic
def profile_save(*, actor: Actor, profile: ProvisioningProfile) -> ProvisioningProfile:
    """Create or change a capability profile; the audit event never holds a secret.

    Only a security admin or an owner of the application may change it (system actors, such
    as the demo seed, may too). Whether the token changed is read from the stored row, not
    taken from the caller, so re-entering the same token is not reported as a change.
    """
    if not _may_edit(actor, profile):
        raise PermissionDenied(
            "Only an owner of the application or a security admin can change it."
        )
    validate_connector_url(profile.scim_base_url)
    is_new = profile._state.adding
    before = (
        None
        if is_new
        else _with_secrets(ProvisioningProfile.objects.select_for_update().get(pk=profile.pk))
    )
    try:
        profile.full_clean()
    except ValidationError as exc:
        raise DomainError("; ".join(exc.messages)) from None
    profile.save()
    after = _with_secrets(profile)
    if before is None:
        record(
            actor=actor,
            action="provisioningprofile.created",
            target=profile,
            after=_redacted(after),
        )
        return profile
    old, new = redacted_changes(before, after)
    if old or new:
        record(
            actor=actor,
            action="provisioningprofile.updated",
            target=profile,
            before=old,
            after=new,
        )
    return profile
