"""`/api/v1/`: the API's routes (missioncontrol/api.py), and the agents' event stream.

Mounted by missioncontrol/urls.py as a lazy, namespaced URLconf: this module (and with it
django-ninja and pydantic, ~17 MB and ~0.5 s: docs/benchmarks.md) is imported on the first
request under /api/v1/, not when the server starts.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from agents import stream
from missioncontrol import api, converters  # noqa: F401 - converters: <id:…>

_api = api.build()
_patterns, app_name, _namespace = _api.urls

for _pattern in _patterns:
    if isinstance(_pattern, URLPattern):
        _pattern.callback = api.json_refusals(_pattern.callback)

urlpatterns = [
    path("events", stream.agent_events, name="events"),
    # Not ninja's root page (a 404 naming the docs): /api/v1/ is the JSON 404 of any unknown path.
    *(p for p in _patterns if getattr(p, "name", None) != "api-root"),
]
