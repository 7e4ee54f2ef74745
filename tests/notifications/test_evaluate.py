"""The notifications' evaluator and flush against the real database: once per transition, one
message for a burst, coalescing a flapping gateway, quiet hours and digests on a frozen clock,
grants and roles respected, dismissed items not sent, and a resolution only to those told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from gateways import actions as gateway_actions
from missioncontrol import overview
from missioncontrol.models import Acknowledgement
from notifications import actions
from notifications.models import Item, Message, Pending, Rule
from tests.missioncontrol.factories import UserFactory
from tests.notifications.helpers import (
    ADMIN,
    connect,
    disconnect,
    down,
    failing_agents,
    personal,
    quiet,
    step,
    team_channel,
)

pytestmark = pytest.mark.django_db
NOON = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def owner(message: Message) -> str:
    assert message.channel.owner is not None
    return message.channel.owner.get_username()


def titles(messages: list[Message]) -> list[str]:
    return [m.title for m in messages]


def test_every_provider_names_its_kind_of_notification() -> None:
    registered = overview._registry.notify
    assert set(registered) == {name for name, _p, _r in overview.providers()}
    assert set(registered.values()) <= set(overview.NOTIFY_KINDS)


def test_a_gateway_going_down_is_told_once_and_its_recovery_once() -> None:
    with time_machine.travel(NOON, tick=False) as clock:
        channel = team_channel()
        gateway = down("prod")
        sent = step()
        assert titles(sent) == ["Gateway: prod is connecting"]
        (line,) = sent[0].body["items"]
        assert line["transition"] == "raised"
        assert line["url"].endswith(f"/gateways/{gateway.pk}/")
        assert line["url"].startswith("http://localhost:")
        assert line["action"] == "Open gateway"
        assert sent[0].channel_id == channel.pk
        # Nothing changed: nothing more, however often it looks.
        assert step() == []
        assert step() == []
        clock.shift(timedelta(minutes=11))
        connect(gateway)
        sent = step()
        assert titles(sent) == ["Resolved: prod is connecting"]
        assert sent[0].body["items"][0]["transition"] == "resolved"
        assert step() == []


def test_fifty_agents_failing_at_once_are_one_message_listing_them() -> None:
    team_channel()
    failing_agents(50)
    sent = step()
    assert len(sent) == 1
    assert sent[0].title == "Agent error: 50 items"
    assert len(sent[0].body["items"]) == actions.ITEMS_PER_MESSAGE
    assert {line["title"] for line in sent[0].body["items"]} == {f"worker-{i}" for i in range(50)}


def test_a_flapping_gateway_is_one_message_per_window_then_the_state_it_is_in() -> None:
    with time_machine.travel(NOON, tick=False) as clock:
        team_channel()
        gateway = down("edge")
        assert len(step()) == 1  # down: told
        for _ in range(3):  # up and down again, within the ten minutes
            clock.shift(timedelta(minutes=1))
            connect(gateway)
            assert step() == []
            clock.shift(timedelta(minutes=1))
            disconnect(gateway)
            assert step() == []
        # The window ends with it down again: one message, about the newest occurrence.
        clock.shift(timedelta(minutes=5))
        sent = step()
        assert titles(sent) == ["Gateway: edge is unreachable"]
        # Had it come back up by then, the message would have said so; it went down again
        # instead, so nothing says it was ever fine.
        assert step() == []


def test_a_flap_that_ends_where_it_began_says_nothing_new() -> None:
    with time_machine.travel(NOON, tick=False) as clock:
        channel = team_channel()
        Rule.objects.filter(channel=channel).update(resolved=False)
        gateway = down("edge")
        assert len(step()) == 1
        clock.shift(timedelta(minutes=1))
        connect(gateway)
        assert step() == []  # no resolution asked for
        clock.shift(timedelta(minutes=20))
        assert step() == []
        assert not Pending.objects.exists()


def test_quiet_hours_hold_back_all_but_urgent_until_they_end() -> None:
    night = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # 03:00 in Berlin
    with time_machine.travel(night, tick=False) as clock:
        team_channel(time_zone="Europe/Berlin", **quiet("22:00", "07:00"))
        failing_agents(1)  # stuck work: not urgent
        assert step() == []
        (pending,) = Pending.objects.all()
        assert pending.due_at == datetime(2026, 12, 8, 6, 0, tzinfo=UTC)  # 07:00 Berlin
        down("prod")  # a gateway down is urgent: it passes
        assert titles(step()) == ["Gateway: prod is connecting"]
        clock.move_to(datetime(2026, 12, 8, 5, 59, tzinfo=UTC))
        assert step() == []
        clock.move_to(datetime(2026, 12, 8, 6, 0, 1, tzinfo=UTC))
        assert titles(step()) == ["Agent error: worker-0"]


def test_urgent_ones_wait_too_when_the_rule_says_so() -> None:
    night = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    with time_machine.travel(night, tick=False):
        team_channel(urgent_in_quiet=False, **quiet("22:00", "07:00"))
        down("prod")
        assert step() == []
        assert Pending.objects.get().due_at == datetime(2026, 12, 9, 7, 0, tzinfo=UTC)


def test_an_hourly_digest_is_one_summary_at_the_top_of_the_hour() -> None:
    with time_machine.travel(datetime(2026, 12, 8, 10, 5, tzinfo=UTC), tick=False) as clock:
        team_channel(digest=Rule.Digest.HOURLY, urgent_in_quiet=False)
        down("a")
        assert step() == []
        clock.move_to(datetime(2026, 12, 8, 10, 20, tzinfo=UTC))
        failing_agents(2)
        assert step() == []
        clock.move_to(datetime(2026, 12, 8, 11, 0, 1, tzinfo=UTC))
        (digest,) = step()
        assert digest.body["kind"] == "digest"
        assert digest.title == "Needs attention: 3 items"
        assert [line["label"] for line in digest.body["items"]] == [
            "Gateway",
            "Agent error",
            "Agent error",
        ]


def test_a_daily_digest_comes_at_nine_in_the_rules_time_zone() -> None:
    with time_machine.travel(datetime(2026, 12, 8, 15, 0, tzinfo=UTC), tick=False):
        team_channel(digest=Rule.Digest.DAILY, time_zone="America/New_York")
        failing_agents(1)
        step()
        assert Pending.objects.get().due_at == datetime(2026, 12, 9, 14, 0, tzinfo=UTC)


def test_people_are_told_only_what_their_role_and_gateways_let_them_see() -> None:
    prod, _staging = down("prod"), down("staging")
    narrowed: Any = UserFactory(username="nora", role="operator")
    gateway_actions.set_grant(ADMIN, prod, narrowed, "view")
    everyone: Any = UserFactory(username="eve", role="viewer")
    personal(narrowed)
    personal(everyone)
    sent = step()
    told = {owner(m): {line["title"] for line in m.body["items"]} for m in sent}
    assert told == {
        "nora": {"prod is connecting"},
        "eve": {"prod is connecting", "staging is connecting"},
    }
    # A budget's alerts are for operators: the viewer is not told, the operator is (it is over
    # prod's spend).
    assert Item.objects.filter(resolved_at__isnull=True).count() == 2


def test_an_approval_for_named_people_reaches_only_them() -> None:
    from missioncontrol.overview import Attention, Standing

    ann: Any = UserFactory(username="ann", role="viewer")
    bob: Any = UserFactory(username="bob", role="operator")
    personal(ann)
    personal(bob)
    approval = Attention(
        key="approval:1:100",
        kind="Approval",
        severity=overview.WAITING,
        title="deploy #3 · ship",
        detail="",
        url="/pipelines/runs/3/",
        people=("ann",),
    )
    actions.evaluate([Standing(approval, "approval", "pipelines.approvals")])
    sent = actions.flush()
    assert [owner(m) for m in sent] == ["ann"]


def test_a_dismissed_item_is_not_sent() -> None:
    with time_machine.travel(NOON, tick=False):
        person: Any = UserFactory(username="dee", role="operator")
        personal(
            person,
            quiet_start=quiet("11:00", "13:00")["quiet_start"],
            quiet_end=quiet("11:00", "13:00")["quiet_end"],
        )
        failing_agents(1)
        assert step() == []  # quiet hours: held
        (item,) = Item.objects.all()
        Acknowledgement.objects.create(user=person, key=item.key)
    with time_machine.travel(NOON + timedelta(hours=1, seconds=1), tick=False):
        assert step() == []  # dismissed meanwhile: not sent
        assert not Pending.objects.exists()


def test_kinds_and_severity_choose_what_a_rule_is_told() -> None:
    team_channel(kinds=["agent"])
    critical_only = team_channel(
        "discord", "https://discord.example.com/api/webhooks/1/x", max_severity=0
    )
    down("prod")
    failing_agents(1)
    sent = step()
    by_channel = {m.channel_id: [line["label"] for line in m.body["items"]] for m in sent}
    assert sorted(by_channel.values()) == [["Agent error"], ["Gateway"]]
    assert by_channel[critical_only.pk] == ["Gateway"]


def test_a_provider_that_fails_resolves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    team_channel()
    down("prod")
    assert len(step()) == 1
    from gateways import overview as gateway_overview

    def broken(viewer: overview.Viewer) -> list[overview.Attention]:
        raise RuntimeError("database went away")

    monkeypatch.setitem(overview._registry.attention, "gateways.down", (broken, "viewer"))
    assert step() == []
    assert Item.objects.get().resolved_at is None
    assert gateway_overview  # the real one is back after the test


def test_nothing_is_owed_to_a_rule_with_nowhere_to_send() -> None:
    person: Any = UserFactory(username="nobody", role="admin")
    channel = personal(person)
    actions.save_channel(
        ADMIN,
        actions.ChannelInput(kind="email", name="mine", target="", enabled=False),
        owner_id=person.pk,
        channel_id=channel.pk,
    )
    down("prod")
    assert step() == []
    assert not Pending.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_heartbeats_and_streamed_text_do_not_wake_the_evaluator() -> None:
    from django.db import transaction

    from missioncontrol import live
    from notifications import loops

    def published(topic: str, event_type: str) -> bool:
        loops.changed.clear()
        with transaction.atomic():
            rows = live.publish_many(topic, [{"type": event_type}])
            loops.sink(rows)
        return loops.changed.is_set()

    assert not published("fleet", "agent.seen")
    assert not published("sessions", "session.message")
    assert not published("board", "run.progress")
    assert published("fleet", "agent.status_changed")
    assert published("gateways", "gateway.state_changed")
    last = loops.newest_seq()
    live_rows = []
    with transaction.atomic():
        live_rows = live.publish_many("fleet", [{"type": "agent.seen"}])
    assert live_rows
    assert loops.watched_since(last) is None  # another process's heartbeat: nothing to look at


@pytest.mark.django_db(transaction=True)
def test_a_rule_deleted_by_another_process_meanwhile_is_skipped_not_an_error() -> None:
    from django.db import connection

    from notifications import rules

    channel = team_channel()
    assert rules.recipients()  # kept by this process for a few seconds
    with connection.cursor() as cursor:  # another process: no signal reaches this one's cache
        cursor.execute("DELETE FROM notifications_rule WHERE channel_id = %s", [channel.pk])
    down("prod")
    assert step() == []
    assert not Pending.objects.exists()


def test_nobody_to_tell_means_no_look_and_unwanted_kinds_are_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from notifications import loops

    down("prod")
    assert loops.evaluate_now() is None  # no channel anywhere: Needs attention is not read
    assert not Item.objects.exists()
    called: list[str] = []

    def review(viewer: overview.Viewer) -> list[overview.Attention]:
        called.append("review")
        return []

    monkeypatch.setitem(overview._registry.attention, "tasks.review", (review, "viewer"))
    team_channel(kinds=["gateway"])
    assert titles(step()) == ["Gateway: prod is connecting"]
    assert called == []  # nobody wants tasks in review: that provider is not asked
