"""Every request gets a whole answer, and one that fails never poisons the server (issue #30 §0).

A streaming response that raised before its first byte left the request unanswered and killed
daphne's connection-reaping loop: every later request leaked until restart. These tests make a
real `serve` fail in each way a response can (tests/fault_urls.py) and check the answer, then
that the server still reaps its connections."""

from __future__ import annotations

import ast
import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.test import Client

from missioncontrol.http import MAX_DAY, MIN_DAY, parse_day
from tests.live import ROOT, ServerProcess
from tests.streams import read_stream

ZONES = ("UTC", "Etc/GMT-14", "Etc/GMT+12", "Asia/Tokyo")


@pytest.fixture(scope="module")
def faulty(test_db_path: str) -> Iterator[ServerProcess]:
    """A real server with routes that fail on purpose."""
    proc = ServerProcess(
        test_db_path, extra_env={"MC_TEST_FAULT_ROUTES": "1", "MC_GATEWAY_CONNECTORS": "0"}
    ).start()
    yield proc
    proc.stop()


def _connections(url: str) -> int:
    return httpx.get(f"{url}/__fault__/connections/", timeout=5).json()["connections"]


def _reaped(url: str, timeout: float = 10.0) -> int:
    """daphne's tracked connections once its reaping loop (every second) has had its turn."""
    deadline = time.monotonic() + timeout
    while (count := _connections(url)) > 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    return count


@pytest.mark.slow
class TestAFailingResponseOnARealServer:
    def test_an_error_before_the_first_byte_is_a_500(self, faulty: ServerProcess) -> None:
        for route in ("stream-before", "stream-sync", "view-raises"):
            r = httpx.get(f"{faulty.url}/__fault__/{route}/", timeout=5)
            assert r.status_code == 500, route

    def test_the_api_gets_its_json_error_shape(self, faulty: ServerProcess) -> None:
        from missioncontrol.guard import _server_error

        body, content_type = _server_error("/api/v1/anything")
        assert content_type == b"application/json"
        assert b'"error": "server_error"' in body

    def test_an_error_after_the_first_byte_ends_the_stream(self, faulty: ServerProcess) -> None:
        r = httpx.get(f"{faulty.url}/__fault__/stream-after/", timeout=5)
        assert (r.status_code, r.text) == (200, "first\n")

    def test_an_export_that_fails_midway_says_so_in_its_last_row(
        self, faulty: ServerProcess
    ) -> None:
        r = httpx.get(f"{faulty.url}/__fault__/csv-after/", timeout=5)
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0] == ["id", "name"]
        assert rows[1] == ["1", "one"]
        assert rows[-1][0] == "error"

    def test_the_server_keeps_reaping_connections_after_every_kind_of_failure(
        self, faulty: ServerProcess
    ) -> None:
        routes = ("stream-before", "stream-after", "stream-sync", "csv-after", "view-raises")
        for _ in range(20):
            for route in routes:
                httpx.get(f"{faulty.url}/__fault__/{route}/", timeout=5)
        # 100 failed requests, each on its own connection, then ordinary ones.
        for _ in range(50):
            assert httpx.get(f"{faulty.url}/healthz", timeout=5).status_code == 200
        assert _reaped(faulty.url) <= 3


def test_every_streaming_response_goes_through_the_one_helper() -> None:
    """StreamingHttpResponse is built in missioncontrol/streaming.py only (async iterator, first
    byte before any work, an error marker after it)."""
    found = []
    for path in ROOT.glob("*/**/*.py"):
        parts = path.relative_to(ROOT).parts
        if parts[0] in ("tests", "bench", ".venv") or "migrations" in parts:
            continue
        if path == ROOT / "missioncontrol" / "streaming.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == (
                "StreamingHttpResponse"
            ):
                found.append(f"{Path(path).relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_a_sync_iterator_is_refused() -> None:
    from missioncontrol import streaming

    with pytest.raises(TypeError):
        streaming.response("x", iter(["y"]), content_type="text/plain", failed="", what="t")  # type: ignore[arg-type]


class TestDaysFromARequest:
    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "x",
            "2026-02-30",
            "2026-13-01",
            "２０２６-01-01",
            "2026-1-1",
            "20260101",
            "²026-01-01",
            None,
        ],
    )
    def test_what_is_not_a_plain_real_date_is_no_date(self, raw: str | None) -> None:
        assert parse_day(raw) is None

    def test_the_ends_of_the_calendar_are_clamped(self) -> None:
        assert parse_day("0001-01-01") == MIN_DAY
        assert parse_day("9999-12-31") == MAX_DAY


@pytest.mark.django_db(transaction=True)  # the export reads its pages from another thread
def test_the_audit_log_and_its_export_answer_any_day_in_any_zone(admin: Client) -> None:
    for zone in ZONES:
        admin.cookies["mc_tz"] = zone
        for day in ("0001-01-01", "9999-12-31", "2026-02-30", "0001-13-01"):
            for query in (f"since={day}", f"until={day}", f"since={day}&until={day}"):
                assert admin.get(f"/audit/?{query}").status_code == 200, (zone, query)
                export = admin.get(f"/audit/export.csv?{query}")
                assert export.status_code == 200, (zone, query)
                text = read_stream(export)
                assert text.startswith("id,at,"), (zone, query)
                assert "\nerror," not in text, (zone, query)
