"""Bearer tokens stored only as a hash: the mechanics shared by SCIM tokens (one identity
source each) and governance API tokens (one portal user each).

A token is a public marker followed by ``secrets.token_urlsafe(32)`` (256 random bits). Only
its SHA-256 is stored: with that much entropy a fast unsalted hash cannot be brute-forced, and
it lets the token be found by an indexed lookup. The plaintext leaves :func:`token_mint` once
and is never written anywhere, audit log included.

A model using these functions has ``token_prefix``, ``token_hash``, ``last_used_at``,
``revoked_at`` and ``revoked_by``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import InvalidTransition

# Marker plus 8 random characters: enough to tell tokens apart, far too little to guess one.
PREFIX_RANDOM_CHARS = 8
# Clients call many times a minute; recording each use would mean one write per request for
# a timestamp nobody needs to the second.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def token_pattern(marker: str) -> re.Pattern[str]:
    """What a well-formed token with ``marker`` looks like."""
    return re.compile(re.escape(marker) + r"[A-Za-z0-9_-]{43}")


def token_mint(marker: str) -> tuple[str, str, str]:
    """A new token: (plaintext, display prefix, stored hash)."""
    raw = marker + secrets.token_urlsafe(32)
    return raw, raw[: len(marker) + PREFIX_RANDOM_CHARS], hash_token(raw)


def user_of(actor: Actor) -> Any:
    return actor.user if actor.kind == "user" else None


def token_lookup(queryset: QuerySet, raw: Any, pattern: re.Pattern[str]) -> Any:
    """The row of ``queryset`` whose hash matches ``raw``, or None for anything malformed or
    unknown. Revocation and the holder's state are the caller's to check.

    The row is found by the SHA-256 of what was presented, so the timing of the index lookup
    depends on a hash the caller cannot steer, not on the stored secret; the final check is
    :func:`hmac.compare_digest` all the same.
    """
    if not isinstance(raw, str) or not pattern.fullmatch(raw):
        return None
    digest = hash_token(raw)
    token = queryset.filter(token_hash=digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    return token


def token_touch(token: Model) -> None:
    """Move ``last_used_at`` at most once per :data:`LAST_USED_RESOLUTION`, through a
    conditional UPDATE, so concurrent requests write it once. Use is not audited."""
    now = timezone.now()
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    updated = (
        type(token)
        .objects.filter(pk=token.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale))
        .update(last_used_at=now)
    )
    if updated == 1:
        token.last_used_at = now


@transaction.atomic
def token_revoke(*, actor: Actor, token: Model, action: str) -> Any:
    """Stop a token from authenticating. The row stays, so history keeps its meaning."""
    locked = type(token).objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is not None:
        raise InvalidTransition(f"Token {locked.token_prefix}… was already revoked.")
    locked.revoked_at = timezone.now()
    locked.revoked_by = user_of(actor)
    locked.save(update_fields=["revoked_at", "revoked_by"])
    record(
        actor=actor,
        action=action,
        target=locked,
        before={"revoked_at": None},
        after={"revoked_at": locked.revoked_at, "prefix": locked.token_prefix},
    )
    return locked
