"""Bearer-token authentication for the SCIM API (RFC 7644 §2: OAuth 2.0 bearer tokens,
RFC 6750 §2.1 for the header and §3 for the ``WWW-Authenticate`` challenge)."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from governance.core.actor import Actor
from governance.identities.models import IdentitySource
from scim_api.models import ScimToken
from scim_api.tokens import source_for_token

REALM = "Steward SCIM"


@dataclass(frozen=True)
class ScimPrincipal:
    """Who is calling: an identity source, through one of its tokens. Not a Django user."""

    source: IdentitySource
    token: ScimToken
    is_authenticated = True
    is_anonymous = False

    def __str__(self) -> str:
        return f"scim:{self.source.name}"


class ScimBearerAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``; the scheme is matched case-insensitively.

    Another scheme is not ours to judge: ``authenticate`` returns None, and the view answers
    401 with the challenge from :meth:`authenticate_header` if nothing else authenticated.
    """

    keyword = b"bearer"

    def authenticate(self, request) -> tuple[ScimPrincipal, ScimToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) == 1:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: no bearer token was given."
            )
        if len(parts) > 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: the bearer token must not contain spaces."
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: the bearer token has invalid characters."
            ) from None
        token = source_for_token(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked SCIM bearer token.")
        return ScimPrincipal(source=token.source, token=token), token

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{REALM}"'


def actor_for(request) -> Actor:
    """The audit actor of an authenticated SCIM request: its identity source."""
    principal = getattr(request, "user", None)
    if not isinstance(principal, ScimPrincipal):
        raise exceptions.NotAuthenticated()
    return Actor.for_source(principal.source)
