"""Agent API keys: `mc_<prefix>_<secret>`; the prefix finds the row, SHA-256 checks the secret.

Verification is on every heartbeat, so keys are cached in-process. A change made in this
process (revoke, the Django admin, the shell) drops the entry at once (signals, connected in
agents/apps.py); every process also reads its cached keys' rows again every CHANGE_CHECK_S, so
a change made anywhere is honoured everywhere within that. Expiry is checked on every use.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents.models import AgentKey
from missioncontrol import ratelimit, state
from missioncontrol.errors import Forbidden, RateLimited, Unauthenticated

KEY_RE = re.compile(r"^mc_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
KEY_TTL_S = 600.0
# Any change to a key row (revoked, expiry moved, deleted, its agent deleted or renamed)
# reaches every process's cache within this.
CHANGE_CHECK_S = 2.0
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class KeyInfo:
    """What a request may do with its key."""

    id: int
    prefix: str
    kind: str
    agent_id: int | None
    agent_name: str | None
    secret_hash: str
    expires_at: datetime | None
    revoked: bool

    def usable(self, now: datetime) -> bool:
        # A used-up enrollment key still authenticates; registering with it answers 403.
        return not self.revoked and (self.expires_at is None or self.expires_at > now)


def generate() -> tuple[str, str, str]:
    """A new key: (full key shown once, prefix, secret hash)."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return f"mc_{prefix}_{secret}", prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_cache: dict[str, tuple[float, KeyInfo | None]] = {}
_lock = threading.Lock()


def _rows() -> Any:
    return AgentKey.objects.select_related("agent")


def _info(row: AgentKey) -> KeyInfo:
    return KeyInfo(
        id=row.pk,
        prefix=row.prefix,
        kind=row.kind,
        agent_id=row.agent_id,
        agent_name=row.agent.name if row.agent else None,
        secret_hash=row.secret_hash,
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
    )


def _load(prefix: str) -> KeyInfo | None:
    row = _rows().filter(prefix=prefix).first()
    return None if row is None else _info(row)


def cached(prefix: str) -> tuple[bool, KeyInfo | None]:
    """(hit, info) from the cache without touching the database."""
    with _lock:
        entry = _cache.get(prefix)
    if entry is None or time.monotonic() - entry[0] > KEY_TTL_S:
        return False, None
    return True, entry[1]


def remember(prefix: str, info: KeyInfo | None) -> None:
    with _lock:
        _cache[prefix] = (time.monotonic(), info)
        if len(_cache) > 50000:
            _cache.clear()


_checked_at = 0.0
CHECK_CHUNK = 500


def claim_check() -> bool:
    """True for exactly one caller once CHANGE_CHECK_S has passed (that caller then runs
    refresh_changed): requests arriving together must not all run the check."""
    global _checked_at
    with _lock:
        now = time.monotonic()
        if now - _checked_at < CHANGE_CHECK_S:
            return False
        _checked_at = now
        return True


def refresh_changed() -> None:
    """Forget every cached key whose row changed or went away, whoever changed it (the app, the
    Django admin, the shell, another process): the cached keys' rows are read again (one
    indexed query per CHECK_CHUNK keys) and compared with what is cached. A deleted agent
    deletes its keys, so its key goes too. Callers claim it first (claim_check)."""
    with _lock:
        cached = {prefix: info for prefix, (_at, info) in _cache.items() if info is not None}
    prefixes = list(cached)
    for start in range(0, len(prefixes), CHECK_CHUNK):
        chunk = prefixes[start : start + CHECK_CHUNK]
        fresh = {info.prefix: info for info in map(_info, _rows().filter(prefix__in=chunk))}
        for prefix in chunk:
            if fresh.get(prefix) != cached[prefix]:
                invalidate(prefix)


def invalidate(prefix: str) -> None:
    with _lock:
        _cache.pop(prefix, None)


def from_headers(authorization: str | None, x_api_key: str | None) -> str:
    """The key a request sends: `Authorization: Bearer <key>`, else `X-Api-Key` ("" if none)."""
    raw = authorization or ""
    if raw[:7].lower() == "bearer ":
        return raw[7:].strip()
    return (x_api_key or "").strip()


NO_KEY = "Send the agent's API key as 'Authorization: Bearer <key>' or 'X-Api-Key'."
NOT_A_KEY = "That is not a Mission Control API key."
UNKNOWN = "This API key is unknown, revoked or expired."
ENROLLMENT_ONLY = "An enrollment key can only register agents."
TOO_MANY = "Too many requests for this key."


def _parts(authorization: str | None, x_api_key: str | None) -> tuple[str, str]:
    raw = from_headers(authorization, x_api_key)
    if not raw:
        raise Unauthenticated(NO_KEY)
    parts = split(raw)
    if parts is None:
        raise Unauthenticated(NOT_A_KEY)
    return parts


def _admit(info: KeyInfo | None, enrollment_ok: bool) -> KeyInfo:
    if info is None:
        raise Unauthenticated(UNKNOWN)
    if not enrollment_ok and (info.kind != AgentKey.Kind.AGENT or info.agent_id is None):
        raise Forbidden(ENROLLMENT_ONLY)
    return info


def authenticate(
    authorization: str | None, x_api_key: str | None, *, enrollment_ok: bool = False
) -> KeyInfo:
    """The one agent-key check of every agent-key route (synchronous callers: the API's views
    and the agents' event stream): the key from the headers, verified (cache, then the
    database), of the right kind, within its rate limit. Raises Unauthenticated (401),
    Forbidden (403: an enrollment key where an agent's own key is needed) or RateLimited
    (429). `aauthenticate` is the same for the event loop's fast routes."""
    prefix, secret = _parts(authorization, x_api_key)
    if claim_check():
        refresh_changed()
    hit, info = cached(prefix)
    if not hit:
        info = _load(prefix)
        remember(prefix, info)
    key = _admit(check(info, secret), enrollment_ok)
    wait = rate_limited(key.id)
    if wait:
        raise RateLimited(TOO_MANY, retry_after=wait)
    return key


def _closing[T](fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on one of the event loop's executor threads (a cache miss: rare), its
    database connection closed after: nothing manages connections on those threads, and one
    left open there outlives its use (and the test database, which PostgreSQL will not drop
    while a connection to it is open)."""
    try:
        return fn(*args)
    finally:
        connection.close()


async def aauthenticate(
    authorization: str | None, x_api_key: str | None, *, enrollment_ok: bool = False
) -> KeyInfo:
    """authenticate(), on the event loop: the database only in the executor, on a cache miss."""
    prefix, secret = _parts(authorization, x_api_key)
    loop = asyncio.get_running_loop()
    if claim_check():
        # Keys changed anywhere (admin, shell, another process) are forgotten first; one
        # request in CHANGE_CHECK_S does it (and waits for it), the others go on.
        await loop.run_in_executor(None, _closing, refresh_changed)
    hit, info = cached(prefix)
    if not hit:
        info = await loop.run_in_executor(None, _closing, _load, prefix)
        remember(prefix, info)
    key = _admit(check(info, secret), enrollment_ok)
    wait = await arate_limited(key.id)
    if wait:
        raise RateLimited(TOO_MANY, retry_after=wait)
    return key


# Per key: sustained requests per second and burst, on every agent-key route (a runaway loop
# gets 429, not the database). Shared by every process when Redis is configured.
RATE_PER_S = 20.0
RATE_BURST = 60.0
_bucket = ratelimit.TokenBucket("agent-key", RATE_PER_S, RATE_BURST)


def rate_limited(key_id: int) -> float:
    """0 if the request may go, else seconds until it may (synchronous callers)."""
    if settings.MC_API_RATE_LIMIT_OFF:
        return 0.0
    return _bucket.take(key_id)


async def arate_limited(key_id: int) -> float:
    """As rate_limited(), for the event loop's own routes."""
    if settings.MC_API_RATE_LIMIT_OFF:
        return 0.0
    return await _bucket.atake(key_id)


def reset() -> None:
    """Forget every cached key and revocation check (tests)."""
    global _checked_at
    with _lock:
        _cache.clear()
    _checked_at = 0.0


def split(raw: str) -> tuple[str, str] | None:
    match = KEY_RE.match(raw.strip())
    return (match.group(1), match.group(2)) if match else None


def check(info: KeyInfo | None, secret: str) -> KeyInfo | None:
    """The key if the secret matches and it may still be used."""
    if info is None or not hmac.compare_digest(info.secret_hash, hash_secret(secret)):
        return None
    return info if info.usable(timezone.now()) else None


def verify(raw: str) -> KeyInfo | None:
    """Whether a key is (still) good: cache first, then the database (no rate limit: a stream
    checks the key that opened it)."""
    parts = split(raw)
    if parts is None:
        return None
    prefix, secret = parts
    if claim_check():
        refresh_changed()
    hit, info = cached(prefix)
    if not hit:
        info = _load(prefix)
        remember(prefix, info)
    return check(info, secret)


state.register("agent keys", reset)


def forget_key_row(sender: Any, instance: Any, **kwargs: Any) -> None:
    """post_save / post_delete of an AgentKey: this process forgets it at once."""
    invalidate(instance.prefix)


def forget_agent_keys(sender: Any, instance: Any, **kwargs: Any) -> None:
    """An agent deleted or renamed: its keys are forgotten at once (they are deleted with it)."""
    with _lock:
        gone = [p for p, (_at, info) in _cache.items() if info and info.agent_id == instance.pk]
    for prefix in gone:
        invalidate(prefix)
