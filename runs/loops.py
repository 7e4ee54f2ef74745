"""The runs' background loops: leases that ran out are lost on time, even with no request; and
runs dispatched to gateway agents are sent to their gateway (its `agent` method, through the
connector that holds the connection: gateways/commands.py), each once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from gateways import commands, frames
from gateways.protocol import GatewayError
from missioncontrol import subscriptions
from missioncontrol.supervisor import register_loop
from runs import access, actions

logger = logging.getLogger(__name__)
db = database_sync_to_async

# What no run event announced (a gateway connected with runs queued for it) is looked for this
# often; an idle server's polls were a third of its CPU at 0.2 s.
SEND_POLL_S = 2.0
RENEW_EVERY_S = 30.0
# How often the sender looks for gateways that connected again (a query of connected gateways).
RECONNECT_LOOK_S = 2.0
# A gateway not reachable now: its runs wait (queued again) this long before the next try.
UNSENT_BACKOFF_S = 2.0


# How often leases and budgets are checked: a run a spent budget pauses is stopped within this
# (plus the budgets' own 1 s cache).
SWEEP_S = 2.0


async def lease_sweep_loop() -> None:
    while True:
        await db(actions.sweep_leases)()
        for run in await db(actions.stop_paused_runs)():
            await db(access.stop_on_gateway)(run)
        await asyncio.sleep(min(SWEEP_S, settings.MC_AGENT_SWEEP_INTERVAL_S))


async def send(order: actions.GatewaySend) -> None:
    """One run to its gateway: running when it answers, failed when it refuses (its words),
    queued again when it cannot be reached."""
    params = {
        "message": order.prompt,
        "agentId": order.agent_external_id,
        "sessionKey": order.session_key,
        "deliver": False,
        "idempotencyKey": order.idempotency_key,
    }
    try:
        answer = await commands.acall(order.gateway_id, "agent", params)
    except GatewayError as refused:
        await db(actions.gateway_refused)(order.run_id, refused.message, refused.code)
    except commands.Unavailable as unavailable:
        logger.info("run %s not sent yet: %s", order.run_id, unavailable)
        await asyncio.sleep(UNSENT_BACKOFF_S)
        await db(actions.gateway_unsent)(order.run_id)
    else:
        await db(actions.gateway_accepted)(order.run_id, frames.run_id(answer))


# A gateway run older than this is asked about on each renewal (its end may have been missed:
# either side restarted, the connection dropped).
CHECK_AFTER_S = 20.0


# A run the gateway neither runs nor answered (it restarted mid-run) is lost after it has been
# missing this long (two looks at least: a run just queued behind another is not lost).
LOST_AFTER_S = 60.0
_missing: dict[int, float] = {}  # run id → when it was first found missing


async def _reply_of(check: actions.GatewayCheck, *, only_its_own: bool) -> str | None:
    """The run's final reply in its session's transcript (None: none there). `only_its_own`:
    an assistant message written since the run started (the session is the task's own: a
    reply in it since then is the run's, whatever id a resuming gateway gave it)."""
    try:
        history = await commands.acall(
            check.gateway_id, "chat.history", {"sessionKey": check.session_key, "limit": 20}
        )
    except (GatewayError, commands.Unavailable):
        return None
    messages = history.get("messages") if isinstance(history, dict) else None
    for raw in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(raw, dict) or raw.get("role") != "assistant":
            continue
        line = frames.TranscriptMessage.read(raw)
        at_ms = line.at.timestamp() * 1000 if line.at else 0.0
        if not only_its_own or line.run_id == check.external_run_id or at_ms >= check.started_ms:
            return line.text
    return None


async def _active_in_session(check: actions.GatewayCheck) -> tuple[str, ...] | None:
    """The runs the gateway lists as active in the run's own session (None: can't tell)."""
    try:
        listed = await commands.acall(
            check.gateway_id, "sessions.list", {"activeOnly": True, "limit": 500}
        )
    except (GatewayError, commands.Unavailable):
        return None
    rows = frames.sessions(listed.get("sessions") if isinstance(listed, dict) else None)
    for row in rows:
        if (row.key == check.session_key or check.external_run_id in row.active_run_ids) and (
            row.has_active_run or row.active_run_ids
        ):
            return row.active_run_ids or (check.external_run_id,)
    return ()


async def adopt(check: actions.GatewayCheck) -> None:
    """A run whose end we may have missed: `agent.wait` (no waiting) says whether it ended;
    the reply is read from the session's transcript (agent.wait carries only the status). A run
    the gateway has forgotten (agent.wait answers `timeout` for any id it does not know) and
    does not list as active, with no reply of its own, is lost once missing LOST_AFTER_S; one
    the gateway resumed under a new id (its own restart recovery) is followed by that id."""
    try:
        waited = await commands.acall(
            check.gateway_id, "agent.wait", {"runId": check.external_run_id, "timeoutMs": 0}
        )
    except (GatewayError, commands.Unavailable):
        return  # asked again at the next renewal; the lease loses it if the gateway is gone
    status = waited.get("status") if isinstance(waited, dict) else None
    if status == "ok":
        reply = await _reply_of(check, only_its_own=False)
        await db(actions.gateway_run_ended)(
            check.gateway_id, check.external_run_id, "final", reply=reply or ""
        )
        _missing.pop(check.run_id, None)
    elif status == "error":
        error = frames.text(waited.get("error"), 1000) if isinstance(waited, dict) else ""
        await db(actions.gateway_run_ended)(
            check.gateway_id, check.external_run_id, "error", error=error
        )
        _missing.pop(check.run_id, None)
    elif (active := await _active_in_session(check)) is None:
        return
    elif active:
        _missing.pop(check.run_id, None)
        if check.external_run_id not in active and len(active) == 1:
            # Resumed by the gateway itself (after its restart) under a new id: follow it.
            await db(actions.gateway_run_resumed)(check.run_id, active[0])
    else:
        reply = await _reply_of(check, only_its_own=True)
        if reply is not None:
            await db(actions.gateway_run_ended)(
                check.gateway_id, check.external_run_id, "final", reply=reply
            )
            _missing.pop(check.run_id, None)
            return
        first = _missing.setdefault(check.run_id, time.monotonic())
        if time.monotonic() - first >= LOST_AFTER_S:
            _missing.pop(check.run_id, None)
            await db(actions.gateway_run_lost)(
                check.run_id,
                "The gateway no longer runs it and left no reply (it restarted or dropped it).",
            )


async def gateway_sender_loop() -> None:
    sending: set[asyncio.Task[None]] = set()

    def start(work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        sending.add(task)
        task.add_done_callback(sending.discard)

    # Woken by run events, from this process's commits or another's (the channel layer carries
    # both): a dispatch is sent within milliseconds; the poll only catches what no event said.
    changed = asyncio.Event()
    hub = await subscriptions.get_hub()
    listener = RunChanges(changed)
    hub.add(listener)
    try:
        await _send_loop(start, changed)
    finally:
        hub.remove(listener)


class RunChanges:
    """A listener of this process's live hub (missioncontrol/subscriptions.py): the board
    topic's run events — a run queued, one ended and freed a slot, one's blockers done — wake
    the sender. Progress reports do not (up to 4 a second a run)."""

    def __init__(self, changed: asyncio.Event) -> None:
        self.sub = subscriptions.Subscription(["board"], "admin", form="data")
        self.changed = changed

    async def deliver(self, message: Any) -> None:
        data = message.get("data") or ""
        start = data.find('"event":"') + len('"event":"')
        kind = data[start : data.find('"', start)]
        if kind == "task.dispatched" or (kind.startswith("run.") and kind != "run.progress"):
            self.changed.set()


async def _send_loop(
    start: Callable[[Coroutine[Any, Any, None]], None], changed: asyncio.Event
) -> None:
    renewed = looked = 0.0
    connections: dict[int, datetime | None] = {}
    await db(actions.requeue_unsent)()
    while True:
        changed.clear()  # a change from here on wakes the next pass
        for order in await db(actions.take_gateway_runs)():
            start(send(order))
        now = time.monotonic()
        if now - looked >= RECONNECT_LOOK_S:
            # A gateway (re)connected since the last look (either side restarted, the link
            # dropped): its runs' ends may have come while no one listened; ask at once.
            looked = now
            current = await db(actions.gateway_connections)()
            fresh = {pk for pk, at in current.items() if connections.get(pk) != at}
            connections = current
            if fresh:
                for check in await db(actions.gateway_runs_to_check)(0, fresh):
                    start(adopt(check))
        if now - renewed >= RENEW_EVERY_S:
            renewed = now
            await db(actions.renew_gateway_leases)()
            for check in await db(actions.gateway_runs_to_check)(CHECK_AFTER_S):
                start(adopt(check))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), SEND_POLL_S)


async def progress_flush_loop() -> None:
    """Progress held back (≤ 4 a second a run) goes out once due: the agent's last words land
    even when nothing follows them for a while."""
    loop, held = asyncio.get_running_loop(), asyncio.Event()

    def poke() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(held.set)

    stop_listening = actions.on_progress_held(poke)
    try:
        while True:
            await held.wait()
            held.clear()
            await asyncio.sleep(actions.PROGRESS_EVERY_S)
            await db(actions.flush_progress)()
    finally:
        stop_listening()


def register() -> None:
    register_loop("run-lease-sweep", lease_sweep_loop, restart="always")
    register_loop("run-progress-flush", progress_flush_loop, restart="always")
    if settings.MC_GATEWAY_CONNECTORS:
        register_loop("run-gateway-sender", gateway_sender_loop, restart="always")
