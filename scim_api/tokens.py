"""SCIM bearer tokens: create, revoke (services) and resolve a presented token (selector).

A token is ``stw_scim_`` followed by ``secrets.token_urlsafe(32)`` (256 random bits). Only
its SHA-256 is stored: with that much entropy a fast unsalted hash cannot be brute-forced,
and it lets the token be found by an indexed lookup. The plaintext leaves
:func:`token_create` once and is never written anywhere, audit log included.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from governance.audit.services import record
from governance.core import bearer
from governance.core.actor import Actor
from governance.core.bearer import LAST_USED_RESOLUTION, hash_token  # noqa: F401 - interface
from governance.core.errors import DomainError
from governance.identities.models import IdentitySource
from scim_api.models import ScimToken

TOKEN_MARKER = "stw_scim_"  # noqa: S105 - the public marker, not a secret
PREFIX_LENGTH = len(TOKEN_MARKER) + bearer.PREFIX_RANDOM_CHARS
TOKEN_PATTERN = bearer.token_pattern(TOKEN_MARKER)


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
    raw, prefix, digest = bearer.token_mint(TOKEN_MARKER)
    token = ScimToken(
        source=source,
        label=(label or "").strip(),
        token_prefix=prefix,
        token_hash=digest,
        created_by=bearer.user_of(actor),
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


def token_revoke(*, actor: Actor, token: ScimToken) -> ScimToken:
    """Stop a token from authenticating. The row stays, so history keeps its meaning."""
    return bearer.token_revoke(actor=actor, token=token, action="scim_token.revoked")


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
    token = bearer.token_lookup(ScimToken.objects.select_related("source"), raw, TOKEN_PATTERN)
    if token is None or token.revoked_at is not None or not token.source.enabled:
        return None
    bearer.token_touch(token)
    return token
