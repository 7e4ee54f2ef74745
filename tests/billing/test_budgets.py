"""Budgets: running totals kept on every usage write, an alert exactly once per threshold per
period (concurrent writers too), a banner for operators until acknowledged; admins manage."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing.models import Budget, BudgetAlert, BudgetSpend
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent, LiveEvent
from tests.agents.factories import AgentFactory
from tests.billing.factories import make_budget, spend
from tests.gateways.factories import make_gateway

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
# The budgets page: session, user, role, live seq, grants, the gateway switch, the spends, the
# budgets, the alerts (the same however many budgets there are).
QUERIES = 9
ADMIN = Actor.system("test")


def call(agent, at=None, **kw) -> None:
    """One gpt-4o call of n input + n/2 output tokens: $0.0075 for n=1000 (at NOW)."""
    spend(agent.pk, at=at or NOW, **kw)


budget = make_budget


@pytest.mark.django_db
class TestCrossing:
    def test_each_threshold_alerts_once_per_period(self, clock):
        ada = AgentFactory.create(name="ada")
        b = budget(period="month")
        call(ada)  # $0.0075: 37 %
        assert not BudgetAlert.objects.exists()
        call(ada)  # $0.015: 75 % → the 50 % alert
        call(ada)  # $0.0225: 112 % → the 100 % alert
        call(ada)  # more: nothing new
        alerts = list(
            BudgetAlert.objects.order_by("threshold").values_list("threshold", "spent_nanos")
        )
        assert alerts == [(50, 15_000_000), (100, 22_500_000)]
        assert BudgetSpend.objects.get(budget=b).spent_nanos == 30_000_000
        events = LiveEvent.objects.filter(type="budget.threshold_crossed").order_by("seq")
        assert [e.payload["threshold"] for e in events] == [50, 100]
        assert events[0].payload["budget"]["name"] == "Everything"
        assert events[0].min_role == "operator"
        assert AuditEvent.objects.filter(verb="budget.threshold_crossed").count() == 2

    def test_a_new_period_starts_over(self, clock):
        ada = AgentFactory.create(name="ada")
        budget(period="day", amount_usd=Decimal("0.01"), thresholds=[100])
        call(ada, n=2000)  # $0.015 today
        call(ada, at=NOW + timedelta(days=1), n=2000)  # tomorrow's
        assert sorted(
            str(d) for d in BudgetAlert.objects.values_list("period_start", flat=True)
        ) == [
            "2026-11-20",
            "2026-11-21",
        ]

    def test_scopes_count_only_their_usage(self, clock):
        prod = make_gateway(name="prod", url="ws://127.0.0.1:9/")
        ada = AgentFactory.create(name="ada")
        gwen = AgentFactory.create(name="main@prod", gateway=prod, external_id="main")
        by_gateway = budget(name="prod", scope="gateway", gateway=prod)
        by_agent = budget(name="ada", scope="agent", agent=ada)
        by_model = budget(name="claude", scope="model", model="claude-sonnet-4")
        call(ada)
        call(gwen)
        call(gwen, model="claude-sonnet-4", provider="anthropic")  # $0.0105
        spent = {s.budget_id: s.spent_nanos for s in BudgetSpend.objects.all()}
        assert spent[by_gateway.pk] == 7_500_000 + 10_500_000
        assert spent[by_agent.pk] == 7_500_000
        assert spent[by_model.pk] == 10_500_000

    def test_a_new_budget_counts_the_period_so_far_and_alerts_at_once(self, clock):
        ada = AgentFactory.create(name="ada")
        call(ada, at=NOW - timedelta(days=2))
        call(ada, at=NOW - timedelta(days=2))
        call(ada, at=datetime(2026, 10, 30, tzinfo=UTC))  # last month: not this period's
        b = budget(period="month")
        assert BudgetSpend.objects.get(budget=b).spent_nanos == 15_000_000
        assert list(BudgetAlert.objects.values_list("threshold", flat=True)) == [50]

    def test_unpriced_usage_spends_nothing(self, clock):
        ada = AgentFactory.create(name="ada")
        budget()
        call(ada, model="my-local-llama", provider="")
        assert not BudgetSpend.objects.filter(spent_nanos__gt=0).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_raise_each_alert_once(clock):
    """Four writers push one budget past both thresholds at once: one alert each, whoever
    wins (the unique row is the last word; on SQLite the writers take turns)."""
    ada = AgentFactory.create(name="ada")
    budget(amount_usd=Decimal("0.10"), thresholds=[50, 100])
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                for attempt in range(20):
                    try:
                        call(ada)
                        break
                    except Exception as error:  # SQLite: "database is locked" → again
                        if "locked" not in str(error) or attempt == 19:
                            raise
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert BudgetSpend.objects.get().spent_nanos == 20 * 7_500_000
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 100]
    assert LiveEvent.objects.filter(type="budget.threshold_crossed").count() == 2


@pytest.mark.django_db
class TestPages:
    def test_viewers_read_budgets_only_admins_change_them(self, viewer, operator, admin, clock):
        assert viewer.get("/costs/budgets/").status_code == 200
        data = {
            "name": "Monthly",
            "scope": "all",
            "period": "month",
            "amount_usd": "100",
            "thresholds_text": "80, 100",
        }
        assert viewer.post("/costs/budgets/", data).status_code == 403
        assert operator.post("/costs/budgets/", data).status_code == 403
        assert not Budget.objects.exists()
        assert admin.post("/costs/budgets/", data).status_code == 302
        b = Budget.objects.get()
        assert (b.amount_usd, b.thresholds) == (Decimal(100), [80, 100])
        assert AuditEvent.objects.filter(verb="budget.added").exists()
        assert operator.post(f"/costs/budgets/{b.pk}/delete/").status_code == 403
        assert admin.post(f"/costs/budgets/{b.pk}/delete/").status_code == 302
        assert not Budget.objects.exists()

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"scope": "agent", "amount_usd": "5", "thresholds_text": "80"}, "agent"),
            ({"scope": "all", "amount_usd": "0", "thresholds_text": "80"}, "amount_usd"),
            ({"scope": "all", "amount_usd": "5", "thresholds_text": "eighty"}, "thresholds_text"),
            ({"scope": "all", "amount_usd": "5", "thresholds_text": "0, 2000"}, "thresholds_text"),
            ({"scope": "nope", "amount_usd": "5", "thresholds_text": "80"}, "scope"),
        ],
    )
    def test_bad_budgets_are_form_errors(self, admin, data, field):
        response = admin.post("/costs/budgets/", {"name": "x", "period": "month", **data})
        assert response.status_code == 422
        assert field in response.context["form"].errors
        assert not Budget.objects.exists()

    def test_the_banner_shows_until_acknowledged(self, viewer, operator, clock):
        ada = AgentFactory.create(name="ada")
        budget(thresholds=[50])
        call(ada)
        call(ada)
        alert = BudgetAlert.objects.get()
        page = operator.get("/board/").content.decode()
        assert 'id="budget-alerts"' in page
        assert "Everything</strong> crossed 50%" in page
        assert "crossed 50%" not in viewer.get("/board/").content.decode()
        assert viewer.post(f"/costs/alerts/{alert.pk}/acknowledge/").status_code == 403
        assert (
            operator.post(f"/costs/alerts/{alert.pk}/acknowledge/", {"next": "/board/"}).url
            == "/board/"
        )
        alert.refresh_from_db()
        assert alert.acknowledged_at is not None
        assert "crossed 50%" not in operator.get("/board/").content.decode()
        assert LiveEvent.objects.filter(type="budget.alert_acknowledged").exists()
        assert AuditEvent.objects.filter(verb="budget.alert_acknowledged").exists()

    def test_the_banner_is_one_line_and_says_how_things_are_now(self, operator, admin, clock):
        """Banners stacked (170 px on a desktop, 420 px on a phone), kept the amount spent at
        crossing time, kept 80 % beside 100 %, and said "its agents are paused" after the
        pause was lifted (#31.8)."""
        ada = AgentFactory.create(name="ada")
        b = budget(name="Team", thresholds=[50, 100], enforce=True)
        budget(name="Other", thresholds=[50])
        call(ada)
        call(ada)  # $0.015: 75 % of each
        call(ada)  # $0.0225: past 100 % of Team, whose agents pause
        call(ada)  # $0.03 now

        def banner_of(page: str) -> str:
            start = page.index('id="budget-alerts"')
            return page[start : page.index("</details>", start)]

        banner = banner_of(operator.get("/board/").content.decode())
        assert "<strong>2 alerts</strong>" in banner  # Team at 100 % and Other at 50 %: one line
        assert "Team crossed 100%" in banner
        assert "Team</strong> crossed 50%" not in banner  # said nothing once 100 % was crossed
        assert "$0.030 spent so far" in banner  # now, not $0.023 at the crossing
        assert "Its agents are paused" in banner
        assert admin.post(f"/costs/budgets/{b.pk}/lift/").status_code == 302
        assert "paused" not in banner_of(operator.get("/board/").content.decode())
        overview = operator.get("/").content.decode()
        assert "its agents are paused" not in overview


@pytest.mark.django_db
def test_a_budget_deleted_elsewhere_never_fails_usage(clock, monkeypatch):
    """Another process deleted a budget this one still has cached: usage is stored all the
    same, and nothing is charged to the deleted budget."""
    from billing import budgets

    ada = AgentFactory.create(name="ada")
    b = budget()
    rule = budgets.rule_of(b)
    Budget.objects.filter(pk=b.pk).delete()  # as another process would
    monkeypatch.setattr(budgets, "rules", lambda: [rule])  # and this one still has it cached
    call(ada)
    assert not BudgetSpend.objects.exists()
    assert ada.usage.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/costs/budgets/"),
        ("post", "/costs/budgets/"),
        ("post", "/costs/budgets/{budget}/delete/"),
        ("get", "/costs/budgets/{budget}/"),
        ("post", "/costs/budgets/{budget}/"),
        ("post", "/costs/budgets/{budget}/lift/"),
        ("post", "/costs/alerts/{alert}/acknowledge/"),
    ],
)
def test_anonymous_and_outsiders_are_refused(client, outsider, clock, method, path):
    ada = AgentFactory.create(name="ada")
    b = budget(thresholds=[10])
    call(ada)
    url = path.format(budget=b.pk, alert=BudgetAlert.objects.get().pk)
    assert getattr(client, method)(url).status_code == 302  # to sign in
    assert getattr(outsider, method)(url).status_code == 403
    assert Budget.objects.filter(pk=b.pk).exists()
    assert BudgetAlert.objects.get().acknowledged_at is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/costs/budgets/{budget}/delete/",
        "/costs/budgets/{budget}/lift/",
        "/costs/alerts/{alert}/acknowledge/",
    ],
)
def test_changes_are_posts_only(admin, clock, path):
    ada = AgentFactory.create(name="ada")
    b = budget(thresholds=[10])
    call(ada)
    url = path.format(budget=b.pk, alert=BudgetAlert.objects.get().pk)
    assert admin.get(url).status_code == 405
    assert Budget.objects.filter(pk=b.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/costs/prices/{override}/delete/"])
def test_price_delete_is_post_only_and_refuses_outsiders(admin, client, outsider, path):
    from billing.models import PriceOverride

    o = PriceOverride.objects.create(
        model_pattern="x", input_per_mtok=1, output_per_mtok=1, effective_from="2026-01-01"
    )
    url = path.format(override=o.pk)
    assert admin.get(url).status_code == 405
    assert client.post(url).status_code == 302
    assert outsider.post(url).status_code == 403
    assert PriceOverride.objects.filter(pk=o.pk).exists()


@pytest.mark.django_db
def test_the_budgets_page_shows_each_periods_spend_in_pinned_queries(
    viewer, clock, django_assert_num_queries
):
    ada = AgentFactory.create(name="ada")
    budget(name="month", period="month", amount_usd=Decimal(1))
    budget(name="day", period="day", amount_usd=Decimal(1))
    call(ada)
    viewer.get("/costs/budgets/")  # warm the session
    with django_assert_num_queries(QUERIES):
        page = viewer.get("/costs/budgets/")
    spent = {row["budget"].name: row["spent"] for row in page.context["budgets"]}
    assert spent == {"month": Decimal("0.0075"), "day": Decimal("0.0075")}
    for _ in range(5):
        budget(name="more", amount_usd=Decimal(1))
    with django_assert_num_queries(QUERIES):  # no query per budget
        viewer.get("/costs/budgets/")
