"""Strict readers for environment variables: a bad value stops start-up with a message naming it."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """The variable's value, or the default when unset."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """A boolean variable; anything but 1/true/yes/on or 0/false/no/off is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no, on/off); got {raw!r}.")


def env_int(name: str, default: int, *, low: int | None = None, high: int | None = None) -> int:
    """An integer variable within [low, high]."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {raw!r}.") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ImproperlyConfigured(f"{name} must be between {low} and {high}; got {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; empty items are dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of IP addresses or CIDR networks."""
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list IP addresses or networks (e.g. 127.0.0.1,10.0.0.0/8); "
                f"{item!r} is neither."
            ) from None
    return networks


def env_origins(name: str) -> list[str]:
    """A comma-separated list of origins (scheme://host[:port])."""
    from urllib.parse import urlsplit

    origins = env_list(name, [])
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise ImproperlyConfigured(
                f"{name} must list origins such as https://mc.example.com; got {origin!r} "
                "(the scheme is part of the origin: browsers send it)."
            )
        parts = urlsplit(origin)
        # A browser's Origin header is scheme://host[:port] and nothing else: a path, a trailing
        # slash, a query or credentials never match it, and every form POST would fail CSRF.
        if parts.path or parts.query or parts.fragment or "@" in parts.netloc or not parts.netloc:
            bare = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
            raise ImproperlyConfigured(
                f"{name}: {origin!r} is not an origin (scheme://host[:port], no path or trailing "
                f"slash): browsers send {bare!r}, so write that."
            )
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {origin!r} has a port that is not a number."
            ) from None
    return origins


def persistent_secret(path: Path) -> str:
    """A secret kept in a 0600 file, generated on first use."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def database_config(url: str) -> dict[str, Any]:
    """Django's DATABASES entry for a `sqlite:///path` or `postgres://…` URL."""
    import environ

    scheme = url.split(":", 1)[0].lower()
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql", "psql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be sqlite:///path or postgres://user:pass@host/db; got scheme {scheme!r}."
        )
    try:
        db: dict[str, Any] = dict(environ.Env.db_url_config(url))
    except Exception as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL ({exc}).") from None
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # Django's SQLite backend plus an in-process write lock (missioncontrol/db/sqlite/base.py).
        db["ENGINE"] = "missioncontrol.db.sqlite"
        db["OPTIONS"] = {
            # IMMEDIATE: a writer takes the lock at BEGIN, so two writers queue instead of one
            # failing with "database is locked" when it upgrades a read lock mid-transaction.
            "transaction_mode": "IMMEDIATE",
            # Seconds a writer waits for the lock before giving up.
            "timeout": 20,
            # WAL lets readers run beside the one writer; NORMAL is durable across app crashes.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000; PRAGMA mmap_size=268435456",
        }
    return db
