"""Reading streamed responses in tests."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync


def read_stream(response: Any) -> str:
    """The whole body of a streamed response (its iterator is async: served on a loop)."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)().decode()
