"""API tokens: create, revoke (services) and resolve a presented token (selector).

A token is ``stw_api_`` followed by ``secrets.token_urlsafe(32)`` (256 random bits). Only its
SHA-256 is stored: with that much entropy a fast unsalted hash cannot be brute-forced, and
it lets the token be found by an indexed lookup. The plaintext leaves :func:`token_create`
once and is never written anywhere, audit log included.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.api.models import ApiToken
from governance.audit.services import record
from governance.core.actor import Actor
from governance.core.errors import DomainError, InvalidTransition

TOKEN_MARKER = "stw_api_"  # noqa: S105 - the public marker, not a secret
PREFIX_LENGTH = len(TOKEN_MARKER) + 8
LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PATTERN = re.compile(r"stw_api_[A-Za-z0-9_-]{43}")


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _user_of(actor: Actor):
    return actor.user if actor.kind == "user" else None


@transaction.atomic
def token_create(*, actor: Actor, user, label: str = "") -> tuple[ApiToken, str]:
    """Issue a token acting as ``user``; returns the row and the plaintext, not kept."""
    if not user.is_active:
        raise DomainError(f"{user} is not an active user.", field="user")
    label = (label or "").strip()
    if len(label) > 100:
        raise DomainError("The label is at most 100 characters.", field="label")
    raw = TOKEN_MARKER + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        label=label,
        token_prefix=raw[:PREFIX_LENGTH],
        token_hash=hash_token(raw),
        created_by=_user_of(actor),
    )
    record(
        actor=actor,
        action="api_token.created",
        target=token,
        after={"user": user.get_username(), "label": label, "prefix": token.token_prefix},
    )
    return token, raw


@transaction.atomic
def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    locked = ApiToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is not None:
        raise InvalidTransition(f"Token {locked.token_prefix}… was already revoked.")
    locked.revoked_at = timezone.now()
    locked.revoked_by = _user_of(actor)
    locked.save(update_fields=["revoked_at", "revoked_by"])
    record(
        actor=actor,
        action="api_token.revoked",
        target=locked,
        before={"revoked_at": None},
        after={"revoked_at": locked.revoked_at, "prefix": locked.token_prefix},
    )
    return locked


def token_for(raw: str) -> ApiToken | None:
    """The live token matching ``raw`` (with its active user), or None for anything else:
    malformed, unknown, revoked, or of an inactive user. Callers do not tell these apart."""
    if not isinstance(raw, str) or not TOKEN_PATTERN.fullmatch(raw):
        return None
    digest = hash_token(raw)
    token = ApiToken.objects.select_related("user").filter(token_hash=digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        updated = (
            ApiToken.objects.filter(pk=token.pk)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION))
            .update(last_used_at=now)
        )
        if updated == 1:
            token.last_used_at = now
    return token
