"""Usage from gateways: exact and idempotent — an event, a backfill after reconnect and the
transcript itself name the same message, and it is counted once."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from billing import actions as billing_actions
from billing.models import UsageRecord
from gateways import frames
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
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions([session_row()]))
        user_line = {"role": "user", "content": "hi", "__openclaw": {"id": "u1"}}
        first = [user_line, assistant("m1")]
        assert (
            billing_actions.record_gateway_usage(
                gateway.pk, "agent:main:main", frames.usage_messages(first)
            )
            == 1
        )
        again = [*first, assistant("m2", 50, 5)]
        assert (
            billing_actions.record_gateway_usage(
                gateway.pk, "agent:main:main", frames.usage_messages(again)
            )
            == 1
        )
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
        assert (
            billing_actions.record_gateway_usage(
                gateway.pk, "agent:x", frames.usage_messages([assistant("m1")])
            )
            == 0
        )
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions([session_row()]))
        bad = [
            {"role": "assistant", "usage": "lots", "__openclaw": {"id": "a"}},
            {"role": "assistant", "usage": {"input": -4, "output": "x"}, "__openclaw": {"id": "b"}},
            {"role": "assistant", "usage": {"input": 3}},  # no id: cannot be counted once
            "nonsense",
        ]
        assert (
            billing_actions.record_gateway_usage(
                gateway.pk, "agent:main:main", frames.usage_messages(bad)
            )
            == 1
        )
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
                    (
                        "chat.history",
                        {"sessionKey": "agent:main:main", "limit": 1000, "offset": 0},
                    )
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


def paged_history(messages: list[dict[str, Any]]) -> Any:
    """chat.history as OpenClaw 2026.9.6 pages it: offsets count back from the newest message,
    each page oldest first, `nextOffset` while `hasMore`."""

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        limit, offset = int(params["limit"]), int(params.get("offset") or 0)
        end = max(len(messages) - offset, 0)
        start = max(end - limit, 0)
        page = {
            "messages": messages[start:end],
            "hasMore": start > 0,
            "totalMessages": len(messages),
        }
        return {**page, "nextOffset": offset + limit} if start > 0 else page

    return answer


def transcript(prefix: str, count: int, first_ms: int = 1795460841820) -> list[dict[str, Any]]:
    """`count` exchanges: a user line and an assistant reply with usage, a minute apart."""
    lines: list[dict[str, Any]] = []
    for i in range(count):
        lines.append({"role": "user", "content": "go", "__openclaw": {"id": f"{prefix}u{i}"}})
        reply = assistant(f"{prefix}a{i}", 100 + i, 1)
        reply["timestamp"] = first_ms + i * 60_000
        lines.append(reply)
    return lines


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
class TestBackfillCommand:
    """`manage.py backfill_usage`: every page of every session, each message once."""

    async def start(self, histories: dict[str, list[dict[str, Any]]]) -> FakeGateway:
        fake = await FakeGateway().start()
        fake.methods["sessions.list"] = {
            "hasMore": False,
            "sessions": [
                session_row(key, sessionId=key, updatedAt=max(m.get("timestamp", 0) for m in lines))
                for key, lines in histories.items()
            ],
        }
        fake.methods["chat.history"] = lambda params: paged_history(
            histories[params["sessionKey"]]
        )(params)
        return fake

    async def test_reads_every_page_of_every_session_and_adds_nothing_twice(self):
        from gateways import history
        from missioncontrol.audit import Actor
        from missioncontrol.models import AuditEvent

        histories = {
            "agent:main:main": transcript("a", 1300),  # 2,600 messages: three pages
            "agent:main:other": transcript("b", 3),  # a session the dashboard never saw
        }
        fake = await self.start(histories)
        try:
            gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
            await db(agent_actions.sync_gateway_agents)(gateway.pk, frames.agents([{"id": "main"}]))
            await db(agent_sessions.sync_gateway_sessions)(
                gateway.pk, frames.sessions([session_row()])
            )
            # One message the connector already stored from an event.
            await db(billing_actions.record_gateway_usage)(
                gateway.pk,
                "agent:main:main",
                frames.usage_messages([histories["agent:main:main"][1]]),
            )
            actor = Actor.system("test")
            report = await history.backfill_gateway(gateway, actor=actor)
            assert (report.sessions, report.messages, report.stored) == (2, 2606, 1302)
            offsets = [p["offset"] for m, p in fake.requests if m == "chat.history"]
            assert sorted(offsets) == [0, 0, 1000, 2000]
            assert await db(UsageRecord.objects.count)() == 1303
            inputs = await db(lambda: sum(r.input_tokens for r in UsageRecord.objects.all()))()
            assert inputs == sum(100 + i for i in range(1300)) + sum(100 + i for i in range(3))
            again = await history.backfill_gateway(gateway, actor=actor)
            assert (again.messages, again.stored) == (2606, 0)
            assert await db(UsageRecord.objects.count)() == 1303
            audits = await db(lambda: list(AuditEvent.objects.filter(verb="usage.backfilled")))()
            assert len(audits) == 1  # only the run that stored something
            assert audits[0].changes["after"]["stored"] == 1302
        finally:
            await fake.stop()

    async def test_since_reads_back_only_to_that_day(self):
        from datetime import UTC, datetime

        from gateways import history
        from missioncontrol.audit import Actor

        day = 86_400_000
        start = 1795400000000  # 2026-11-23
        lines = []
        for i in range(10):  # one reply a day
            lines += transcript(f"d{i}", 1, first_ms=start + i * day)
        fake = await self.start({"agent:main:main": lines})
        try:
            gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
            since = datetime.fromtimestamp((start + 6 * day) / 1000, tz=UTC)
            report = await history.backfill_gateway(gateway, since, actor=Actor.system("t"))
            assert report.stored == 4
            stamps = await db(
                lambda: list(UsageRecord.objects.values_list("occurred_at", flat=True))
            )()
            assert min(stamps) >= since
        finally:
            await fake.stop()

    async def test_the_command_reports_and_refuses_clearly(self):
        from io import StringIO

        from django.core.management import CommandError, call_command

        fake = await self.start({"agent:main:main": transcript("a", 2)})
        try:
            await db(make_gateway)(name="prod", url=fake.url, token=TOKEN)
            await db(make_gateway)(name="gone", url="ws://127.0.0.1:9/", token=TOKEN)
            out = StringIO()
            await asyncio.to_thread(call_command, "backfill_usage", "--gateway", "prod", stdout=out)
            assert "stored 2 new usage records" in out.getvalue()
            with pytest.raises(
                CommandError, match="No gateway named 'nope' \\(gateways: gone, prod\\)"
            ):
                await asyncio.to_thread(call_command, "backfill_usage", "--gateway", "nope")
            with pytest.raises(CommandError, match="YYYY-MM-DD"):
                await asyncio.to_thread(
                    call_command, "backfill_usage", "--gateway", "prod", "--since", "May"
                )
            with pytest.raises(CommandError, match="Could not connect to gone \\(unreachable\\)"):
                await asyncio.to_thread(call_command, "backfill_usage", "--gateway", "gone")
        finally:
            await fake.stop()
