"""What a gateway sends, read into values the rest of the product can trust: the one place
OpenClaw's wire values are bounded (issue #30 §3, boundary issue #26 §1).

OpenClaw's wire format stops here. The connector turns every frame it hands on into typed,
frozen values (`ListedAgent`, `SessionSnapshot`, `TranscriptMessage`, `UsageMessage`,
`RunEnd`, `CronJobSnapshot`, `CronRunEntry`, `CronEvent`, `GatewayHealth`); the actions of
agents, billing and crons take those and never read a camelCase key, so a protocol change
touches this module and the connector only.

Every value is bounded on the way in, so that no frame can carry a value past it that breaks a
page or a connector: a timestamp in year 9999 was a 500 on /sessions/ east of UTC and an
OverflowError that restarted a gateway's connector in a loop; a cost of NaN stopped the session
sync; a NUL character is refused by PostgreSQL. And the accounting of what was skipped: an item
no reader can make sense of is left out, named (`Skipped`), logged once and counted on the
gateway's page, and the items around it are stored. No models here.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Self

from django.db import DataError, IntegrityError

logger = logging.getLogger(__name__)

# C0 controls but tab and newline, DEL, and the UTF-16 surrogates a JSON string may carry
# unpaired: PostgreSQL refuses NUL and the encoder refuses lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")

# Timestamps a gateway may report: from 2000 to 2999. Anything else is no time (treated as
# missing): far enough from the ends of the calendar that every zone, and a day either side,
# stays representable.
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
LATEST_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z
# Durations: up to a year (a run or a job longer than that is a broken clock, not a run).
LONGEST_MS = 366 * 86_400_000


def ms_time(value: Any) -> datetime | None:
    """An epoch-milliseconds number as an aware UTC datetime, or None when it is not a number
    (booleans neither) or outside [2000, 3000)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not EARLIEST_MS <= value < LATEST_MS:  # NaN fails this too
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def duration(value: Any) -> timedelta | None:
    """A milliseconds duration, or None when it is not a whole number in [0, a year]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LONGEST_MS:
        return None
    return timedelta(milliseconds=value)


def duration_ms(value: Any) -> int | None:
    """A milliseconds duration as a whole number in [0, a year], or None."""
    took = duration(value)
    return None if took is None else value


def count(value: Any, high: int = 10**9) -> int:
    """A non-negative count (a float's whole part), 0 when it is not one; at most `high`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return 0  # NaN fails `>= 0` too
    return int(min(value, high))


def text(value: Any, limit: int) -> str:
    """A string (or a number, as written) cut to `limit`, without the characters a database
    or a page cannot hold; "" for anything else (containers, booleans, None)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return _UNSAFE.sub("", str(value))[:limit]


def ident(value: Any, limit: int = 128) -> str | None:
    """An identifier (agent id, session key, job id): a non-empty string of at most `limit`
    characters, none of them unsafe — else None (the item it names is skipped: an id cut or
    cleaned would name another item)."""
    if not isinstance(value, str) or not 0 < len(value) <= limit or _UNSAFE.search(value):
        return None
    return value


def cost(value: Any, high: Decimal = Decimal(10) ** 8) -> Decimal | None:
    """A US-dollar amount in [0, 10^8) to the micro-dollar, or None (NaN, infinities, words,
    booleans, negative or absurd amounts)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
        if not amount.is_finite() or not Decimal(0) <= amount < high:
            return None
        return amount.quantize(Decimal("0.000001"))
    except (InvalidOperation, ValueError):
        return None


def number(value: Any) -> float | None:
    """A finite number (not a boolean), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if abs(value) < 1e15 else None  # NaN fails this too


INT64 = 2**63


def portable(value: Any) -> Any:
    """A gateway's answer made safe to relay over any channel layer (msgpack over Redis refuses
    integers past 64 bits) and to render: such integers become floats, NaN and infinities
    None."""
    if isinstance(value, dict):
        return {str(k): portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -INT64 <= value < INT64:
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Skipped:
    """What one pass over a gateway's frames left out: {kind: {reason: count}}."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, kind: str, reason: str, n: int = 1) -> None:
        reasons = self.counts.setdefault(kind, {})
        reasons[reason[:120]] = reasons.get(reason[:120], 0) + n

    def __bool__(self) -> bool:
        return bool(self.counts)


# What a reader (or the database, on a value it refuses) raises on a value nobody foresaw:
# the item is skipped, the rest go on. A database that is unavailable is not among them.
READ_ERRORS = (
    ValueError,
    TypeError,
    ArithmeticError,
    LookupError,
    AttributeError,
    DataError,
    IntegrityError,
)


def read[T, R](reader: Callable[[T], R], item: T, kind: str, skipped: Skipped | None) -> R | None:
    """`reader(item)`, or None when the item holds what it cannot read (counted in `skipped`,
    or logged when nobody counts)."""
    with skipping(kind, skipped):
        return reader(item)
    return None


@contextmanager
def skipping(kind: str, skipped: Skipped | None) -> Iterator[None]:
    """Around one item's work (with a savepoint inside it, when it writes): what a reader did
    not foresee skips that item — counted, or logged when nobody counts — and the rest go on."""
    try:
        yield
    except READ_ERRORS as failure:
        reason = f"{type(failure).__name__}: {failure}"
        if skipped is None:
            logger.warning("gateway %s skipped: %s", kind, reason[:200])
        else:
            skipped.add(kind, reason)


class Unusable(ValueError):
    """An item without what it must have (its id, mostly): skipped under this reason."""


def listed[T](
    raw: Any, kind: str, reader: Callable[[dict[str, Any]], T], skipped: Skipped | None = None
) -> list[T]:
    """A list of objects read one by one: an item that is not an object, that lacks what it
    must have (`Unusable`) or holds what no reader foresaw is left out and counted (in
    `skipped`, when given)."""
    counted = skipped if skipped is not None else Skipped()
    if raw is None:
        return []
    if not isinstance(raw, list):
        counted.add(kind, "the list is not a list")
        return []
    kept: list[T] = []
    for item in raw:
        if not isinstance(item, dict):
            counted.add(kind, "an item that is not an object")
            continue
        try:
            kept.append(reader(item))
        except Unusable as missing:
            counted.add(kind, str(missing))
        except READ_ERRORS as failure:
            counted.add(kind, f"{type(failure).__name__}: {failure}")
    return kept


def _ident_of(item: dict[str, Any], key: str, limit: int = 128) -> str:
    found = ident(item.get(key), limit)
    if found is None:
        raise Unusable(f"no usable {key}")
    return found


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(*values: Any) -> Any:
    """The first of these that is set (OpenClaw moved some fields between versions)."""
    return next((v for v in values if v), None)


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 time (a naive one is UTC), in the same bounds as `ms_time`, or None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
        found = found if found.tzinfo else found.replace(tzinfo=UTC)
        return ms_time(found.timestamp() * 1000)
    except (OverflowError, ValueError):
        return None


def content_text(value: Any, limit: int = 500) -> str:
    """A message's text: OpenClaw content is a string or a list of parts ({type, text})."""
    if isinstance(value, dict):
        value = value.get("text") or value.get("content") or ""
    if isinstance(value, list):
        value = " ".join(
            str(part.get("text") or "") for part in value if isinstance(part, dict)
        ).strip()
    return text(value, limit)


# --- Agents -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedAgent:
    """One agent of `agents.list`."""

    external_id: str
    model: str = ""
    framework: str = "openclaw"

    @classmethod
    def read(cls, item: dict[str, Any]) -> Self:
        kind = text(_object(item.get("agentRuntime")).get("id"), 50)
        return cls(
            external_id=_ident_of(item, "id"),
            model=text(_object(item.get("model")).get("primary"), 128),
            framework=f"openclaw/{kind}" if kind else "openclaw",
        )


def agents(raw: Any, skipped: Skipped | None = None) -> list[ListedAgent]:
    """`agents.list`'s `agents`."""
    return listed(raw, "agents", ListedAgent.read, skipped)


# --- Sessions and transcripts -------------------------------------------------------------------


@dataclass(frozen=True)
class SessionSnapshot:
    """A session as `sessions.list` or a `sessions.changed` / `session.message` event gives it."""

    key: str
    agent_ref: str = ""  # the gateway's id of its agent
    session_id: str = ""
    label: str = ""
    kind: str = ""
    status: str = ""
    model: str = ""
    model_provider: str = ""
    has_active_run: bool = False
    active_run_ids: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal | None = None
    last_message_preview: str = ""
    last_activity_at: datetime | None = None

    @classmethod
    def read(cls, row: dict[str, Any]) -> Self:
        runs = row.get("activeRunIds")
        return cls(
            key=_ident_of(row, "key", 300),
            agent_ref=text(row.get("agentId"), 128),
            session_id=text(row.get("sessionId"), 80),
            label=text(row.get("label") or row.get("displayName"), 200),
            kind=text(row.get("kind"), 32),
            status=text(row.get("status"), 32),
            model=text(row.get("model"), 128),
            model_provider=text(row.get("modelProvider"), 64),
            has_active_run=row.get("hasActiveRun") is True,
            active_run_ids=tuple(
                text(r, 80) for r in (runs if isinstance(runs, list) else [])[:20]
            ),
            input_tokens=count(row.get("inputTokens")),
            output_tokens=count(row.get("outputTokens")),
            total_tokens=count(row.get("totalTokens")),
            cost_usd=cost(row.get("estimatedCostUsd")),
            last_message_preview=content_text(row.get("lastMessagePreview")),
            last_activity_at=ms_time(row.get("lastInteractionAt")) or ms_time(row.get("updatedAt")),
        )


def sessions(raw: Any, skipped: Skipped | None = None) -> list[SessionSnapshot]:
    """`sessions.list`'s rows (or the sessions of events)."""
    return listed(raw, "sessions", SessionSnapshot.read, skipped)


def deleted_session(payload: Any) -> str | None:
    """The key of the session a `sessions.changed` event says was deleted (`reason: "delete"`,
    measured on 2026.9.6: it comes twice, once with `sessionKey` and once without), or none."""
    if not isinstance(payload, dict) or payload.get("reason") != "delete":
        return None
    return ident(payload.get("sessionKey"), 300)


def session(raw: Any) -> SessionSnapshot | None:
    """The session an event carries, when it names it by a usable key (else none)."""
    if not isinstance(raw, dict) or ident(raw.get("key"), 300) is None:
        return None
    return SessionSnapshot.read(raw)


@dataclass(frozen=True)
class UsageMessage:
    """The tokens of one assistant message (OpenClaw puts `usage` and the message id
    `__openclaw.id` on each): stored once, by that id."""

    message_id: str
    model: str = ""
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal | None = None
    at: datetime | None = None

    @classmethod
    def read(cls, message: Any) -> Self | None:
        """The usage of a transcript message, or None when it carries none (not an assistant
        message, no usage, no usable id)."""
        if not isinstance(message, dict) or message.get("role") != "assistant":
            return None
        usage, meta = message.get("usage"), message.get("__openclaw")
        if not isinstance(usage, dict) or not isinstance(meta, dict):
            return None
        message_id = ident(meta.get("id"), 100)
        if message_id is None:
            return None
        total = _object(usage.get("cost")).get("total")
        return cls(
            message_id=message_id,
            model=text(message.get("model"), 128),
            provider=text(message.get("provider"), 64),
            input_tokens=count(usage.get("input")),
            output_tokens=count(usage.get("output")),
            cache_read_tokens=count(usage.get("cacheRead")),
            cache_write_tokens=count(usage.get("cacheWrite")),
            cost_usd=cost(total) if isinstance(total, int | float) else None,
            at=ms_time(message.get("timestamp")),
        )


def usage_messages(raw: Any) -> list[UsageMessage]:
    """The usage of a page of transcript messages (`chat.history`); messages without any are
    left out (most are: user lines, tool results)."""
    found = [UsageMessage.read(m) for m in raw] if isinstance(raw, list) else []
    return [u for u in found if u is not None]


@dataclass(frozen=True)
class TranscriptMessage:
    """One line of a session's transcript (a `session.message` event, or a streaming reply)."""

    message_id: str = ""
    role: str = ""
    text: str = ""
    at: datetime | None = None
    run_id: str = ""  # the run a finished reply belongs to
    usage: UsageMessage | None = None

    @classmethod
    def read(cls, message: dict[str, Any], message_id: str | None = None) -> Self:
        """`message_id`: the event's id of the message (else the message's own: its `id`, or
        the `__openclaw.id` the gateway's transcript names it by). One message has one id
        whichever way it came, so a page's history line and its live line are one line."""
        meta = _object(message.get("__openclaw"))
        own = text(message_id, 80) or text(message.get("id"), 80) or text(meta.get("id"), 80)
        return cls(
            message_id=own,
            role=text(message.get("role"), 32),
            text=content_text(message.get("content"), limit=8000),
            at=ms_time(message.get("timestamp")),
            run_id=text(meta.get("runId"), 80),
            usage=UsageMessage.read(message),
        )


@dataclass(frozen=True)
class RunEnd:
    """How a session's run ended, when not well: its error, or that it was aborted."""

    status: Literal["error", "aborted"]
    text: str = ""
    kind: str = ""  # the gateway's errorKind, when it names one


@dataclass(frozen=True)
class ChatEvent:
    """A `chat` event: a run's streaming reply (`delta`) or its end."""

    run_id: str
    session_key: str
    state: str
    message: TranscriptMessage | None = None
    end: RunEnd | None = None  # for `error` and `aborted`

    @classmethod
    def read(cls, payload: Any) -> Self | None:
        if not isinstance(payload, dict):
            return None
        run_id, key = ident(payload.get("runId"), 80), ident(payload.get("sessionKey"), 300)
        state = payload.get("state")
        if run_id is None or key is None or not isinstance(state, str):
            return None
        message = payload.get("message")
        end = None
        if state == "aborted":
            end = RunEnd("aborted", "Run aborted.")
        elif state == "error":
            end = RunEnd(
                "error",
                content_text(payload.get("errorMessage") or "", limit=2000),
                kind=ident(payload.get("errorKind"), 64) or "",
            )
        return cls(
            run_id=run_id,
            session_key=key,
            state=state,
            message=TranscriptMessage.read(message) if isinstance(message, dict) else None,
            end=end,
        )


# --- Cron jobs and their runs -------------------------------------------------------------------

RunStatus = Literal["ok", "failed", "skipped", "running"]


def run_status(raw: Any) -> RunStatus:
    """A gateway run status as ours: ok, skipped, running; failed for errors and anything
    unknown."""
    known: dict[str, RunStatus] = {"ok": "ok", "skipped": "skipped", "running": "running"}
    return known.get(raw, "failed") if isinstance(raw, str) else "failed"


@dataclass(frozen=True)
class GatewaySchedule:
    """A job's `schedule`: {kind:"cron",expr,tz} | {kind:"every",everyMs,anchorMs} |
    {kind:"at",at} (checked further, as a schedule, by crons.schedules)."""

    kind: Literal["cron", "every", "at"]
    expr: str = ""
    tz: str = ""
    every_ms: float = 0
    anchor: datetime | None = None
    at: datetime | None = None

    @classmethod
    def read(cls, raw: Any) -> Self | None:
        if not isinstance(raw, dict):
            return None
        kind = raw.get("kind")
        if kind == "cron" and isinstance(raw.get("expr"), str):
            return cls("cron", expr=text(raw["expr"], 200), tz=text(raw.get("tz") or "", 64))
        if kind == "every":
            every = number(raw.get("everyMs"))
            return (
                cls("every", every_ms=every, anchor=ms_time(raw.get("anchorMs"))) if every else None
            )
        if kind == "at":
            at = raw.get("at")
            when = iso_time(at) if isinstance(at, str) else ms_time(at)
            return cls("at", at=when) if when else None
        return None


# What a job's summary and error keep (the run page shows more of a run's).
SUMMARY_MAX = 4000
ERROR_MAX = 2000


@dataclass(frozen=True)
class CronJobSnapshot:
    """A job as `cron.list` or a `cron` event gives it."""

    external_id: str
    name: str = ""
    description: str = ""
    agent_ref: str = ""
    schedule: GatewaySchedule | None = None
    payload_kind: str = ""
    enabled: bool = True
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_status: RunStatus | Literal[""] = ""
    last_duration_ms: int | None = None
    last_summary: str = ""
    last_error: str = ""
    running_since: datetime | None = None
    consecutive_failures: int = 0

    @classmethod
    def read(cls, item: dict[str, Any]) -> Self:
        external = _ident_of(item, "id")
        state = _object(item.get("state"))
        last_status = _first(
            state.get("lastRunStatus"), state.get("lastStatus"), item.get("lastRunStatus")
        )
        summary = state.get("lastDiagnosticSummary")
        if summary is None:
            summary = _object(state.get("lastDiagnostics")).get("summary")
        return cls(
            external_id=external,
            name=_str(_first(item.get("displayName"), item.get("name")), 200) or external[:200],
            description=_str(item.get("description"), 500),
            agent_ref=_str(_first(item.get("agentId"), item.get("effectiveAgentId")), 128),
            schedule=GatewaySchedule.read(item.get("schedule")),
            payload_kind=_str(_object(item.get("payload")).get("kind"), 32),
            enabled=item.get("enabled") is not False,
            next_run_at=ms_time(_first(state.get("nextRunAtMs"), item.get("nextRunAtMs"))),
            last_run_at=ms_time(_first(state.get("lastRunAtMs"), item.get("lastRunAtMs"))),
            last_status=run_status(last_status) if last_status else "",
            last_duration_ms=duration_ms(state.get("lastDurationMs")),
            last_summary=_str(summary, SUMMARY_MAX),
            last_error=_str(_first(state.get("lastError"), item.get("lastRunError")), ERROR_MAX),
            running_since=ms_time(state.get("runningAtMs")),
            consecutive_failures=count(state.get("consecutiveErrors")),
        )


def _str(value: Any, limit: int) -> str:
    """Text that was sent as a string (a number where a name belongs is no name)."""
    return text(value, limit) if isinstance(value, str) else ""


def cron_jobs(raw: Any, skipped: Skipped | None = None) -> list[CronJobSnapshot]:
    """`cron.list`'s `jobs`."""
    return listed(raw, "cron jobs", CronJobSnapshot.read, skipped)


@dataclass(frozen=True)
class CronRunEntry:
    """A finished (or started) run, as `cron.runs` or a `cron` event gives it."""

    job_id: str
    run_key: str  # the run's start in epoch ms, else its run id: stored once by (job, key)
    finished: bool = True
    status: RunStatus = "failed"
    manual: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    summary: str = ""
    error: str = ""
    model: str = ""
    provider: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    session_key: str = ""

    @classmethod
    def read(cls, entry: dict[str, Any], job_id: str | None = None) -> Self:
        job = job_id if job_id is not None else _ident_of(entry, "jobId")
        started_ms = ms_time(entry.get("runAtMs"))
        key = (
            str(int(entry["runAtMs"]))
            if started_ms is not None
            else _str(entry.get("runId"), 128) or text(entry.get("ts"), 128)
        )
        finished = ms_time(entry.get("ts"))
        took = duration(entry.get("durationMs"))
        started = started_ms or finished
        if finished is None and took is not None and started is not None:
            finished = started + took
        summary = entry.get("summary")
        if summary is None:
            summary = _object(entry.get("diagnostics")).get("summary")
        usage = _object(entry.get("usage"))
        return cls(
            job_id=job,
            run_key=key,
            finished=entry.get("action", "finished") == "finished",
            status=run_status(entry.get("status")),
            manual=_str(entry.get("runId"), 200).startswith("manual:"),
            started_at=started,
            finished_at=finished,
            duration_ms=duration_ms(entry.get("durationMs")),
            summary=_str(summary, SUMMARY_MAX),
            error=_str(entry.get("error"), ERROR_MAX),
            model=_str(entry.get("model"), 128),
            provider=_str(entry.get("provider"), 64),
            input_tokens=_tokens(usage.get("input_tokens")),
            output_tokens=_tokens(usage.get("output_tokens")),
            session_key=_str(entry.get("sessionKey"), 300),
        )


def _tokens(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        return None
    return value


def cron_runs(raw: Any, skipped: Skipped | None = None) -> list[CronRunEntry]:
    """`cron.runs`' `entries`."""
    return listed(raw, "cron runs", CronRunEntry.read, skipped)


@dataclass(frozen=True)
class CronEvent:
    """A `cron` event: a job added, updated or removed, or one of its runs started or finished."""

    action: str
    job_id: str
    job: CronJobSnapshot | None = None
    run: CronRunEntry | None = None  # for `started` and `finished`

    @classmethod
    def read(cls, payload: Any) -> Self | None:
        if not isinstance(payload, dict):
            return None
        item = payload.get("job") if isinstance(payload.get("job"), dict) else None
        external = ident(payload.get("jobId") or (item or {}).get("id"))
        action = payload.get("action")
        if external is None or not isinstance(action, str):
            return None
        job = CronJobSnapshot.read({**item, "id": external}) if item is not None else None
        run = None
        if action in {"started", "finished"}:
            run = CronRunEntry.read(payload, job_id=external)
            if action == "started":
                run = replace(run, finished=False, status="running", finished_at=None)
                if job is not None and job.running_since is None:
                    job = replace(job, running_since=run.started_at)
        return cls(action=action[:32], job_id=external, job=job, run=run)


# --- Health -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayHealth:
    """What the gateway page shows of `health` and `status` (never paths or prompts); None is
    "not said" (a `health` event lacks `status`'s figures)."""

    ok: bool | None = None
    agents: int | None = None
    sessions: int | None = None
    loop_delay_p99_ms: float | None = None
    degraded: bool | None = None
    rss_mb: int | None = None
    runtime_version: str | None = None
    uptime_s: int | None = None

    @classmethod
    def read(cls, health: Any = None, status: Any = None, uptime_ms: Any = None) -> Self:
        said: dict[str, Any] = {}
        if isinstance(health, dict):
            loop, listed_agents = _object(health.get("eventLoop")), health.get("agents")
            agents_list = listed_agents if isinstance(listed_agents, list) else []
            # Every agent's sessions (the top-level count is the default agent's only).
            per_agent = [
                n
                for a in agents_list
                if isinstance(n := _object(_object(a).get("sessions")).get("count"), int)
            ]
            sessions_count = _object(health.get("sessions")).get("count")
            if per_agent:
                sessions_count = sum(count(n) for n in per_agent)
            said.update(
                ok=bool(health.get("ok")),
                agents=len(agents_list),
                sessions=count(sessions_count) if isinstance(sessions_count, int) else None,
                loop_delay_p99_ms=number(loop.get("delayP99Ms")),
                degraded=bool(loop.get("degraded")),
            )
        if isinstance(status, dict):
            rss = number(_object(status.get("processMemory")).get("rssBytes"))
            said["rss_mb"] = round(rss / 1e6) if rss is not None and rss >= 0 else None
            said["runtime_version"] = text(status.get("runtimeVersion") or "", 64)
        took = number(uptime_ms)
        if took is not None and took >= 0:
            said["uptime_s"] = int(took) // 1000
        return cls(**said)

    def known(self) -> dict[str, Any]:
        """The figures it says (to merge into what is known)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def transcript(raw: Any) -> list[TranscriptMessage]:
    """A page of `chat.history` as the transcript shows it (each line named by its message
    id; hidden custom lines left out)."""
    lines: list[TranscriptMessage] = []
    for message in raw if isinstance(raw, list) else []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "custom" and not message.get("display"):
            continue
        meta_id = _object(message.get("__openclaw")).get("id")
        lines.append(TranscriptMessage.read(message, message_id=text(meta_id, 80)))
    return lines


def run_id(answer: Any) -> str:
    """The run a gateway's answer to a command names (`chat.send`, `cron.run`), or ""."""
    return text(answer.get("runId"), 80) if isinstance(answer, dict) else ""


def cron_event(payload: Any) -> CronEvent:
    """A `cron` event; Unusable when it names no job or action (skipped and counted)."""
    event = CronEvent.read(payload)
    if event is None:
        raise Unusable("a cron event without a usable job id or action")
    return event


def aborted_nothing(answer: Any) -> bool:
    """A `chat.abort` answer that says no run was stopped (`{aborted: false}`)."""
    return isinstance(answer, dict) and answer.get("aborted") is False


# --- Exec approvals (scope operator.approvals, caps exec-approvals) -----------------------------

APPROVAL_DECISIONS = ("allow-once", "allow-always", "deny")


@dataclass(frozen=True)
class ExecApproval:
    """A command an agent asks to run (`exec.approval.requested`, `exec.approval.list` items):
    what, where, by which agent and session, which answers it takes, and until when."""

    approval_id: str
    command: str
    cwd: str
    agent_external_id: str
    session_key: str
    host: str
    warning: str
    allowed: tuple[str, ...]
    created_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def read(cls, item: dict[str, Any]) -> Self:
        request = _object(item.get("request"))
        command = text(request.get("command") or request.get("commandPreview"), 2000)
        if not command:
            raise Unusable("no command")
        allowed = tuple(
            d
            for d in request.get("allowedDecisions") or APPROVAL_DECISIONS
            if d in APPROVAL_DECISIONS
        )
        return cls(
            approval_id=_ident_of(item, "id", 200),
            command=command,
            cwd=text(request.get("cwd"), 500),
            agent_external_id=text(request.get("agentId"), 128),
            session_key=text(request.get("sessionKey"), 300),
            host=text(request.get("host"), 50),
            warning=text(request.get("warningText"), 1000),
            allowed=allowed or APPROVAL_DECISIONS,
            created_at=ms_time(item.get("createdAtMs")),
            expires_at=ms_time(item.get("expiresAtMs")),
        )


def exec_approvals(raw: Any, skipped: Skipped | None = None) -> list[ExecApproval]:
    """`exec.approval.list`'s pending approvals."""
    return listed(raw, "exec approvals", ExecApproval.read, skipped)


@dataclass(frozen=True)
class ApprovalOutcome:
    """Where an approval stands on its gateway (`approval.get` / `approval.resolve`'s
    `approval`, `exec.approval.resolved`): `status` pending / allowed / denied / expired /
    cancelled, the decision, why, and who answered."""

    approval_id: str
    status: str
    decision: str
    reason: str
    resolved_by: str
    resolved_at: datetime | None
    applied: bool = True  # approval.resolve: whether this answer was the one recorded

    @classmethod
    def read(cls, item: dict[str, Any], applied: bool = True) -> Self:
        resolver = _object(item.get("resolver"))
        decision = text(item.get("decision"), 30)
        status = text(item.get("status"), 30) or (
            "denied" if decision == "deny" else "allowed" if decision else "pending"
        )
        return cls(
            approval_id=_ident_of(item, "id", 200),
            status=status,
            decision=decision,
            reason=text(item.get("reason"), 100),
            resolved_by=text(item.get("resolvedBy"), 150)
            or text(resolver.get("kind"), 30)
            + (f" {text(resolver.get('id'), 16)}" if resolver.get("id") else ""),
            resolved_at=ms_time(_first(item.get("resolvedAtMs"), item.get("ts"))),
            applied=applied,
        )


def approval_outcome(answer: Any) -> ApprovalOutcome:
    """`approval.resolve` / `approval.get`'s answer: its `approval` (and `applied`)."""
    body = _object(answer)
    approval = _object(body.get("approval"))
    return ApprovalOutcome.read(approval, applied=body.get("applied") is not False)
