"""The fast path: the few routes answered at the ASGI layer, before Django's middleware.

A request through Django's full stack costs ~2.5 ms of the event loop's thread plus ~1 ms of
middleware before the view runs; at 2,000 heartbeats/s or 350 board moves/s on two cores that
is the whole budget. The routes that must go that fast are listed in one table, in the ASGI
composition root (`missioncontrol/asgi.py`, FAST_ROUTES), each with the checks it performs.

Admission rule (also in the design notes). A route joins only with
1. a benchmark in `bench/` showing the ordinary Django/DRF path cannot meet its target,
2. a batch form of its action in `<app>/actions.py` (the fast path never writes on its own;
   writes go through a `writer.BatchWriter`), and
3. its checks named next to it in the table (`Check`: host, body limit, authentication, CSRF +
   Origin for browser routes, role, validation, rate limit): tests/missioncontrol/
   test_fast_routes.py probes every named check of every route, and fails on a check no probe
   knows.
Everything else is a Django view or a DRF view.

Pieces: `http` (scope, body, JSON answers in the product's error shape), `writer` (the
group-commit writer), `browser` (Django's session and CSRF checks for browser routes).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from missioncontrol.fastpath.http import Receive, Scope, Send, error

Handler = Callable[[Scope, Receive, Send, re.Match[str]], Awaitable[None]]


class Check(enum.Enum):
    """What a fast route checks before its action, each with the answer when it fails."""

    HOST = "host allowlist (400)"
    BODY_LIMIT = "body limit (413)"
    CSRF = "CSRF token and Origin (403)"
    SESSION = "session sign-in (redirect to sign in)"
    OPERATOR = "operator role (403)"
    PERSON_TOKEN = "a person's API token (401; an agent's key or a session too)"
    GATEWAY_GRANT = "the person's grant on the agent's gateway (403)"
    AGENT_KEY = "an agent's own key (401; an enrollment key 403)"
    OWN_AGENT = "the key's own agent only (403)"
    RATE_LIMIT = "per-key rate limit (429 with Retry-After)"
    VALIDATION = "validation (400, by field)"


@dataclass(frozen=True)
class Route:
    """One fast route: method, path pattern, handler, the checks it makes (each probed by the
    tests) and the benchmark that earned it its place (a file in bench/, checked to exist)."""

    method: str
    pattern: str
    handler: Handler
    checks: tuple[Check, ...]
    bench: str


class FastPathRouter:
    """Send the fast routes to their handlers, everything else to Django."""

    def __init__(self, app: Any, routes: list[Route]) -> None:
        self.app = app
        self.routes = [(r.method, re.compile(r.pattern), r.handler) for r in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            allowed: list[str] = []
            for route_method, pattern, handler in self.routes:
                match = pattern.match(path)
                if match is None:
                    continue
                if method == route_method:
                    return await handler(scope, receive, send, match)
                allowed.append(route_method)
            if allowed:
                return await error(
                    send,
                    405,
                    f"Use {', '.join(allowed)}.",
                    [(b"allow", ", ".join(allowed).encode())],
                )
        return await self.app(scope, receive, send)
