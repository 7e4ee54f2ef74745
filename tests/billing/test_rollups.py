"""The hourly rollups every cost page reads: kept by record_usage on each write, equal to a
brute-force sum of the raw records, and rebuilt to the same sums from the records."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import prices, rollups
from billing.actions import UsageItem, record_usage
from billing.models import UsageRecord, UsageRollup
from tests.agents.factories import AgentFactory
from tests.gateways.factories import make_gateway

START = datetime(2026, 11, 1, tzinfo=UTC)
MODELS = ["gpt-4o", "claude-sonnet-4", "my-local-llama", "anthropic/claude-3-5-haiku"]

record = st.fixed_dictionaries(
    {
        "agent": st.integers(0, 2),
        "model": st.sampled_from(MODELS),
        "minutes": st.integers(0, 60 * 50),
        "input": st.integers(0, 100_000),
        "output": st.integers(0, 20_000),
        "cache_read": st.integers(0, 50_000),
        "cache_write": st.integers(0, 5_000),
        "task": st.sampled_from([None, 1, 2]),
        "session": st.sampled_from(["", "", "agent:main:main", "run-7"]),
        "reported": st.none() | st.decimals(0, 5, places=6),
        # A few repeat an id: counted once, in the records and the rollups alike.
        "id": st.none() | st.integers(0, 30).map(str),
    }
)


def three_agents(prefix: str) -> tuple[Any, list[Any]]:
    """A gateway, and agents: a direct one, one on the gateway, another direct one."""
    gateway = make_gateway(name=f"{prefix}-gw", url="ws://127.0.0.1:9/")
    return gateway, [
        AgentFactory.create(name=f"{prefix}-direct"),
        AgentFactory.create(name=f"{prefix}-gw", gateway=gateway, external_id=prefix),
        AgentFactory.create(name=f"{prefix}-other"),
    ]


def _key(tier: rollups.Tier, r: UsageRecord) -> tuple:
    hour = r.occurred_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    fields = {
        "agent_id": r.agent_id,
        "gateway_id": r.agent.gateway_id or 0,
        "model": r.model,
        "task_id": r.task_id or 0,
        "session": r.session,
    }
    return (hour if tier.grain == "hour" else hour.date(), *(fields[k] for k in tier.keys))


def brute_force() -> dict[str, dict[tuple, list]]:
    """Every rollup's sums from the raw records, in Python."""
    out = {}
    for tier in rollups.TIERS:
        sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal(0), 0, 0])
        for r in UsageRecord.objects.select_related("agent"):
            if tier.only and not {"task_id": r.task_id, "session": r.session}[tier.only]:
                continue  # the task and session tiers keep records that name one only
            row = sums[_key(tier, r)]
            row[0] += 1
            row[1] += r.input_tokens
            row[2] += r.output_tokens
            row[3] += r.cache_read_tokens
            row[4] += r.cache_write_tokens
            row[5] += r.cost_usd or 0
            row[6] += 0 if r.cost_usd is not None else 1
            row[7] += 1 if r.reported_cost_usd is not None else 0
        out[tier.model] = dict(sums)
    return out


def stored() -> dict[str, dict[tuple, list]]:
    out = {}
    for tier in rollups.TIERS:
        model = apps.get_model("billing", tier.model)
        out[tier.model] = {
            (getattr(r, tier.time_column), *(getattr(r, k) for k in tier.keys)): [
                r.records,
                r.input_tokens,
                r.output_tokens,
                r.cache_read_tokens,
                r.cache_write_tokens,
                prices.from_nanos(r.cost_nanos),
                r.unpriced_records,
                r.reported_records,
            ]
            for r in model.objects.all()
        }
    return out


def rebuild(since=None, until=None) -> None:
    rollups.rebuild(lambda name: apps.get_model("billing", name), since, until)


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(record, min_size=1, max_size=12), min_size=1, max_size=6))
def test_rollups_equal_a_brute_force_sum(batches):
    with transaction.atomic():
        gateway = make_gateway(name="rollup-gw", url="ws://127.0.0.1:9/")
        agents = [
            AgentFactory.create(name="r-direct"),
            AgentFactory.create(name="r-gw", gateway=gateway, external_id="r"),
            AgentFactory.create(name="r-other"),
        ]
        for batch in batches:
            record_usage(
                [
                    UsageItem(
                        agent_id=agents[r["agent"]].pk,
                        model=r["model"],
                        input_tokens=r["input"],
                        output_tokens=r["output"],
                        cache_read_tokens=r["cache_read"],
                        cache_write_tokens=r["cache_write"],
                        occurred_at=START + timedelta(minutes=r["minutes"]),
                        client_id=r["id"],
                        task_id=r["task"],
                        session=r["session"],
                        reported_cost_usd=r["reported"],
                    )
                    for r in batch
                ]
            )
        want = brute_force()
        assert stored() == want
        # Rebuilt from the records: the same rows.
        rebuild()
        assert stored() == want
        # Rebuilding a window leaves the other hours alone.
        rebuild(START + timedelta(hours=10), START + timedelta(hours=30))
        assert stored() == want
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_count_each_record_once():
    """Four threads write the same records (same client ids, same rollup key) at once: every
    record stored once, and the rollup equal to the stored records (on PostgreSQL a conflict
    lost to another writer is left out by RETURNING, not counted)."""
    import threading

    from django.db import connection as default_connection

    agent = AgentFactory.create(name="racer")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for batch in range(10):
                items = [
                    UsageItem(
                        agent.pk,
                        "gpt-4o",
                        1000,
                        500,
                        START,
                        provider="openai",
                        # Half the ids shared by every thread, half their own.
                        client_id=f"shared-{batch}-{i}" if i % 2 else f"t{n}-{batch}-{i}",
                    )
                    for i in range(20)
                ]
                for attempt in range(20):
                    try:
                        with transaction.atomic():
                            record_usage(items)
                        break
                    except Exception as error:  # SQLite: "database is locked" → retry
                        if "locked" not in str(error) or attempt == 19:
                            raise
        except BaseException as error:
            errors.append(error)
        finally:
            default_connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # 10 batches × (10 shared + 4 × 10 own) records.
    assert UsageRecord.objects.count() == 10 * (10 + 40)
    assert stored() == brute_force()
    (rollup,) = UsageRollup.objects.all()
    assert rollup.records == 500
    assert rollup.cost_nanos == 500 * 7_500_000


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=st.lists(record, min_size=1, max_size=40),
    start_h=st.integers(0, 50),
    length_h=st.integers(1, 60),
    column=st.sampled_from(
        [None, "model", "agent_id", "gateway_id", "task_id", ("agent_id", "session")]
    ),
    narrow=st.sampled_from(["none", "agent", "task", "gateway", "session", "model"]),
)
def test_window_sums_equal_the_records_of_the_window(batch, start_h, length_h, column, narrow):
    """What the pages read (whole days from a daily rollup, edges from the hourly ones) is the
    sum of the raw records of the window, for any window, grouping and filter. By task or
    session, whole days come from a rollup of only the records that name one: the "none" key
    (task 0, session "") is what callers drop, and is left out here."""
    from billing import reports

    with transaction.atomic():
        gateway, agents = three_agents("s")
        record_usage(
            [
                UsageItem(
                    agent_id=agents[r["agent"]].pk,
                    model=r["model"],
                    input_tokens=r["input"],
                    output_tokens=r["output"],
                    occurred_at=START + timedelta(minutes=r["minutes"]),
                    task_id=r["task"],
                    session=r["session"],
                )
                for r in batch
            ]
        )
        start = START + timedelta(hours=start_h, minutes=17)
        end = start + timedelta(hours=length_h)
        filters = reports.Filters(
            agent_id=agents[1].pk if narrow in ("agent", "session") else None,
            task_id=1 if narrow == "task" else None,
            gateway_id=gateway.pk if narrow == "gateway" else None,
            session="agent:main:main" if narrow == "session" else "",
            model="gpt-4o" if narrow == "model" else "",
        )

        def none(key: object) -> bool:
            return (column == "task_id" and key == 0) or (isinstance(key, tuple) and key[1] == "")

        got = {
            k: (t.records, t.input_tokens, t.cost_nanos)
            for k, t in reports.sums(start, end, filters, column).items()
            if t.records and not none(k)
        }
        want: dict = defaultdict(lambda: [0, 0, 0])
        # Windows are to the hour: a record counts when its hour starts in the window.
        first = start.replace(minute=0)
        for r in UsageRecord.objects.select_related("agent").filter(occurred_at__gte=first):
            if r.occurred_at.replace(minute=0, second=0, microsecond=0) >= end:
                continue
            if filters.agent_id and r.agent_id != filters.agent_id:
                continue
            if filters.task_id and r.task_id != filters.task_id:
                continue
            if filters.gateway_id and r.agent.gateway_id != filters.gateway_id:
                continue
            if filters.session and r.session != filters.session:
                continue
            if filters.model and r.model != filters.model:
                continue
            key = {
                None: None,
                "model": r.model,
                "agent_id": r.agent_id,
                "gateway_id": r.agent.gateway_id or 0,
                "task_id": r.task_id or 0,
                ("agent_id", "session"): (r.agent_id, r.session),
            }[column]
            if none(key):
                continue
            row = want[key]
            row[0] += 1
            row[1] += r.input_tokens
            row[2] += prices.nanos(r.cost_usd)
        assert got == {k: tuple(v) for k, v in want.items()}
        transaction.set_rollback(True)


@pytest.mark.django_db
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=st.lists(record, min_size=1, max_size=40),
    zone=st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata"]),
    key=st.sampled_from(["24h", "7d", "30d"]),
    by_gateway=st.booleans(),
)
def test_the_chart_and_days_equal_the_records_of_each_local_day(batch, zone, key, by_gateway):
    """The chart's buckets and the by-day breakdown, whichever way they are read (hours, or
    whole UTC days when local days are UTC days), equal the raw records of each local bucket."""
    import zoneinfo

    import time_machine

    from billing import reports

    tz = zoneinfo.ZoneInfo(zone)
    now = START + timedelta(hours=50, minutes=20)
    with transaction.atomic(), time_machine.travel(now, tick=False):
        gateway, agents = three_agents("d")
        record_usage(
            [
                UsageItem(
                    agent_id=agents[r["agent"]].pk,
                    model=r["model"],
                    input_tokens=r["input"],
                    output_tokens=r["output"],
                    occurred_at=START + timedelta(minutes=r["minutes"]),
                )
                for r in batch
            ]
        )
        win, _error = reports.window(key, now, tz)
        filters = reports.Filters(gateway_id=gateway.pk if by_gateway else None)
        shown = reports.page(win, "day", filters)
        chart: dict = defaultdict(int)
        for (bucket, _model), nanos in shown.series.values.items():
            chart[bucket] += nanos
        days = {t.extra["key"]: t.cost_nanos for t in shown.rows}
        want_chart: dict = defaultdict(int)
        want_days: dict = defaultdict(int)
        first = win.start.replace(minute=0, second=0, microsecond=0)
        for r in UsageRecord.objects.select_related("agent"):
            hour = r.occurred_at.replace(minute=0, second=0, microsecond=0)
            if hour < first.astimezone(UTC).replace(minute=0) or hour >= win.end:
                continue
            if by_gateway and r.agent.gateway_id != gateway.pk:
                continue
            local = hour.astimezone(tz)
            bucket = local if win.hourly else reports.local_midnight(local.date(), tz)
            want_chart[bucket] += prices.nanos(r.cost_usd)
            want_days[local.date()] += prices.nanos(r.cost_usd)
        assert {b: n for b, n in chart.items() if n} == {b: n for b, n in want_chart.items() if n}
        assert {d: n for d, n in days.items() if n} == {d: n for d, n in want_days.items() if n}
        transaction.set_rollback(True)
