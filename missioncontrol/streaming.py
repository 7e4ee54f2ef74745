"""The one way to stream a response (CSV exports, Server-Sent Events).

Rules, each from a defect:
- The iterator is async. Django serves a sync iterator under ASGI by reading it all into a list
  first: no byte until the end, the whole export in memory, and any error raised before the
  status line (issue #30 §0: an audit export that never answered).
- The first chunk is written before any work that can raise (a query, a conversion): the client
  always gets a status line.
- An error after the first byte is logged and the stream ends with a marker the reader can see
  (a CSV row, an SSE `error` event), never a silently short file.
The ASGI guard (missioncontrol/guard.py) still ends the response if anything escapes this.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.http import StreamingHttpResponse

logger = logging.getLogger("missioncontrol.streaming")

# A page function: given where the last page ended (None first), the next page's text and where it
# ended (None: that was the last page). It runs in a worker thread with a database connection.
Page = Callable[[Any], tuple[str, Any]]


async def _guarded(
    first: str, rest: AsyncIterator[str], failed: str, what: str
) -> AsyncIterator[str]:
    yield first
    try:
        async for chunk in rest:
            yield chunk
    except Exception:
        logger.exception("%s failed after its first byte", what)
        yield failed


def response(
    first: str,
    rest: AsyncIterator[str],
    *,
    content_type: str,
    failed: str,
    what: str,
) -> StreamingHttpResponse:
    """A streaming response that writes `first` at once, then `rest`; if `rest` raises, `failed`
    is written and the stream ends (the error is logged as `what`)."""
    if not hasattr(rest, "__anext__"):
        raise TypeError("streaming.response takes an async iterator (see this module's rules)")
    return StreamingHttpResponse(_guarded(first, rest, failed, what), content_type=content_type)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_writer() -> Any:
    """A csv.writer whose `writerow` returns the row's text."""
    return csv.writer(_Echo())


def csv_response(
    header: list[str], page: Page, *, filename: str, what: str
) -> StreamingHttpResponse:
    """A CSV download: the header at once, then `page` after `page` (keyset pages, each its own
    short query: no cursor held open between them); an error ends it with an `error` row."""

    async def pages() -> AsyncIterator[str]:
        after: Any = None
        while True:
            text, after = await database_sync_to_async(page)(after)
            if text:
                yield text
            if after is None:
                return

    writer = csv_writer()
    failed = writer.writerow(["error", "The export stopped on a server error; rows are missing."])
    streamed = response(
        writer.writerow(header),
        pages(),
        content_type="text/csv; charset=utf-8",
        failed=failed,
        what=what,
    )
    streamed["Content-Disposition"] = f'attachment; filename="{filename}"'
    streamed["Cache-Control"] = "no-store"
    return streamed


def event_stream(first: str, rest: AsyncIterator[str], *, what: str) -> StreamingHttpResponse:
    """Server-Sent Events: `first` at once (e.g. the `retry:` line), then `rest`; an error ends it
    with an `error` event (clients reconnect and resume from their last id)."""
    streamed = response(
        first,
        rest,
        content_type="text/event-stream",
        failed='event: error\ndata: {"error": "server_error"}\n\n',
        what=what,
    )
    streamed["Cache-Control"] = "no-cache"
    streamed["X-Accel-Buffering"] = "no"
    return streamed
