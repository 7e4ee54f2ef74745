"""Usage read back from a gateway's transcripts (`chat.history`): after a reconnect (the
connector) and on demand (`manage.py backfill_usage`). Each message is stored once, keyed by its
id (billing.actions.record_gateway_usage), however often it is read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from agents.models import AgentSession
from billing import actions as billing_actions
from gateways import actions, frames, protocol
from gateways.models import Gateway
from missioncontrol.audit import Actor

db = database_sync_to_async


async def backfill_session(
    connection: protocol.Connection,
    gateway_id: int,
    key: str,
    *,
    since_ms: float | None = None,
    known_stop: bool = False,
) -> int:
    """Store the usage in a session's transcript, page by page from the newest (each message
    once: record_gateway_usage keys it by its id); the number newly stored. Stops at messages
    older than `since_ms`, and with `known_stop` at the first page that held nothing new (a
    reconnect's backfill: what is older was stored before)."""
    return (await _backfill(connection, gateway_id, key, since_ms, known_stop))[1]


async def _backfill(
    connection: protocol.Connection,
    gateway_id: int,
    key: str,
    since_ms: float | None,
    known_stop: bool,
) -> tuple[int, int]:
    read = stored = 0
    async for page in protocol.history_pages(connection, key):
        read += len(page)
        oldest = min((_stamp(m) for m in page), default=0.0)
        messages = page if since_ms is None else [m for m in page if _stamp(m) >= since_ms]
        fresh = await db(billing_actions.record_gateway_usage)(
            gateway_id, key, frames.usage_messages(messages)
        )
        stored += fresh
        if (known_stop and not fresh) or (since_ms is not None and oldest < since_ms):
            break
    return read, stored


def _stamp(message: dict[str, Any]) -> float:
    stamp = message.get("timestamp")
    return float(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) else 0.0


@dataclass
class Backfill:
    """What `backfill_usage` did: sessions and messages read, usage records newly stored."""

    sessions: int = 0
    messages: int = 0
    stored: int = 0
    failed: int = 0  # sessions whose history the gateway refused


async def ignore(name: str, payload: Any) -> None:
    return None


async def backfill_gateway(
    gateway: Gateway,
    since: datetime | None = None,
    *,
    actor: Actor,
    on_sessions: Callable[[int], None] = lambda n: None,
    on_session: Callable[[], None] = lambda: None,
) -> Backfill:
    """Every session's whole transcript of one gateway (those active since `since`), its usage
    stored once per message; sessions the dashboard has not seen yet are added first. Opens its
    own connection with this installation's device identity (the running connector, if any,
    keeps its own). protocol.Refused when the gateway cannot be reached or refuses."""
    identity = await db(actions.device_identity)()
    connection = await protocol.open_connection(
        gateway.url,
        token=gateway.token,
        device_token=gateway.device_token,
        identity=identity,
        on_event=ignore,
    )
    reader = asyncio.ensure_future(connection.run())
    report = Backfill()
    since_ms = since.timestamp() * 1000 if since is not None else None
    try:
        rows = frames.sessions(await protocol.list_sessions(connection, limit=1_000_000))
        if since is not None:
            rows = [r for r in rows if r.last_activity_at is None or r.last_activity_at >= since]
        await _ensure_sessions(connection, gateway.pk, rows)
        on_sessions(len(rows))
        for row in rows:
            try:
                read, stored = await _backfill(connection, gateway.pk, row.key, since_ms, False)
            except protocol.GatewayError:
                report.failed += 1
            else:
                report.messages += read
                report.stored += stored
            report.sessions += 1
            on_session()
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        await connection.close()
    if report.stored:
        summary = {**asdict(report), "since": since.isoformat() if since else None}
        await db(billing_actions.record_backfill)(actor, gateway, summary)
    return report


async def _ensure_sessions(
    connection: protocol.Connection, gateway_id: int, rows: list[frames.SessionSnapshot]
) -> None:
    """Add the listed sessions the dashboard has no row for (their usage needs the row and its
    agent); sessions it knows are left to the connector."""
    known = await db(_known_keys)(gateway_id)
    missing = [r for r in rows if r.key not in known]
    if not missing:
        return
    if "agents.list" in connection.hello.methods:
        listed = await connection.request("agents.list")
        agents = frames.agents(listed.get("agents") if isinstance(listed, dict) else None)
        await db(agent_actions.sync_gateway_agents)(gateway_id, agents)
    await db(agent_sessions.sync_gateway_sessions)(gateway_id, missing)


def _known_keys(gateway_id: int) -> set[str]:
    return set(AgentSession.objects.filter(gateway_id=gateway_id).values_list("key", flat=True))
