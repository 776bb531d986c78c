"""A text field encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Written here rather than taken from a field library because we want exactly this: the key is an
explicit ``FIELD_ENCRYPTION_KEY`` (not derived from SECRET_KEY, so rotating one does not lose the
other), several keys may be listed for rotation (MultiFernet: encrypt with the first, decrypt with
any), and a value that cannot be decrypted is a state its row is in, not an error for every
reader of the row. The cryptography itself is entirely the library's.

Loading a row never decrypts: the field holds a :class:`Sealed` value (the stored token), which
is decrypted only by :meth:`Sealed.reveal` when the plain text is needed (building a live
adapter), raising :class:`CredentialsUnreadable` if the key cannot read it. A row can then be
listed, halted, valued and edited whatever its credentials are. Saving a row stores a sealed
value as it was, re-encrypted under the newest key when the keys can read it (rotation).
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

PREFIX = "fernet:"

#: What a trader is told about an account whose stored credentials cannot be decrypted.
UNREADABLE = "credentials unreadable — enter them again in the admin"


class CredentialsUnreadable(Exception):
    """A stored credential cannot be decrypted with FIELD_ENCRYPTION_KEY (key changed or lost,
    or the stored text was never encrypted): the account's keys must be entered again."""


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return PREFIX + fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    if not value.startswith(PREFIX):
        raise CredentialsUnreadable(f"{UNREADABLE} (the stored value was not encrypted)")
    try:
        return fernet().decrypt(value[len(PREFIX) :].encode()).decode()
    except (InvalidToken, UnicodeDecodeError):
        raise CredentialsUnreadable(
            f"{UNREADABLE} (they cannot be decrypted with FIELD_ENCRYPTION_KEY: was the key "
            "changed? List the old key after the new one to rotate)"
        ) from None


class Sealed:
    """A stored ``fernet:<token>`` as loaded: never shown, decrypted only by :meth:`reveal`."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def reveal(self) -> str:
        """The plain text; :class:`CredentialsUnreadable` if the keys cannot decrypt it."""
        return decrypt(self.token)

    @property
    def readable(self) -> bool:
        try:
            self.reveal()
        except CredentialsUnreadable:
            return False
        return True

    def for_storage(self) -> str:
        """The token to store: re-encrypted under the newest key if readable, else unchanged
        (an unreadable value is kept, not lost, until someone enters or clears it)."""
        if not self.token.startswith(PREFIX):
            return self.token
        try:
            return PREFIX + fernet().rotate(self.token[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            return self.token

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other) -> bool:
        return isinstance(other, Sealed) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __repr__(self) -> str:
        return "<encrypted>"

    __str__ = __repr__


def plain(value) -> str:
    """The plain text of a field value: a :class:`Sealed` one revealed, a str as is ("" for
    None). Raises :class:`CredentialsUnreadable`."""
    if isinstance(value, Sealed):
        return value.reveal()
    return value or ""


class EncryptedTextField(models.TextField):
    """Stores ``fernet:<token>``. A loaded value is :class:`Sealed` (see the module docstring);
    a value assigned in Python is plain text, encrypted on save. Empty string stays empty."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return Sealed(value)

    def to_python(self, value):
        # A serialized value (dumpdata writes the token, never the plain text) loads sealed.
        if isinstance(value, Sealed):
            return value
        if isinstance(value, str) and value.startswith(PREFIX):
            return Sealed(value)
        return super().to_python(value)

    def get_prep_value(self, value):
        if isinstance(value, Sealed):
            return value.for_storage()
        value = models.Field.get_prep_value(self, value)  # lazy strings; no to_python
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        if isinstance(value, Sealed):
            return value.token
        return encrypt(value) if value else ""
