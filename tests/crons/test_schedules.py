"""Schedules shown raw and in words, and their next expected run, for the three kinds a gateway
knows (read from the real gateway's own frames) and the two a direct check takes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crons.schedules import BadSchedule, Schedule
from gateways import frames

FRAMES = Path(__file__).with_name("gateway_frames.json")


def recorded(name: str) -> list[dict]:
    """What a real gateway said (tests/crons/gateway_frames.json, from PROTOCOL.md's frames)."""
    return json.loads(FRAMES.read_text())[name]


def listed_jobs() -> list[dict]:
    return recorded("cron.list")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_real_gateways_system_jobs_read_raw_and_in_words():
    schedules = {
        job["name"]: Schedule.from_gateway(frames.GatewaySchedule.read(job["schedule"]))
        for job in listed_jobs()
    }
    heartbeat = schedules["heartbeat-main"]
    assert heartbeat is not None
    assert (heartbeat.raw(), heartbeat.words()) == ("every 30m", "Every 30 minutes")
    assert heartbeat.anchor is None  # its anchorMs is an offset, not a time
    dreaming = schedules["Memory Dreaming Promotion"]
    assert dreaming is not None
    assert (dreaming.raw(), dreaming.words()) == ("0 3 * * *", "At 03:00 (UTC)")
    weekly = schedules["skill-collection-review-main"]
    assert weekly is not None
    assert weekly.words() == "Every 7 days"


def test_a_cron_schedule_in_its_zone():
    paris = Schedule.cron("0 9 * * 1-5", "Europe/Paris")
    assert paris.raw() == "0 9 * * 1-5 (Europe/Paris)"
    assert "09:00" in paris.words()
    assert "Europe/Paris" in paris.words()
    # Friday 2026-12-04 10:00 Paris → next Monday 09:00 Paris (08:00 UTC in winter).
    assert paris.next_after(at("2026-12-04T09:00:00")) == at("2026-12-07T08:00:00")


def test_every_from_an_anchor_and_without_one():
    anchored = Schedule.every(3600, anchor=at("2026-12-01T00:10:00"))
    assert anchored.next_after(at("2026-12-02T10:30:00")) == at("2026-12-02T11:10:00")
    assert Schedule.every(600).next_after(at("2026-12-02T10:00:00")) == at("2026-12-02T10:10:00")


def test_at_is_once():
    once = Schedule.from_gateway(
        frames.GatewaySchedule.read({"kind": "at", "at": "2026-12-03T09:00:00Z"})
    )
    assert once is not None
    assert once.raw() == "at 2026-12-03 09:00 UTC"
    assert once.next_after(at("2026-12-02T00:00:00")) == at("2026-12-03T09:00:00")
    assert once.next_after(at("2026-12-04T00:00:00")) is None


@pytest.mark.parametrize(
    ("expr", "tz"),
    [("61 * * * *", "UTC"), ("", "UTC"), ("* * *", "UTC"), ("0 3 * * *", "Mars/Base")],
)
def test_bad_schedules_say_why(expr, tz):
    with pytest.raises(BadSchedule):
        Schedule.cron(expr, tz)


def test_what_cannot_be_read_is_none_never_an_error():
    for raw in (
        None,
        "0 3 * * *",
        {"kind": "cron", "expr": "nope"},
        {"kind": "weird"},
        {"kind": "every"},
    ):
        assert Schedule.from_gateway(frames.GatewaySchedule.read(raw)) is None


def test_round_trip_through_storage():
    for schedule in (
        Schedule.cron("*/5 * * * *", "UTC"),
        Schedule.every(90, anchor=at("2026-12-01T00:00:00")),
        Schedule("at", at=at("2026-12-03T09:00:00")),
    ):
        assert Schedule.from_dict(schedule.as_dict()) == schedule
