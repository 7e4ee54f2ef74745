"""Budget enforcement: a spent budget that pauses at 100 % pauses the agents it covers — the
heartbeat answer says so, claiming and assignment are refused with the reason — until the
period ends, an admin lifts the pause or raises the amount (both audited)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from agents import events
from agents.models import Agent, AgentKey, AgentSession
from billing import actions, budgets
from billing.models import Budget, BudgetAlert, BudgetSpend
from missioncontrol.audit import Actor
from missioncontrol.errors import AgentPaused
from missioncontrol.models import AuditEvent, LiveEvent
from tasks import actions as task_actions
from tasks.models import Task
from tests.agents.conftest import issue
from tests.agents.factories import AgentFactory
from tests.billing import factories
from tests.gateways.factories import make_gateway
from tests.tasks.factories import make_task

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ADMIN = Actor.system("test")


def spend(agent: Agent, n: int = 1000) -> None:
    """One gpt-4o call of n input + n/2 output tokens: $0.0075 for n=1000."""
    factories.spend(agent.pk, n=n)


def timezone_now() -> datetime:
    from django.utils import timezone

    return timezone.now()


def budget(**kw) -> Budget:
    fields = {"name": "Team", "amount_usd": Decimal("0.01"), "thresholds": [80], "enforce": True}
    return factories.make_budget(**{**fields, **kw})


async def beat(api, key: str, name: str) -> dict:
    async with api(key) as c:
        r = await c.post(
            f"/api/v1/agents/{name}/heartbeat",
            content=json.dumps({"status": "idle"}),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.django_db
class TestPauses:
    def test_a_spent_enforced_budget_pauses_its_agents_once_spent(self, clock):
        ada = AgentFactory.create(name="ada")
        b = budget()
        spend(ada)  # $0.0075 of $0.01: 75 %
        assert budgets.pause_of(ada.pk) is None
        spend(ada)  # $0.015: spent
        pause = budgets.pause_of(ada.pk)
        assert pause is not None
        assert pause.budget_id == b.pk
        assert "Team" in pause.reason
        assert "$0.01" in pause.reason
        assert "this month" in pause.reason
        # The 100 % alert is raised even though the thresholds only named 80, and says so.
        assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [80, 100]
        crossed = [
            e.payload["pauses_agents"]
            for e in LiveEvent.objects.filter(type="budget.threshold_crossed").order_by("seq")
        ]
        assert crossed == [False, True]

    def test_a_budget_that_only_alerts_pauses_no_one(self, clock):
        ada = AgentFactory.create(name="ada")
        budget(enforce=False)
        spend(ada)
        spend(ada)
        assert budgets.pause_of(ada.pk) is None

    def test_scopes_pause_only_their_agents(self, clock):
        prod = make_gateway("prod")
        ada = AgentFactory.create(name="ada")
        bob = AgentFactory.create(name="bob", gateway=prod, source="gateway")
        cid = AgentFactory.create(name="cid")
        budget(name="prod", scope="gateway", gateway=prod)
        budget(name="ada only", scope="agent", agent=ada)
        spend(bob, 2000)
        spend(ada, 2000)
        held = budgets.paused({ada.pk, bob.pk, cid.pk})
        assert {agent: pause.budget for agent, pause in held.items()} == {
            bob.pk: "prod",
            ada.pk: "ada only",
        }
        assert budgets.pause_of(cid.pk) is None

    def test_the_pause_ends_with_the_period(self, clock):
        ada = AgentFactory.create(name="ada")
        budget(period="day")
        spend(ada, 2000)
        assert budgets.pause_of(ada.pk) is not None
        clock.move_to(NOW + timedelta(days=1))
        budgets.forget()
        assert budgets.pause_of(ada.pk) is None

    def test_lifting_lets_agents_work_on_this_period_audited(self, clock, admin, operator):
        ada = AgentFactory.create(name="ada")
        b = budget()
        spend(ada, 2000)
        assert operator.post(f"/costs/budgets/{b.pk}/lift/").status_code == 403
        assert budgets.pause_of(ada.pk) is not None
        assert admin.post(f"/costs/budgets/{b.pk}/lift/").status_code == 302
        assert budgets.pause_of(ada.pk) is None
        assert AuditEvent.objects.filter(verb="budget.pause_lifted").count() == 1
        assert LiveEvent.objects.filter(type="budget.pause_lifted").count() == 1
        spend(ada, 2000)  # spending on does not pause again this period
        assert budgets.pause_of(ada.pk) is None
        assert BudgetSpend.objects.get().pause_lifted_at is not None
        # Lifting twice does nothing more.
        assert not actions.lift_pause(ADMIN, b)
        assert AuditEvent.objects.filter(verb="budget.pause_lifted").count() == 1

    def test_raising_the_amount_lifts_the_pause_audited(self, clock, admin):
        ada = AgentFactory.create(name="ada")
        b = budget()
        spend(ada, 2000)
        assert budgets.pause_of(ada.pk) is not None
        page = admin.get(f"/costs/budgets/{b.pk}/")
        assert page.status_code == 200
        assert page.context["form"].initial["thresholds_text"] == "80"
        r = admin.post(
            f"/costs/budgets/{b.pk}/",
            {
                "name": "Team",
                "scope": "all",
                "period": "month",
                "amount_usd": "5",
                "thresholds_text": "80",
                "enforce": "on",
            },
        )
        assert r.status_code == 302, r.content
        assert Budget.objects.get().amount_usd == Decimal(5)
        assert budgets.pause_of(ada.pk) is None
        changed = AuditEvent.objects.filter(verb="budget.changed").get()
        assert Decimal(changed.changes["after"]["amount_usd"]) == 5

    def test_a_model_budget_cannot_pause(self, admin):
        r = admin.post(
            "/costs/budgets/",
            {
                "name": "gpt",
                "scope": "model",
                "model": "gpt-4o",
                "period": "month",
                "amount_usd": "5",
                "thresholds_text": "80",
                "enforce": "on",
            },
        )
        assert r.status_code == 422
        assert "enforce" in r.context["form"].errors
        assert not Budget.objects.exists()

    def test_viewers_cannot_edit_or_lift(self, clock, viewer, client, admin):
        b = budget()
        for path in (f"/costs/budgets/{b.pk}/", f"/costs/budgets/{b.pk}/lift/"):
            assert viewer.post(path).status_code == 403
            assert client.post(path).status_code == 302  # to sign in
        assert viewer.get(f"/costs/budgets/{b.pk}/").status_code == 403
        assert admin.get(f"/costs/budgets/{b.pk}/lift/").status_code == 405


@pytest.mark.django_db
class TestRefusals:
    def test_assigning_a_task_to_a_paused_agent_is_refused_with_the_reason(self, clock, operator):
        ada = AgentFactory.create(name="ada")
        budget()
        spend(ada, 2000)
        with pytest.raises(AgentPaused) as refused:
            task_actions.create_task(ADMIN, title="More work", assignee=f"agent:{ada.pk}")
        assert refused.value.status == 409
        assert refused.value.body()["error"] == "agent_paused"
        assert refused.value.body()["pause"]["budget"] == "Team"
        assert not Task.objects.exists()
        task = make_task("Fix it")
        r = operator.post(
            f"/tasks/{task.pk}/edit/",
            {
                "title": "Fix it",
                "status": task.status,
                "priority": task.priority,
                "assignee": f"agent:{ada.pk}",
                "version": task.version,
            },
        )
        assert r.status_code == 409
        assert "paused" in " ".join(r.context["form"].errors["assignee"])
        task.refresh_from_db()
        assert task.assignee_agent_id is None
        assert task.version == 1

    def test_work_already_assigned_is_kept_and_editable(self, clock):
        ada = AgentFactory.create(name="ada")
        task = make_task("Fix it", assignee=f"agent:{ada.pk}")
        budget()
        spend(ada, 2000)
        edited = task_actions.update_task(ADMIN, task.pk, {"title": "Fix it now"})
        assert edited.assignee_agent_id == ada.pk


@pytest.mark.django_db(transaction=True)
class TestApi:
    async def test_the_heartbeat_answer_says_paused_and_why(self, api, clock):
        ada = await Agent.objects.acreate(name="ada", heartbeat_interval_s=30)
        key = (await sync_to_async(issue)(AgentKey.Kind.AGENT, ada))[1]
        await sync_to_async(budget)()
        answer = await beat(api, key, "ada")
        assert answer["paused"] is False
        assert "pause" not in answer
        await sync_to_async(spend)(ada, 2000)
        answer = await beat(api, key, "ada")
        assert answer["paused"] is True
        assert answer["pause"]["budget"] == "Team"
        assert answer["pause"]["amount_usd"] == "0.01"
        assert "lifts the pause or raises the budget" in answer["pause"]["reason"]

    async def test_claiming_is_refused_while_paused(self, api, clock):
        ada = await Agent.objects.acreate(name="ada")
        key = (await sync_to_async(issue)(AgentKey.Kind.AGENT, ada))[1]
        free = await sync_to_async(make_task)("Free")
        await sync_to_async(budget)()
        await sync_to_async(spend)(ada, 2000)
        async with api(key) as c:
            r = await c.post(f"/api/v1/tasks/{free.pk}/claim")
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == "agent_paused"
        assert "Not claimed" in body["detail"]
        assert body["pause"]["budget"] == "Team"
        assert (await Task.objects.aget(pk=free.pk)).assignee_agent_id is None


@pytest.mark.django_db
class TestPages:
    def test_the_agent_page_says_why_and_offers_lift_and_abort(self, clock, admin, viewer):
        prod = make_gateway("prod")
        bob = AgentFactory.create(name="bob", gateway=prod, source="gateway")
        running = AgentSession.objects.create(
            gateway=prod,
            agent=bob,
            key="agent:bob:main",
            label="Main",
            has_active_run=True,
            synced_at=NOW,
        )
        b = budget()
        spend(bob, 2000)
        page = admin.get("/agents/bob/").content.decode()
        assert 'id="agent-pause"' in page
        assert "Paused by a budget" in page
        assert f"/costs/budgets/{b.pk}/lift/" in page
        assert f"/sessions/{running.pk}/abort/" in page
        seen = viewer.get("/agents/bob/").content.decode()
        assert "Paused by a budget" in seen
        assert "/lift/" not in seen
        assert "/abort/" not in seen
        listing = viewer.get("/agents/").content.decode()
        assert "Paused:" in listing
        assert "Team" in listing
        # Its row says so too (#31.9), and so does the row a live change pushes.
        row = listing[listing.index(f'id="agent-{bob.pk}"') :]
        assert ">paused</span>" in row[: row.index("</tr>")]
        from agents import presenters

        pushed = presenters.row_ops(
            events.agent_data(bob), {"next_agent_id": None, "status_counts": {}}
        )
        assert ">paused</span>" in pushed[0]["html"]
        budgets_page = admin.get("/costs/budgets/").content.decode()
        assert "agents paused" in budgets_page
        assert "Lift pause" in budgets_page

    def test_the_banner_says_agents_are_paused(self, clock, operator):
        ada = AgentFactory.create(name="ada")
        budget()
        spend(ada, 2000)
        page = operator.get("/board/").content.decode()
        assert "Its agents are paused." in page
