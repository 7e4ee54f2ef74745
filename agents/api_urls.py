from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from agents import stream


def _lazy(build: Callable[[], Callable[..., HttpResponse]]) -> Callable[..., HttpResponse]:
    """A view whose module is imported on first use: the OpenAPI machinery (~80 ms of start-up)
    is only needed by the schema and docs pages, and DRF itself only once an agent calls one
    of its routes (it imports every optional package it finds — psycopg, requests, yaml,
    pygments … — ~15 MB a server whose agents only heartbeat never needs: idle memory,
    bench/startup.py). Heartbeats and usage are the fast path's, without DRF."""
    built = cache(build)

    @csrf_exempt
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return built()(request, *args, **kwargs)

    return view


# The DRF routes: path, view class in agents/api.py, name.
DRF_ROUTES = [
    ("agents/register", "RegisterView", "api-register"),
    ("tasks", "TasksView", "api-tasks"),
    ("tasks/<id:pk>", "TaskView", "api-task"),
    ("tasks/<id:pk>/claim", "ClaimView", "api-claim"),
    ("tasks/<id:pk>/comments", "CommentsView", "api-comments"),
]


def _schema() -> Callable[..., HttpResponse]:
    from types import SimpleNamespace

    from django.urls import include
    from drf_spectacular.views import SpectacularAPIView

    from agents import (
        api,
        openapi,  # noqa: F401 - registers the API key scheme for the schema
    )

    # The generator finds DRF views by their class, which the lazy routes hide: it reads the
    # same table with the views themselves.
    views = [path(route, getattr(api, view).as_view()) for route, view, _name in DRF_ROUTES]
    urlconf = SimpleNamespace(urlpatterns=[path("api/v1/", include(views))])
    return SpectacularAPIView.as_view(urlconf=urlconf)


def _docs() -> Callable[..., HttpResponse]:
    from drf_spectacular.views import SpectacularSwaggerSplitView

    return SpectacularSwaggerSplitView.as_view(url_name="api-schema")


# /api/v1/agents/<name>/heartbeat and /api/v1/usage are served by agents/ingest.py at the ASGI
# layer; under WSGI-less test clients they are not routed here.
def _api(name: str) -> Callable[..., HttpResponse]:
    def build() -> Callable[..., HttpResponse]:
        from agents import api

        return getattr(api, name).as_view()

    return _lazy(build)


urlpatterns = [
    *(path(route, _api(view), name=name) for route, view, name in DRF_ROUTES),
    path("events", stream.agent_events, name="api-events"),
    path("schema/", _lazy(_schema), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP.
    path("docs/", _lazy(_docs), name="api-docs"),
]
