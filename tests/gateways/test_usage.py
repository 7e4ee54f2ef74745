"""Usage from gateways: exact and idempotent — an event, a backfill after reconnect and the
transcript itself name the same message, and it is counted once."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents import actions as agent_actions
from billing import actions as billing_actions
from billing.models import UsageRecord
from tests.gateways.factories import make_gateway
from tests.gateways.fake import TOKEN, FakeGateway
from tests.gateways.test_sessions import session_row

db = database_sync_to_async


def assistant(message_id: str, input_tokens: int = 1200, output_tokens: int = 7) -> dict[str, Any]:
    return {
        "role": "assistant",
        "provider": "fakellm",
        "model": "fake-1",
        "content": [{"type": "text", "text": "Hello"}],
        "usage": {
            "input": input_tokens,
            "output": output_tokens,
            "totalTokens": input_tokens + output_tokens,
            "cacheRead": 0,
            "cacheWrite": 0,
            "cost": {"total": 0.003705},
        },
        "timestamp": 1795460841820,
        "__openclaw": {"id": message_id, "runId": "r1"},
    }


@pytest.mark.django_db
class TestRecording:
    def test_each_assistant_message_counts_once_with_its_tokens_and_cost(self):
        gateway = make_gateway()
        agent_actions.sync_gateway_agents(gateway.pk, [{"id": "main"}])
        agent_actions.sync_gateway_sessions(gateway.pk, [session_row()])
        user_line = {"role": "user", "content": "hi", "__openclaw": {"id": "u1"}}
        first = [user_line, assistant("m1")]
        assert billing_actions.record_gateway_usage(gateway.pk, "agent:main:main", first) == 1
        again = [*first, assistant("m2", 50, 5)]
        assert billing_actions.record_gateway_usage(gateway.pk, "agent:main:main", again) == 1
        records = list(UsageRecord.objects.order_by("client_id"))
        assert [(r.client_id, r.input_tokens, r.output_tokens) for r in records] == [
            (f"gw{gateway.pk}:m1", 1200, 7),
            (f"gw{gateway.pk}:m2", 50, 5),
        ]
        assert records[0].reported_cost_usd == Decimal("0.003705")
        assert records[0].agent.name == "main@prod"
        assert records[0].session == "agent:main:main"

    def test_an_unknown_session_or_malformed_usage_stores_nothing(self):
        gateway = make_gateway()
        assert billing_actions.record_gateway_usage(gateway.pk, "agent:x", [assistant("m1")]) == 0
        agent_actions.sync_gateway_agents(gateway.pk, [{"id": "main"}])
        agent_actions.sync_gateway_sessions(gateway.pk, [session_row()])
        bad = [
            {"role": "assistant", "usage": "lots", "__openclaw": {"id": "a"}},
            {"role": "assistant", "usage": {"input": -4, "output": "x"}, "__openclaw": {"id": "b"}},
            {"role": "assistant", "usage": {"input": 3}},  # no id: cannot be counted once
            "nonsense",
        ]
        assert billing_actions.record_gateway_usage(gateway.pk, "agent:main:main", bad) == 1
        record = UsageRecord.objects.get()
        assert (record.input_tokens, record.output_tokens) == (0, 0)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_event_then_a_backfill_after_reconnect_count_each_message_once(monkeypatch):
    from gateways import connector
    from tests.gateways.waiting import until

    monkeypatch.setattr(connector, "backoff", lambda attempt, since: 0.05)
    fake = await FakeGateway().start()
    history: list[dict[str, Any]] = []
    fake.methods["sessions.list"] = lambda params: {
        "hasMore": False,
        "sessions": [session_row(totalTokens=sum(m["usage"]["totalTokens"] for m in history) or 1)],
    }
    fake.methods["sessions.subscribe"] = {"subscribed": True}
    fake.methods["chat.history"] = lambda params: {"messages": list(history)}
    try:
        gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
        from missioncontrol.supervisor import RowHandle

        task = asyncio.ensure_future(
            connector.run_gateway(RowHandle(gateway.pk, gateway.fingerprint))
        )
        await until(
            lambda: (
                fake.requests.count(
                    ("chat.history", {"sessionKey": "agent:main:main", "limit": 1000})
                )
                >= 1
            )
        )
        history.append(assistant("m1"))
        await fake.send_event(
            "session.message",
            {"sessionKey": "agent:main:main", "messageId": "m1", "message": history[0]},
        )
        await until(lambda: UsageRecord.objects.count() == 1)
        # While disconnected the agent answered again; the backfill finds m2, and m1 again.
        await fake.drop_all()
        history.append(assistant("m2", 10, 2))
        await until(lambda: UsageRecord.objects.count() == 2, timeout=10)
        await asyncio.sleep(0.3)
        totals = await db(
            lambda: sorted(UsageRecord.objects.values_list("input_tokens", "output_tokens"))
        )()
        assert totals == [(10, 2), (1200, 7)]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await fake.stop()
