"""The MCP server's tests: the official SDK's client, over Streamable HTTP to the real ASGI
application (in process here; against a real `serve` and over the stdio bridge in
test_live.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.agents.conftest import ada, ada_key, bob_key  # noqa: F401


@pytest.fixture
def mcp_client() -> Callable[..., Any]:
    """`async with mcp_client(key) as client:` an SDK `Client` with that credential (None:
    none), through the application in process."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from missioncontrol.asgi import application

    @asynccontextmanager
    async def make(key: str | None, *, mode: str = "legacy") -> AsyncIterator[Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        http = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=application),  # type: ignore[arg-type]
            base_url="http://localhost",
            headers=headers,
            timeout=30,
        )
        async with http:
            transport = streamable_http_client("http://localhost/mcp/", http_client=http)
            async with Client(transport, mode=mode) as client:
                yield client

    return make
