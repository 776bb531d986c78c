"""A text field encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Written here rather than taken from a field library because we want exactly this: the key is an
explicit ``FIELD_ENCRYPTION_KEY`` (not derived from SECRET_KEY, so rotating one does not lose the
other), several keys may be listed for rotation (MultiFernet: encrypt with the first, decrypt with
any), and a value that cannot be decrypted raises a clear error instead of returning garbage.
The cryptography itself is entirely the library's.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    if not value.startswith(PREFIX):
        raise ImproperlyConfigured("an encrypted field holds a value that was not encrypted")
    try:
        return fernet().decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "an encrypted API credential cannot be decrypted with FIELD_ENCRYPTION_KEY; "
            "was the key changed? List the old key after the new one to rotate."
        ) from None


class EncryptedTextField(models.TextField):
    """Stores ``fernet:<token>``; Python sees the plain text. Empty string stays empty."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
