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
from typing import TYPE_CHECKING, Protocol

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


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], what: str
) -> actions.Outcome:
    """One POST through the SSRF guard (the name resolved once, the request pinned to that
    address); its outcome, never an exception. `what` names it in the log."""
    import httpx

    now = timezone.now()
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target, host_header, server_name = await pinned(url)
        extensions = {"sni_hostname": server_name} if target.startswith("https:") else {}
        async with client.stream(
            "POST",
            target,
            content=body,
            headers={**headers, "host": host_header},
            extensions=extensions,
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
        logger.exception("%s failed unexpectedly", what)
        return actions.Outcome(
            at=now, duration_ms=took(), error=f"{type(failed).__name__}: {failed}"[:500]
        )


async def attempt(client: httpx.AsyncClient, delivery: Delivery) -> actions.Outcome:
    """One signed POST of the delivery; its outcome, never an exception."""
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    headers = signed_headers(delivery, delivery.endpoint, body, timezone.now())
    return await post(
        client, delivery.endpoint.url, body.encode(), headers, f"webhooks: delivery {delivery.pk}"
    )


class Queue[Row](Protocol):
    """What a Dispatcher sends: rows claimed from an outbox table, each bound for a target (an
    endpoint, a channel) that gets at most PER_ENDPOINT at once. The sync methods run on a
    database thread."""

    name: str

    def claim(self, room: int, per_target: int, busy: set[int]) -> list[Row]: ...

    def target(self, row: Row) -> int: ...

    def key(self, row: Row) -> int: ...

    async def send(self, client: httpx.AsyncClient, row: Row) -> actions.Outcome: ...

    def record(self, results: list[tuple[int, actions.Outcome]]) -> object: ...

    def prune(self) -> object: ...


class Webhooks:
    """The webhook deliveries as a Dispatcher's queue."""

    name = "webhooks"

    def claim(self, room: int, per_target: int, busy: set[int]) -> list[Delivery]:
        return actions.claim_due(room, per_target, busy)

    def target(self, row: Delivery) -> int:
        return row.endpoint_id

    def key(self, row: Delivery) -> int:
        return row.pk

    async def send(self, client: httpx.AsyncClient, row: Delivery) -> actions.Outcome:
        return await attempt(client, row)

    def record(self, results: list[tuple[int, actions.Outcome]]) -> object:
        return actions.record_attempts(results)

    def prune(self) -> object:
        keep = timedelta(days=settings.MC_WEBHOOK_RETENTION_DAYS)
        return actions.prune(timezone.now() - keep)


class Dispatcher[Row]:
    """Claims and sends a queue's rows, within the concurrency bounds; one per queue and
    process that runs the loops (the webhook deliveries; the notifications' messages)."""

    def __init__(self, queue: Queue[Row] | None = None) -> None:
        self.queue: Queue[Row] = queue if queue is not None else Webhooks()  # type: ignore[assignment]
        self.inflight: dict[int, int] = defaultdict(int)
        self.tasks: set[asyncio.Task[None]] = set()
        # Outcomes waiting to be written: one transaction for all that finished meanwhile
        # (one per attempt cost more than the requests to a fast receiver).
        self.finished: list[tuple[Row, actions.Outcome]] = []
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
        claimed = await db(self.queue.claim)(room, PER_ENDPOINT, busy)
        for row in claimed:
            self.inflight[self.queue.target(row)] += 1
            task = asyncio.ensure_future(self._send(row))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(claimed)

    async def _send(self, row: Row) -> None:
        outcome = await self.queue.send(self.client, row)
        self.finished.append((row, outcome))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.ensure_future(self._write())
        await asyncio.shield(self.writer)

    async def _write(self) -> None:
        """Write every finished attempt in one action, until none is waiting; then free their
        slots (a slot is held until its outcome is stored, so claims never run ahead)."""
        while self.finished:
            batch, self.finished = self.finished, []
            try:
                await db(self.queue.record)([(self.queue.key(r), o) for r, o in batch])
            except Exception:
                # Not recorded: their claims lapse and they are sent again (at least once).
                logger.exception(
                    "%s: %d attempts could not be recorded", self.queue.name, len(batch)
                )
            for row, _outcome in batch:
                target = self.queue.target(row)
                self.inflight[target] -= 1
                if self.inflight[target] <= 0:
                    del self.inflight[target]
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
    await run(Dispatcher(Webhooks()), outbox.woken)


async def run[Row](dispatcher: Dispatcher[Row], woken: outbox.Wakeup) -> None:
    """A dispatcher's loop: claim and send whenever this process queued work (`woken`), slots
    free up, or every IDLE_POLL_S; prune its history every PRUNE_EVERY_S."""
    pruned = 0.0
    loop = asyncio.get_running_loop()

    def poke() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(dispatcher.wake.set)

    stop_listening = woken.listen(poke)
    try:
        while True:
            # Both cleared before the claim, never after it: a slot freed (or work queued)
            # while the claim runs must wake the wait below, not be wiped out by it (that race
            # cost a whole poll, ~0.5 s, now and then: the tail of bench/webhooks.py).
            woken.clear()
            dispatcher.wake.clear()
            started = await dispatcher.run_once()
            if time.monotonic() - pruned > PRUNE_EVERY_S:
                pruned = time.monotonic()
                await db(dispatcher.queue.prune)()
            if started:
                continue
            # Nothing to start: wait for freed slots, a commit of this process that queued work
            # (its wakeup pokes this loop from the database thread), or the poll (other
            # processes' commits, retries coming due). It once looked every 20 ms instead: a
            # share of an idle server's CPU.
            if woken.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dispatcher.wake.wait(), IDLE_POLL_S)
    finally:
        stop_listening()
        await asyncio.shield(dispatcher.close())


def register() -> None:
    register_loop("webhook-dispatcher", dispatcher_loop, restart="always")
