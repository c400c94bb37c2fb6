"""API tokens: create, revoke (services) and resolve a presented token (selector).

A token is ``stw_api_`` followed by ``secrets.token_urlsafe(32)`` (256 random bits). Only its
SHA-256 is stored: with that much entropy a fast unsalted hash cannot be brute-forced, and
it lets the token be found by an indexed lookup. The plaintext leaves :func:`token_create`
once and is never written anywhere, audit log included.
"""

from __future__ import annotations

from django.db import transaction

from governance.api.models import ApiToken
from governance.audit.services import record
from governance.core import bearer
from governance.core.actor import Actor
from governance.core.bearer import hash_token  # noqa: F401 - part of this module's interface
from governance.core.errors import DomainError

TOKEN_MARKER = "stw_api_"  # noqa: S105 - the public marker, not a secret
PREFIX_LENGTH = len(TOKEN_MARKER) + bearer.PREFIX_RANDOM_CHARS
TOKEN_PATTERN = bearer.token_pattern(TOKEN_MARKER)


@transaction.atomic
def token_create(*, actor: Actor, user, label: str = "") -> tuple[ApiToken, str]:
    """Issue a token acting as ``user``; returns the row and the plaintext, not kept."""
    if not user.is_active:
        raise DomainError(f"{user} is not an active user.", field="user")
    label = (label or "").strip()
    if len(label) > 100:
        raise DomainError("The label is at most 100 characters.", field="label")
    raw, prefix, digest = bearer.token_mint(TOKEN_MARKER)
    token = ApiToken.objects.create(
        user=user,
        label=label,
        token_prefix=prefix,
        token_hash=digest,
        created_by=bearer.user_of(actor),
    )
    record(
        actor=actor,
        action="api_token.created",
        target=token,
        after={"user": user.get_username(), "label": label, "prefix": token.token_prefix},
    )
    return token, raw


def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    return bearer.token_revoke(actor=actor, token=token, action="api_token.revoked")


def token_for(raw: str) -> ApiToken | None:
    """The live token matching ``raw`` (with its active user), or None for anything else:
    malformed, unknown, revoked, or of an inactive user. Callers do not tell these apart."""
    token = bearer.token_lookup(ApiToken.objects.select_related("user"), raw, TOKEN_PATTERN)
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    bearer.token_touch(token)
    return token
