"""The outermost HTTP layer: whatever the application raises, the client gets a whole answer
and the server (daphne) never sees the exception.

Why: daphne answers an application's exception with a 500 of its own, by starting a response.
When the application had already sent `http.response.start` (every streaming response does, before
its first chunk), that second start raises inside daphne's `application_checker`, and that loop —
the one that reaps finished connections — dies with it. The request never answers, and every later
connection of the process is kept forever (measured: +12.7 KB per request, on every route, until
restart; issue #30 §0). So here:

- `http.response.start` is held until the first body message. An exception before the first byte
  becomes a clean 500 (JSON on the API, text elsewhere) instead of a half-started response.
- An exception after the first byte ends the body where it is (the status is already on the wire)
  and is logged; streaming views write their own "incomplete" marker first
  (missioncontrol/streaming.py).
- An application that returns without finishing its response gets it finished.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from missioncontrol.errors import CODES, error_body
from missioncontrol.fastpath.http import Receive, Scope, Send

logger = logging.getLogger("missioncontrol.guard")

ASGIApp = Any


def _server_error(path: str) -> tuple[bytes, bytes]:
    """The body of a 500 and its content type: the product's JSON shape on the API."""
    if path.startswith("/api/"):
        body = error_body(CODES[500], "The server failed on this request; it was logged.")
        return json.dumps(body).encode(), b"application/json"
    return b"Server error: it was logged. Try again, or tell the administrator.\n", (
        b"text/plain; charset=utf-8"
    )


class HTTPGuard:
    """Wraps the HTTP application: one whole answer per request, whatever it raises."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] | None = None
        # none: nothing sent; body: the first chunk is out; done: the response is complete.
        state = "none"

        async def guarded(message: dict[str, Any]) -> None:
            nonlocal held, state
            kind = message["type"]
            if kind == "http.response.start":
                held = message
                return
            if kind == "http.response.body":
                if held is not None:
                    start, held = held, None
                    await send(start)
                state = "body" if message.get("more_body") else "done"
            await send(message)

        try:
            await self.app(scope, receive, guarded)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Exception inside application: %s %s", scope["method"], scope["path"])
            if state == "none":
                body, content_type = _server_error(scope.get("path", ""))
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"),
                            (b"x-content-type-options", b"nosniff"),
                            (b"content-security-policy", b"default-src 'none'"),
                            (b"x-frame-options", b"DENY"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        else:
            if state == "none" and held is None:
                return
        if state != "done":
            # Started, not finished (an error mid-stream, or an application that forgot): end it.
            if held is not None:
                await send(held)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
