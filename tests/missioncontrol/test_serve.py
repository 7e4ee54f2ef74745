"""`manage.py serve` as a real process: answers, runs loops, stops cleanly."""

from __future__ import annotations

import http.cookiejar
import signal
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.live import PASSWORD, ServerProcess
from tests.missioncontrol.factories import UserFactory

pytestmark = pytest.mark.slow


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_exits_zero_on_signal_within_5s(
    transactional_db, test_db_path, static_built, sig
):
    server = ServerProcess(test_db_path).start()
    status, body = fetch(f"{server.url}/healthz")
    assert status == 200
    assert '"database": "ok"' in body
    status, body = fetch(f"{server.url}/login/")
    assert status == 200
    assert "Sign in" in body
    started = time.monotonic()
    code = server.stop(sig=sig, timeout=5)
    assert time.monotonic() - started < 5
    assert code == 0, server.output()
    assert "supervisor: started loop retention" in server.output()


def _login(url: str, username: str, password: str) -> int:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}/login/", timeout=5).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    data = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        f"{url}/login/", data=data, headers={"Referer": f"{url}/login/"}
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener.add_handler(NoRedirect())
    try:
        with opener.open(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_lockout_survives_a_restart(transactional_db, test_db_path, static_built, settings):
    UserFactory.create(username="mallory", role="viewer")
    first = ServerProcess(test_db_path).start()
    try:
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _login(first.url, "mallory", "wrong") == 200
        assert _login(first.url, "mallory", "wrong") == 429  # the limit-th failure locks
        assert _login(first.url, "mallory", PASSWORD) == 429
    finally:
        first.stop()
    second = ServerProcess(test_db_path).start()
    try:
        assert _login(second.url, "mallory", PASSWORD) == 429
    finally:
        second.stop()
