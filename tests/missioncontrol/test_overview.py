"""The overview (home page): each "Needs attention" kind appears when its condition arises and
goes when it is resolved, through the real actions; acknowledging hides it for that operator
only, audited; roles, per-gateway grants and the gateway switch decide what shows; the panels;
query counts that do not grow with the fleet."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from agents.models import Agent
from billing import actions as billing_actions
from billing.models import Budget
from crons import actions as cron_actions
from crons.models import Job
from gateways import actions as gateway_actions
from gateways import frames
from gateways.models import Gateway
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent
from tasks import actions as task_actions
from tests.gateways.factories import make_gateway
from tests.tasks.factories import make_task
from webhooks import actions as webhook_actions
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db
ADMIN = Actor.system("tests")


def attention(client) -> str:
    page = client.get("/").content.decode()
    start = page.index('id="overview-attention"')
    return page[start : page.index('id="overview-panels"')]


class TestItems:
    def test_a_blocked_task_appears_with_its_reason_and_goes_when_unblocked(self, operator):
        task = make_task("Deploy the API")
        assert "Deploy the API" not in attention(operator)
        task_actions.set_blocked(ADMIN, task.pk, blocked=True, reason="waiting on DNS")
        shown = attention(operator)
        assert "Deploy the API" in shown
        assert "waiting on DNS" in shown
        task_actions.set_blocked(ADMIN, task.pk, blocked=False)
        assert "Deploy the API" not in attention(operator)

    def test_a_task_in_review_waits_on_a_person(self, operator):
        task = make_task("Write the release notes")
        task_actions.move_task(ADMIN, task.pk, to_status="review")
        assert "Write the release notes" in attention(operator)
        task_actions.move_task(ADMIN, task.pk, to_status="done")
        assert "Write the release notes" not in attention(operator)

    def test_an_offline_agent_with_work_and_an_agent_in_error(self, operator):
        ada = Agent.objects.create(name="ada", status=Agent.Status.OFFLINE)
        bob = Agent.objects.create(name="bob", status=Agent.Status.OFFLINE)
        task = make_task("Crunch numbers")
        task_actions.update_task(ADMIN, task.pk, {"assignee": f"agent:{ada.pk}"})
        task_actions.move_task(ADMIN, task.pk, to_status="in_progress")
        shown = attention(operator)
        assert ">ada<" in shown
        assert ">bob<" not in shown
        Agent.objects.filter(pk=bob.pk).update(status=Agent.Status.ERROR, last_message="OOM")
        shown = attention(operator)
        assert ">bob<" in shown
        assert "OOM" in shown
        task_actions.move_task(ADMIN, task.pk, to_status="done")
        assert ">ada<" not in attention(operator)

    def test_an_agents_failure_stays_after_the_sweep_until_resolved_or_acknowledged(
        self, operator, settings
    ):
        """`mc-agent run` of a command that fails reports an error; a minute later the sweep
        turned the agent stale and the failure vanished unseen (#31.7). It stays, newest
        first among its kind, until the agent reports a healthy status or someone
        acknowledges it."""
        import time_machine
        from django.db import transaction
        from django.utils import timezone

        def beat(agent: Agent, status: str, message: str = "") -> None:
            with transaction.atomic():
                agent_actions.apply_heartbeats(
                    [
                        agent_actions.Heartbeat(
                            agent_id=agent.pk, key_id=0, status=status, message=message
                        )
                    ]
                )

        settings.MC_AGENT_OFFLINE_AFTER_S = 600
        old = Agent.objects.create(name="old-failure", heartbeat_interval_s=30)
        flaky = Agent.objects.create(name="flaky", heartbeat_interval_s=30)
        start = timezone.now()
        with time_machine.travel(start, tick=False) as clock:
            beat(old, "error", "exit 1")
            clock.shift(timedelta(minutes=20))
            beat(flaky, "error", "exit 2: boom")
            clock.shift(timedelta(minutes=2))
            agent_actions.sweep_statuses()
            assert Agent.objects.get(pk=flaky.pk).status == Agent.Status.STALE
            shown = attention(operator)
            assert ">flaky<" in shown
            assert "exit 2: boom" in shown
            assert shown.index(">flaky<") < shown.index(">old-failure<")  # newest first
            # Acknowledged: gone for that operator (the same occurrence, whatever the sweep does).
            page = operator.get("/").content.decode()
            key = page[page.index(f"agent.error:{flaky.pk}:") :]
            key = key[: key.index('"')]
            operator.post("/overview/acknowledge/", {"key": key, "for": ""})
            clock.shift(timedelta(minutes=15))
            agent_actions.sweep_statuses()
            assert Agent.objects.get(pk=flaky.pk).status == Agent.Status.OFFLINE
            assert ">flaky<" not in attention(operator)
            # Resolved: a healthy status clears it for everyone.
            assert ">old-failure<" in attention(operator)
            beat(old, "idle")
            assert ">old-failure<" not in attention(operator)

    def test_a_failed_run_until_a_later_run_ends_well(self, operator):
        from tests.gateways.test_sessions import session_row

        gateway = make_gateway(name="prod")
        Gateway.objects.filter(pk=gateway.pk).update(state="connected")
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agent_sessions.sync_gateway_sessions(
            gateway.pk, frames.sessions([session_row(label="nightly triage")])
        )
        agent_sessions.end_session_run(
            gateway.pk, "agent:main:main", "r1", frames.RunEnd("error", "No route to model")
        )
        shown = attention(operator)
        assert "nightly triage" in shown
        assert "No route to model" in shown
        agent_sessions.end_session_run(gateway.pk, "agent:main:main", "r2", None)
        assert "nightly triage" not in attention(operator)

    def test_a_gateway_not_connected_with_its_remedy(self, operator):
        gateway = make_gateway(name="edge")
        gateway_actions.record_state(
            gateway.pk,
            Gateway.State.AUTH_FAILED,
            detail="bad token",
            remedy="Update the token here.",
        )
        shown = attention(operator)
        assert "edge is" in shown
        assert "Update the token here." in shown
        gateway_actions.record_state(gateway.pk, Gateway.State.CONNECTED)
        assert "edge is" not in attention(operator)

    def test_a_failing_cron_job(self, operator):
        check = cron_actions.create_check(
            ADMIN, {"name": "db dump", "kind": "every", "every_s": 3600}
        )
        token = Job.objects.get(pk=check.pk).token
        cron_actions.checkin(token, "fail")
        assert "db dump" in attention(operator)
        cron_actions.checkin(token, "success")
        assert "db dump" not in attention(operator)

    def test_a_budget_threshold_for_operators_not_viewers(self, operator, viewer):
        budget = billing_actions.save_budget(
            ADMIN, Budget(name="Team", amount_usd=Decimal("0.01"), thresholds=[50])
        )
        agent = Agent.objects.create(name="spender")
        from django.db import transaction

        from billing.actions import UsageItem, record_usage

        with transaction.atomic():
            record_usage(
                [UsageItem(agent.pk, "gpt-4o", 10_000, 5_000, datetime.now(UTC), provider="openai")]
            )
        assert "Team crossed 50%" in attention(operator)
        assert "Team crossed 50%" not in attention(viewer)
        assert budget.pk

    def test_a_failing_webhook_for_admins_only(self, admin, operator, settings):
        settings.MC_WEBHOOK_ALLOW_PRIVATE = True
        hook = webhook_actions.save_endpoint(
            ADMIN, Endpoint(url="http://127.0.0.1:9/h", description="Chat", event_types=["*"])
        )
        Endpoint.objects.filter(pk=hook.pk).update(
            consecutive_failures=3, failing_since=datetime.now(UTC)
        )
        assert "Chat is failing" in attention(admin)
        assert "Chat is failing" not in attention(operator)

    def test_many_of_one_kind_fold_into_one_line_and_the_rare_stay_on_top(self, operator):
        for i in range(6):
            task = make_task(f"Stuck {i}")
            task_actions.set_blocked(ADMIN, task.pk, blocked=True, reason="r")
        gateway = make_gateway(name="edge")
        gateway_actions.record_state(gateway.pk, Gateway.State.UNREACHABLE, remedy="check it")
        shown = attention(operator)
        assert shown.index("edge is") < shown.index("Stuck 5")  # a gateway down comes first
        # Within a kind the newest first: the oldest are the ones folded into "more".
        assert shown.index("Stuck 5") < shown.index("Stuck 3")
        assert "Stuck 0" not in shown
        assert shown.count('data-key="task.blocked:') == 3
        assert "and 3 more blocked tasks" in shown
        assert "/board/?blocked=1" in shown
        page = operator.get("/").content.decode()
        assert "7 things</strong>" in page


class TestAcknowledging:
    def test_dismissed_for_that_operator_only_and_audited(self, operator, request):
        task = make_task("Unblock me")
        task_actions.set_blocked(ADMIN, task.pk, blocked=True, reason="stuck")
        key = f"task.blocked:{task.pk}:"
        page = operator.get("/").content.decode()
        full_key = page[page.index(key) : page.index('"', page.index(key))]
        response = operator.post("/overview/acknowledge/", {"key": full_key, "for": ""})
        assert response.status_code == 302
        assert "Unblock me" not in attention(operator)
        other = request.getfixturevalue("admin")
        assert "Unblock me" in attention(other)
        assert AuditEvent.objects.filter(verb="overview.acknowledged").count() == 1
        # Blocked again later: a new occurrence, shown again.
        task_actions.set_blocked(ADMIN, task.pk, blocked=False)
        from tasks.models import Task

        Task.objects.filter(pk=task.pk).update(updated_at=datetime.now(UTC) + timedelta(seconds=5))
        import time_machine

        with time_machine.travel(datetime.now(UTC) + timedelta(minutes=1)):
            task_actions.set_blocked(ADMIN, task.pk, blocked=True, reason="stuck again")
            assert "Unblock me" in attention(operator)

    def test_snoozed_for_an_hour(self, operator):
        import time_machine

        task = make_task("Snooze me")
        task_actions.set_blocked(ADMIN, task.pk, blocked=True, reason="later")
        page = operator.get("/").content.decode()
        key = page[page.index("task.blocked:") : page.index('"', page.index("task.blocked:"))]
        operator.post("/overview/acknowledge/", {"key": key, "for": "1h"})
        assert "Snooze me" not in attention(operator)
        with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61)):
            assert "Snooze me" in attention(operator)

    def test_viewers_cannot_and_bad_input_is_a_400(self, viewer, operator):
        assert viewer.post("/overview/acknowledge/", {"key": "x"}).status_code == 403
        assert operator.post("/overview/acknowledge/", {"key": ""}).status_code == 400
        assert operator.post("/overview/acknowledge/", {"key": "x", "for": "9y"}).status_code == 400


class TestScope:
    def test_grants_and_the_gateway_switch(self, viewer, alice_viewer, operator):
        prod, edge = make_gateway(name="prod"), make_gateway(name="edge")
        for gateway in (prod, edge):
            gateway_actions.record_state(gateway.pk, Gateway.State.UNREACHABLE, remedy="check it")
        gateway_actions.set_grant(ADMIN, prod, alice_viewer, "view")
        shown = attention(viewer)
        assert "prod is" in shown
        assert "edge is" not in shown
        operator.post("/gateways/view/", {"gateway": str(edge.pk)})
        shown = attention(operator)
        assert "edge is" in shown
        assert "prod is" not in shown


class TestPage:
    def test_panels(self, operator):
        from django.db import transaction

        from agents.models import AgentStatusChange
        from billing.actions import UsageItem, record_usage

        ada = Agent.objects.create(name="ada", status=Agent.Status.BUSY, model="claude-x")
        AgentStatusChange.objects.create(agent=ada, old="idle", new="busy", reason="heartbeat")
        with transaction.atomic():
            record_usage(
                [UsageItem(ada.pk, "gpt-4o", 10_000, 5_000, datetime.now(UTC), provider="openai")]
            )
        make_task("One")
        page = operator.get("/").content.decode()
        running = page[page.index("ov-running-title") : page.index("ov-fleet-title")]
        # (#31.14) Seconds, not "for 0 minutes".
        assert re.search(r"for \d+ seconds?", running), running
        assert "0 minutes" not in running
        assert "today" in running
        for title in ("Running now", "Fleet health", "Spend", "Board", "Activity"):
            assert f">{title}<" in page, title
        assert ">ada<" in page
        assert "claude-x" in page
        assert 'data-live-refetch="' in page
        assert ada.pk

    def test_spend_names_todays_top_agents_and_models_and_a_week_of_bars(self, operator):
        from django.db import transaction

        from billing.actions import UsageItem, record_usage

        agent = Agent.objects.create(name="spender")
        with transaction.atomic():
            record_usage(
                [UsageItem(agent.pk, "gpt-4o", 10_000, 5_000, datetime.now(UTC), provider="openai")]
            )
        page = operator.get("/").content.decode()
        assert "Top agents today: spender" in page
        assert '<span class="mono">gpt-4o</span>' in page
        assert page.count('class="trend-bar') == 7

    def test_viewers_see_no_spend(self, viewer):
        page = viewer.get("/").content.decode()
        assert ">Spend<" not in page
        assert ">Board<" in page

    def test_query_count_does_not_grow_with_the_fleet(self, operator, caches_hold):
        def fleet(n: int, start: int) -> None:
            for i in range(start, start + n):
                agent = Agent.objects.create(name=f"a{i}", status=Agent.Status.BUSY)
                task = make_task(f"T{i}")
                task_actions.set_blocked(ADMIN, task.pk, blocked=True, reason="r")
                assert agent.pk

        fleet(3, 0)
        operator.get("/")
        with CaptureQueriesContext(connection) as few:
            operator.get("/")
        fleet(6, 3)
        operator.get("/")
        with CaptureQueriesContext(connection) as more:
            operator.get("/")
        assert len(more) == len(few), [q["sql"][:80] for q in more.captured_queries]


class TestActivity:
    def test_filtered_by_kind_and_paged(self, operator, monkeypatch):
        from missioncontrol import views

        monkeypatch.setattr(views, "ACTIVITY_PAGE", 2)
        for i in range(3):
            make_task(f"Feed {i}")
        check = cron_actions.create_check(
            ADMIN, {"name": "feed job", "kind": "every", "every_s": 3600}
        )
        page = operator.get("/?activity=task").content.decode()
        feed = page[page.index('id="activity-list"') :]
        assert "Feed 2" in feed
        assert "Feed 1" in feed
        assert "feed job" not in feed
        assert "Load more" in feed
        older = operator.get("/?activity=task").context["activity_older"]
        more = operator.get(f"/?activity=task&before={older}").content.decode()
        assert "Feed 0" in more[more.index('id="activity-list"') :]
        cron_page = operator.get("/?activity=cron").content.decode()
        assert "feed job" in cron_page[cron_page.index('id="activity-list"') :]
        assert operator.get("/?activity=nonsense&before=x").status_code == 200
        assert check.pk

    def test_the_gateway_switch_narrows_the_feed(self, operator, bob_operator):
        """(#31.6) The switch on one gateway: the feed is that gateway's lines (and reloads on
        each event, the live push not knowing the switch); all gateways: everything."""
        from gateways import actions as gateway_actions
        from tests.gateways.factories import make_gateway

        make_gateway("prod")
        staging = make_gateway("staging")
        make_task("A task of nobody's gateway")

        def feed() -> str:
            page = operator.get("/").content.decode()
            return page[page.index('id="activity-list"') :]

        assert "prod" in feed()
        assert "staging" in feed()
        gateway_actions.choose_view(bob_operator.pk, staging)
        session = operator.session
        session.pop("mc_gateway_view", None)
        session.save()
        narrowed = feed()
        assert "staging" in narrowed
        assert ">prod<" not in narrowed
        assert "A task of nobody" not in narrowed
        page = operator.get("/").content.decode()
        assert 'id="activity-panel" data-live-topic="activity" data-live-refetch="activity"' in page


@pytest.mark.django_db
def test_the_gateway_filter_in_sql_agrees_with_sees() -> None:
    """Providers read only the rows they show through Viewer.gateway_q; it must pick exactly
    the rows Viewer.sees would keep, for every kind of viewer."""
    from agents.models import Agent
    from missioncontrol.overview import Viewer
    from tasks.models import Task
    from tests.gateways.factories import make_gateway
    from tests.tasks.factories import make_task

    one, two = make_gateway(name="one"), make_gateway(name="two")
    agents = [
        Agent.objects.create(name="a1", gateway=one),
        Agent.objects.create(name="a2", gateway=two),
        Agent.objects.create(name="direct"),
    ]
    for agent in agents:
        make_task(f"for {agent.name}", assignee=f"agent:{agent.pk}")
    make_task("nobody's")
    viewers = [
        Viewer(None, "admin", None, None),
        Viewer(None, "operator", frozenset({one.pk}), None),
        Viewer(None, "operator", None, two.pk),
        Viewer(None, "operator", None, 0),
        Viewer(None, "operator", frozenset({one.pk}), two.pk),
        Viewer(None, "operator", frozenset(), None),
    ]
    for viewer in viewers:
        by_sql = set(Task.objects.filter(viewer.gateway_q("assignee_agent__gateway")))
        by_python = {
            t
            for t in Task.objects.select_related("assignee_agent")
            if viewer.sees(t.assignee_agent.gateway_id if t.assignee_agent else None)
        }
        assert by_sql == by_python, viewer
        agents_sql = set(Agent.objects.filter(viewer.gateway_q("gateway")))
        assert agents_sql == {a for a in Agent.objects.all() if viewer.sees(a.gateway_id)}
