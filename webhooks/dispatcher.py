"""The webhook dispatcher (an edge): a supervisor loop that claims due deliveries and POSTs
them, signed per Standard Webhooks, then records each attempt through webhooks.actions.

- Bounded: at most PER_ENDPOINT requests in flight to one endpoint and OVERALL in all, so a
  slow or dead endpoint never holds up the others' deliveries (measured: bench/webhooks.py).
- 10 s timeout, no redirects, never a transaction held across the request.
- SSRF guard: the URL's name is resolved once and the request goes to that address (the Host
  header and TLS name stay the URL's): no second lookup, so no DNS-rebinding window. Loopback,
  link-local, private and other non-global addresses are refused unless
  MC_WEBHOOK_ALLOW_PRIVATE is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from missioncontrol.supervisor import register_loop
from webhooks import actions, outbox

if TYPE_CHECKING:
    # Imported when the first delivery is sent, not at start: with no endpoints (most
    # installations' first days) the HTTP client is ~20 MB of idle memory for nothing.
    import httpx
from webhooks.models import Delivery, Endpoint
from webhooks.targets import Refused, pinned

logger = logging.getLogger(__name__)
db = database_sync_to_async

TIMEOUT_S = 10.0
PER_ENDPOINT = 16
OVERALL = 64
IDLE_POLL_S = 0.5  # how often to look for work no commit of this process announced
PRUNE_EVERY_S = 3600.0
USER_AGENT = "MissionControl-Webhooks/1"
KEPT_HEADERS = 40


def signed_headers(
    delivery: Delivery, endpoint: Endpoint, body: str, now: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers: a stable id, the time, and v1 signatures with the secret
    (and the previous one during a rotation's grace)."""
    secrets = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_until and endpoint.previous_until > now:
        secrets.append(endpoint.previous_secret)
    signatures = [Webhook(s).sign(delivery.webhook_id, now, body) for s in secrets]
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


async def attempt(client: httpx.AsyncClient, delivery: Delivery) -> actions.Outcome:
    """One POST of the delivery; its outcome, never an exception."""
    import httpx

    now = timezone.now()
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    try:
        target, host_header, server_name = await pinned(delivery.endpoint.url)
        headers = {**signed_headers(delivery, delivery.endpoint, body, now), "host": host_header}
        extensions = {"sni_hostname": server_name} if target.startswith("https:") else {}
        async with client.stream(
            "POST", target, content=body.encode(), headers=headers, extensions=extensions
        ) as response:
            kept = bytearray()
            async for chunk in response.aiter_bytes():
                kept += chunk
                if len(kept) >= actions.RESPONSE_KEPT:
                    break
            return actions.Outcome(
                at=now,
                duration_ms=took(),
                status_code=response.status_code,
                headers=dict(list(response.headers.items())[:KEPT_HEADERS]),
                body=bytes(kept[: actions.RESPONSE_KEPT]).decode("utf-8", "replace"),
            )
    except Refused as refused:
        return actions.Outcome(at=now, duration_ms=took(), error=str(refused))
    except httpx.TimeoutException:
        return actions.Outcome(
            at=now, duration_ms=took(), error=f"no answer within {TIMEOUT_S:.0f} s"
        )
    except httpx.HTTPError as failed:
        return actions.Outcome(
            at=now, duration_ms=took(), error=f"{type(failed).__name__}: {failed}"[:500]
        )
    except Exception as failed:  # whatever else: an attempt that failed, never a lost slot
        logger.exception("webhooks: delivery %s failed unexpectedly", delivery.pk)
        return actions.Outcome(
            at=now, duration_ms=took(), error=f"{type(failed).__name__}: {failed}"[:500]
        )


class Dispatcher:
    """Claims and sends, within the concurrency bounds; one per process that runs the loops."""

    def __init__(self) -> None:
        self.inflight: dict[int, int] = defaultdict(int)
        self.tasks: set[asyncio.Task[None]] = set()
        # Outcomes waiting to be written: one transaction for all that finished meanwhile
        # (one per attempt cost more than the requests to a fast receiver).
        self.finished: list[tuple[Delivery, actions.Outcome]] = []
        self.writer: asyncio.Future[None] | None = None
        self.wake = asyncio.Event()  # slots freed in this loop: claim again at once
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """Made at the first send (see the import above)."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=TIMEOUT_S,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=OVERALL, max_keepalive_connections=OVERALL),
                trust_env=False,  # no proxy from the environment between us and the target
            )
        return self._client

    async def run_once(self) -> int:
        """Claim what is due and start sending it; the number started."""
        # Room by slots held (freed when an outcome is stored), not by tasks alive: a send's
        # task lingers until the whole write batch it joined is done, and counting those left
        # no room after a wake — the loop then slept a whole poll (~0.5 s; measured with one
        # dead endpoint holding 16 slots, bench/webhooks.py).
        room = OVERALL - sum(self.inflight.values())
        if room <= 0:
            return 0
        busy = {e for e, n in self.inflight.items() if n >= PER_ENDPOINT}
        claimed = await db(actions.claim_due)(room, PER_ENDPOINT, busy)
        for delivery in claimed:
            self.inflight[delivery.endpoint_id] += 1
            task = asyncio.ensure_future(self._send(delivery))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(claimed)

    async def _send(self, delivery: Delivery) -> None:
        outcome = await attempt(self.client, delivery)
        self.finished.append((delivery, outcome))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.ensure_future(self._write())
        await asyncio.shield(self.writer)

    async def _write(self) -> None:
        """Write every finished attempt in one action, until none is waiting; then free their
        slots (a slot is held until its outcome is stored, so claims never run ahead)."""
        while self.finished:
            batch, self.finished = self.finished, []
            try:
                await db(actions.record_attempts)([(d.pk, o) for d, o in batch])
            except Exception:
                # Not recorded: their claims lapse and they are sent again (at least once).
                logger.exception("webhooks: %d attempts could not be recorded", len(batch))
            for delivery, _outcome in batch:
                self.inflight[delivery.endpoint_id] -= 1
                if self.inflight[delivery.endpoint_id] <= 0:
                    del self.inflight[delivery.endpoint_id]
            self.wake.set()  # room for more

    async def drain(self) -> None:
        """Wait for every send started (tests, and a stopping process)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()


async def dispatcher_loop() -> None:
    dispatcher = Dispatcher()
    pruned = 0.0
    loop = asyncio.get_running_loop()

    def poke() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(dispatcher.wake.set)

    stop_listening = outbox.woken.listen(poke)
    try:
        while True:
            # Both cleared before the claim, never after it: a slot freed (or work queued)
            # while the claim runs must wake the wait below, not be wiped out by it (that race
            # cost a whole poll, ~0.5 s, now and then: the tail of bench/webhooks.py).
            outbox.woken.clear()
            dispatcher.wake.clear()
            started = await dispatcher.run_once()
            if time.monotonic() - pruned > PRUNE_EVERY_S:
                pruned = time.monotonic()
                keep = timedelta(days=settings.MC_WEBHOOK_RETENTION_DAYS)
                await db(actions.prune)(timezone.now() - keep)
            if started:
                continue
            # Nothing to start: wait for freed slots, a commit of this process that queued work
            # (its wakeup pokes this loop from the database thread), or the poll (other
            # processes' commits, retries coming due). It once looked every 20 ms instead: a
            # share of an idle server's CPU.
            if outbox.woken.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dispatcher.wake.wait(), IDLE_POLL_S)
    finally:
        stop_listening()
        await asyncio.shield(dispatcher.close())


def register() -> None:
    register_loop("webhook-dispatcher", dispatcher_loop, restart="always")
