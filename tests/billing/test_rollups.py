"""The hourly rollups every cost page reads: kept by record_usage on each write, equal to a
brute-force sum of the raw records, and rebuilt to the same sums from the records."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
        "reported": st.none() | st.decimals(0, 5, places=6),
        # A few repeat an id: counted once, in the records and the rollups alike.
        "id": st.none() | st.integers(0, 30).map(str),
    }
)


def _key(tier: rollups.Tier, r: UsageRecord) -> tuple:
    hour = r.occurred_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    fields = {
        "agent_id": r.agent_id,
        "gateway_id": r.agent.gateway_id or 0,
        "model": r.model,
        "task_id": r.task_id or 0,
    }
    return (hour if tier.grain == "hour" else hour.date(), *(fields[k] for k in tier.keys))


def brute_force() -> dict[str, dict[tuple, list]]:
    """Every rollup's sums from the raw records, in Python."""
    out = {}
    for tier in rollups.TIERS:
        sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal(0), 0, 0])
        for r in UsageRecord.objects.select_related("agent"):
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
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=st.lists(record, min_size=1, max_size=40),
    start_h=st.integers(0, 50),
    length_h=st.integers(1, 60),
    column=st.sampled_from([None, "model", "agent_id", "gateway_id", "task_id"]),
    narrow=st.sampled_from(["none", "agent", "task", "gateway"]),
)
def test_window_sums_equal_the_records_of_the_window(batch, start_h, length_h, column, narrow):
    """What the pages read (whole days from the daily rollup, edges from the hourly ones) is
    the sum of the raw records of the window, for any window, grouping and filter."""
    from billing import reports

    with transaction.atomic():
        gateway = make_gateway(name="sums-gw", url="ws://127.0.0.1:9/")
        agents = [
            AgentFactory.create(name="s-direct"),
            AgentFactory.create(name="s-gw", gateway=gateway, external_id="s"),
            AgentFactory.create(name="s-other"),
        ]
        record_usage(
            [
                UsageItem(
                    agent_id=agents[r["agent"]].pk,
                    model=r["model"],
                    input_tokens=r["input"],
                    output_tokens=r["output"],
                    occurred_at=START + timedelta(minutes=r["minutes"]),
                    task_id=r["task"],
                )
                for r in batch
            ]
        )
        start = START + timedelta(hours=start_h, minutes=17)
        end = start + timedelta(hours=length_h)
        filters = reports.Filters(
            agent_id=agents[1].pk if narrow == "agent" else None,
            task_id=1 if narrow == "task" else None,
            gateway_id=gateway.pk if narrow == "gateway" else None,
        )
        got = {
            k: (t.records, t.input_tokens, t.cost_nanos)
            for k, t in reports.sums(start, end, filters, column).items()
            if t.records
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
            key = {
                None: None,
                "model": r.model,
                "agent_id": r.agent_id,
                "gateway_id": r.agent.gateway_id or 0,
                "task_id": r.task_id or 0,
            }[column]
            row = want[key]
            row[0] += 1
            row[1] += r.input_tokens
            row[2] += prices.nanos(r.cost_usd)
        assert got == {k: tuple(v) for k, v in want.items()}
        transaction.set_rollback(True)
