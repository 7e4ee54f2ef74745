"""One API stack (issue #26 §3): every JSON route under /api/v1/ is a django-ninja operation
(or the event stream) behind the one agent-key check, refusals in the product's shape, and the
stack loads with the first API request, not with the server."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from missioncontrol import errors

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
async def test_every_operation_in_the_schema_needs_a_key():
    """No route of the API is open by omission: every operation the schema lists (ninja's and
    the fast routes') declares the agent key and refuses a request without one, through the
    real ASGI application (401, in the product's shape)."""
    import httpx

    from agents.api_urls import _api
    from missioncontrol.asgi import application

    schema = _api.get_openapi_schema()
    operations = [
        (path, method, op) for path, item in schema["paths"].items() for method, op in item.items()
    ]
    assert len(operations) >= 8
    for path, method, op in operations:
        assert op.get("security"), f"{method} {path} declares no authentication"
        url = re.sub(r"\{[a-z_]+_id\}", "1", path).replace("{name}", "someone")
        transport = httpx.ASGITransport(app=application)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            response = await http.request(method.upper(), url, json={})
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["error"] == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_signed_in_person_is_not_an_agent(viewer):
    response = viewer.get("/api/v1/tasks")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_every_code_the_product_answers_is_in_the_table():
    """Every ActionError's code is the table's code for its status (a 401 is `unauthenticated`,
    never `forbidden`), and the codes are few and named."""
    found = {}
    stack = list(errors.ActionError.__subclasses__())
    while stack:
        cls = stack.pop()
        stack += cls.__subclasses__()
        found[cls.__name__] = (cls.status, cls.code)
    for name, (status, code) in found.items():
        if name in ("AgentPaused", "RunActive", "RunEnded", "RunInProgress"):
            continue  # 409s with their own codes, documented beside Conflict
        assert errors.CODES[status] == code, (name, status, code)


def test_the_stack_loads_with_the_first_api_request_not_with_the_server(tmp_path):
    """Pages (and every {% url %} in them) leave django-ninja and pydantic unloaded: a server
    whose agents only heartbeat does not carry them (docs/benchmarks.md, idle RSS)."""
    script = textwrap.dedent(
        """
        import os, sys
        os.environ["DJANGO_SETTINGS_MODULE"] = "missioncontrol.settings"
        import django
        django.setup()
        from django.urls import resolve, reverse
        import missioncontrol.asgi  # the whole server, fast routes included
        from django.core import checks
        from missioncontrol.management.commands.serve import START_CHECKS
        assert not checks.run_checks(tags=START_CHECKS), "system checks"  # as serve runs them
        reverse("home"), reverse("tasks:board"), reverse("login")
        assert "ninja" not in sys.modules and "pydantic" not in sys.modules, "loaded at start"
        match = resolve("/api/v1/tasks")
        assert "ninja" in sys.modules, "not loaded by the first API request"
        assert reverse("api:events") == "/api/v1/events"
        assert not checks.run_checks(), "every check, the API's URLs included, once it is loaded"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"MC_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip().endswith("ok"), done.stderr[-2000:]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"name": "x\\u0000y"}', "name"),
        (b'{"name": "ok", "capabilities": "not a list"}', "capabilities"),
        (b'{"name": "ok", "heartbeat_interval_s": 1}', "heartbeat_interval_s"),
        (b'{"name": "ok", "metadata": {"deep": "\\ud800"}}', "metadata"),
        (b"[1, 2]", "name"),
        (b"{not json", "body"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(db, body, field):
    from django.test import Client

    from agents.models import AgentKey
    from tests.agents.conftest import issue

    enrollment = issue(AgentKey.Kind.ENROLLMENT)[1]
    response = Client(HTTP_AUTHORIZATION=f"Bearer {enrollment}").post(
        "/api/v1/agents/register", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["error"] == "validation_error"
    assert field in answer["detail"], answer
