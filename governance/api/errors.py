"""Domain errors as API answers: field errors (400), 403, 404 or 409; never a 500 for bad
input, and never an internal detail in the body."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from governance.core.errors import Conflict, DomainError, NotFound, PermissionDenied


def domain_error_response(exc: DomainError) -> Response:
    if isinstance(exc, PermissionDenied):
        return Response({"detail": exc.message}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, NotFound):
        return Response({"detail": exc.message}, status=status.HTTP_404_NOT_FOUND)
    code = status.HTTP_409_CONFLICT if isinstance(exc, Conflict) else status.HTTP_400_BAD_REQUEST
    return Response({exc.field or "non_field_errors": [exc.message]}, status=code)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return domain_error_response(exc)
    if isinstance(exc, DjangoValidationError):
        detail = getattr(exc, "message_dict", None) or {"non_field_errors": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
