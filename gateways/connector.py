"""The gateway connector (an edge): one task per enabled gateway, run by the supervisor.

It holds the WebSocket to its gateway (gateways/protocol.py), keeps the gateway's state on the
Gateway row (through gateways.actions), and turns what the gateway says into actions of the
apps that own it (agents.actions for its agents). It never holds a transaction across a gateway
call: call the gateway, then one action with the answer.

Reconnects back off with jitter: quickly (≤ 5 s between tries) for two minutes after a working
connection was lost — a restarted gateway is back within seconds of ready — then up to 30 s.
After every (re)connect it re-syncs with list calls: events are best-effort.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from billing import actions as billing_actions
from crons import actions as cron_actions
from gateways import actions, frames, history, protocol
from gateways import approvals as gateway_approvals
from gateways.models import Gateway
from missioncontrol import state
from missioncontrol.supervisor import RowHandle, RowSpec, register_rows
from runs import actions as run_actions

logger = logging.getLogger(__name__)

FAST_RETRY_WINDOW_S = 120.0
# Session changes from events: written in batches every BATCH_S, each session (and each
# streaming run) at most once every FLUSH_S (≤ 4 updates/s to browsers).
BATCH_S = 0.02
FLUSH_S = 0.25
FAST_RETRY_CAP_S = 5.0
# cron.list pages on a re-sync (200 jobs each; 50 pages: 10,000 jobs a gateway at most).
CRON_PAGE = 200
CRON_PAGES = 50
RETRY_CAP_S = 30.0

db = database_sync_to_async


def backoff(attempt: int, since_connected: float | None) -> float:
    """Seconds before try `attempt` (1, 2 …): exponential, jittered, capped."""
    recent = since_connected is not None and since_connected < FAST_RETRY_WINDOW_S
    cap = FAST_RETRY_CAP_S if recent else RETRY_CAP_S
    return min(cap, 2 ** max(attempt - 1, 0)) * random.uniform(0.7, 1.0)


def _load(gateway_id: int) -> Gateway | None:
    return Gateway.objects.filter(pk=gateway_id, enabled=True).first()


class Link:
    """One live connection's work: the re-sync, events, and commands from the inbox."""

    def __init__(self, gateway: Gateway, connection: protocol.Connection, handle: RowHandle):
        self.gateway_id = gateway.pk
        self.connection = connection
        self.handle = handle
        self.last_status = 0.0
        self.writer = session_writer()
        self.backfill: asyncio.Future[None] | None = None
        self.skipped = skipped_for(self.gateway_id)

    async def sync(self) -> None:
        """Everything the dashboard shows of this gateway, fresh (after every connect):
        events are best-effort, so the lists are the truth. Each step survives what it did not
        foresee (`guarded`): an item is skipped, never the connection."""
        hello = self.connection.hello
        if "agents.list" in hello.methods:
            listed = await self.connection.request("agents.list")
            agents = frames.agents(
                listed.get("agents") if isinstance(listed, dict) else None, self.skipped
            )
            await guarded(
                "agents", self.skipped, db(agent_actions.sync_gateway_agents), self.gateway_id,
                agents,
            )  # fmt: skip
        if "sessions.subscribe" in hello.methods:
            # Subscribe first: a change between the list and the subscription is not lost.
            await self.connection.request("sessions.subscribe", {"limit": 1})
        if "sessions.list" in hello.methods:
            sessions = frames.sessions(await protocol.list_sessions(self.connection), self.skipped)
            changed = await guarded(
                "sessions", self.skipped, db(agent_sessions.sync_gateway_sessions),
                self.gateway_id, sessions, complete=True,
            )  # fmt: skip
            if "chat.history" in hello.methods and changed:
                # Usage spent while we were away (or before we knew the gateway): read from the
                # transcripts of the sessions that changed, stored once by message id.
                keys = [s.key for s in changed if s.total_tokens and not s.gone]
                self.backfill = asyncio.ensure_future(self.backfill_usage(keys))
        await self.sync_crons()
        await self.sync_exec_approvals()
        await self.refresh_health()

    async def sync_exec_approvals(self) -> None:
        """The exec approvals pending on the gateway; those pending here that it no longer
        lists ended while we were away: asked how (`approval.get`)."""
        if "exec approvals" in self.connection.hello.missing_features():
            return
        listed = frames.exec_approvals(
            await self.connection.request("exec.approval.list"), self.skipped
        )
        gone = await guarded(
            "exec approvals", self.skipped, db(gateway_approvals.still_pending_here),
            self.gateway_id, listed,
        )  # fmt: skip
        for approval_id in gone or []:
            try:
                answer = await self.connection.request("approval.get", {"id": approval_id})
            except protocol.GatewayError:
                continue  # forgotten by the gateway (30 days): left as it was
            await guarded(
                "exec approvals", self.skipped, db(gateway_approvals.resolved),
                self.gateway_id, frames.approval_outcome(answer),
            )  # fmt: skip

    async def sync_crons(self) -> None:
        """Every cron job (disabled ones too), then the latest runs of all: runs that finished
        while we were away are stored once (by job and start)."""
        methods = self.connection.hello.methods
        if "cron.list" not in methods:
            return
        jobs: list[frames.CronJobSnapshot] = []
        offset = 0
        for _page in range(CRON_PAGES):
            listed = await self.connection.request(
                "cron.list", {"includeDisabled": True, "limit": CRON_PAGE, "offset": offset}
            )
            page = listed.get("jobs") if isinstance(listed, dict) else None
            page = page if isinstance(page, list) else []
            offset += len(page)
            jobs.extend(frames.cron_jobs(page, self.skipped))
            if not page or not (isinstance(listed, dict) and listed.get("hasMore") is True):
                break
        await guarded(
            "cron jobs", self.skipped, db(cron_actions.sync_gateway_jobs), self.gateway_id, jobs,
            complete=True, skipped=self.skipped,
        )  # fmt: skip
        if "cron.runs" in methods:
            with contextlib.suppress(protocol.GatewayError):
                runs = await self.connection.request("cron.runs", {"scope": "all", "limit": 200})
                entries = frames.cron_runs(
                    runs.get("entries") if isinstance(runs, dict) else None, self.skipped
                )
                await guarded(
                    "cron runs", self.skipped, db(cron_actions.record_gateway_runs),
                    self.gateway_id, entries, self.skipped,
                )  # fmt: skip

    async def backfill_usage(self, keys: list[str]) -> None:
        stored = 0
        for key in keys:
            try:
                stored += await history.backfill_session(
                    self.connection, self.gateway_id, key, known_stop=True
                )
            except protocol.GatewayError as refused:
                logger.warning("gateway %s: no history for %s: %s", self.gateway_id, key, refused)
        if stored:
            logger.info("gateway %s: backfilled %d usage records", self.gateway_id, stored)

    async def refresh_health(self, health: Any = None) -> None:
        hello = self.connection.hello
        if health is None and "health" in hello.methods:
            health = await self.connection.request("health")
        status = None
        if "status" in hello.methods:
            with contextlib.suppress(protocol.GatewayError, TimeoutError):
                status = await self.connection.request("status")
        self.last_status = time.monotonic()
        uptime = frames.number(hello.snapshot.get("uptimeMs"))
        if uptime is not None:
            uptime += (time.monotonic() - self.connected_mono) * 1000
        summary = frames.read(
            lambda h: frames.GatewayHealth.read(h, status, uptime), health, "health", self.skipped
        )
        if summary is not None:
            await db(actions.record_health)(self.gateway_id, summary)
        # What was skipped since the last time, onto the gateway's page (with health: at every
        # re-sync and once a minute).
        await flush_skipped(self.gateway_id)

    connected_mono = 0.0

    async def on_event(self, name: str, payload: Any) -> None:
        """One event; one the readers did not foresee is skipped (counted on the gateway's
        page), never the connection."""
        await guarded(f"{name} events", self.skipped, self._on_event, name, payload)

    async def _on_event(self, name: str, payload: Any) -> None:
        if name == "health":
            # Every 60 s from the gateway; `status` (memory) along with it.
            await self.refresh_health(payload)
        elif name == "sessions.changed" and isinstance(payload, dict):
            deleted = frames.deleted_session(payload)
            if deleted is not None:
                self.writer.delete(self.gateway_id, deleted)
                return
            row = frames.session(payload.get("session"))
            if row is not None:
                self.writer.change(self.gateway_id, row)
        elif name == "session.message" and isinstance(payload, dict):
            message = payload.get("message")
            key = frames.ident(payload.get("sessionKey"), 300)
            if isinstance(message, dict) and key is not None:
                line = frames.TranscriptMessage.read(
                    message, message_id=frames.text(payload.get("messageId"), 80) or None
                )
                row = frames.session(payload.get("session"))
                if row is not None:
                    # A new session appears with its first line.
                    await self.writer.write_now(self.gateway_id, row)
                await db(agent_sessions.publish_session_message)(self.gateway_id, key, line)
                if line.usage is not None:
                    # Its tokens, once (keyed by the message id: a backfill finds it again).
                    await db(billing_actions.record_gateway_usage)(
                        self.gateway_id, key, [line.usage]
                    )
        elif name == "chat":
            chat = frames.ChatEvent.read(payload)
            if chat is not None:
                await self.on_chat(chat)
        elif name == "cron":
            await db(cron_actions.gateway_cron_event)(self.gateway_id, frames.cron_event(payload))
        elif name == "exec.approval.requested" and isinstance(payload, dict):
            await db(gateway_approvals.requested)(
                self.gateway_id, frames.ExecApproval.read(payload)
            )
        elif name == "exec.approval.resolved" and isinstance(payload, dict):
            outcome = frames.ApprovalOutcome.read(payload)
            await db(gateway_approvals.resolved)(self.gateway_id, outcome)

    async def on_chat(self, chat: frames.ChatEvent) -> None:
        """A run's streaming reply, coalesced to ≤ 4 updates/s for browsers; the final text
        arrives as its own `session.message`, so the end only removes the streaming line (or
        shows the run's error)."""
        if chat.state == "delta" and chat.message is not None:
            self.writer.stream(self.gateway_id, chat.run_id, chat.session_key, chat.message)
        elif chat.state in {"final", "error", "aborted"}:
            self.writer.drop_stream(self.gateway_id, chat.run_id)
            await db(agent_sessions.end_session_run)(
                self.gateway_id, chat.session_key, chat.run_id, chat.end
            )
            # A run dispatched from a task (runs/): its end, once, with the agent's reply.
            await db(run_actions.gateway_run_ended)(
                self.gateway_id,
                chat.run_id,
                chat.state,
                reply=chat.message.text if chat.message is not None else "",
                error=chat.end.text if chat.end is not None else "",
                error_kind=chat.end.kind if chat.end is not None else "",
                session_key=chat.session_key,
            )

    async def serve(self) -> None:
        """Re-sync, then read frames and run inbox commands until the connection dies."""
        self.connected_mono = time.monotonic()
        reader = asyncio.ensure_future(self.connection.run())
        # Commands run side by side, each answered when its own answer comes: one slow request
        # (an agent.wait, a long history) must not hold up a chat.send or a dispatch behind it.
        # Each is sent in the order it came (a task runs up to its send before the next starts).
        commands: set[asyncio.Task[None]] = set()
        try:
            await self.sync()
            while True:
                command = asyncio.ensure_future(self.handle.inbox.get())
                done, _ = await asyncio.wait({reader, command}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    command.cancel()
                    reader.result()  # raises Dead
                    return
                running = asyncio.ensure_future(self.run_command(command.result()))
                commands.add(running)
                running.add_done_callback(commands.discard)
                await asyncio.sleep(0)  # let it send before the next command is taken
        finally:
            for running in list(commands):
                running.cancel()
            reader.cancel()
            if self.backfill is not None:
                self.backfill.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def run_command(self, command: Any) -> None:
        """A command for this gateway: {"method", "params", "reply": Future, "deadline"}."""
        reply: asyncio.Future[Any] | None = command.get("reply")
        deadline = command.get("deadline")
        if (reply is not None and reply.done()) or (deadline and deadline < time.time()):
            return  # its caller gave up: never send a message late
        try:
            result = await self.connection.request(command["method"], command.get("params"))
        except asyncio.CancelledError:
            # The connection ended under it: its caller hears so now, not at its timeout.
            if reply is not None and not reply.done():
                reply.set_exception(protocol.Dead("the connection ended before the answer"))
            raise
        except Exception as failure:
            if reply is not None and not reply.done():
                reply.set_exception(failure)
            return
        if reply is not None and not reply.done():
            reply.set_result(result)


# What this process skipped of each gateway's frames since it last wrote it down.
_skipped: dict[int, frames.Skipped] = {}
_logged: set[tuple[int, str, str]] = set()
# What may end a connection: the gateway lost or refusing, or the database unavailable (the
# connector restarts and re-syncs). Anything else a gateway's values cause skips what caused it.
ENDS_CONNECTION = (protocol.Dead, protocol.GatewayError, TimeoutError, OperationalError,
                   InterfaceError)  # fmt: skip


def _forget_skipped() -> None:
    _skipped.clear()
    _logged.clear()


state.register("gateways.connector.skipped", _forget_skipped)


def skipped_for(gateway_id: int) -> frames.Skipped:
    return _skipped.setdefault(gateway_id, frames.Skipped())


async def guarded[**P, R](
    kind: str,
    counted: frames.Skipped,
    work: Callable[P, Awaitable[R]],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> R | None:
    """`work(...)`, or None when it failed on something a gateway sent that nobody foresaw
    (counted as skipped under `kind`): one bad frame costs what it held, not the connection."""
    try:
        return await work(*args, **kwargs)
    except ENDS_CONNECTION:
        raise
    except Exception as failure:
        counted.add(kind, f"{type(failure).__name__}: {failure}")
        return None


async def flush_skipped(gateway_id: int) -> None:
    """Write down (and log, once per reason and process) what was skipped of a gateway."""
    skipped = _skipped.pop(gateway_id, None)
    if not skipped:
        return
    for kind, reasons in skipped.counts.items():
        for reason, n in reasons.items():
            if (gateway_id, kind, reason) not in _logged and len(_logged) < 10_000:
                _logged.add((gateway_id, kind, reason))
                logger.warning("gateway %s: skipped %d of %s: %s", gateway_id, n, kind, reason)
    await db(actions.record_skipped)(gateway_id, skipped.counts)


class SessionWriter:
    """Session changes and streaming replies of every gateway this loop holds, written in
    batches: one transaction every BATCH_S for all sessions due, whatever the number of
    gateways streaming, and each session (or streaming run) at most once every FLUSH_S. A
    quiet session's change shows at once; a busy one's at most 4 times a second; the latest
    state of each always lands."""

    def __init__(self) -> None:
        self.changed: dict[tuple[int, str], frames.SessionSnapshot] = {}
        self.streaming: dict[tuple[int, str], tuple[str, frames.TranscriptMessage]] = {}
        self.written: dict[tuple[int, str], float] = {}  # → last write (monotonic)
        self.ended: dict[tuple[int, str], None] = {}  # runs that ended (insertion-ordered)
        self.deleted: dict[tuple[int, str], None] = {}  # sessions the gateway deleted
        self.flusher: asyncio.Future[None] | None = None

    def change(self, gateway_id: int, row: frames.SessionSnapshot) -> None:
        self.changed[(gateway_id, row.key)] = row
        self._soon()

    def stream(
        self, gateway_id: int, run_id: str, key: str, message: frames.TranscriptMessage
    ) -> None:
        if (gateway_id, run_id) in self.ended:
            return  # a late delta of a run that ended: its line must not come back
        self.streaming[(gateway_id, f"run:{run_id}")] = (key, message)
        self._soon()

    def drop_stream(self, gateway_id: int, run_id: str) -> None:
        self.streaming.pop((gateway_id, f"run:{run_id}"), None)
        self.ended[(gateway_id, run_id)] = None
        while len(self.ended) > 10_000:
            self.ended.pop(next(iter(self.ended)))

    def delete(self, gateway_id: int, key: str) -> None:
        """A deleted session: its pending change dropped (it must not come back), and gone with
        the next batch (deletes are batched like changes: a burst is one transaction)."""
        self.changed.pop((gateway_id, key), None)
        self.deleted[(gateway_id, key)] = None
        self._soon()

    async def write_now(self, gateway_id: int, row: frames.SessionSnapshot) -> None:
        """One session written at once (its first transcript line needs its row)."""
        self.changed.pop((gateway_id, row.key), None)
        self.written[(gateway_id, row.key)] = time.monotonic()
        await db(agent_sessions.sync_gateway_sessions)(gateway_id, [row])

    def _soon(self) -> None:
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        # One flush every BATCH_S at most, counted from the start of the last one: a flush
        # that took longer (PostgreSQL's round trips, a busy machine) is followed by the next
        # at once instead of by another BATCH_S of waiting (bench/gateways.py, event → browser).
        started = time.monotonic() - BATCH_S
        while self.changed or self.streaming or self.deleted:
            await asyncio.sleep(max(0.0, BATCH_S - (time.monotonic() - started)))
            started = time.monotonic()
            try:
                await self.flush()
            except Exception:
                logger.exception("gateways: writing session changes failed; retrying")
                await asyncio.sleep(BATCH_S)

    def _due(self, pending: dict[tuple[int, str], Any]) -> dict[tuple[int, str], Any]:
        now = time.monotonic()
        due = {k: v for k, v in pending.items() if now - self.written.get(k, -FLUSH_S) >= FLUSH_S}
        for key in due:
            del pending[key]
            self.written[key] = now
        if len(self.written) > 50_000:  # forget sessions long quiet
            self.written = {k: t for k, t in self.written.items() if now - t < FLUSH_S}
        return due

    async def flush(self) -> None:
        # Deletes first: a change that came after one (the session made again) wins.
        deleted, self.deleted = self.deleted, {}
        if deleted:
            gone: dict[int, list[str]] = {}
            for gateway_id, key in deleted:
                gone.setdefault(gateway_id, []).append(key)
            await db(agent_sessions.sessions_deleted)(gone)
        rows = self._due(self.changed)
        if rows:
            batch: dict[int, list[frames.SessionSnapshot]] = {}
            for (gateway_id, _key), row in rows.items():
                batch.setdefault(gateway_id, []).append(row)
            await db(agent_sessions.sync_sessions_batch)(batch)
        for (gateway_id, run), (key, message) in self._due(self.streaming).items():
            if (gateway_id, run[4:]) in self.ended:
                continue  # it ended while earlier lines of this flush were written
            await db(agent_sessions.publish_session_message)(
                gateway_id, key, message, message_id=f"run-{run[4:]}", streaming=True
            )
            if ":mc-task-" in key:  # a task's run (runs/): its words on the card
                await db(run_actions.gateway_progress)(gateway_id, key, message.text)


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SessionWriter] = (
    weakref.WeakKeyDictionary()
)


def session_writer() -> SessionWriter:
    """The running loop's writer (one per process in production)."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = SessionWriter()
    return writer


class _Relay:
    """Events that arrive during the handshake wait for the Link the connection becomes."""

    link: Link | None = None

    async def __call__(self, name: str, payload: Any) -> None:
        if self.link is not None:
            await self.link.on_event(name, payload)


async def run_gateway(handle: RowHandle) -> None:
    """The connector of one gateway: connect, sync, follow; reconnect on loss; until cancelled
    (the gateway was disabled, changed or deleted, or the process stops)."""
    gateway_id = int(handle.key)  # type: ignore[call-overload]
    attempt = 0
    lost_at: float | None = None
    identity = await db(actions.device_identity)()
    was_connected = False
    try:
        while True:
            gateway = await db(_load)(gateway_id)
            if gateway is None:
                return
            if attempt == 0 and gateway.state != Gateway.State.CONNECTING:
                await db(actions.record_state)(gateway_id, Gateway.State.CONNECTING)
            handle.set_state(protocol.CONNECTING)
            relay = _Relay()
            try:
                connection = await protocol.open_connection(
                    gateway.url,
                    token=gateway.token,
                    device_token=gateway.device_token,
                    identity=identity,
                    on_event=relay,
                )
            except protocol.Refused as refused:
                attempt += 1
                handle.set_state(refused.state, refused.detail)
                await db(actions.record_state)(
                    gateway_id,
                    refused.state,
                    detail=refused.detail,
                    remedy=refused.remedy,
                    pairing_request_id=refused.pairing_request_id,
                )
                since = None if lost_at is None else time.monotonic() - lost_at
                delay = backoff(attempt, since)
                if refused.retry_s is not None:
                    delay = min(delay, refused.retry_s)
                await asyncio.sleep(delay)
                continue
            attempt, lost_at = 0, None
            link = relay.link = Link(gateway, connection, handle)
            try:
                await db(actions.record_hello)(gateway_id, connection.hello)
                was_connected = True
                handle.set_state(protocol.CONNECTED)
                await link.serve()
            except (protocol.Dead, protocol.GatewayError, TimeoutError) as lost:
                logger.warning("gateway %s: connection lost: %s", gateway.name, lost)
                await _lost(gateway_id, gateway.url, lost)
                was_connected = False
            finally:
                await connection.close()
            lost_at = time.monotonic()
            attempt = 1
            await asyncio.sleep(backoff(attempt, 0.0))
    finally:
        if was_connected:
            # Cancelled while connected (disabled, changed, stopping): its agents are not live
            # any more as far as this process knows.
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    db(agent_actions.gateway_agents_offline)(gateway_id, "connector stopped")
                )


async def _lost(gateway_id: int, url: str, lost: BaseException) -> None:
    await db(actions.record_state)(
        gateway_id,
        Gateway.State.UNREACHABLE,
        detail=f"connection lost: {lost}"[:500],
        remedy=f"The connection to {url} dropped; Mission Control reconnects by itself. If it "
        "stays unreachable, check that the gateway runs and this server can reach it.",
    )
    await db(agent_actions.gateway_agents_offline)(gateway_id, "its gateway is unreachable")


def _enabled() -> dict[Any, Any]:
    return {g.pk: g.fingerprint for g in Gateway.objects.enabled()}


async def load_rows() -> dict[Any, Any]:
    return await db(_enabled)()


def register() -> None:
    register_rows(RowSpec("gateways", load_rows, run_gateway, reconcile_s=5.0, max_backoff_s=30.0))


async def test_connection(url: str, token: str, identity: protocol.Identity) -> dict[str, Any]:
    """One connect with these settings, reported (the gateway page's "Test connection"):
    {"state", "detail", "remedy", …}; nothing is stored."""
    try:
        connection = await protocol.open_connection(
            url, token=token, device_token="", identity=identity, on_event=_ignore
        )
    except protocol.Refused as refused:
        return {
            "state": refused.state,
            "detail": refused.detail,
            "remedy": refused.remedy,
            "pairing_request_id": refused.pairing_request_id,
        }
    try:
        hello = connection.hello
        return {
            "state": protocol.CONNECTED,
            "detail": f"Connected: OpenClaw {hello.version}, protocol {hello.protocol}, "
            f"scopes {', '.join(hello.scopes)}.",
            "remedy": "",
            "missing": hello.missing_features(),
        }
    finally:
        await connection.close()


async def _ignore(name: str, payload: Any) -> None:
    return None
