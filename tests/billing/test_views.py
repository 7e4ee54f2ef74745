"""The Costs page and its exports: what an operator reads, filters and downloads; the admins'
prices; who may see and change what."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from billing.actions import UsageItem, record_usage
from billing.models import PriceOverride, UsageRecord
from missioncontrol.models import AuditEvent
from tests.agents.factories import AgentFactory
from tests.gateways.factories import make_gateway
from tests.streams import read_stream
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db


NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.fixture
def usage(clock):
    """ada (direct) on gpt-4o and claude; gwen (gateway prod) on claude; a local model."""
    prod = make_gateway(name="prod", url="ws://127.0.0.1:9/")
    ada = AgentFactory.create(name="ada")
    gwen = AgentFactory.create(name="main@prod", gateway=prod, external_id="main")
    task = make_task("Ship the release")
    record_usage(
        [
            UsageItem(
                ada.pk,
                "gpt-4o",
                1000,
                500,
                NOW - timedelta(hours=1),
                provider="openai",
                task_id=task.pk,
            ),
            UsageItem(
                ada.pk,
                "claude-sonnet-4",
                2000,
                1000,
                NOW - timedelta(days=1, hours=1),
                provider="anthropic",
            ),
            UsageItem(
                gwen.pk,
                "claude-sonnet-4",
                1000,
                500,
                NOW - timedelta(minutes=5),
                provider="anthropic",
                reported_cost_usd=Decimal("0.011"),
            ),
            UsageItem(gwen.pk, "my-local-llama", 700, 300, NOW - timedelta(minutes=2)),
            # Outside the default 7 days.
            UsageItem(ada.pk, "gpt-4o", 10_000, 0, NOW - timedelta(days=20), provider="openai"),
        ]
    )
    return {"ada": ada, "gwen": gwen, "prod": prod, "task": task}


def test_viewer_reads_the_costs_page_with_exact_totals(viewer, usage):
    page = viewer.get("/costs/")
    assert page.status_code == 200
    html = page.content.decode()
    # 7 days: gpt-4o $0.0075 + claude $0.021 + claude $0.0105 = $0.039; the local model unpriced.
    total = page.context["total"]
    assert total.cost == Decimal("0.039")
    assert total.records == 4
    assert (total.unpriced_records, total.unpriced_tokens) == (1, 1000)
    assert "1,000 tokens in 1 record is unpriced" in html
    assert "my-local-llama" in html
    # A viewer gets no "add a price" link (admins only).
    assert "Add a price" not in html
    by_model = {r["label"]: r["t"].cost for r in page.context["rows"]}
    assert by_model == {
        "claude-sonnet-4": Decimal("0.0315"),
        "gpt-4o": Decimal("0.0075"),
        "my-local-llama": Decimal(0),
    }
    today, _week, month = page.context["headlines"]
    assert today.now == Decimal("0.018")  # 15:30 UTC: the three records of today
    assert today.before == Decimal("0.021")
    # Against the same span of last month (Oct 1 to Oct 20, 15:30): the $0.025 spent on
    # Oct 31 is not "last month so far" on Nov 20 (it read "−36 % vs last month" before).
    assert (month.now, month.before) == (Decimal("0.039"), Decimal(0))
    assert month.change is None


def test_breakdowns_click_through_to_a_filtered_view(viewer, usage):
    page = viewer.get("/costs/?by=agent")
    rows = {r["label"]: r for r in page.context["rows"]}
    assert rows["ada"]["t"].cost == Decimal("0.0285")
    gwen = (
        rows["main@prod"]
        if "main@prod" in rows
        else next(r for r in rows.values() if r["agent"] and r["agent"].name == "main@prod")
    )
    assert gwen["t"].cost == Decimal("0.0105")
    # Click-through: ada's costs by model.
    href = rows["ada"]["href"]
    assert "agent=ada" in href
    drilled = viewer.get(href)
    assert {r["label"] for r in drilled.context["rows"]} == {"gpt-4o", "claude-sonnet-4"}
    assert drilled.context["total"].cost == Decimal("0.0285")
    by_gateway = {r["label"]: r["t"].cost for r in viewer.get("/costs/?by=gateway").context["rows"]}
    assert by_gateway == {"direct agents": Decimal("0.0285"), "prod": Decimal("0.0105")}
    by_task = viewer.get("/costs/?by=task").context["rows"]
    assert [(r["key"], r["t"].cost) for r in by_task] == [(usage["task"].pk, Decimal("0.0075"))]
    days = viewer.get("/costs/?by=day").context["rows"]
    assert [r["t"].cost for r in days] == [Decimal("0.018"), Decimal("0.021")]
    assert viewer.get(f"/costs/?gateway={usage['prod'].pk}").context["total"].cost == Decimal(
        "0.0105"
    )
    assert viewer.get("/costs/?gateway=direct").context["total"].cost == Decimal("0.0285")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("range=24h", Decimal("0.018")),
        ("range=30d", Decimal("0.064")),
        ("range=month", Decimal("0.039")),
        ("range=custom&from=2026-10-31&to=2026-10-31", Decimal("0.025")),
    ],
)
def test_ranges(viewer, usage, query, expected):
    assert viewer.get(f"/costs/?{query}").context["total"].cost == expected


@pytest.mark.parametrize(
    "query",
    [
        "range=custom&from=yesterday",
        "range=custom&from=2026-11-20&to=2026-11-01",
        "range=custom&from=2020-01-01&to=2026-11-01",
        "range=nonsense&by=nothing&gateway=x&task=-1&agent=nobody&model=" + "m" * 500,
        "range=custom&from=99999-01-01",
    ],
)
def test_bad_filters_are_explained_never_a_500(viewer, usage, query):
    page = viewer.get(f"/costs/?{query}")
    assert page.status_code == 200


def test_custom_range_errors_say_what_is_wrong(viewer, usage):
    page = viewer.get("/costs/?range=custom&from=2026-11-20&to=2026-11-01")
    assert "The end date is before the start date." in page.content.decode()


def test_the_shell_shows_todays_spend_to_operators_not_viewers(viewer, operator, usage):
    assert "spend-chip" not in viewer.get("/board/").content.decode()
    html = operator.get("/board/").content.decode()
    assert "spend-chip" in html
    assert "$0.018" in html


def test_the_spend_chip_follows_the_gateway_switch(operator, bob_operator, usage):
    """(#31.6) On one gateway, the chip is that gateway's spend today (0: the direct agents')."""
    from gateways import actions as gateway_actions
    from gateways.models import Gateway

    def chip() -> str:
        session = operator.session
        session.pop("mc_gateway_view", None)  # the choice is copied into the session
        session.save()
        return operator.get("/costs/today/").content.decode()

    gateway_actions.choose_view(bob_operator.pk, Gateway.objects.get(name="prod"))
    assert ">$0.010<" in chip()  # main@prod's two records of today ($0.0105)
    gateway_actions.choose_view(bob_operator.pk, None)
    assert "$0.018" in chip()


def test_times_follow_the_users_time_zone(viewer, usage):
    # 15:30 UTC is 00:30 the next day in Tokyo: "today" there is the last half hour (the
    # gateway agent's two records), and the gpt-4o call of 14:30 UTC was yesterday.
    viewer.cookies["mc_tz"] = "Asia/Tokyo"
    page = viewer.get("/costs/")
    assert str(page.context["tz"]) == "Asia/Tokyo"
    today = page.context["headlines"][0]
    # This time yesterday there (Nov 20, 00:00–00:30 Tokyo) nothing was spent yet.
    assert (today.now, today.before) == (Decimal("0.0105"), Decimal(0))
    viewer.cookies["mc_tz"] = "Not/AZone"
    assert str(viewer.get("/costs/").context["tz"]) == "UTC"


def test_a_user_narrowed_to_other_gateways_does_not_see_this_ones_costs(
    alice_viewer, viewer, usage
):
    other = make_gateway(name="other", url="ws://127.0.0.1:8/")
    # alice loses the global view and is granted only "other".
    from gateways import actions as gateway_actions
    from missioncontrol.audit import Actor

    alice_viewer.user_permissions.remove(*Permission.objects.filter(codename="view_gateway"))
    for group in alice_viewer.groups.all():
        group.permissions.remove(*Permission.objects.filter(codename="view_gateway"))
    gateway_actions.set_grant(Actor.system("t"), other, alice_viewer, "view")
    page = viewer.get("/costs/?by=gateway")
    labels = {r["label"] for r in page.context["rows"]}
    assert "prod" not in labels
    assert page.context["total"].cost == Decimal("0.0285")


def test_table_csv_is_the_breakdown(viewer, usage):
    response = viewer.get("/costs/?by=model&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["model", "cost_usd", "records"]
    assert {r[0]: r[1] for r in rows[1:]} == {
        "claude-sonnet-4": "0.031500000",
        "gpt-4o": "0.007500000",
        "my-local-llama": "0E-9",
    } or {r[0]: Decimal(r[1]) for r in rows[1:]} == {
        "claude-sonnet-4": Decimal("0.0315"),
        "gpt-4o": Decimal("0.0075"),
        "my-local-llama": Decimal(0),
    }


@pytest.mark.django_db(transaction=True)  # the stream reads in pages, from another thread
@pytest.mark.parametrize("page", [2, 2000])
def test_records_csv_streams_every_record_of_the_view(viewer, usage, monkeypatch, page):
    from billing import views

    monkeypatch.setattr(views, "EXPORT_CHUNK", page)
    response = viewer.get("/costs/records.csv?range=30d")
    assert response.streaming
    rows = list(csv.DictReader(io.StringIO(read_stream(response))))
    assert len(rows) == 5
    gwen = next(r for r in rows if r["model"] == "my-local-llama")
    assert (gwen["agent"], gwen["gateway"], gwen["cost_usd"], gwen["price_version"]) == (
        "main@prod",
        "prod",
        "",
        "",
    )
    priced = next(r for r in rows if r["reported_cost_usd"])
    assert Decimal(priced["cost_usd"]) == Decimal("0.0105")
    assert Decimal(priced["reported_cost_usd"]) == Decimal("0.011")
    filtered = viewer.get(f"/costs/records.csv?range=30d&gateway={usage['prod'].pk}")
    assert len(list(csv.DictReader(io.StringIO(read_stream(filtered))))) == 2


@pytest.mark.django_db(transaction=True)
def test_exports_of_a_user_narrowed_to_another_gateway_leave_this_ones_records_out(
    alice_viewer, viewer, usage
):
    """Per-gateway grants hold in the downloads too: the records CSV and the table CSV."""
    from gateways import actions as gateway_actions
    from missioncontrol.audit import Actor

    other = make_gateway(name="other", url="ws://127.0.0.1:8/")
    before = list(csv.DictReader(io.StringIO(read_stream(viewer.get("/costs/records.csv")))))
    assert {r["gateway"] for r in before} >= {"prod"}
    alice_viewer.user_permissions.remove(*Permission.objects.filter(codename="view_gateway"))
    for group in alice_viewer.groups.all():
        group.permissions.remove(*Permission.objects.filter(codename="view_gateway"))
    gateway_actions.set_grant(Actor.system("t"), other, alice_viewer, "view")
    rows = list(csv.DictReader(io.StringIO(read_stream(viewer.get("/costs/records.csv")))))
    assert rows  # the direct agent's records stay
    assert "prod" not in {r["gateway"] for r in rows}
    assert "main@prod" not in {r["agent"] for r in rows}
    table = viewer.get("/costs/?by=gateway&format=csv").content.decode()
    assert "prod" not in table
    # Asking for the gateway by id does not get past the grant either.
    asked = viewer.get(f"/costs/records.csv?gateway={usage['prod'].pk}")
    assert asked.status_code in (403, 404) or not list(
        csv.DictReader(io.StringIO(read_stream(asked)))
    )


@pytest.mark.django_db(transaction=True)
def test_csv_cells_never_run_as_formulas(viewer, clock):
    agent = AgentFactory.create(name="x")
    record_usage([UsageItem(agent.pk, "=HYPERLINK(1)", 1, 1, NOW - timedelta(minutes=1))])
    body = read_stream(viewer.get("/costs/records.csv"))
    assert "'=HYPERLINK(1)" in body


class TestPrices:
    def test_admin_adds_a_price_and_past_records_are_repriced(self, admin, usage):
        page = admin.get("/costs/?range=30d")
        assert "Add a price" in page.content.decode()
        form = admin.get("/costs/prices/?model=my-local-llama")
        assert form.context["form"].initial["model_pattern"] == "my-local-llama"
        response = admin.post(
            "/costs/prices/",
            {
                "model_pattern": "my-local-*",
                "provider": "",
                "input_per_mtok": "1",
                "output_per_mtok": "2",
                "effective_from": "2026-11-01",
                "reprice": "on",
            },
            follow=True,
        )
        assert response.status_code == 200
        assert "1 of 1 records repriced" in response.content.decode()
        record = UsageRecord.objects.get(model="my-local-llama")
        override = PriceOverride.objects.get()
        assert record.cost_usd == Decimal("0.0013")
        assert record.price_version == f"override {override.pk}"
        total = admin.get("/costs/").context["total"]
        assert total.cost == Decimal("0.0403")
        assert total.unpriced_records == 0
        assert AuditEvent.objects.filter(verb="price.added").exists()
        assert AuditEvent.objects.filter(verb="usage.repriced").exists()

    def test_bad_prices_are_form_errors(self, admin, usage):
        response = admin.post(
            "/costs/prices/",
            {
                "model_pattern": "*",
                "input_per_mtok": "-1",
                "output_per_mtok": "abc",
                "effective_from": "soon",
            },
        )
        assert response.status_code == 200
        errors = response.context["form"].errors
        assert set(errors) >= {
            "model_pattern",
            "input_per_mtok",
            "output_per_mtok",
            "effective_from",
        }
        assert not PriceOverride.objects.exists()

    def test_admin_deletes_a_price(self, admin, usage):
        override = PriceOverride.objects.create(
            model_pattern="x", input_per_mtok=1, output_per_mtok=1, effective_from="2026-01-01"
        )
        assert admin.post(f"/costs/prices/{override.pk}/delete/").status_code == 302
        assert not PriceOverride.objects.exists()
        assert AuditEvent.objects.filter(verb="price.deleted").exists()

    @pytest.mark.parametrize("who", ["viewer", "operator"])
    def test_only_admins_change_prices(self, request, who, usage):
        client = request.getfixturevalue(who)
        override = PriceOverride.objects.create(
            model_pattern="x", input_per_mtok=1, output_per_mtok=1, effective_from="2026-01-01"
        )
        assert client.get("/costs/prices/").status_code == 403
        assert client.post("/costs/prices/", {"model_pattern": "y"}).status_code == 403
        assert client.post(f"/costs/prices/{override.pk}/delete/").status_code == 403
        assert PriceOverride.objects.count() == 1


@pytest.mark.parametrize("path", ["/costs/", "/costs/records.csv", "/costs/prices/"])
def test_outsiders_and_anonymous_are_refused(client, outsider, path):
    assert client.get(path).status_code == 302  # to sign in
    assert outsider.get(path).status_code == 403


@pytest.mark.parametrize("path", ["/costs/", "/costs/records.csv"])
def test_wrong_method(viewer, path):
    assert viewer.post(path).status_code == 405


def test_cost_where_the_operator_already_looks(operator, usage):
    task = usage["task"]
    # The Agents list: each agent's last 24 hours.
    listing = operator.get("/agents/")
    costs = {a.name: a.cost_24h for a in listing.context["agents"]}
    assert costs["ada"] == Decimal("0.0075")
    assert costs["main@prod"] == Decimal("0.0105")
    assert "?range=24h&amp;agent=ada" in listing.content.decode()
    # An agent's page: today, this month, its top model.
    detail = operator.get("/agents/ada/")
    spend = detail.context["spend"]
    assert (spend["today"], spend["month"].cost, spend["top_model"]) == (
        Decimal("0.0075"),
        Decimal("0.0285"),
        "claude-sonnet-4",
    )
    assert "$0.0075" in detail.content.decode()
    # A task's page: what the work on it cost.
    page = operator.get(f"/tasks/{task.pk}/")
    assert page.context["cost"].cost == Decimal("0.0075")
    assert 'id="task-cost">$0.0075<' in page.content.decode()


def test_headlines_follow_late_usage(viewer, usage, django_capture_on_commit_callbacks):
    """Closed spans (yesterday, the days before today) are kept briefly per process; usage that
    arrives late (an import, a backfill) is shown at once all the same."""
    today, week, _month = viewer.get("/costs/").context["headlines"]
    assert today.before == Decimal("0.021")
    with django_capture_on_commit_callbacks(execute=True):
        record_usage(
            [
                UsageItem(
                    usage["ada"].pk,
                    "gpt-4o",
                    1000,
                    500,
                    NOW - timedelta(days=1, hours=2),
                    provider="openai",
                )
            ]
        )
    again, week_again, _month = viewer.get("/costs/").context["headlines"]
    assert again.before == Decimal("0.0285")
    assert week_again.now == week.now + Decimal("0.0075")
