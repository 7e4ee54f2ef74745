"""Token buckets, per process or shared by every process through Redis.

One SQLite process keeps its buckets in memory. Several processes (the scale-out profile:
`serve --no-workers` behind a proxy) must share them, or an agent spreading its requests over
N processes gets N times its budget: with `MC_SHARED_STATE_URL` (by default the channel layer's
Redis, when it is Redis) a bucket lives in Redis and one Lua script takes a token atomically,
on Redis's clock, in one round trip. If Redis cannot be reached the process falls back to its
own buckets for RETRY_S (logged), so a Redis outage costs no more than one timeout every few
seconds and lets nobody through unlimited.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from typing import Any

from django.conf import settings

from missioncontrol import state

logger = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV rate per second, burst. Returns the wait in seconds (0: allowed).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


# Keys one process keeps buckets for: past this, the full (idle) ones go, then the oldest. A
# stranger sending random ids (check-ins) must not grow the table without bound (issue #30 §5);
# a dropped bucket only starts that key afresh.
MAX_KEYS = 10_000


class TokenBucket:
    """`rate` requests per second sustained, `burst` at once, per key."""

    def __init__(self, name: str, rate: float, burst: float) -> None:
        self.name, self.rate, self.burst = name, rate, burst
        self._local: dict[object, tuple[float, float]] = {}
        self._lock = threading.Lock()
        _buckets[name] = self

    def _redis_key(self, key: object) -> str:
        return f"{settings.MC_SHARED_STATE_PREFIX}:rl:{self.name}:{key}"

    def take_local(self, key: object) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._local.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._local[key] = (tokens, now)
                return (1 - tokens) / self.rate
            self._local[key] = (tokens - 1, now)
            if len(self._local) > MAX_KEYS:
                self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        """Under the lock: forget buckets that have refilled, then the oldest half if need be."""
        full = now - self.burst / self.rate
        self._local = {k: v for k, v in self._local.items() if v[1] > full}
        if len(self._local) > MAX_KEYS // 2:
            kept = list(self._local.items())[len(self._local) // 2 :]
            self._local = dict(kept)

    def take(self, key: object) -> float:
        """0 if one request may go now, else the seconds until it may (synchronous callers)."""
        client = _sync_client()
        if client is None:
            return self.take_local(key)
        try:
            return float(client.eval(_TAKE, 1, self._redis_key(key), self.rate, self.burst))
        except Exception as exc:
            _unreachable(exc)
            return self.take_local(key)

    async def atake(self, key: object) -> float:
        """As take(), without blocking the event loop on Redis."""
        client = _async_client()
        if client is None:
            return self.take_local(key)
        try:
            return float(await client.eval(_TAKE, 1, self._redis_key(key), self.rate, self.burst))
        except Exception as exc:
            _unreachable(exc)
            return self.take_local(key)

    def reset(self) -> None:
        with self._lock:
            self._local.clear()
        client = _sync_client()
        if client is not None:
            try:
                names = list(client.scan_iter(match=self._redis_key("*"), count=1000))
                if names:
                    client.delete(*names)
            except Exception as exc:
                _unreachable(exc)


_buckets: dict[str, TokenBucket] = {}
_sync: Any = None
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
_warned_at = 0.0
_down_until = 0.0
RETRY_S = 5.0


def shared() -> bool:
    """Whether buckets are shared across processes (a Redis URL is configured and Redis did not
    just fail: after a failure this process uses its own buckets for RETRY_S)."""
    return bool(settings.MC_SHARED_STATE_URL) and time.monotonic() >= _down_until


def _sync_client() -> Any:
    global _sync
    if not shared():
        return None
    if _sync is None:
        import redis

        _sync = redis.Redis.from_url(
            settings.MC_SHARED_STATE_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
    return _sync


def _async_client() -> Any:
    # redis.asyncio clients belong to the loop that made them: one per loop.
    if not shared():
        return None
    loop = asyncio.get_running_loop()
    client = _async.get(loop)
    if client is None:
        import redis.asyncio

        client = _async[loop] = redis.asyncio.Redis.from_url(
            settings.MC_SHARED_STATE_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
    return client


def _unreachable(exc: Exception) -> None:
    global _warned_at, _down_until
    now = time.monotonic()
    _down_until = now + RETRY_S
    if now - _warned_at > 60:
        _warned_at = now
        logger.warning("rate limits: Redis unreachable (%s); using this process's buckets", exc)


def reset() -> None:
    """Empty every bucket, here and in Redis (tests)."""
    global _sync, _down_until, _warned_at
    _down_until = _warned_at = 0.0
    for bucket in _buckets.values():
        bucket.reset()
    _async.clear()
    if _sync is not None:
        _sync.close()
        _sync = None


state.register("rate-limit buckets", reset)
