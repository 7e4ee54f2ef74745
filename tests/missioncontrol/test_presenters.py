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


def test_a_line_says_where_the_change_went():
    """(#31.14) 'status sweep marked agent codex-2 → stale', 'bob moved task … → Review' — not a
    status change with no status; cached per destination (the same line to another column is
    another item)."""
    moved = entry(1, "2026-12-01T10:11:12+00:00")
    moved["changes"] = {"before": {"status": "todo"}, "after": {"status": "review"}}
    done = {**moved, "id": 2, "changes": {"after": {"status": "done"}}}
    swept = {
        "id": 3,
        "actor": {"type": "system", "label": "status sweep", "user_id": None},
        "verb": "agent.status_changed",
        "object": {"type": "agents.agent", "id": "4", "repr": "codex-2"},
        "changes": {"before": {"status": "idle"}, "after": {"status": "stale"}},
        "created_at": "2026-12-01T10:11:13+00:00",
    }
    assert "Fix the login page</span> → Review" in presenters.item_html(moved)
    assert "Fix the login page</span> → Done" in presenters.item_html(done)
    text = presenters.item_html(swept)
    assert "<strong>status sweep</strong> marked agent" in text
    assert "codex-2</span> → stale" in text
    for item in (moved, done, swept):
        assert presenters.item_html(item) == direct(item)


@pytest.mark.django_db
def test_a_line_about_a_gateways_data_names_the_gateway(admin):
    """(#31.6) A session's or a scheduled job's line says which gateway, live and on load."""
    from crons import actions as cron_actions
    from gateways import frames
    from missioncontrol.audit import Actor
    from tests.gateways.factories import make_gateway

    prod = make_gateway("prod", colour="teal")
    cron_actions.sync_gateway_jobs(
        prod.pk,
        frames.cron_jobs(
            [
                {
                    "id": "j1",
                    "name": "nightly",
                    "enabled": True,
                    "schedule": {"kind": "cron", "expr": "0 3 * * *"},
                }
            ]
        ),
        complete=True,
    )
    cron_actions.record_run_requested(Actor.system("t"), cron_actions.Job.objects.get(), "r1")
    entry = {
        "id": 99,
        "actor": {"type": "system", "label": "t", "user_id": None},
        "verb": "cron.run_requested",
        "object": {"type": "crons.job", "id": "1", "repr": "nightly"},
        "changes": {},
        "created_at": "2026-12-01T10:11:13+00:00",
        "gateway_id": prod.pk,
    }
    assert 'class="gw-badge gw-teal"' in presenters.item_html(entry)
    assert presenters.item_html(entry) == direct(entry)
    page = admin.get("/").content.decode()
    feed = page[page.index('id="activity-list"') :]
    assert 'class="gw-badge gw-teal"' in feed
