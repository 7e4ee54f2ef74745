"""The activity feed's presenter: cached items are exactly what the template renders."""

from __future__ import annotations

import datetime

import pytest
from django.template.loader import render_to_string

from missioncontrol import presenters


def entry(pk: int, when: str, label: str = "bob", repr_: str = "Fix the login page") -> dict:
    return {
        "id": pk,
        "actor": {"type": "user", "label": label, "user_id": 1},
        "verb": "task.moved",
        "object": {"type": "tasks.task", "id": "7", "repr": repr_},
        "changes": {},
        "created_at": when,
    }


def direct(data: dict) -> str:
    return render_to_string(
        "missioncontrol/home.html#activity_item", {"event": presenters.feed_item(data)}
    )


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_cached_items_match_the_template(settings, zone):
    settings.TIME_ZONE = zone
    first = entry(1, "2026-12-01T10:11:12.000345+00:00")
    again = entry(2, "2026-12-01T23:59:01+00:00")  # same actor, verb and object: a cache hit
    assert presenters.item_html(first) == direct(first)
    assert presenters.item_html(again) == direct(again)
    assert len(presenters._items) == 1
    assert 'id="activity-2"' in presenters.item_html(again)
    assert "\x00" not in presenters.item_html(again)


def test_text_that_looks_like_the_marked_time_is_left_alone():
    marked = presenters._times(presenters._MARKED_TIME)["H:i:s"]
    odd = entry(3, "2026-12-01T10:11:12+00:00", repr_=f"Call at {marked}")
    assert presenters.item_html(odd) == direct(odd)
    assert f"Call at {marked}" in presenters.item_html(odd)


def test_only_the_newest_items_a_feed_can_hold_are_rendered():
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC).isoformat()
    event = {"entries": [entry(i, now, repr_=f"T{i}") for i in range(100)]}
    ops = presenters.audit_recorded(event)["ops"]
    assert [op["id"] for op in ops] == [f"activity-{i}" for i in range(70, 100)]
