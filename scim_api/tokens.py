"""SCIM bearer tokens: create, revoke (services) and resolve a presented token (selector).

A token is ``stw_scim_`` followed by ``secrets.token_urlsafe(32)`` (256 random bits). Only
its SHA-256 is stored: with that much entropy a fast unsalted hash cannot be brute-forced,
and it lets the token be found by an indexed lookup. The plaintext leaves
:func:`token_create` once and is never written anywhere, audit log included.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition
from governance.identities.models import IdentitySource
from scim_api.models import ScimToken

if TYPE_CHECKING:
    from governance.portal.models import User

TOKEN_MARKER = "stw_scim_"  # noqa: S105 - the public marker, not a secret
# Marker plus 8 random characters: enough to tell tokens apart, far too little to guess one.
PREFIX_LENGTH = len(TOKEN_MARKER) + 8
# An identity provider calls many times a minute; recording each use would mean one write
# per request for a timestamp nobody needs to the second.
LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PATTERN = re.compile(r"stw_scim_[A-Za-z0-9_-]{43}")


def hash_token(raw: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _user_of(actor: Actor) -> User | None:
    return actor.user if actor.kind == "user" else None


@transaction.atomic
def token_create(*, actor: Actor, source: IdentitySource, label: str = "") -> tuple[ScimToken, str]:
    """Issue a token for ``source``; returns the row and the plaintext, which is not kept.

    A disabled source gets no new tokens: it could not use them.
    """
    source = IdentitySource.objects.select_for_update().get(pk=source.pk)
    if not source.enabled:
        raise DomainError(
            f"Identity source {source.name!r} is disabled; enable it before issuing tokens.",
            field="source",
        )
    raw = TOKEN_MARKER + secrets.token_urlsafe(32)
    token = ScimToken(
        source=source,
        label=(label or "").strip(),
        token_prefix=raw[:PREFIX_LENGTH],
        token_hash=hash_token(raw),
        created_by=_user_of(actor),
    )
    try:
        token.full_clean()
    except ValidationError as exc:
        field, errors = next(iter(exc.message_dict.items()))
        raise DomainError(" ".join(errors), field=field) from None
    token.save(force_insert=True)
    record(
        actor=actor,
        action="scim_token.created",
        target=token,
        after={
            "source": source.name,
            "source_id": source.pk,
            "label": token.label,
            "prefix": token.token_prefix,
        },
    )
    return token, raw


@transaction.atomic
def token_revoke(*, actor: Actor, token: ScimToken) -> ScimToken:
    """Stop a token from authenticating. The row stays, so history keeps its meaning."""
    locked = ScimToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is not None:
        raise InvalidTransition(f"Token {locked.token_prefix}… was already revoked.")
    locked.revoked_at = timezone.now()
    locked.revoked_by = _user_of(actor)
    locked.save(update_fields=["revoked_at", "revoked_by"])
    record(
        actor=actor,
        action="scim_token.revoked",
        target=locked,
        before={"revoked_at": None},
        after={"revoked_at": locked.revoked_at, "prefix": locked.token_prefix},
    )
    return locked


def source_for_token(raw: str) -> ScimToken | None:
    """The live token matching ``raw`` (with its source loaded), or None.

    None for anything that is not a well-formed token, an unknown token, a revoked token or
    a token of a disabled source; callers must not tell these apart to the client.

    The row is found by the SHA-256 of what was presented, so the timing of the index lookup
    depends on a hash the caller cannot steer, not on the stored secret; the final check is
    :func:`hmac.compare_digest` all the same. ``last_used_at`` moves at most once per
    :data:`LAST_USED_RESOLUTION`, through a conditional UPDATE, so concurrent requests write
    it once and a busy identity provider does not write on every request. Use is not audited.
    """
    if not isinstance(raw, str) or not TOKEN_PATTERN.fullmatch(raw):
        return None
    digest = hash_token(raw)
    token = ScimToken.objects.select_related("source").filter(token_hash=digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None or not token.source.enabled:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        updated = (
            ScimToken.objects.filter(pk=token.pk)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION))
            .update(last_used_at=now)
        )
        if updated == 1:
            token.last_used_at = now
    return token
