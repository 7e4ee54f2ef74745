"""Which stack for the agent and operator JSON API (issue #26 §3): the same two routes written
three ways — DRF (APIView + serializers), django-ninja (pydantic schemas) and plain Django views
(one decorator, validation by hand) — measured in one process, alternated, medians of 9 rounds.

For each stack: CPU per request through Django's whole middleware stack (test client; the same
key check, the same action, the same JSON) for `GET /tasks` (an agent's 20 tasks) and
`PATCH /tasks/<id>` (a validated body applied through tasks.actions.change_own_task), and, each
in a fresh interpreter after `django.setup()`, what importing the stack and building its OpenAPI
schema costs in time and resident memory (pydantic itself counted apart: billing imports it
anyway, through genai-prices, on the first priced usage).

Usage: python bench/api_stack.py   (prints a Markdown table for docs/benchmarks.md)

DRF is no longer a dependency (the choice is made: docs/design.md, "One API stack"); to run this
again, install it beside the project first:
  pip install djangorestframework==3.18.3 drf-spectacular==0.30.0
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ROUNDS, REQUESTS = 9, 300


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- The three implementations (module level: they are this benchmark's URLconf) ---------------


def _urlpatterns() -> list[Any]:
    from django.http import HttpRequest, JsonResponse
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt

    from agents import keys
    from missioncontrol.audit import Actor
    from missioncontrol.errors import ActionError, error_response
    from tasks import actions
    from tasks.models import Task

    def task_json(task: Any) -> dict[str, Any]:
        return {"id": task.pk, "title": task.title, "status": task.status, "version": task.version}

    def listing(agent_id: int) -> list[dict[str, Any]]:
        qs = Task.objects.on_board().filter(assignee_agent_id=agent_id).order_by("position")
        return [task_json(t) for t in qs[:200]]

    # Plain Django: one decorator reads the key; validation by hand.
    def agent_key(view: Any) -> Any:
        @csrf_exempt
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            info = keys.verify(
                keys.from_headers(
                    request.headers.get("Authorization"), request.headers.get("X-Api-Key")
                )
            )
            if info is None:
                return JsonResponse({"error": "unauthenticated"}, status=401)
            request.key = info  # type: ignore[attr-defined]
            try:
                return view(request, *args, **kwargs)
            except ActionError as error:
                return error_response(error)

        return wrapped

    @agent_key
    def plain_tasks(request: Any) -> Any:
        return JsonResponse({"tasks": listing(request.key.agent_id)})

    @agent_key
    def plain_task(request: Any, pk: int) -> Any:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": "validation_error"}, status=400)
        errors = {}
        status = body.get("status")
        if status is not None and status not in Task.Status.values:
            errors["status"] = ["Not a column."]
        blocked = body.get("blocked")
        if blocked is not None and not isinstance(blocked, bool):
            errors["blocked"] = ["Must be a boolean."]
        reason = body.get("blocked_reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            errors["blocked_reason"] = ["At most 500 characters."]
        if errors:
            return JsonResponse({"error": "validation_error", "detail": errors}, status=400)
        change = actions.OwnTaskChange(request.key.agent_id, pk, status, blocked, reason)
        return JsonResponse({"task": task_json(actions.change_own_task(Actor.agent("b"), change))})

    # DRF.
    from agents.api_auth import AgentAPIView
    from rest_framework import serializers
    from rest_framework.response import Response

    class Patch(serializers.Serializer):
        status = serializers.ChoiceField(choices=Task.Status.values, required=False)
        blocked = serializers.BooleanField(required=False)
        blocked_reason = serializers.CharField(max_length=500, required=False, allow_blank=True)

    class DrfTasks(AgentAPIView):
        def get(self, request: Any) -> Response:
            return Response({"tasks": listing(request.auth.agent_id)})

    class DrfTask(AgentAPIView):
        def patch(self, request: Any, pk: int) -> Response:
            data = Patch(data=request.data)
            data.is_valid(raise_exception=True)
            v = data.validated_data
            change = actions.OwnTaskChange(
                request.auth.agent_id,
                pk,
                v.get("status"),
                v.get("blocked"),
                v.get("blocked_reason", ""),
            )
            return Response({"task": task_json(actions.change_own_task(Actor.agent("b"), change))})

    # django-ninja.
    from typing import Literal

    from ninja import NinjaAPI, Schema
    from ninja.security import HttpBearer
    from pydantic import Field

    class Bearer(HttpBearer):
        def authenticate(self, request: Any, token: str) -> Any:
            return keys.verify(token)

    api = NinjaAPI(auth=Bearer(), urls_namespace="bench-ninja", docs_url=None)

    @api.exception_handler(ActionError)
    def action_error(request: Any, exc: ActionError) -> Any:
        return error_response(exc)

    class PatchIn(Schema):
        status: Literal[tuple(Task.Status.values)] | None = None  # type: ignore[valid-type]
        blocked: bool | None = None
        blocked_reason: str = Field("", max_length=500)

    @api.get("/tasks")
    def ninja_tasks(request: Any) -> Any:
        return {"tasks": listing(request.auth.agent_id)}

    @api.patch("/tasks/{pk}")
    def ninja_task(request: Any, pk: int, body: PatchIn) -> Any:
        change = actions.OwnTaskChange(
            request.auth.agent_id, pk, body.status, body.blocked, body.blocked_reason
        )
        return {"task": task_json(actions.change_own_task(Actor.agent("b"), change))}

    return [
        path("plain/tasks", plain_tasks),
        path("plain/tasks/<int:pk>", plain_task),
        path("drf/tasks", DrfTasks.as_view()),
        path("drf/tasks/<int:pk>", DrfTask.as_view()),
        path("ninja/", api.urls),
        path("", include("missioncontrol.urls")),  # the product's own (live cards reverse them)
    ]


urlpatterns: list[Any] = []


def ninja_api() -> Any:
    """The five routes of the agent API as django-ninja declares them (for the import cost)."""
    from ninja import NinjaAPI, Schema
    from pydantic import Field

    class Register(Schema):
        name: str = Field(max_length=64)
        framework: str = Field("", max_length=64)
        role: str = Field("", max_length=64)
        capabilities: list[str] = Field(default_factory=list, max_length=50)
        version: str = Field("", max_length=64)
        metadata: dict[str, Any] = Field(default_factory=dict)
        heartbeat_interval_s: int | None = Field(None, ge=5, le=3600)

    class Patch(Schema):
        status: str | None = None
        blocked: bool | None = None
        blocked_reason: str = Field("", max_length=500)

    class Comment(Schema):
        body: str = Field(max_length=20000)

    api = NinjaAPI(urls_namespace="bench-import")

    @api.post("/agents/register")
    def register(request: Any, body: Register) -> dict[str, Any]:
        return {}

    @api.get("/tasks")
    def tasks(request: Any, status: str | None = None) -> dict[str, Any]:
        return {}

    @api.patch("/tasks/{pk}")
    def task(request: Any, pk: int, body: Patch) -> dict[str, Any]:
        return {}

    @api.post("/tasks/{pk}/claim")
    def claim(request: Any, pk: int) -> dict[str, Any]:
        return {}

    @api.post("/tasks/{pk}/comments")
    def comment(request: Any, pk: int, body: Comment) -> dict[str, Any]:
        return {}

    return api


IMPORTS = {
    "pydantic (already paid: genai-prices)": "import pydantic, genai_prices.types",
    "DRF + drf-spectacular": (
        "import rest_framework.views, rest_framework.serializers, rest_framework.authentication;"
        "from drf_spectacular.generators import SchemaGenerator; import drf_spectacular.openapi"
    ),
    "django-ninja": "from bench.api_stack import ninja_api; ninja_api().get_openapi_schema(path_prefix='/api/v1/')",
    "plain Django views": "import django.views.decorators.csrf",
}


def import_cost(label: str, code: str) -> tuple[float, float]:
    """(ms, MB of RSS) to run `code` after django.setup(), in a fresh interpreter, after
    pydantic (except for pydantic's own line)."""
    pre = "import missioncontrol.urls;"
    if not label.startswith("pydantic"):
        pre += "import pydantic, genai_prices.types;"
    script = (
        "import os, time, django;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE','missioncontrol.settings');"
        "django.setup();"
        "from bench.api_stack import rss_mb;"
        f"{pre}"
        "r0=rss_mb(); t0=time.perf_counter();"
        f"{code};"
        "print(json.dumps([(time.perf_counter()-t0)*1000, rss_mb()-r0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json;" + script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    ms, mb = json.loads(out.strip().splitlines()[-1])
    return ms, mb


def main() -> None:
    os.environ.setdefault("MC_DATA_DIR", tempfile.mkdtemp(prefix="mc-bench-api-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "missioncontrol.settings")
    os.environ["MC_BENCH_NO_RATE_LIMIT"] = "1"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import override_settings

    call_command("migrate", verbosity=0)
    from agents import actions
    from agents.models import Agent, AgentKey
    from missioncontrol.audit import Actor
    from tasks.models import Task

    agent = Agent.objects.create(name="bench-api")
    key = actions.issue_key(Actor.system("bench"), kind=AgentKey.Kind.AGENT, agent=agent)[1]
    for i in range(20):
        Task.objects.create(title=f"task {i}", assignee_agent=agent, status="todo", position=i)
    task = Task.objects.filter(assignee_agent=agent).first()
    assert task is not None
    sys.modules.setdefault("bench.api_stack", sys.modules[__name__])
    urlpatterns[:] = _urlpatterns()
    settings.ALLOWED_HOSTS = ["*"]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    results: dict[tuple[str, str], list[float]] = {}
    with override_settings(ROOT_URLCONF="bench.api_stack"):
        for stack in ("plain", "drf", "ninja"):  # warm each once, and check they answer alike
            assert client.get(f"/{stack}/tasks").json()["tasks"][0]["title"].startswith("task")
            r = client.patch(f"/{stack}/tasks/{task.pk}", {"status": "nope"}, "application/json")
            assert r.status_code in (400, 422), (stack, r.status_code, r.content)
        for _ in range(ROUNDS):
            for stack in ("plain", "drf", "ninja"):
                started = time.process_time()
                for _ in range(REQUESTS):
                    client.get(f"/{stack}/tasks")
                results.setdefault((stack, "GET"), []).append(
                    (time.process_time() - started) / REQUESTS * 1000
                )
                started = time.process_time()
                for i in range(REQUESTS):
                    r = client.patch(
                        f"/{stack}/tasks/{task.pk}",
                        {"status": ("todo", "in_progress")[i % 2], "blocked": False},
                        "application/json",
                    )
                    assert r.status_code == 200, (stack, r.content)
                results.setdefault((stack, "PATCH"), []).append(
                    (time.process_time() - started) / REQUESTS * 1000
                )
    names = {"plain": "plain Django views", "drf": "DRF", "ninja": "django-ninja"}
    print("| stack | GET /tasks (20 tasks), ms CPU | PATCH /tasks/<id>, ms CPU |")
    print("|---|---|---|")
    for stack in ("plain", "drf", "ninja"):
        get = statistics.median(results[(stack, "GET")])
        patch = statistics.median(results[(stack, "PATCH")])
        print(f"| {names[stack]} | {get:.2f} | {patch:.2f} |")
    print()
    print("| imported after django.setup() | ms | MB RSS |")
    print("|---|---|---|")
    for label, code in IMPORTS.items():
        runs = [import_cost(label, code) for _ in range(3)]
        ms = statistics.median(r[0] for r in runs)
        mb = statistics.median(r[1] for r in runs)
        print(f"| {label} | {ms:.0f} | {mb:.1f} |")


if __name__ == "__main__":
    main()
