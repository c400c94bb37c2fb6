"""SCIM errors (RFC 7644 §3.12): one exception type and one renderer of the error body."""

from __future__ import annotations

import logging

from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf

from governance.core.errors import Conflict, DomainError, InvalidTransition
from scim_api.schema import ERROR_SCHEMA

log = logging.getLogger(__name__)
SCIM_CONTENT_TYPE = "application/scim+json"


class ScimError(Exception):
    """An error answered with the SCIM error body. ``scim_type`` per RFC 7644 Table 9."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None, headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict:
    body = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def error_response(error: ScimError) -> JsonResponse:
    response = JsonResponse(
        error_body(error.status, error.detail, error.scim_type),
        status=error.status,
        content_type=SCIM_CONTENT_TYPE,
    )
    for name, value in error.headers.items():
        response[name] = value
    return response


def from_drf(exc: Exception) -> ScimError:
    """Translate DRF/Django exceptions raised before our code runs (auth, parsing)."""
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return ScimError(
            401,
            str(getattr(exc, "detail", "Authentication required.")),
            headers={"WWW-Authenticate": 'Bearer realm="Steward SCIM"'},
        )
    if isinstance(exc, drf.PermissionDenied):
        return ScimError(403, str(exc.detail))
    if isinstance(exc, Http404 | drf.NotFound):
        return ScimError(404, "Resource not found.")
    if isinstance(exc, drf.MethodNotAllowed):
        return ScimError(405, str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return ScimError(
            415, "Send the body as application/scim+json or application/json.", "invalidSyntax"
        )
    if isinstance(exc, drf.ParseError):
        return ScimError(400, "The request body is not valid JSON.", "invalidSyntax")
    if isinstance(exc, drf.Throttled):
        return ScimError(429, "Too many requests; retry later.")
    if isinstance(exc, Conflict):
        return ScimError(409, exc.message, "uniqueness")
    if isinstance(exc, InvalidTransition):
        return ScimError(409, exc.message)
    if isinstance(exc, DomainError):
        return ScimError(400, exc.message, "invalidValue")
    if isinstance(exc, drf.APIException):
        return ScimError(exc.status_code, str(exc.detail))
    log.exception("Unexpected error in the SCIM API")
    return ScimError(500, "The server could not complete the request.")


def scim_exception_handler(exc, context):
    """DRF exception handler for the SCIM views: every failure gets the SCIM error body."""
    error = exc if isinstance(exc, ScimError) else from_drf(exc)
    return error_response(error)
