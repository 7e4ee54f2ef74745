from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from agents import api, stream

# /api/v1/agents/<name>/heartbeat and /api/v1/usage are served by agents/ingest.py at the ASGI
# layer; under WSGI-less test clients they are not routed here.
urlpatterns = [
    path("agents/register", api.RegisterView.as_view(), name="api-register"),
    path("tasks", api.TasksView.as_view(), name="api-tasks"),
    path("tasks/<int:pk>", api.TaskView.as_view(), name="api-task"),
    path("tasks/<int:pk>/claim", api.ClaimView.as_view(), name="api-claim"),
    path("tasks/<int:pk>/comments", api.CommentsView.as_view(), name="api-comments"),
    path("events", stream.agent_events, name="api-events"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]
