"""``Authorization: Token <key>`` for the governance API."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from governance.api.tokens import token_for

KEYWORD = "Token"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates as the token's portal user; a bad token is a 401, never a hint why."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = token_for(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return token.user, token

    def authenticate_header(self, request):
        return KEYWORD
