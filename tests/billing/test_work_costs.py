"""Cost by the work it paid for: a task's card and page, a session's page, and the Costs page
by session — all read from the work rollup (records that name a task or a session)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from billing import actions as billing_actions
from billing import announcer
from billing.actions import UsageItem, record_usage
from billing.models import PriceOverride
from gateways import frames
from missioncontrol import live
from missioncontrol.audit import Actor
from missioncontrol.models import LiveEvent
from tasks import actions as task_actions
from tasks.models import Task
from tests.agents.factories import AgentFactory
from tests.gateways.factories import make_gateway
from tests.gateways.test_sessions import session_row
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.fixture
def work(clock, django_capture_on_commit_callbacks):
    """ada (direct) works on a task in run-1; main@prod answers in its gateway session."""
    prod = make_gateway(name="prod", url="ws://127.0.0.1:9/")
    ada = AgentFactory.create(name="ada")
    agent_actions.sync_gateway_agents(prod.pk, frames.agents([{"id": "main"}]))
    (session,) = agent_sessions.sync_gateway_sessions(prod.pk, frames.sessions([session_row()]))
    task = make_task("Ship the release")
    main = session.agent_id
    assert main is not None
    with django_capture_on_commit_callbacks(execute=True):
        record_usage(
            [
                # gpt-4o: 1,000 in + 500 out = $0.0075, on the task, in run-1.
                UsageItem(
                    ada.pk,
                    "gpt-4o",
                    1000,
                    500,
                    NOW - timedelta(hours=1),
                    provider="openai",
                    task_id=task.pk,
                    session="run-1",
                ),
                # Three days ago, same task and run: $0.0075 again (whole days of the rollup).
                UsageItem(
                    ada.pk,
                    "gpt-4o",
                    1000,
                    500,
                    NOW - timedelta(days=3),
                    provider="openai",
                    task_id=task.pk,
                    session="run-1",
                ),
                # claude-sonnet-4: 1,000 in + 500 out = $0.0105, in the gateway session.
                UsageItem(
                    main,
                    "claude-sonnet-4",
                    1000,
                    500,
                    NOW - timedelta(minutes=5),
                    provider="anthropic",
                    session="agent:main:main",
                ),
                # Neither a task nor a session: in no work row.
                UsageItem(ada.pk, "gpt-4o", 2000, 0, NOW - timedelta(minutes=1), provider="openai"),
            ]
        )
    return {"ada": ada, "session": session, "task": task, "prod": prod}


class TestTaskCost:
    def test_the_card_shows_what_the_work_cost_and_a_cost_change_reaches_the_board(
        self, work, operator
    ):
        task = work["task"]
        assert announcer.announce_usage()
        task.refresh_from_db()
        assert task.cost == Decimal("0.015")
        event = LiveEvent.objects.get(type="task.cost_changed")
        assert event.topic == "board"
        assert event.payload["tasks"] == [{"id": task.pk, "cost_usd": "0.015000000"}]
        assert live.present(event)["ops"] == [
            {"op": "text", "id": f"cost-task-{task.pk}", "text": "$0.015"}
        ]
        board = operator.get("/board/").content.decode()
        assert f'id="cost-task-{task.pk}" title="What the work on it cost so far">$0.015<' in board
        # A move carries the cost in its event, and the card it pushes shows it.
        task_actions.move_task(Actor.system("t"), task.pk, to_status="review")
        moved = LiveEvent.objects.filter(type="task.moved").latest("seq")
        assert moved.payload["task"]["cost_usd"] == "0.015000000"
        (card,) = [op for op in live.present(moved)["ops"] if op["op"] == "upsert"]
        assert (
            f'id="cost-task-{task.pk}" title="What the work on it cost so far">$0.015<'
            in card["html"]
        )
        # Nothing changed since: no second event.
        assert task_actions.set_costs({task.pk: task.cost_nanos}) == 0
        assert LiveEvent.objects.filter(type="task.cost_changed").count() == 1

    def test_a_task_without_usage_shows_no_cost(self, work, operator):
        other = make_task("Nothing spent")
        board = operator.get("/board/").content.decode()
        assert f'id="cost-task-{other.pk}" title="What the work on it cost so far"><' in board

    def test_the_task_page_and_a_reprice_agree(self, work, admin):
        task = work["task"]
        announcer.announce_usage()
        assert admin.get(f"/tasks/{task.pk}/").context["cost"].cost == Decimal("0.015")
        PriceOverride.objects.create(
            model_pattern="gpt-4o", input_per_mtok=1, output_per_mtok=2, effective_from="2000-01-01"
        )
        billing_actions.reprice(Actor.system("t"), for_real=True)
        task.refresh_from_db()
        # 2 × (1,000 × $1 + 500 × $2) / M = $0.004.
        assert task.cost == Decimal("0.004")
        assert admin.get(f"/tasks/{task.pk}/").context["cost"].cost == Decimal("0.004")
        assert LiveEvent.objects.filter(type="task.cost_changed").latest("seq").payload[
            "tasks"
        ] == [{"id": task.pk, "cost_usd": "0.004000000"}]

    def test_a_tasks_cost_is_read_again_not_added_up(self, work):
        """Two processes may each record part of a task's usage: each announces the total it
        reads from the rollup, so the last word is always the whole."""
        task = work["task"]
        Task.objects.filter(pk=task.pk).update(cost_nanos=1)  # as another process left it
        announcer.note_usage(0, 1, {task.pk})
        announcer.announce_usage()
        task.refresh_from_db()
        assert task.cost == Decimal("0.015")


class TestBySession:
    def test_the_costs_page_breaks_down_by_session_with_agent_and_transcript(self, work, viewer):
        page = viewer.get("/costs/?by=session")
        rows = {r["label"]: r for r in page.context["rows"]}
        assert {k: r["t"].cost for k, r in rows.items()} == {
            "agent:main:main": Decimal("0.0105"),
            "run-1": Decimal("0.015"),
        }
        assert rows["agent:main:main"]["page"] == f"/sessions/{work['session'].pk}/"
        assert rows["run-1"]["page"] == ""  # a CLI agent's run has no transcript here
        assert rows["run-1"]["agent_label"] == "ada"
        html = page.content.decode()
        assert "transcript" in html
        # Click-through: that session of that agent, by model.
        drilled = viewer.get(rows["run-1"]["href"])
        assert drilled.context["total"].cost == Decimal("0.015")
        assert ("Session", "run-1") in [
            (what, shown) for what, shown, _ in drilled.context["q"].chips
        ]
        # A session name alone is not a filter (it is only unique with its agent).
        alone = viewer.get("/costs/?session=run-1")
        assert alone.context["total"].cost == Decimal("0.0305")
        table = list(
            csv.reader(io.StringIO(viewer.get("/costs/?by=session&format=csv").content.decode()))
        )
        assert table[0][:3] == ["session", "agent", "cost_usd"]
        assert sorted((r[0], r[1], Decimal(r[2])) for r in table[1:]) == [
            ("agent:main:main", "main@prod", Decimal("0.0105")),
            ("run-1", "ada", Decimal("0.015")),
        ]

    def test_a_sessions_page_shows_its_cost_by_our_prices(self, work, viewer, monkeypatch):
        from gateways import commands

        def unavailable(*args: object, **kwargs: object) -> None:
            raise commands.Unavailable("the gateway is not connected")

        # The transcript lives on the gateway; the cost is ours and shows without it.
        monkeypatch.setattr(commands, "call", unavailable)
        page = viewer.get(f"/sessions/{work['session'].pk}/")
        spend = page.context["spend"]
        assert (spend["t"].cost, spend["t"].records) == (Decimal("0.0105"), 1)
        html = page.content.decode()
        assert 'id="session-cost">$0.010<' in html
        assert "session=agent%3Amain%3Amain" in spend["href"]
        drilled = viewer.get(spend["href"])
        assert drilled.context["total"].cost == Decimal("0.0105")

    @pytest.mark.django_db(transaction=True)  # the stream reads in pages, from another thread
    def test_records_csv_of_one_session(self, work, viewer):
        from tests.billing.test_views import read_stream

        ada = work["ada"]
        body = read_stream(
            viewer.get(f"/costs/records.csv?range=30d&agent={ada.name}&session=run-1")
        )
        rows = list(csv.DictReader(io.StringIO(body)))
        assert [r["session"] for r in rows] == ["run-1", "run-1"]
