"""Agent API keys: `mc_<prefix>_<secret>`; the prefix finds the row, SHA-256 checks the secret.

Verification is on every heartbeat, so keys are cached in-process. Revoking drops the entry
here at once; every process also asks the database for keys revoked lately at most every
REVOCATION_CHECK_S, so another process stops honouring a revoked key within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from agents.models import AgentKey
from missioncontrol import state

KEY_RE = re.compile(r"^mc_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
KEY_TTL_S = 600.0
REVOCATION_CHECK_S = 2.0
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


def _load(prefix: str) -> KeyInfo | None:
    row = AgentKey.objects.select_related("agent").filter(prefix=prefix).first()
    if row is None:
        return None
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


_revocations_seen_at: datetime | None = None
_revocations_checked = 0.0


def revocations_due() -> bool:
    return time.monotonic() - _revocations_checked >= REVOCATION_CHECK_S


def refresh_revocations() -> None:
    """Forget cached keys revoked (by any process) since the last check: one indexed query."""
    global _revocations_seen_at, _revocations_checked
    now = timezone.now()
    since = _revocations_seen_at or now - timedelta(seconds=KEY_TTL_S)
    # A margin for clocks and commits in flight; forgetting a key twice costs one reload.
    for prefix in AgentKey.objects.filter(revoked_at__gte=since - timedelta(seconds=5)).values_list(
        "prefix", flat=True
    ):
        invalidate(prefix)
    _revocations_seen_at = now
    _revocations_checked = time.monotonic()


def invalidate(prefix: str) -> None:
    with _lock:
        _cache.pop(prefix, None)


def from_headers(authorization: str | None, x_api_key: str | None) -> str:
    """The key a request sends: `Authorization: Bearer <key>`, else `X-Api-Key` ("" if none).
    The one reader of agent keys, for every agent-key route (fast path, DRF, SSE)."""
    raw = authorization or ""
    if raw[:7].lower() == "bearer ":
        return raw[7:].strip()
    return (x_api_key or "").strip()


# Per key: sustained requests per second and burst, on every agent-key route (a runaway loop
# gets 429, not the database).
RATE_PER_S = 20.0
RATE_BURST = 60.0
_buckets: dict[int, tuple[float, float]] = {}


def rate_limited(key_id: int) -> float:
    """0 if the request may go, else seconds until it may (token bucket per key)."""
    if settings.MC_API_RATE_LIMIT_OFF:
        return 0.0
    now = time.monotonic()
    with _lock:
        tokens, at = _buckets.get(key_id, (RATE_BURST, now))
        tokens = min(RATE_BURST, tokens + (now - at) * RATE_PER_S)
        if tokens < 1:
            _buckets[key_id] = (tokens, now)
            return (1 - tokens) / RATE_PER_S
        _buckets[key_id] = (tokens - 1, now)
    return 0.0


def reset() -> None:
    """Forget every cached key, rate bucket and revocation check (tests)."""
    global _revocations_seen_at, _revocations_checked
    with _lock:
        _cache.clear()
        _buckets.clear()
    _revocations_seen_at, _revocations_checked = None, 0.0


def split(raw: str) -> tuple[str, str] | None:
    match = KEY_RE.match(raw.strip())
    return (match.group(1), match.group(2)) if match else None


def check(info: KeyInfo | None, secret: str) -> KeyInfo | None:
    """The key if the secret matches and it may still be used."""
    if info is None or not hmac.compare_digest(info.secret_hash, hash_secret(secret)):
        return None
    return info if info.usable(timezone.now()) else None


def verify(raw: str) -> KeyInfo | None:
    """Synchronous verification (DRF views, commands): cache first, then the database."""
    parts = split(raw)
    if parts is None:
        return None
    prefix, secret = parts
    if revocations_due():
        refresh_revocations()
    hit, info = cached(prefix)
    if not hit:
        info = _load(prefix)
        remember(prefix, info)
    return check(info, secret)


def load(prefix: str) -> KeyInfo | None:
    return _load(prefix)


state.register("agent keys and rate buckets", reset)
