"""The permission matrix: every route of the product × every kind of caller × GET and POST →
what must happen. The routes are read from the URL resolver (and the ASGI fast-path and
WebSocket tables): a route missing from ROUTES fails the suite, so every new route must be
classified here before it lands.

Outcomes: `ok` (past the access check: any answer but a refusal — 200, a redirect elsewhere,
a form error, a 404 for the made-up id), `login` (302 to the sign-in page), `403`, `401`,
`405`. Ids in paths are made up (999999): a caller who may use a route reaches its "not found";
one who may not is refused before anything is looked up. A 500 fails the test by itself (the
test client raises it).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from agents.models import Agent, AgentKey
from tests.agents.conftest import issue

pytestmark = pytest.mark.django_db

PRINCIPALS = ("anonymous", "outsider", "viewer", "operator", "admin", "agent_key", "enrollment_key")
PEOPLE = ("viewer", "operator", "admin")
KEYS = ("agent_key", "enrollment_key")


def _table(get: dict[str, str], post: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"GET": get, "POST": post}


def _by_rank(least: str | None, refused_signed_in: str = "403") -> dict[str, str]:
    """People from `least` up may; other signed-in people get 403; anonymous callers and key
    holders (a key is not a session) are sent to sign in."""
    ranks = {"viewer": 0, "operator": 1, "admin": 2}
    found = {"anonymous": "login", "agent_key": "login", "enrollment_key": "login"}
    found["outsider"] = "ok" if least == "anyone" else refused_signed_in
    for person in PEOPLE:
        found[person] = "ok" if least == "anyone" or ranks[person] >= ranks[least or ""] else "403"
    return found


ALL_405 = dict.fromkeys(PRINCIPALS, "405")
ALL_OK = dict.fromkeys(PRINCIPALS, "ok")
NO_KEY = dict.fromkeys(PRINCIPALS, "401")  # the agent API: a session is no credential


def _api(agent: str, enrollment: str = "403") -> dict[str, str]:
    return {**NO_KEY, "agent_key": agent, "enrollment_key": enrollment}


# Access classes: method → principal → outcome.
CLASSES: dict[str, dict[str, dict[str, str]]] = {
    # Open to everyone: health, the sign-in page, the favicon.
    "public": _table(ALL_OK, ALL_OK),
    "public-get": _table(ALL_OK, ALL_405),
    # Pages any role reads; the forms and POST-only actions of each role.
    "viewer-page": _table(_by_rank("viewer"), ALL_405),
    "viewer-form": _table(_by_rank("viewer"), _by_rank("viewer")),
    "operator-form": _table(_by_rank("operator"), _by_rank("operator")),
    "admin-page": _table(_by_rank("admin"), ALL_405),
    "operator-page": _table(_by_rank("operator"), ALL_405),
    "admin-form": _table(_by_rank("admin"), _by_rank("admin")),
    "viewer-post": _table(ALL_405, _by_rank("viewer")),
    "operator-post": _table(ALL_405, _by_rank("operator")),
    "admin-post": _table(ALL_405, _by_rank("admin")),
    # A page everyone with a role reads whose form only admins submit (budgets).
    "viewer-page-admin-form": _table(_by_rank("viewer"), _by_rank("admin")),
    # Acting on a gateway's agent or session: operators, or a viewer granted `operate_gateway`
    # on that gateway — so every role passes the role check and the grant is checked on the
    # object (tests/gateways/test_grants.py walks the grants).
    "gateway-operate-post": _table(ALL_405, _by_rank("viewer")),
    # Any signed-in person, role or not (their own password); signing out (anyone).
    "signed-in-form": _table(_by_rank("anyone"), _by_rank("anyone")),
    "signed-in-page": _table(
        _by_rank("anyone"),
        {**ALL_405, "anonymous": "login", "agent_key": "login", "enrollment_key": "login"},
    ),
    "sign-out": _table(ALL_405, dict.fromkeys(PRINCIPALS, "login")),
    # The API: a key, never a session. A method the route lacks is 405 for everyone (before
    # any key is read: the routes are public in the schema). An agent key acts as its agent
    # (made-up ids: its JSON 404); an enrollment key only registers (an agent key may register
    # again: idempotent).
    "enroll-api": _table(ALL_405, _api("ok", "ok")),
    "agent-api-post": _table(ALL_405, _api("404")),
    # … and one whose body is read first (an empty one: its 400).
    "agent-api-post-body": _table(ALL_405, _api("ok")),
    "agent-api-patch": {"GET": NO_KEY, "POST": ALL_405, "PATCH": _api("404")},
    # GET: an agent's own tasks; POST: a person's token (operators) creates one — neither a
    # session nor an agent key may (tests/missioncontrol/test_api_tokens.py walks the tokens).
    "tasks-api": _table(_api("ok"), NO_KEY),
    # A person's token only (operators: tests/runs walks the roles): a session is no
    # credential and an agent's key may not (dispatch, abort).
    "person-api-post": _table(ALL_405, NO_KEY),
    # A person's token only, GET (and, on a collection, POST to create: admins, walked by
    # tests/pipelines/test_api.py): a session and an agent's key are no credential.
    "person-api": _table(NO_KEY, NO_KEY),
    "person-api-get": _table(NO_KEY, ALL_405),
    # A run: a person's token, or an agent's key for its own (a made-up id: its 404).
    "run-api": _table(_api("404"), ALL_405),
    # Who the credential acts as: any key or token.
    "api-me": _table(_api("ok", "ok"), ALL_405),
    # The API's schema and docs: people with a role and key holders.
    "api-docs": _table(
        {**_by_rank("viewer"), "anonymous": "401", "agent_key": "ok", "enrollment_key": "ok"},
        {**dict.fromkeys(PRINCIPALS, "405"), "anonymous": "401", "outsider": "403"},
    ),
    # The fast routes of the agent API: a POST with an agent key (an empty heartbeat is one; an
    # empty usage report a 400); a person's session is no key; other methods 405.
    "fast-agent": _table(ALL_405, _api("ok")),
    # The board's move: operators; a key holder sends no CSRF token (403, Django's order: the
    # CSRF check before sign-in).
    "board-move": _table(
        ALL_405, {**_by_rank("operator"), "agent_key": "403", "enrollment_key": "403"}
    ),
    # Browsers' reports of what the CSP blocked: anyone may send one (an empty body: 400).
    "csp-report": _table(ALL_405, dict.fromkeys(PRINCIPALS, "ok")),
    # Check-ins: the unguessable id is the credential; a made-up one is 404 for everyone.
    "checkin": _table(ALL_405, dict.fromkeys(PRINCIPALS, "404")),
    # Unknown paths under /api/: a JSON 404 for everyone.
    "api-404": _table(dict.fromkeys(PRINCIPALS, "404"), dict.fromkeys(PRINCIPALS, "404")),
    # Single sign-on's start and callback: open to anyone (they are how one signs in), GET only;
    # a page 404 while SSO is off, as in this suite's settings (tests/missioncontrol/test_sso.py
    # drives them with it on and checks the 404).
    "sso": _table(ALL_OK, ALL_405),
    # Two-factor sign-in's code step: only after a right password (tests/missioncontrol/
    # test_two_factor.py); without one, everyone is sent to sign in.
    "code-step": _table(dict.fromkeys(PRINCIPALS, "login"), dict.fromkeys(PRINCIPALS, "login")),
    # The Django admin: admins only (others signed in: 403; anonymous: the app's sign-in).
    "django-admin": _table(_by_rank("admin"), _by_rank("admin")),
}

# Every route → its class. (SSE streams: only their refusals are walked here — an allowed
# caller's stream never ends; tests/missioncontrol/test_live.py and tests/agents cover them.)
ROUTES: dict[str, str] = {
    "": "viewer-page",
    "overview/acknowledge/": "operator-post",
    "search/": "viewer-page",
    "healthz": "public-get",
    "csp-report/": "csp-report",
    "events/stream": "stream:viewer",
    "login/": "public",
    "logout/": "sign-out",
    "login/code/": "code-step",
    "account/two-factor/": "signed-in-form",
    "account/two-factor/qr.svg": "signed-in-page",
    "sso/login/": "sso",
    "sso/callback/": "sso",
    "account/password/": "signed-in-form",
    "account/password/done/": "signed-in-page",
    "audit/": "admin-page",
    "settings/deployment/": "admin-page",
    "settings/deployment/clear/": "admin-post",
    "settings/people/": "admin-form",
    "account/tokens/": "viewer-form",
    "account/tokens/<id:pk>/revoke/": "viewer-post",
    "account/notifications/": "viewer-form",
    "account/notifications/<id:pk>/test/": "viewer-post",
    "account/notifications/push/": "viewer-post",
    "account/notifications/<id:pk>/toggle/": "viewer-post",
    "account/notifications/<id:pk>/delete/": "viewer-post",
    "settings/notifications/": "admin-form",
    "settings/notifications/<id:pk>/": "admin-form",
    "settings/notifications/<id:pk>/test/": "admin-post",
    "settings/notifications/<id:pk>/delete/": "admin-post",
    "costs/today/": "operator-page",
    "sessions/<id:pk>/facts/": "viewer-page",
    "settings/people/<id:pk>/role/": "admin-post",
    "settings/people/<id:pk>/active/": "admin-post",
    "settings/people/<id:pk>/password/": "admin-post",
    "settings/people/<id:pk>/gateways/": "admin-post",
    "audit/export.csv": "admin-page",
    "board/": "viewer-page",
    "board/column/<str:status>/": "viewer-page",
    "tasks/": "viewer-page",
    "tasks/new/": "operator-form",
    "tasks/<id:pk>/": "viewer-page",
    "tasks/<id:pk>/edit/": "operator-post",
    "tasks/<id:pk>/block/": "operator-post",
    "tasks/<id:pk>/blocked-by/": "operator-post",
    "tasks/<id:pk>/comments/": "operator-post",
    "tasks/<id:pk>/archive/": "operator-post",
    "tasks/<id:pk>/delete/": "admin-post",
    "tasks/<id:pk>/dispatch/": "operator-post",
    "runs/<id:pk>/": "viewer-page",
    "runs/<id:pk>/abort/": "operator-post",
    "runs/<id:pk>/retry/": "operator-post",
    "pipelines/": "viewer-page",
    "pipelines/new/": "admin-form",
    "pipelines/approvals/": "viewer-page",
    # Anyone with a role may post an answer; who may answer each approval (a role or named
    # people) is checked on it (tests/pipelines/test_engine.py).
    "pipelines/approvals/<id:pk>/answer/": "viewer-post",
    # A gateway's exec approval: operators, and the gateway's grant (tests/gateways walk it).
    "pipelines/approvals/exec/<id:pk>/answer/": "operator-post",
    # An agent's question: operators, and the agent's gateway's grant (tests/pipelines).
    "pipelines/approvals/agent/<id:pk>/answer/": "operator-post",
    "pipelines/runs/<id:pk>/": "viewer-page",
    "pipelines/runs/<id:pk>/cancel/": "operator-post",
    "pipelines/runs/<id:pk>/rerun/": "operator-post",
    "pipelines/<id:pk>/": "viewer-page",
    "pipelines/<id:pk>/edit/": "admin-form",
    "pipelines/<id:pk>/form/": "admin-form",
    "pipelines/new/form/": "admin-form",
    "pipelines/<id:pk>/export/": "viewer-page",
    "pipelines/<id:pk>/start/": "operator-post",
    "pipelines/<id:pk>/archive/": "admin-post",
    "pipelines/<id:pk>/triggers/": "admin-post",
    # The signature is the credential (tests/pipelines/test_triggers.py); a made-up id: 404.
    "api/v1/pipelines/<id:pk>/webhook": "checkin",
    "agents/": "viewer-page",
    "agents/<name:name>/": "viewer-page",
    "agents/<name:name>/message/": "gateway-operate-post",
    "agents/<name:name>/runs/": "operator-post",
    "sessions/": "viewer-page",
    "sessions/<id:pk>/": "viewer-page",
    "sessions/<id:pk>/send/": "gateway-operate-post",
    "sessions/<id:pk>/abort/": "gateway-operate-post",
    # Resetting a session needs the gateway's operator.admin scope: admins only here.
    "sessions/<id:pk>/reset/": "admin-post",
    "settings/keys/": "admin-form",
    "settings/keys/<id:pk>/revoke/": "admin-post",
    "gateways/": "viewer-page",
    "gateways/view/": "viewer-post",
    "gateways/new/": "admin-form",
    "gateways/<id:pk>/": "viewer-page",
    "gateways/<id:pk>/edit/": "admin-form",
    "gateways/<id:pk>/delete/": "admin-post",
    "gateways/<id:pk>/test/": "admin-post",
    "gateways/<id:pk>/access/": "admin-post",
    "costs/": "viewer-page",
    "costs/records.csv": "viewer-page",
    "costs/prices/": "admin-form",
    "costs/prices/<id:pk>/delete/": "admin-post",
    "costs/budgets/": "viewer-page-admin-form",
    "costs/budgets/<id:pk>/": "admin-form",
    "costs/budgets/<id:pk>/delete/": "admin-post",
    "costs/budgets/<id:pk>/lift/": "admin-post",
    "costs/alerts/<id:pk>/acknowledge/": "operator-post",
    "webhooks/": "admin-form",
    "webhooks/deliveries/": "admin-page",
    "webhooks/deliveries/<id:pk>/": "admin-page",
    "webhooks/deliveries/<id:pk>/redeliver/": "admin-post",
    "webhooks/deliveries/<id:pk>/cancel/": "admin-post",
    "webhooks/<id:pk>/": "admin-form",
    "webhooks/<id:pk>/secret/": "admin-post",
    "webhooks/<id:pk>/rotate/": "admin-post",
    "webhooks/<id:pk>/test/": "admin-post",
    "webhooks/<id:pk>/redeliver/": "admin-post",
    "webhooks/<id:pk>/delete/": "admin-post",
    "crons/": "viewer-page",
    "crons/checks/new/": "admin-form",
    "crons/<id:pk>/": "viewer-page",
    "crons/<id:pk>/run/": "operator-post",
    "crons/<id:pk>/enabled/": "admin-post",
    "crons/<id:pk>/settings/": "admin-post",
    "crons/<id:pk>/delete/": "admin-post",
    "crons/<id:pk>/rotate/": "admin-post",
    "api/v1/checkins/<uuid:token>": "checkin",
    "api/v1/checkins/<uuid:token>/start": "checkin",
    "api/v1/checkins/<uuid:token>/fail": "checkin",
    "api/v1/agents/register": "enroll-api",
    "api/v1/tasks": "tasks-api",
    "api/v1/me": "api-me",
    "api/v1/tasks/<id:task_id>": "agent-api-patch",
    "api/v1/tasks/<id:task_id>/claim": "agent-api-post",
    "api/v1/tasks/<id:task_id>/comments": "agent-api-post-body",
    "api/v1/events": "stream:agent",
    "api/v1/runs/<id:run_id>": "run-api",
    "api/v1/runs/<id:run_id>/abort": "person-api-post",
    "api/v1/runs/<id:run_id>/retry": "person-api-post",
    "api/v1/runs/<id:run_id>/claim": "agent-api-post",
    "api/v1/runs/<id:run_id>/release": "agent-api-post",
    "api/v1/runs/<id:run_id>/progress": "agent-api-post-body",
    "api/v1/runs/<id:run_id>/finish": "agent-api-post-body",
    "api/v1/pipelines": "person-api",
    "api/v1/pipelines/<id:pipeline_id>": "person-api-get",
    "api/v1/pipelines/<id:pipeline_id>/runs": "person-api-post",
    "api/v1/pipeline-runs/<id:run_id>": "person-api-get",
    "api/v1/pipeline-runs/<id:run_id>/cancel": "person-api-post",
    "api/v1/approvals/<id:approval_id>": "person-api-post",
    "api/v1/schema/": "api-docs",
    "api/v1/docs/": "api-docs",
    "favicon.ico": "public-get",
    "sw.js": "public-get",
    "^api/(?P<rest>.*)$": "api-404",
}
# Every Django admin route: one class (the admin site guards them all).
ADMIN_PREFIX = "admin/"

# Routes answered at the ASGI layer, before Django (missioncontrol/asgi.py): the fast routes are
# walked here through the real ASGI application (test_the_matrix_holds_for_the_fast_routes),
# with the path and class each is walked with; the WebSocket by its own test.
ASGI_ROUTES: dict[str, tuple[str, str] | str] = {
    "POST ^/api/(?:v1/)?agents/(?P<name>[^/]+)/heartbeat/?$": (
        "/api/v1/agents/matrix-agent/heartbeat",
        "fast-agent",
    ),
    "POST ^/api/v1/usage/?$": ("/api/v1/usage", "fast-agent"),
    "POST ^/tasks/(?P<pk>[0-9]{1,18})/move/$": ("/tasks/999999/move/", "board-move"),
    "POST ^/api/v1/tasks/(?P<pk>[0-9]{1,18})/runs/?$": (
        "/api/v1/tasks/999999/runs",
        "person-api-post",
    ),
    "ws/live/": "tests/missioncontrol/test_live.py (origin, session, role)",
}


def _walk(resolver: URLResolver, prefix: str = "") -> list[str]:
    found: list[str] = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            found += _walk(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            found.append(prefix + str(entry.pattern))
    return found


def django_routes() -> list[str]:
    return _walk(get_resolver())


def test_every_route_is_classified():
    routes = django_routes()
    missing = [r for r in routes if r not in ROUTES and not r.startswith(ADMIN_PREFIX)]
    assert not missing, f"classify these routes in ROUTES: {missing}"
    stale = [r for r in ROUTES if r not in routes]
    assert not stale, f"ROUTES lists routes that no longer exist: {stale}"
    for route, kind in ROUTES.items():
        assert kind in CLASSES or kind.startswith("stream:"), (route, kind)


def test_every_asgi_route_is_classified():
    from missioncontrol import asgi

    listed = {f"{r.method} {r.pattern}" for r in asgi.FAST_ROUTES}
    assert all(
        not isinstance(ASGI_ROUTES[f"{r.method} {r.pattern}"], str) for r in asgi.FAST_ROUTES
    )
    listed |= {str(p.pattern) for p in asgi.websocket_urlpatterns}
    assert listed == set(ASGI_ROUTES), "classify the ASGI routes in ASGI_ROUTES"


def _path(route: str) -> str:
    if route.startswith("^api/"):
        return "/api/v9/nothing-here"
    path = re.sub(r"<id:\w+>", "999999", route)
    path = re.sub(r"<uuid:\w+>", str(uuid.uuid4()), path)
    path = path.replace("<str:status>", "todo").replace("<name:name>", "nobody")
    return "/" + path


def _outcome(response: Any) -> str:
    return _outcome_of(response.status_code, response, response)


def _outcome_of(status: int, headers: Any, response: Any) -> str:
    if status == 302 and "/login/" in headers["Location"]:
        return "login"
    if status in (401, 403, 405, 429):
        return str(status)
    if status == 404 and headers.get("Content-Type", "").startswith("application/json"):
        # The JSON 404 of /api/ (an unknown check id, an unknown path) is its own outcome; an
        # HTML page's 404 for the made-up id means the caller got past the access check.
        return "404" if response.json().get("error") == "not_found" else "ok"
    assert status < 500, (status, response)
    return "ok"


@pytest.fixture
def callers(request: pytest.FixtureRequest) -> dict[str, Client]:
    agent = Agent.objects.create(name="matrix-agent")
    agent_key = issue(AgentKey.Kind.AGENT, agent)[1]
    enrollment_key = issue(AgentKey.Kind.ENROLLMENT, max_uses=1000)[1]
    return {
        "anonymous": Client(),
        "outsider": request.getfixturevalue("outsider"),
        "viewer": request.getfixturevalue("viewer"),
        "operator": request.getfixturevalue("operator"),
        "admin": request.getfixturevalue("admin"),
        "agent_key": Client(HTTP_AUTHORIZATION=f"Bearer {agent_key}"),
        "enrollment_key": Client(HTTP_AUTHORIZATION=f"Bearer {enrollment_key}"),
    }


def _check(callers: dict[str, Client], path: str, table: dict[str, dict[str, str]]) -> list[str]:
    from missioncontrol import ratelimit

    wrong = []
    for method, expected_by in table.items():
        ratelimit.reset()  # each route's callers start with full buckets
        for principal, expected in expected_by.items():
            client = callers[principal]
            response = client.generic(method, path)
            got = _outcome(response)
            if got != expected:
                wrong.append(f"{method} {path} as {principal}: {got}, expected {expected}")
    return wrong


def test_the_matrix_holds_for_every_route(callers):
    wrong: list[str] = []
    # Signing out last: it ends the callers' sessions.
    for route in sorted(django_routes(), key=lambda r: ROUTES.get(r) == "sign-out"):
        if route.startswith(ADMIN_PREFIX):
            continue
        kind = ROUTES[route]
        path = _path(route)
        if kind.startswith("stream:"):
            continue  # test_streams_refuse_whoever_may_not_listen
        wrong += _check(callers, path, CLASSES[kind])
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db(transaction=True)
async def test_the_matrix_holds_for_the_fast_routes(
    alice_viewer, bob_operator, carol_admin, oscar_outsider
):
    """The routes browsers and agents use at the ASGI layer, walked like the Django ones: every
    principal, GET and POST, through missioncontrol.asgi.application (sessions and the CSRF
    token as a browser sends them, keys as agents do)."""
    import httpx
    from asgiref.sync import sync_to_async

    from missioncontrol import ratelimit
    from missioncontrol.asgi import application

    def principals() -> dict[str, dict[str, Any]]:
        agent = Agent.objects.create(name="matrix-agent")
        csrf = "a" * 32
        found: dict[str, dict[str, Any]] = {}
        for name, user in (
            ("anonymous", None),
            ("outsider", oscar_outsider),
            ("viewer", alice_viewer),
            ("operator", bob_operator),
            ("admin", carol_admin),
        ):
            cookies = {"csrftoken": csrf}
            if user is not None:
                client = Client()
                client.force_login(user)
                cookies["sessionid"] = client.cookies["sessionid"].value
            found[name] = {"cookies": cookies, "headers": {"X-CSRFToken": csrf}}
        keys = {
            "agent_key": issue(AgentKey.Kind.AGENT, agent)[1],
            "enrollment_key": issue(AgentKey.Kind.ENROLLMENT, max_uses=1000)[1],
        }
        for name, key in keys.items():
            found[name] = {"cookies": {}, "headers": {"Authorization": f"Bearer {key}"}}
        return found

    callers = await sync_to_async(principals)()
    wrong: list[str] = []
    for walked in ASGI_ROUTES.values():
        if isinstance(walked, str):
            continue
        path, kind = walked
        for method, expected_by in CLASSES[kind].items():
            ratelimit.reset()
            for principal, expected in expected_by.items():
                caller = callers[principal]
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=application),  # type: ignore[arg-type]
                    base_url="http://localhost",
                    cookies=caller["cookies"],
                    headers=caller["headers"],
                ) as http:
                    response = await http.request(method, path)
                got = _outcome_of(response.status_code, response.headers, response)
                if got != expected:
                    wrong.append(f"{method} {path} as {principal}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


STREAM_REFUSALS = {
    # The browsers' SSE stream: people with a role (a JSON 401 for no session).
    "stream:viewer": {"anonymous": "401", "outsider": "403", "agent_key": "401"},
    # The agents' stream: an agent key only.
    "stream:agent": {"anonymous": "401", "viewer": "401", "enrollment_key": "403"},
}


@pytest.mark.django_db(transaction=True)
def test_streams_refuse_whoever_may_not_listen(callers):
    """Only the refusals: an allowed caller's stream never ends (its content is tested in
    tests/missioncontrol/test_live.py and tests/agents/test_api.py). Async views: a real
    transaction, so the view's own thread sees the rows."""
    wrong = []
    for route, kind in ROUTES.items():
        if not kind.startswith("stream:"):
            continue
        path = _path(route) + "?topics=activity"
        for principal, expected in STREAM_REFUSALS[kind].items():
            got = _outcome(callers[principal].get(path))
            if got != expected:
                wrong.append(f"GET {path} as {principal}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_the_django_admin_is_for_admins_only(callers):
    """Every admin route (a sample per model: the index, each changelist and add page)."""
    from django.contrib import admin as django_admin

    paths = ["/admin/"]
    for model in django_admin.site._registry:
        meta = model._meta
        paths += [f"/admin/{meta.app_label}/{meta.model_name}/"]
    wrong: list[str] = []
    for path in paths:
        wrong += _check(callers, path, CLASSES["django-admin"])
    assert not wrong, "\n".join(wrong)
