from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from tests import flush
from tests.live import PASSWORD, ServerProcess
from tests.missioncontrol.factories import UserFactory

flush.install()

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(autouse=True)
def fresh_process_state() -> Iterator[None]:
    """Every cache and per-process registry empty, before and after each test."""
    from missioncontrol import state
    from missioncontrol.fastpath import writer

    state.reset_all()
    yield
    # The group-commit writers' threads end with the test: none may write into the next one's
    # database (a late idle chore deadlocked a PostgreSQL flush once, and left stray rows).
    writer.stop_all()
    state.reset_all()
    _close_the_shared_sync_threads_connection()


def _close_the_shared_sync_threads_connection() -> None:
    """asgiref's one thread for `sync_to_async` (thread-sensitive) code outside a request keeps
    the database connection a test's `sync_to_async(...)` call opened: closed here, so none is
    left open when the test database is dropped (PostgreSQL refuses to drop one in use)."""
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture
def caches_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-process caches (missioncontrol.cached.Reloaded) keep what they hold for the
    test, unless a change of their rows makes them forget: a query-count pin must not count a
    reload that a slow machine's pause between two requests made due (their TTL is a second:
    seen on a loaded CI machine, the board's pinned 15 queries were 16)."""
    from missioncontrol.cached import Reloaded

    original = Reloaded.get

    def held(self: Reloaded[Any]) -> Any:
        value = self._value
        return value[1] if value is not None else original(self)

    monkeypatch.setattr(Reloaded, "get", held)


@pytest.fixture(autouse=True)
def _caches_hold_while_counting_queries(request: pytest.FixtureRequest) -> None:
    """Every test that pins a number of queries counts them with the caches held."""
    if "django_assert_num_queries" in request.fixturenames:
        request.getfixturevalue("caches_hold")


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Time frozen (not ticking) at the test module's `NOW`; `clock.shift(seconds)` or
    `clock.move_to(when)` moves it."""
    import time_machine

    with time_machine.travel(request.module.NOW, tick=False) as traveller:
        yield traveller


def _persona(role: str | None, username: str) -> Any:
    return UserFactory.create(username=username, role=role)


@pytest.fixture
def alice_viewer(db: None) -> Any:
    return _persona("viewer", "alice")


@pytest.fixture
def bob_operator(db: None) -> Any:
    return _persona("operator", "bob")


@pytest.fixture
def carol_admin(db: None) -> Any:
    return _persona("admin", "carol")


@pytest.fixture
def oscar_outsider(db: None) -> Any:
    return _persona(None, "oscar")


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer(alice_viewer: Any) -> Client:
    return _client_for(alice_viewer)


@pytest.fixture
def operator(bob_operator: Any) -> Client:
    return _client_for(bob_operator)


@pytest.fixture
def admin(carol_admin: Any) -> Client:
    return _client_for(carol_admin)


@pytest.fixture
def outsider(oscar_outsider: Any) -> Client:
    return _client_for(oscar_outsider)


@pytest.fixture
def broadcasts(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every live message fanned out during the test (payloads to assert on).

    Real commits (transactional_db): fan-out happens on commit, as in production; the
    messages are recorded on their way to the channel layer, and still sent.
    """
    from missioncontrol import live

    sent: list[Any] = []
    fan_out = live._fan_out

    def recording(messages: list[Any]) -> None:
        sent.extend(messages)
        fan_out(messages)

    monkeypatch.setattr(live, "_fan_out", recording)
    return sent


# --- Real servers and a real browser ---------------------------------------------------------


# As ./mc passes them (unused bundles and source maps stay out of the data dir).
COLLECT_IGNORE = ["--ignore", "redoc*", "--ignore", "*.map"]


@pytest.fixture(scope="session", autouse=True)
def static_built() -> None:
    """Hashed, compressed static files, as `serve` uses them (pages need the manifest)."""
    call_command("collectstatic", "--noinput", *COLLECT_IGNORE, verbosity=0)


@pytest.fixture(scope="session")
def test_db_path(django_db_setup: None, django_db_blocker: Any) -> str:
    """Where server subprocesses find the test database: the SQLite file's path, or the
    PostgreSQL test database's URL."""
    with django_db_blocker.unblock():
        db = connection.settings_dict
        if connection.vendor == "postgresql":
            auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
            return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        return str(db["NAME"])


# Hidden tabs pause quickly in tests (the default is 10 s). The shared server holds no gateway
# connections: tests of the connector run their own (in-test, or a server of their own), and
# must not meet a second connector on their gateways.
LIVE_SERVER_ENV = {"MC_LIVE_GRACE_MS": "300", "MC_GATEWAY_CONNECTORS": "0"}


@pytest.fixture(scope="session")
def server(test_db_path: str, static_built: None) -> Iterator[ServerProcess]:
    """One real `serve` (daphne + loops) for the session, on the test database file."""
    proc = ServerProcess(test_db_path, extra_env=LIVE_SERVER_ENV).start()
    yield proc
    proc.stop()


@pytest.fixture
def live(server: ServerProcess, transactional_db: None) -> ServerProcess:
    """The shared real server, with data the test commits visible to it."""
    return server


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Real Chromium (Debian's package) through Playwright, started per test.

    Playwright's sync API keeps an asyncio loop marked running in this thread while it is
    open; per-test start/stop keeps that from leaking into async and ORM tests that follow.
    """
    from playwright.sync_api import sync_playwright

    # The ORM calls a browser test makes between steps are plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    executable = os.environ.get("MC_CHROMIUM") or "/usr/bin/chromium"
    with sync_playwright() as p:
        kwargs: dict[str, Any] = {"args": CHROMIUM_ARGS, "headless": True}
        if os.path.exists(executable):
            kwargs["executable_path"] = executable
        browser = p.chromium.launch(**kwargs)
        yield browser
        browser.close()


CSP_RECORDER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


class BrowserSession:
    """A browser context with CSP-violation and console-error recording."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(
            base_url=base_url, viewport={"width": 1440, "height": 900}
        )
        self.context.add_init_script(CSP_RECORDER)
        self.console: list[str] = []
        self.page = self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.set_default_timeout(8000)

    def _on_console(self, msg: Any) -> None:
        if msg.type in {"error", "warning"}:
            self.console.append(msg.text)

    def csp_violations(self) -> list[str]:
        found = list(self.page.evaluate("window.__csp || []"))
        found += [m for m in self.console if "Content Security Policy" in m]
        return found

    def login(self, username: str, password: str = PASSWORD) -> None:
        self.page.goto("/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browser_factory(chromium: Any, live: ServerProcess) -> Iterator[Any]:
    sessions: list[BrowserSession] = []

    def make() -> BrowserSession:
        session = BrowserSession(chromium, live.url)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def browser(browser_factory: Any) -> BrowserSession:
    return browser_factory()


@pytest.fixture
def api():
    """An HTTP client speaking to the real ASGI application (fast path and Django alike)."""

    import httpx

    from missioncontrol.asgi import application

    def make(key: str | None = None, **headers: str) -> httpx.AsyncClient:
        if key:
            headers.setdefault("Authorization", f"Bearer {key}")
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),  # type: ignore[arg-type]
            base_url="http://localhost",
            headers=headers,
        )

    return make
