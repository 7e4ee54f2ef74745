"""Every query parameter of every page, fed hostile values in three time zones: no 5xx, ever
(issue #30 §4). The parameters are not listed by hand: a first visit of each page records which
names it reads from the query string (QueryDict.get / [] / getlist), so a page that grows a new
parameter is walked too.

Pages come from the permission matrix (every GET page an admin may open), with ids filled from
real objects. Values: other Unicode digit classes, numbers too long for any column, impossible
and extreme dates, markup, NUL, very long text — each alone, then all parameters at once; date
values again in UTC+14 and UTC−12 (a day that is representable in UTC may not be there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.http import QueryDict
from django.test import Client

from missioncontrol.models import AuditEvent
from tests.gateways.factories import make_gateway
from tests.live import once
from tests.missioncontrol.test_permission_matrix import CLASSES, ROUTES
from tests.tasks.factories import make_task

pytestmark = [
    pytest.mark.django_db,
    # What is under test is parsing, before any query; values are bounded before they reach a
    # database (parse_int, parse_day), so one profile walks it (suite time: ~30 s a walk).
    once("postgres", "parsing"),
]

ZONES = ("UTC", "Etc/GMT-14", "Etc/GMT+12")

# Not dates: checked in UTC (they mean the same in every zone). Kept short: ~20 s a walk.
PLAIN = ("²", "①", "#²", "9" * 19, "9" * 5000, "1e309", "<b>x</b>", "\x00", "x" * 5000)
# Dates and the like: checked in every zone (a day representable in UTC may not be in UTC+14).
DATES = ("0001-01-01", "9999-12-31", "2026-02-30", "9999-12-31T23:59:59-12:00")


def _routes(method: str = "GET") -> list[str]:
    """Routes an admin may GET (or POST to) that render a page or take a form (not streams,
    APIs, sign-out or the SSO)."""
    found = []
    for route, kind in ROUTES.items():
        if kind not in CLASSES or "api" in kind or kind in ("sso", "sign-out", "code-step"):
            continue
        if CLASSES[kind][method].get("admin") != "ok" or route.startswith("^"):
            continue
        found.append(route)
    return found


@pytest.fixture
def filled(carol_admin: Any) -> dict[str, str]:
    """Real objects for the ids in paths."""
    from agents.models import Agent

    gateway = make_gateway()
    task = make_task("Walked")
    agent = Agent.objects.create(name="walker")
    event = AuditEvent.objects.first()
    return {
        "tasks/<id:pk>/": f"tasks/{task.pk}/",
        "gateways/<id:pk>/": f"gateways/{gateway.pk}/",
        "gateways/<id:pk>/edit/": f"gateways/{gateway.pk}/edit/",
        "agents/<name:name>/": f"agents/{agent.name}/",
        "_event": str(event.pk if event else 1),
    }


def _path(route: str, filled: dict[str, str]) -> str | None:
    if route in filled:
        return "/" + filled[route]
    if "<" in route:
        return None  # an id route with no object made for it: its 404 reads no parameters
    return "/" + route


@contextmanager
def recording() -> Iterator[set[str]]:
    """The names a request reads from any QueryDict (GET, or POST for forms) while inside."""
    names: set[str] = set()
    originals = {name: getattr(QueryDict, name) for name in ("get", "__getitem__", "getlist")}

    def wrap(name: str) -> Any:
        original = originals[name]

        def spy(self: QueryDict, key: str, *args: Any, **kwargs: Any) -> Any:
            names.add(key)
            return original(self, key, *args, **kwargs)

        return spy

    for name in originals:
        setattr(QueryDict, name, wrap(name))
    try:
        yield names
    finally:
        for name, original in originals.items():
            setattr(QueryDict, name, original)


# Read by every page (the shell), not parameters of the page itself.
SHELL = {"csrfmiddlewaretoken", "next"}


def _params(client: Client, path: str) -> set[str]:
    with recording() as names:
        response = client.get(path)
    assert response.status_code < 500, path
    return {n for n in names if not n.startswith("_") and n not in SHELL}


def _visit(client: Client, path: str, query: dict[str, str], zone: str) -> int:
    client.cookies["mc_tz"] = zone
    response = client.get(path, query)
    status = response.status_code
    if getattr(response, "streaming", False):
        from tests.streams import read_stream

        text = read_stream(response)
        assert "\nerror," not in text, (path, query, zone)
    return status


@pytest.mark.django_db(transaction=True)  # exports read their pages from another thread
def test_no_query_parameter_makes_any_page_fail(admin: Client, filled: dict[str, str]) -> None:
    failures: list[str] = []
    walked = 0
    for route in _routes():
        path = _path(route, filled)
        if path is None:
            continue
        names = _params(admin, path)
        if not names:
            continue
        walked += 1
        for values, zones in ((PLAIN, ("UTC",)), (DATES, ZONES)):
            for value in values:
                for zone in zones:
                    queries = [{name: value} for name in sorted(names)]
                    queries.append(dict.fromkeys(names, value))
                    if "range" in names and values is DATES:
                        queries += [{"range": "custom", name: value} for name in names - {"range"}]
                    for query in queries:
                        try:
                            status = _visit(admin, path, query, zone)
                        except Exception as e:  # the test client re-raises a view's error
                            status = 500
                            detail = f"{type(e).__name__}: {str(e)[:80]}"
                        else:
                            detail = ""
                        if status >= 500:
                            shown = {
                                k: (v[:12] + "…" if len(v) > 12 else v) for k, v in query.items()
                            }
                            failures.append(f"{path} {shown} [{zone}] → {status} {detail}")
    assert walked >= 8, "the walk found too few pages with parameters"
    assert not failures, "\n" + "\n".join(sorted(set(failures))[:400])


def test_the_recorder_finds_a_pages_parameters(admin: Client) -> None:
    assert {"q"} <= _params(admin, "/search/")
