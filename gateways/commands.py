"""Commands to a gateway from anywhere (a view, a command): they reach the connector that holds
the gateway's connection and return its answer or error.

Over the channel layer, the same code both ways: in one process (`serve`, in-memory layer) the
supervisor's command loop receives them; in the scale-out profile `run_workers` does, over
channels-redis, and the answer comes back on the caller's own reply channel. Nothing here holds
a database transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.layers import get_channel_layer

from gateways import frames
from gateways.protocol import CONNECTED, GatewayError
from missioncontrol import supervisor
from missioncontrol.supervisor import register_loop

logger = logging.getLogger(__name__)

CHANNEL = "gateway-commands"
# A reply that did not come in time: redis-py turns the cancellation of a read into its own
# TimeoutError (not asyncio's), which was a 500 on the scale-out profile.
WAITED_OUT: tuple[type[BaseException], ...] = (TimeoutError,)
with contextlib.suppress(ImportError):
    from redis.exceptions import TimeoutError as RedisTimeout

    WAITED_OUT = (TimeoutError, RedisTimeout)
DEFAULT_TIMEOUT_S = 15.0


class Unavailable(Exception):
    """No connector holds the gateway right now (not connected, no worker, no answer)."""


async def acall(
    gateway_id: int,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """The gateway's answer to `method`; GatewayError (its refusal) or Unavailable."""
    layer = get_channel_layer()
    if layer is None:
        raise Unavailable("no channel layer is configured")
    reply = await layer.new_channel()
    await layer.send(
        CHANNEL,
        {
            "type": "gateway.command",
            "gateway_id": gateway_id,
            "method": method,
            "params": params or {},
            "reply": reply,
            # The worker drops a command whose caller gave up (never a late chat.send).
            "deadline": time.time() + timeout,
        },
    )
    try:
        answer = await asyncio.wait_for(layer.receive(reply), timeout + 1)
    except WAITED_OUT:
        raise Unavailable(
            "No answer from the worker that holds gateway connections: is it running "
            "(`manage.py serve`, or `manage.py run_workers` beside `serve --no-workers`)?"
        ) from None
    if answer.get("ok"):
        return answer.get("payload")
    if answer.get("unavailable"):
        raise Unavailable(answer.get("message") or "the gateway is not connected")
    raise GatewayError(answer.get("error"))


def call(gateway_id: int, method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """acall() for synchronous code (views)."""
    from asgiref.sync import async_to_sync

    return async_to_sync(acall)(gateway_id, method, params, **kwargs)


async def command_loop() -> None:
    """The supervisor's side: receive commands and hand each to its gateway's connector."""
    layer = get_channel_layer()
    assert layer is not None
    running: set[asyncio.Task[None]] = set()
    while True:
        message = await layer.receive(CHANNEL)
        task = asyncio.ensure_future(_run(layer, message))
        running.add(task)
        task.add_done_callback(running.discard)


async def _run(layer: Any, message: dict[str, Any]) -> None:
    reply = message.get("reply")
    if not isinstance(reply, str):
        return
    answer: dict[str, Any]
    remaining = float(message.get("deadline") or 0) - time.time()
    if remaining <= 0:
        return  # the caller gave up already
    sup = supervisor.running()
    handle = sup.states("gateways").get(message.get("gateway_id")) if sup else None
    if handle is None or handle.state != CONNECTED:
        # The supervisor's own states (starting, running: before the connector set its own).
        state = handle.state if handle is not None else "not held by this worker"
        state = {"starting": "connecting", "running": "connecting"}.get(state, state)
        answer = {
            "ok": False,
            "unavailable": True,
            "message": f"The gateway is not connected now ({state.replace('_', ' ')}).",
        }
    else:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        handle.inbox.put_nowait(
            {
                "method": message.get("method"),
                "params": message.get("params") or {},
                "reply": future,
                "deadline": message.get("deadline"),
            }
        )
        try:
            payload = await asyncio.wait_for(future, remaining)
        except GatewayError as refused:
            answer = {
                "ok": False,
                "error": {
                    "code": refused.code,
                    "message": refused.message,
                    "details": refused.details,
                },
            }
        except (TimeoutError, Exception) as failed:
            answer = {
                "ok": False,
                "unavailable": True,
                "message": f"The gateway did not answer ({type(failed).__name__}).",
            }
        else:
            answer = {"ok": True, "payload": frames.portable(payload)}
    try:
        await layer.send(reply, frames.portable(answer))
    except Exception as failed:  # the caller must hear something, never wait out its timeout
        logger.warning("gateway command answer could not be relayed: %s", failed)
        with contextlib.suppress(Exception):
            await layer.send(
                reply,
                {
                    "ok": False,
                    "unavailable": True,
                    "message": f"The gateway's answer could not be relayed ({type(failed).__name__}).",
                },
            )


def register() -> None:
    register_loop("gateway-commands", command_loop, restart="always")
