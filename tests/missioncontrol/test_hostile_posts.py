"""Every form field of every route that takes a POST, fed hostile values: no 5xx, ever, and
nothing stored that makes a later page 5xx in any of three time zones (issue #30 §4; the query
strings are walked by test_hostile_params.py, the form classes by test_hostile_forms.py).

The fields are not listed by hand: a route's own form page gives a valid baseline (its inputs,
the selected options, text for required fields left empty), and an empty POST records the
names the route reads besides; each name then gets each hostile value on top of the baseline —
a value that passes validation reaches the action and is stored, and every page is visited
afterwards in UTC, UTC+14 and UTC−12.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from agents.models import Agent
from tests.gateways.factories import make_gateway
from tests.live import once
from tests.missioncontrol.test_hostile_params import ZONES, _path, _routes, recording
from tests.missioncontrol.test_permission_matrix import ROUTES
from tests.tasks.factories import make_task

pytestmark = [
    pytest.mark.django_db(transaction=True),
    once("postgres", "parsing"),
]

# Not dates: posted once (UTC). Dates: posted in every zone (a browser's zone reads a local
# date or time; a day representable in UTC may not be in UTC+14).
PLAIN = ("²", "9" * 19, "-1", "\x00", "x" * 5000)
DATES = ("0001-01-01", "9999-12-31", "9999-12-31T23:59", "2026-02-30")
# Names read as dates or times where no input says so (POST-only actions).
DATE_NAMES = {"since", "until", "from", "to", "date", "day", "effective_from"}
# Read by every form (the shell), not fields of the route.
SHELL = {"csrfmiddlewaretoken", "next"}
# Walked last: they remove what the other routes act on.
ENDING = ("delete/", "revoke/", "cancel/", "rotate/", "secret/")


class _Inputs(HTMLParser):
    """The named inputs of a page's forms, with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.dates: set[str] = set()
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and a.get("type") in ("date", "datetime-local", "time"):
            self.dates.add(name)
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.values.setdefault(name, a.get("value") or ("walk" if "required" in a else ""))
        elif tag == "textarea" and name:
            self.values.setdefault(name, "walk")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select:
            # The selected option, else the first real one (a blank choice would only ever be
            # refused: the hostile value beside it must reach the action).
            value, name = a.get("value", ""), self._select
            if ("selected" in a and value) or not self.values.get(name):
                self.values[name] = value

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def _post_routes() -> list[str]:
    """Routes an admin may POST to, those that remove things last."""
    return sorted(_routes("POST"), key=lambda r: r.endswith(ENDING))


@pytest.fixture
def objects(carol_admin: Any) -> dict[str, str]:
    """A real object for each kind of id in the POST routes."""
    from agents.models import AgentSession
    from billing.models import Budget, PriceOverride
    from crons.models import Job, new_token
    from webhooks.models import Endpoint

    gateway = make_gateway()
    task = make_task("Walked")
    agent = Agent.objects.create(name="walker")
    session = AgentSession.objects.create(
        gateway=gateway, key="agent:main:walk", synced_at=timezone.now()
    )
    job = Job.objects.create(source=Job.Source.DIRECT, name="walk check", token=new_token())
    budget = Budget.objects.create(name="walk", amount_usd=10)
    price = PriceOverride.objects.create(
        provider="walk",
        model_pattern="walk-*",
        input_per_mtok=1,
        output_per_mtok=2,
        effective_from=timezone.now().date(),
    )
    endpoint = Endpoint.objects.create(url="https://example.com/hook")
    ids = {
        "tasks": task.pk,
        "gateways": gateway.pk,
        "sessions": session.pk,
        "crons": job.pk,
        "costs/budgets": budget.pk,
        "costs/prices": price.pk,
        "webhooks": endpoint.pk,
    }
    filled = {"agents/<name:name>/message/": f"agents/{agent.name}/message/"}
    for route in ROUTES:
        for prefix, pk in ids.items():
            if route.startswith(f"{prefix}/<id:pk>/"):
                filled[route] = route.replace("<id:pk>", str(pk))
    return filled


def _baseline(client: Client, path: str) -> tuple[dict[str, str], set[str]]:
    """A route's form as its page fills it, and the names of its date and time inputs."""
    page = client.get(path)
    if page.status_code != 200 or "text/html" not in page.get("Content-Type", ""):
        return {}, set()
    inputs = _Inputs()
    inputs.feed(page.content.decode())
    return {k: v for k, v in inputs.values.items() if k not in SHELL}, inputs.dates


def _post(client: Client, path: str, data: dict[str, str], zone: str) -> tuple[int, str]:
    client.cookies["mc_tz"] = zone
    try:
        return client.post(path, data).status_code, ""
    except Exception as e:  # the test client re-raises a view's error
        return 500, f"{type(e).__name__}: {str(e)[:80]}"


@pytest.fixture
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands to a gateway are refused at once (no worker holds one in this test: the walk
    is about what a form reads, not about the gateway; tests/gateways cover the commands)."""
    from gateways import commands

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise commands.Unavailable("no worker in this test")

    monkeypatch.setattr(commands, "acall", refused)


@pytest.mark.usefixtures("no_worker")
def test_no_form_field_makes_any_route_fail(admin: Client, objects: dict[str, str]) -> None:
    failures: list[str] = []
    walked = posted = accepted = 0
    for route in _post_routes():
        path = _path(route, objects)
        if path is None:
            continue
        baseline, dates = _baseline(admin, path)
        with recording() as read:
            status, detail = _post(admin, path, {}, "UTC")
        if status >= 500:
            failures.append(f"{path} (empty) → {status} {detail}")
        names = (set(baseline) | read) - SHELL
        names = {n for n in names if not n.startswith("_")}
        if not names:
            continue
        walked += 1
        for name in sorted(names):
            # A browser's zone matters only where a date or time is read.
            dated = name in dates or name in DATE_NAMES or name.endswith("_at")
            for values, zones in ((PLAIN, ("UTC",)), (DATES, ZONES if dated else ("UTC",))):
                for value in values:
                    for zone in zones:
                        status, detail = _post(admin, path, {**baseline, name: value}, zone)
                        posted += 1
                        accepted += status < 400
                        if status >= 500:
                            shown = value[:12] + "…" if len(value) > 12 else value
                            failures.append(f"{path} {name}={shown!r} [{zone}] → {status} {detail}")
    assert walked >= 15, f"the walk found only {walked} routes with fields"
    # Not only refusals: hostile values that pass validation were stored and shown below.
    assert accepted >= 100, (posted, accepted)
    # Whatever was stored, every page still renders in every zone.
    for route in _routes():
        path = _path(route, objects) or ("/" + route if "<" not in route else None)
        if path is None:
            continue
        for zone in ZONES:
            admin.cookies["mc_tz"] = zone
            try:
                status = admin.get(path).status_code
            except Exception as e:
                status, path = 500, f"{path} ({type(e).__name__}: {str(e)[:80]})"
            if status >= 500:
                failures.append(f"GET {path} [{zone}] after the walk → {status}")
    assert not failures, "\n" + "\n".join(sorted(set(failures))[:300])
