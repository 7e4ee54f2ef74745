"""Fast routes: heartbeats and usage reports, answered at the ASGI layer (see
missioncontrol/fastpath; listed in missioncontrol/asgi.py's FAST_ROUTES).

`POST /api/v1/agents/<name>/heartbeat`, its compatibility twin `POST /api/agents/<name>/heartbeat`
and `POST /api/v1/usage` skip Django's browser middleware (sessions, CSRF, messages …: about a
dozen thread hops per request) and do, explicitly, what applies to them: host check, body limit,
API-key check (cached), rate limit and JSON validation. Writes go to one group-commit writer:
many requests' records in one short transaction, each request answered only after its data is
committed. The writer calls agents/actions.py and billing/actions.py like every other path.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents import actions, keys, validation
from billing import actions as billing
from billing import announcer, budgets
from billing import validation as usage_validation
from missioncontrol.errors import ActionError, Forbidden, Unauthenticated, Unavailable
from missioncontrol.fastpath import writer as fastwriter
from missioncontrol.fastpath.http import (
    Receive,
    Scope,
    Send,
    admitted_body,
    error,
    header,
    refuse,
    respond,
)
from runs import actions as run_actions
from tasks.models import Task

# How many requests one transaction may carry.
MAX_BATCH = 500
WORK_LIMIT = 20
# A writer's answer for a heartbeat whose agent no longer exists (401, not "try again").
AGENT_GONE: dict[str, Any] = {"gone": True}
NO_RUNS: dict[str, list[Any]] = {"runs": [], "stop": []}


# --- The handler --------------------------------------------------------------------------------


async def handle(scope: Scope, receive: Receive, send: Send, kind: str, name: str | None) -> None:
    body = await admitted_body(scope, receive, send, settings.MC_API_MAX_BODY)
    if body is None:
        return None
    try:
        key = await keys.aauthenticate(header(scope, b"authorization"), header(scope, b"x-api-key"))
        if kind == "heartbeat" and key.agent_name != name:
            raise Forbidden("This key belongs to another agent.")
    except ActionError as refused:
        return await refuse(send, refused)
    try:
        data = json.loads(body or b"{}")
    except RecursionError:
        return await error(send, 400, {"body": ["The JSON is nested too deeply."]})
    except ValueError:  # includes bodies that are not UTF-8
        return await error(send, 400, {"body": ["The body is not valid JSON."]})
    now = timezone.now()
    assert key.agent_id is not None
    if kind == "heartbeat":
        cleaned, errors = validation.heartbeat(data)
        cleaned["usage"], usage_errors = usage_validation.usage_list(
            cleaned.get("usage"), key.agent_id, now, "usage", usage_validation.MAX_INLINE_USAGE
        )
        errors.update(usage_errors)
    else:
        records = data.get("records") if isinstance(data, dict) else None
        if records is None:
            items: list[billing.UsageItem] = []
            errors = {"records": ["A list of usage records is required."]}
        else:
            items, errors = usage_validation.usage_list(
                records, key.agent_id, now, "records", usage_validation.MAX_BULK_USAGE
            )
        cleaned = {"usage": items}
    if errors:
        return await error(send, 400, errors)
    job = Job(kind=kind, key=key, cleaned=cleaned, received_at=now)
    try:
        result = await fastwriter.writer("ingest", IngestWriter).submit(job)
    except fastwriter.WriteFailed:
        return await refuse(
            send, Unavailable("Could not store this; nothing was recorded. Try again.")
        )
    if result is AGENT_GONE:
        # The key's agent was deleted since the key was cached: the key is dead with it.
        keys.invalidate(key.prefix)
        return await refuse(send, Unauthenticated("This API key's agent no longer exists."))
    return await respond(send, 200, result)


async def heartbeat(scope: Scope, receive: Receive, send: Send, match: Any) -> None:
    return await handle(scope, receive, send, "heartbeat", match.group("name"))


async def usage(scope: Scope, receive: Receive, send: Send, match: Any) -> None:
    return await handle(scope, receive, send, "usage", None)


# --- Group-commit writer ------------------------------------------------------------------------


@dataclass
class Job:
    kind: str
    key: keys.KeyInfo
    cleaned: dict[str, Any]
    received_at: datetime


class IngestWriter(fastwriter.BatchWriter):
    """The group-commit writer for heartbeats and usage, with two chores on its tick: revoked
    keys are forgotten within keys.REVOCATION_CHECK_S, and "last seen" goes out once a second
    for all agents heard from."""

    def __init__(self) -> None:
        self.seen: dict[int, datetime] = {}
        self.seen_flushed = time.monotonic()
        super().__init__("ingest", self.apply_jobs, max_batch=MAX_BATCH, tick=self.chores)

    def apply_jobs(self, batch: list[Job]) -> list[dict[str, Any] | None]:
        results = apply_batch(batch)
        for job, result in zip(batch, results, strict=True):
            if result is not None and job.kind == "heartbeat" and job.key.agent_id is not None:
                self.seen[job.key.agent_id] = job.received_at
        return results

    def chores(self, idle: bool) -> None:
        if keys.claim_check():
            keys.refresh_changed()
        if self.seen and (idle or time.monotonic() - self.seen_flushed >= 1.0):
            seen, self.seen = self.seen, {}
            self.seen_flushed = time.monotonic()
            actions.publish_seen(seen)
        announcer.announce_usage()


def apply_batch(batch: list[Job]) -> list[dict[str, Any] | None]:
    """Runs on the writer thread: every job's writes in one transaction, then the answers."""
    # The writer thread keeps its connection (no request cycle here to close it).
    reports: list[billing.AgentReport] = []
    for job in batch:
        items: list[billing.UsageItem] = job.cleaned.get("usage", [])
        beat = None
        if job.kind == "heartbeat":
            assert job.key.agent_id is not None
            beat = actions.Heartbeat(
                agent_id=job.key.agent_id,
                key_id=job.key.id,
                status=job.cleaned.get("status"),
                task_id=job.cleaned.get("task_id"),
                message=job.cleaned.get("message"),
                model=items[-1].model if items else None,
                received_at=job.received_at,
            )
        reports.append(billing.AgentReport(beat, items))
    done = billing.record_reports(reports)
    beating = {r.beat.agent_id for r in reports if r.beat is not None}
    work = _work(beating)
    # Runs: the heartbeat renews the leases of the runs its agent holds, and its answer offers
    # the queued ones it has room for (and names those an operator stopped).
    runs = run_actions.work_for(beating, timezone.now())
    pauses = budgets.paused(beating)
    results: list[dict[str, Any] | None] = []
    for job, result in zip(batch, done, strict=True):
        if job.kind == "usage":
            answer_usage: dict[str, Any] = {
                "recorded": result.recorded,
                "duplicates": result.duplicates,
            }
            if result.refused_usage:
                answer_usage["refused"] = result.refused_usage
            results.append(answer_usage)
            continue
        agent_id = job.key.agent_id
        state = result.state
        if state is None:
            results.append(AGENT_GONE)
            continue
        answer: dict[str, Any] = {
            "ok": True,
            "agent": {
                "name": state["name"],
                "status": state["status"],
                "last_seen": state["last_seen"].isoformat(),
            },
            "next_heartbeat_s": state["interval"],
            "usage_recorded": result.recorded,
            "usage_duplicates": result.duplicates,
            "work": {"tasks": work.get(agent_id or 0, []), **runs.get(agent_id or 0, NO_RUNS)},
            "paused": False,
        }
        if result.refused_usage:
            answer["usage_refused"] = result.refused_usage
        pause = pauses.get(agent_id or 0)
        if pause is not None:
            answer["paused"] = True
            answer["pause"] = pause.data()
        if result.task_refused:
            answer["warnings"] = {
                "task_id": ["Not one of your tasks: claim it first. It was not recorded."]
            }
        results.append(answer)
    return results


def _work(agent_ids: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Tasks assigned to these agents and not done, most urgent first (one query)."""
    if not agent_ids:
        return {}
    out: dict[int, list[dict[str, Any]]] = {}
    # Raw SQL (Task.objects.open() for these agents, by the assignee index): on this path the
    # ORM's compile step cost more than the query.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT assignee_agent_id, id, title, status, priority FROM {Task._meta.db_table} "  # noqa: S608 - placeholders only
            f"WHERE assignee_agent_id IN ({', '.join(['%s'] * len(agent_ids))}) "
            "AND archived_at IS NULL AND status != %s ORDER BY priority, status, position",
            [*sorted(agent_ids), Task.Status.DONE.value],
        )
        rows = cursor.fetchall()
    for agent_id, pk, title, status, priority in rows:
        tasks = out.setdefault(agent_id, [])
        if len(tasks) < WORK_LIMIT:
            tasks.append(
                {
                    "id": pk,
                    "title": title,
                    "status": status,
                    "priority": Task.Priority(priority).label.lower(),
                    "url": f"/tasks/{pk}/",
                }
            )
    return out
