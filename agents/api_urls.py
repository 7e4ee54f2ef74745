from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from agents import api, stream


def _lazy(build: Callable[[], Callable[..., HttpResponse]]) -> Callable[..., HttpResponse]:
    """A view whose module is imported on first use: the OpenAPI machinery (~80 ms of start-up)
    is only needed by the schema and docs pages."""
    built = cache(build)

    @csrf_exempt
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return built()(request, *args, **kwargs)

    return view


def _schema() -> Callable[..., HttpResponse]:
    from drf_spectacular.views import SpectacularAPIView

    from agents import openapi  # noqa: F401 - registers the API key scheme for the schema

    return SpectacularAPIView.as_view()


def _docs() -> Callable[..., HttpResponse]:
    from drf_spectacular.views import SpectacularSwaggerSplitView

    return SpectacularSwaggerSplitView.as_view(url_name="api-schema")


# /api/v1/agents/<name>/heartbeat and /api/v1/usage are served by agents/ingest.py at the ASGI
# layer; under WSGI-less test clients they are not routed here.
urlpatterns = [
    path("agents/register", api.RegisterView.as_view(), name="api-register"),
    path("tasks", api.TasksView.as_view(), name="api-tasks"),
    path("tasks/<id:pk>", api.TaskView.as_view(), name="api-task"),
    path("tasks/<id:pk>/claim", api.ClaimView.as_view(), name="api-claim"),
    path("tasks/<id:pk>/comments", api.CommentsView.as_view(), name="api-comments"),
    path("events", stream.agent_events, name="api-events"),
    path("schema/", _lazy(_schema), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP.
    path("docs/", _lazy(_docs), name="api-docs"),
]
