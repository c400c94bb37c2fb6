"""Domain errors raised by services; views translate them into HTTP answers."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the change. ``field`` names the offending input, if any."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class InvalidTransition(DomainError):
    """The object is not in a state that allows the requested change."""

    code = "invalid_transition"


class Conflict(DomainError):
    """The change would break a uniqueness rule (maps to HTTP 409)."""

    code = "conflict"


class NotFound(DomainError):
    code = "not_found"


class PermissionDenied(DomainError):
    code = "permission_denied"
