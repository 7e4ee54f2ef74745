"""Hot routes answered at the ASGI layer, and the group-commit writer behind them.

A request through Django's full stack costs ~2.5 ms of the event loop's thread plus ~1 ms of
middleware before the view runs; at 2,000 heartbeats/s or 350 board moves/s on two cores that
is the whole budget. The few routes that must go that fast are registered here by their apps
(`register`) and handled by lean async handlers that do, explicitly, what applies to them (host
check, body limit, authentication, CSRF where a browser calls them, validation). Their writes go
to a `BatchWriter`: one thread per event loop that takes every job waiting, applies them in one
transaction, and answers each request only after its data is committed.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host

from missioncontrol import live

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send, re.Match[str]], Awaitable[None]]

# (method, compiled path pattern, handler), registered by the apps at import time.
_routes: list[tuple[str, re.Pattern[str], Handler]] = []


def register(method: str, pattern: str, handler: Handler) -> None:
    _routes.append((method, re.compile(pattern), handler))


class LeanRouter:
    """Send the registered hot routes to their handlers, everything else to Django."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            for route_method, pattern, handler in _routes:
                if method == route_method:
                    match = pattern.match(path)
                    if match:
                        return await handler(scope, receive, send, match)
        return await self.app(scope, receive, send)


# --- Requests and responses --------------------------------------------------------------------


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def host_allowed(scope: Scope) -> bool:
    domain, _port = split_domain_port(header(scope, b"host") or "")
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes | None:
    """The request body, or None when it exceeds `limit` bytes (ConnectionResetError if the
    client went away)."""
    declared = header(scope, b"content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body, separators=(",", ":"), default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def error(
    send: Send,
    status: int,
    code: str,
    detail: Any,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """`{"error": code, "detail": detail}`, like every JSON error of the product."""
    await respond(send, status, {"error": code, "detail": detail}, headers)


# --- Group-commit writer -----------------------------------------------------------------------


class WriteFailed(Exception):
    """The job's transaction failed (even alone): nothing of it was written."""


@dataclass
class Job:
    """One request's work for a BatchWriter; `payload` is whatever its apply function needs."""

    payload: Any
    future: asyncio.Future[Any] | None = field(default=None, repr=False)


class BatchWriter:
    """One thread per event loop and kind of work: takes every job waiting (up to `max_batch`),
    hands them to `apply` (which writes them in one transaction and returns one result per job,
    None for a job that could not be stored), then answers the waiting requests on the loop.

    The thread takes the next batch the moment the previous one commits (no round trip through
    the event loop between batches) and keeps its database connection. A batch that raises is
    retried job by job, so one bad job costs only its own request a 503. `tick` runs on the
    thread after each batch and once a second when idle (periodic chores of the writer)."""

    def __init__(
        self,
        name: str,
        apply: Callable[[list[Any]], list[Any]],
        *,
        max_batch: int = 500,
        tick: Callable[[bool], None] | None = None,
    ) -> None:
        self.name, self.apply, self.max_batch, self.tick = name, apply, max_batch, tick
        self.loop = asyncio.get_running_loop()
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=f"mc-{name}", daemon=True)
        self.thread.start()

    async def submit(self, payload: Any) -> Any:
        """Queue one job and wait until it is committed; WriteFailed if it could not be."""
        job = Job(payload, self.loop.create_future())
        self.jobs.put(job)
        assert job.future is not None
        return await job.future

    def _run(self) -> None:
        live.fan_out_on(self.loop)
        try:
            while not self.loop.is_closed():
                try:
                    batch = [self.jobs.get(timeout=1.0)]
                except queue.Empty:
                    self._tick(idle=True)
                    continue
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self.jobs.get_nowait())
                    except queue.Empty:
                        break
                results = self._apply(batch)
                try:
                    self.loop.call_soon_threadsafe(_deliver, batch, results)
                except RuntimeError:  # the loop closed meanwhile: nobody is waiting
                    break
                self._tick(idle=False)
        finally:
            connection.close()

    def _apply(self, batch: list[Job]) -> list[Any]:
        payloads = [job.payload for job in batch]
        try:
            return self.apply(payloads)
        except Exception:
            logger.exception("%s: batch of %d failed; retrying one by one", self.name, len(batch))
        results: list[Any] = []
        for payload in payloads:
            try:
                results.extend(self.apply([payload]))
            except Exception:
                logger.exception("%s: a job failed alone too; refused", self.name)
                results.append(None)
        return results

    def _tick(self, idle: bool) -> None:
        if self.tick is None:
            return
        try:
            self.tick(idle)
        except Exception:
            logger.exception("%s: periodic work failed", self.name)


def _deliver(batch: list[Job], results: list[Any]) -> None:
    """On the event loop: answer each request of a committed batch."""
    for job, result in zip(batch, results, strict=True):
        assert job.future is not None
        if job.future.done():  # the client went away
            continue
        if result is None:
            job.future.set_exception(WriteFailed())
        else:
            job.future.set_result(result)


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, BatchWriter]] = (
    weakref.WeakKeyDictionary()
)


def writer(name: str, factory: Callable[[], BatchWriter]) -> BatchWriter:
    """This event loop's writer called `name`, made by `factory` on first use."""
    loop = asyncio.get_running_loop()
    mine = _writers.setdefault(loop, {})
    if name not in mine:
        mine[name] = factory()
    return mine[name]


class Throttle:
    """At most one call a `period` seconds (for coalesced work on a writer's tick)."""

    def __init__(self, period: float) -> None:
        self.period, self.last = period, time.monotonic()

    def due(self, force: bool = False) -> bool:
        if force or time.monotonic() - self.last >= self.period:
            self.last = time.monotonic()
            return True
        return False


# --- Browser routes: Django's own request object, session and CSRF checks ---------------------


def django_request(scope: Scope, body: bytes) -> Any:
    """Django's request for a lean route (cookies, host, CSRF and form parsing as everywhere)."""
    from django.core.handlers.asgi import ASGIRequest

    return ASGIRequest(scope, io.BytesIO(body))


def csrf_failure(request: Any) -> str | None:
    """Why Django's CSRF check refuses this request, or None when it passes."""
    from django.middleware.csrf import CsrfViewMiddleware

    middleware = CsrfViewMiddleware(_protected_view)
    middleware.process_request(request)
    refused = middleware.process_view(request, _protected_view, (), {})
    return None if refused is None else "CSRF check failed: reload the page and try again."


def _protected_view(request: Any) -> HttpResponse:
    """Stands for the view in the CSRF check (not exempt); never called."""
    return HttpResponse(status=500)


@dataclass(frozen=True)
class SessionUser:
    """Who a session cookie signs in, checked by Django (session, auth hash, active user)."""

    id: int
    username: str
    role: str | None


# A session's user, kept SESSION_TTL_S: sign-out, a password change or a new role reach the lean
# routes within that (sign-out in this process at once).
SESSION_TTL_S = 2.0
_sessions: dict[str, tuple[float, SessionUser | None]] = {}
_sessions_lock = threading.Lock()


async def session_user(request: Any) -> SessionUser | None:
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    with _sessions_lock:
        hit = _sessions.get(key)
    if hit is not None and time.monotonic() - hit[0] < SESSION_TTL_S:
        return hit[1]
    user = await asyncio.get_running_loop().run_in_executor(None, _load_session_user, request, key)
    with _sessions_lock:
        if len(_sessions) > 10000:
            _sessions.clear()
        _sessions[key] = (time.monotonic(), user)
    return user


def _load_session_user(request: Any, key: str) -> SessionUser | None:
    from django.contrib.auth import get_user

    from missioncontrol.roles import role_of

    request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = get_user(request)
    if not user.is_authenticated:
        return None
    return SessionUser(user.pk, user.get_username(), role_of(user))


def forget_session(key: str | None = None) -> None:
    """Drop one cached session (sign-out) or all of them (roles changed)."""
    with _sessions_lock:
        if key is None:
            _sessions.clear()
        else:
            _sessions.pop(key, None)


async def send_django_response(send: Send, response: Any) -> None:
    """Send a Django HttpResponse (e.g. the sign-in redirect) from a lean route."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    headers.append((b"content-length", str(len(response.content)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})
