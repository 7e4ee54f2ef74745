"""The fast path's HTTP helpers: raw ASGI scope, body and JSON answers (the product's error
shape, missioncontrol/errors.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from missioncontrol.errors import CODES, ActionError, error_body, error_headers

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


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
    send: Send, status: int, detail: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """`{"error": code, "detail": detail}` with the table's code for the status (CODES), like
    every JSON error of the product."""
    await respond(send, status, error_body(CODES[status], detail), headers)


async def refuse(send: Send, refused: ActionError) -> None:
    """An action's refusal as its JSON answer: the status, body and headers of
    `errors.error_response`, the one writer of JSON errors."""
    headers = [(k.lower().encode(), v.encode()) for k, v in error_headers(refused).items()]
    await respond(send, refused.status, refused.body(), headers)


async def admitted_body(scope: Scope, receive: Receive, send: Send, limit: int) -> bytes | None:
    """A fast route's first two checks: the host allowlist (400) and the body limit (413),
    answered here; the body, or None when the request was answered (or its client left)."""
    if not host_allowed(scope):
        await error(send, 400, "Unknown host.")
        return None
    try:
        body = await read_body(receive, scope, limit)
    except ConnectionResetError:
        return None
    if body is None:
        await error(send, 413, f"Bodies are limited to {limit} bytes.")
    return body
