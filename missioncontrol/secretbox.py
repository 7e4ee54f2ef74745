"""Secrets at rest: gateway tokens, device keys and tokens, later webhook signing secrets.

Values are sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under the
installation's encryption key: `MC_ENCRYPTION_KEYS` (comma-separated Fernet keys, the first
seals, all open: rotation), else the keys kept in `<MC_DATA_DIR>/encryption_key` (0600, made on
first use; one per line, the first seals). `manage.py rotate_encryption_key` seals everything
again under a new key. Processes of one installation (the scale-out profile) must share the key: set
`MC_ENCRYPTION_KEYS` on each. It is apart from SECRET_KEY on purpose: rotating SECRET_KEY signs
everyone out, and must not also lose every stored credential.

`SealedField` stores the sealed text; the model attribute is the plain value. A value that no
key opens (the key was lost) reads as "" and `is_sealed_broken()` says so, instead of a 500 on
every page that loads the row.
"""

from __future__ import annotations

import base64
import functools
import os
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


@functools.cache
def _box() -> MultiFernet:
    raw = getattr(settings, "MC_ENCRYPTION_KEYS", []) or _key_file()
    try:
        return MultiFernet([Fernet(key.encode()) for key in raw])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "MC_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes each), comma-separated: "
            f"{exc}"
        ) from None


def key_file_path() -> Any:
    return settings.DATA_DIR / "encryption_key"


def _key_file() -> list[str]:
    path = key_file_path()
    if path.exists():
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if keys:
            return keys
    key = Fernet.generate_key().decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return [key]


def write_key_file(keys: list[str]) -> None:
    """Replace the key file (0600) in one rename: it holds `keys`, the first sealing."""
    path = key_file_path()
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(key + "\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    reset_cache()


def uses_key_file() -> bool:
    return not getattr(settings, "MC_ENCRYPTION_KEYS", [])


def current_keys() -> list[str]:
    """The keys in force, the sealing one first."""
    return list(getattr(settings, "MC_ENCRYPTION_KEYS", []) or _key_file())


def reseal(sealed: str) -> str:
    """`sealed` sealed again under the first key (any key in force opens it)."""
    if not sealed:
        return sealed
    return PREFIX + _box().rotate(sealed[len(PREFIX) :].encode()).decode()


def seal(value: str) -> str:
    """The sealed form of `value` ("" stays "")."""
    if not value:
        return ""
    return PREFIX + _box().encrypt(value.encode()).decode()


def open_sealed(sealed: str) -> str:
    """The plain value ("" when empty). Raises InvalidToken when no key opens it."""
    if not sealed:
        return ""
    if not sealed.startswith(PREFIX):
        raise InvalidToken("not a sealed value")
    return _box().decrypt(sealed[len(PREFIX) :].encode()).decode()


def new_key() -> str:
    """A fresh Fernet key (for MC_ENCRYPTION_KEYS)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class Broken(str):
    """A sealed value no key could open: reads as "", and is written back as it was."""

    broken = True
    sealed: str = ""

    @classmethod
    def of(cls, sealed: str) -> Broken:
        value = cls("")
        value.sealed = sealed
        return value


def is_sealed_broken(value: Any) -> bool:
    return getattr(value, "broken", False)


class SealedField(models.TextField):
    """A text column holding a sealed secret; Python sees the plain value."""

    description = "Encrypted text"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None:
            return value
        try:
            return open_sealed(value)
        except InvalidToken:
            return Broken.of(value)

    def get_prep_value(self, value: Any) -> Any:
        if is_sealed_broken(value):
            # Saving the row keeps the text no key opens (a restored key opens it again).
            return value.sealed
        value = super().get_prep_value(value)
        if value is None:
            return None
        return seal(str(value))


def reset_cache() -> None:
    _box.cache_clear()
