"""Routes that fail on purpose, for tests of a real server's resilience (tests/settings.py mounts
them before the product's URLs when MC_TEST_FAULT_ROUTES=1; product code has none of them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import include, path

from missioncontrol import streaming


class Boom(RuntimeError):
    pass


async def _raise_before() -> AsyncIterator[str]:
    raise Boom("before the first byte")
    yield ""  # pragma: no cover - makes this an async generator


async def _raise_after() -> AsyncIterator[str]:
    yield "first\n"
    raise Boom("after the first byte")


def _sync_raises() -> Iterator[str]:
    yield "never sent\n"
    raise Boom("in a sync iterator, which Django reads whole before the status line")


def stream_before(request: HttpRequest) -> StreamingHttpResponse:
    # Built by hand, past missioncontrol.streaming: what the ASGI guard must still answer.
    return StreamingHttpResponse(_raise_before(), content_type="text/plain")


def stream_after(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_raise_after(), content_type="text/plain")


def stream_sync(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_sync_raises(), content_type="text/plain")


def csv_after(request: HttpRequest) -> StreamingHttpResponse:
    def page(after: int | None) -> tuple[str, int | None]:
        if after is None:
            return "1,one\r\n", 1
        raise Boom("the second page")

    return streaming.csv_response(["id", "name"], page, filename="x.csv", what="fault export")


def view_raises(request: HttpRequest) -> JsonResponse:
    raise Boom("an ordinary view")


def connections(request: HttpRequest) -> JsonResponse:
    """How many connections daphne is tracking: it drops back to the open ones while its reaping
    loop lives, and only grows once that loop has died."""
    from twisted.internet import reactor

    # The listening port's factory holds daphne's server (and its connection table).
    servers = {
        id(server): server
        for reader in reactor.getReaders()  # type: ignore[misc]
        if (server := getattr(getattr(reader, "factory", None), "server", None)) is not None
    }
    return JsonResponse({"connections": sum(len(s.connections) for s in servers.values())})


urlpatterns = [
    path("__fault__/stream-before/", stream_before),
    path("__fault__/stream-after/", stream_after),
    path("__fault__/stream-sync/", stream_sync),
    path("__fault__/csv-after/", csv_after),
    path("__fault__/view-raises/", view_raises),
    path("__fault__/connections/", connections),
    path("", include("missioncontrol.urls")),
]

handler400 = "missioncontrol.views.bad_request"
handler403 = "missioncontrol.views.forbidden"
handler404 = "missioncontrol.views.not_found"
handler500 = "missioncontrol.views.server_error"
