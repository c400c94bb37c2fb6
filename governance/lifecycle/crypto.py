"""Connector secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from
``STEWARD_ENCRYPTION_KEY``. Without that key Steward refuses to store a secret."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

from governance.core.errors import DomainError


def _fernet() -> Fernet:
    key = settings.STEWARD_ENCRYPTION_KEY
    if not key:
        raise DomainError(
            "Set STEWARD_ENCRYPTION_KEY before storing connector secrets.", code="no_key"
        )
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise DomainError(
            "A stored connector secret cannot be decrypted with the current "
            "STEWARD_ENCRYPTION_KEY.",
            code="bad_key",
        ) from None


class UndecryptableSecret(str):
    """A stored secret the current key cannot read: empty to the application (so the
    connector counts as not configured instead of failing every page that loads it), while
    the ciphertext is kept and written back unchanged."""

    ciphertext: str = ""

    @classmethod
    def of(cls, ciphertext: str) -> UndecryptableSecret:
        secret = cls("")
        secret.ciphertext = ciphertext
        return secret


class EncryptedTextField(models.TextField):
    """Stores ciphertext; Python code sees plaintext. Empty stays empty (no secret).
    Audit snapshots record only whether a value is set (``redact_in_audit``)."""

    redact_in_audit = True

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return decrypt(value)
        except DomainError:
            return UndecryptableSecret.of(value)

    def get_prep_value(self, value):
        if isinstance(value, UndecryptableSecret):
            return value.ciphertext
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)
