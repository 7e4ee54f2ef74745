from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers


class SyncChainMiddleware:
    """Innermost, sync-only pass-through that makes Django run the whole chain in one thread.

    Under ASGI, Django gives each async-capable MiddlewareMixin its own sync_to_async hop per
    request and response (about 16 thread hops for our stack: measured at ~24 moves/s). A
    sync-only middleware at the bottom turns the chain sync, so a request costs one hop in and
    one out. Async views (the SSE stream) still work: they return their streaming response at
    once and Django serves its async iterator on the event loop.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


class ApiBodyLimitMiddleware:
    """The agent API's body limit: 413 with the JSON error shape, never a 500.

    Declared lengths are refused before anything is read; undeclared (chunked) bodies meet
    Django's DATA_UPLOAD_MAX_MEMORY_SIZE, whose error is turned into the same answer.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def _too_large(self) -> HttpResponse:
        from django.conf import settings

        from missioncontrol.errors import json_error

        return json_error(413, f"Bodies are limited to {settings.MC_API_MAX_BODY} bytes.")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings

        if request.path.startswith("/api/"):
            length = request.META.get("CONTENT_LENGTH") or ""
            if length.isdigit() and int(length) > settings.MC_API_MAX_BODY:
                return self._too_large()
            if not length and request.method in ("POST", "PUT", "PATCH"):
                # A chunked body has no Content-Length, and DRF reads none without one: read it
                # here (within the limit) and say how long it was.
                from django.core.exceptions import RequestDataTooBig

                try:
                    body = request.body
                except RequestDataTooBig:
                    return self._too_large()
                if len(body) > settings.MC_API_MAX_BODY:
                    return self._too_large()
                request.META["CONTENT_LENGTH"] = str(len(body))
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.core.exceptions import RequestDataTooBig

        if request.path.startswith("/api/") and isinstance(exception, RequestDataTooBig):
            return self._too_large()
        return None


class StorableInputMiddleware:
    """Every query parameter and form field, names and values, is text every database stores
    (no NUL, no lone surrogate), or the request is refused (400: JSON under /api/, the page
    elsewhere, naming the field). Views read parameters as filters and keys; on PostgreSQL a
    NUL in any of them was a 500 (DataError), on every list page and several posts — one check
    here, instead of one in every view. Forms' own fields refuse NUL too (Django's validator).
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from missioncontrol.http import text_problem

        sources = [request.GET]
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            # The body read first and kept: a view may still read it raw (a multipart form
            # parsed from the stream could not be read again).
            request.body  # noqa: B018
            sources.append(request.POST)
        for params in sources:
            for name, values in params.lists():
                for text in (name, *values):
                    problem = text_problem(text)
                    if problem:
                        return _refuse_input(request, _printable(name), problem)
        return self.get_response(request)


def _printable(name: str) -> str:
    """A field's name as it can be shown (NUL and surrogates escaped)."""
    return name.encode("unicode_escape").decode("ascii")[:60]


def _refuse_input(request: HttpRequest, name: str, problem: str) -> HttpResponse:
    from django.shortcuts import render

    from missioncontrol.errors import json_error

    if request.path.startswith("/api/"):
        return json_error(400, {name: [problem]})
    return render(request, "errors/400.html", {"problem": f"“{name}”: {problem}"}, status=400)


class PageHeadersMiddleware:
    """HTML pages: `Vary: HX-Request` (pages that answer htmx with a partial say so, so no cache
    hands one to the other). Every answer to a signed-in user or to a request with a key
    (pages, JSON, exports) is `Cache-Control: no-store` unless it says otherwise: on a shared
    machine the back button must not show the board after sign-out, and no proxy keeps a
    person's or an agent's data."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html"):
            patch_vary_headers(response, ["HX-Request"])
        if "Cache-Control" not in response:
            user = getattr(request, "user", None)
            keyed = "Authorization" in request.headers or "X-Api-Key" in request.headers
            if keyed or (user is not None and user.is_authenticated):
                add_never_cache_headers(response)
        return response


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class TimeZoneMiddleware:
    """Pages in the user's time zone: the browser's (static/js/theme.js keeps it in the
    `mc_tz` cookie); a name the server does not know falls back to MC_TIME_ZONE."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = request.COOKIES.get("mc_tz", "")
        if name and len(name) <= 64 and name in _zones():
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        return self.get_response(request)
