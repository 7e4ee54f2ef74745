"""What a gateway sends can never break a page or a sync (issue #30 §3): timestamps at the ends
of the calendar (or not numbers), durations beyond any run, in sessions, transcripts and cron
jobs — ingested through the same actions the connector calls, then every page that shows them
rendered in three time zones."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from crons import actions as cron_actions
from crons.models import Job
from gateways import frames
from tests.gateways.factories import make_gateway
from tests.gateways.test_sessions import session_row

ZONES = ("UTC", "Etc/GMT-14", "Etc/GMT+12")
# Epoch milliseconds a broken or hostile gateway may send.
HOSTILE_MS: list[Any] = [
    253402300799000,  # 9999-12-31T23:59:59Z
    -62135596800000,  # 0001-01-01
    10**30,
    -1,
    0,
    math.nan,
    math.inf,
    True,
    "1795460842274",
    None,
]


@pytest.mark.parametrize("value", HOSTILE_MS)
def test_a_hostile_timestamp_is_no_time(value: Any) -> None:
    assert frames.ms_time(value) is None


def test_a_plain_timestamp_is_read() -> None:
    assert frames.ms_time(1795460842274) == datetime.fromtimestamp(1795460842.274, tz=UTC)
    assert frames.duration(1500) is not None
    assert frames.duration(10**15) is None
    assert frames.duration(-5) is None


@pytest.mark.django_db
def test_hostile_times_in_sessions_and_jobs_break_no_page(viewer) -> None:
    gateway = make_gateway()
    agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
    rows = [
        session_row(f"agent:main:s{i}", sessionId=f"sid-{i}", updatedAt=value)
        for i, value in enumerate(HOSTILE_MS)
    ]
    agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions(rows), complete=True)
    jobs = [
        {
            "id": f"job-{i}",
            "name": f"job {i}",
            "agentId": "main",
            "enabled": True,
            "schedule": {"kind": "at", "atMs": value},
            "payload": {"kind": "command", "argv": ["x"]},
            "state": {
                "nextRunAtMs": value,
                "lastRunAtMs": value,
                "lastDurationMs": value,
                "lastRunStatus": "ok",
            },
        }
        for i, value in enumerate(HOSTILE_MS)
    ]
    # The sync survives every item (it used to raise OverflowError and restart the connector).
    cron_actions.sync_gateway_jobs(gateway.pk, frames.cron_jobs(jobs), complete=True)
    runs = [
        {
            "jobId": f"job-{i}",
            "runId": f"run-{i}",
            "action": "finished",
            "runAtMs": value,
            "ts": value,
            "durationMs": value,
            "status": "ok",
        }
        for i, value in enumerate(HOSTILE_MS)
    ]
    cron_actions.record_gateway_runs(gateway.pk, frames.cron_runs(runs))
    for i, value in enumerate(HOSTILE_MS):
        cron_actions.gateway_cron_event(
            gateway.pk,
            frames.cron_event(
                {
                    "jobId": f"job-{i}",
                    "action": "finished",
                    "runAtMs": value,
                    "durationMs": value,
                    "nextRunAtMs": value,
                    "status": "ok",
                }
            ),
        )
    assert Job.objects.filter(gateway=gateway).count() == len(HOSTILE_MS)
    pages = ["/sessions/", "/crons/", "/agents/", f"/gateways/{gateway.pk}/", "/"]
    pages += [f"/crons/{job.pk}/" for job in Job.objects.filter(gateway=gateway)]
    for zone in ZONES:
        viewer.cookies["mc_tz"] = zone
        for page in pages:
            assert viewer.get(page).status_code == 200, (page, zone)


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("plain", 100, "plain"),
        ("nul\x00byte", 100, "nulbyte"),
        ("bell\x07 and \ud800 lone", 100, "bell and  lone"),
        ("tab\tand\nnewline", 100, "tab\tand\nnewline"),
        (12, 100, "12"),
        (True, 100, ""),
        (None, 100, ""),
        ({"a": 1}, 100, ""),
        ("x" * 50, 10, "x" * 10),
    ],
)
def test_text_is_cut_and_cleaned(value: Any, limit: int, expected: str) -> None:
    assert frames.text(value, limit) == expected


@pytest.mark.parametrize("value", ["", "a\x00b", "x" * 129, 5, None, ["main"], "\ud800"])
def test_an_unusable_identifier_is_none(value: Any) -> None:
    assert frames.ident(value) is None


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, "NaN", "Infinity", -1, 10**9, True, "cheap", [1]]
)
def test_a_hostile_cost_is_no_cost(value: Any) -> None:
    assert frames.cost(value) is None


def test_a_cost_is_read_to_the_micro_dollar() -> None:
    assert str(frames.cost(0.1234567)) == "0.123457"
    assert str(frames.cost("2.5")) == "2.500000"


def test_skipped_items_are_named_and_the_rest_kept() -> None:
    skipped = frames.Skipped()
    kept = frames.agents(
        [{"id": "a"}, {"id": ""}, 5, {"id": "b\x00"}, {"id": "c", "model": {"primary": 7}}],
        skipped,
    )
    assert [item.external_id for item in kept] == ["a", "c"]
    assert skipped.counts == {"agents": {"no usable id": 2, "an item that is not an object": 1}}
    assert frames.agents("not a list", skipped) == []
    assert skipped.counts["agents"]["the list is not a list"] == 1


def test_an_answer_is_made_portable_for_any_channel_layer() -> None:
    answer = {"big": 10**30, "small": -(10**30), "nan": math.nan, "ok": True, "n": [1, 2.5]}
    assert frames.portable(answer) == {
        "big": 1e30,
        "small": -1e30,
        "nan": None,
        "ok": True,
        "n": [1, 2.5],
    }


def test_the_gateways_session_count_is_every_agents() -> None:
    """`health.sessions.count` is the default agent's only: the page said 2 for a gateway whose
    agents held 5 (#31.6). Every agent's count is summed."""
    health = {
        "ok": True,
        "agents": [
            {"agentId": "main", "sessions": {"count": 2}},
            {"agentId": "helper", "sessions": {"count": 3}},
            {"agentId": "odd", "sessions": {"count": "many"}},
        ],
        "sessions": {"count": 2},
    }
    assert frames.GatewayHealth.read(health).sessions == 5
    assert frames.GatewayHealth.read({"sessions": {"count": 4}}).sessions == 4
    assert frames.GatewayHealth.read({"agents": "x"}).agents == 0
