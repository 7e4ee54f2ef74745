"""A gateway's sessions, as its connector reports them: the re-sync and `sessions.changed`
snapshots, transcript lines, a run's end, and the sessions an operator acts on. Each write is one
transaction with its `session.*` events (docs/events.md, "Gateway sessions")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents import events
from agents.actions import change_statuses
from agents.models import Agent, AgentSession
from gateways import frames
from gateways.models import Gateway
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.db import bulk

_SESSION_SHOWN = (
    "agent_id",
    "session_id",
    "label",
    "kind",
    "status",
    "model",
    "model_provider",
    "has_active_run",
    "active_run_ids",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "last_message_preview",
    "last_activity_at",
    "gone",
)


def _session_fields(
    snapshot: frames.SessionSnapshot, agents_by_external: dict[str, Agent]
) -> dict[str, Any]:
    agent = agents_by_external.get(snapshot.agent_ref)
    return {
        "agent_id": agent.pk if agent else None,
        "session_id": snapshot.session_id,
        "label": snapshot.label,
        "kind": snapshot.kind,
        "status": snapshot.status,
        "model": snapshot.model,
        "model_provider": snapshot.model_provider,
        "has_active_run": snapshot.has_active_run,
        "active_run_ids": list(snapshot.active_run_ids),
        "input_tokens": snapshot.input_tokens,
        "output_tokens": snapshot.output_tokens,
        "total_tokens": snapshot.total_tokens,
        "cost_usd": snapshot.cost_usd,
        "last_message_preview": snapshot.last_message_preview,
        "last_activity_at": snapshot.last_activity_at,
        "gone": False,
    }


def sync_gateway_sessions(
    gateway_id: int,
    rows: Sequence[frames.SessionSnapshot],
    *,
    complete: bool = False,
) -> list[AgentSession]:
    """Sessions as the gateway listed them (a re-sync: `complete`, so unlisted ones are gone)
    or as its `sessions.changed` events carried them (a coalesced batch): one transaction,
    upserted by (gateway, key), one event per session whose shown fields changed, and each
    agent busy while one of its sessions has an active run, idle otherwise."""
    with transaction.atomic():
        return _sync_sessions(gateway_id, rows, complete=complete)


def sync_sessions_batch(batch: dict[int, list[frames.SessionSnapshot]]) -> int:
    """sync_gateway_sessions for several gateways in one transaction (the connectors' shared
    writer: one commit per flush however many gateways stream at once). Sessions changed."""
    with transaction.atomic():
        return sum(len(_sync_sessions(gid, rows, complete=False)) for gid, rows in batch.items())


def session_deleted(gateway_id: int, key: str) -> list[AgentSession]:
    """The gateway deleted a session (`sessions.changed` with reason `delete`): gone from the
    lists at once, as an unlisted one is on a re-sync (its history stays here)."""
    with transaction.atomic():
        return _sync_sessions(gateway_id, [], complete=False, gone=(key,))


def sessions_deleted(batch: dict[int, list[str]]) -> int:
    """session_deleted for many, one transaction (the connectors' writer batches them)."""
    with transaction.atomic():
        return sum(
            len(_sync_sessions(gid, [], complete=False, gone=keys)) for gid, keys in batch.items()
        )


def _sync_sessions(
    gateway_id: int,
    rows: Sequence[frames.SessionSnapshot],
    *,
    complete: bool,
    gone: Sequence[str] = (),
) -> list[AgentSession]:
    now = timezone.now()
    changed: list[AgentSession] = []
    gateway = Gateway.objects.filter(pk=gateway_id).first()
    if gateway is None:
        return []
    agents = {a.external_id: a for a in Agent.objects.of_gateway(gateway_id)}
    for agent in agents.values():
        agent.gateway = gateway
    by_key: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_key[row.key] = _session_fields(row, agents)  # the latest of a batch wins
    listed = AgentSession.objects.of_gateway(gateway_id)
    if not complete:
        listed = listed.filter(key__in=[*by_key, *gone])
    known = {s.key: s for s in listed}
    created: list[AgentSession] = []
    updated: list[AgentSession] = []
    for key, fields in by_key.items():
        session = known.get(key)
        if session is None:
            created.append(AgentSession(gateway=gateway, key=key, synced_at=now, **fields))
            continue
        if any(getattr(session, f) != v for f, v in fields.items()):
            for f, v in fields.items():
                setattr(session, f, v)
            session.synced_at = now
            updated.append(session)
    if complete or gone:
        for key, session in known.items():
            if (complete or key in gone) and key not in by_key and not session.gone:
                session.gone, session.has_active_run, session.synced_at = True, False, now
                updated.append(session)
    if created:
        # Ids back on SQLite (RETURNING) and PostgreSQL alike.
        AgentSession.objects.bulk_create(created)
    if updated:
        bulk.update_many(updated, [*_SESSION_SHOWN, "synced_at"])
    changed = created + updated
    by_id = {a.pk: a for a in agents.values()}
    for session in changed:
        session.gateway = gateway
        session.agent = by_id.get(session.agent_id) if session.agent_id else None
    if changed:
        live.publish_many(
            "sessions",
            [{"type": "session.changed", "session": events.session_data(s)} for s in changed],
            gateway_id=gateway_id,
        )
    _agents_follow_sessions(gateway, agents)
    return changed


def _agents_follow_sessions(gateway: Gateway, agents: dict[str, Agent]) -> None:
    """Busy while a session of the agent runs, idle when none does (live agents only)."""
    running = set(
        AgentSession.objects.of_gateway(gateway.pk)
        .running()
        .filter(gone=False)
        .values_list("agent_id", flat=True)
    )
    changes: list[tuple[Agent, str, str]] = []
    for agent in agents.values():
        if agent.status not in (Agent.Status.BUSY, Agent.Status.IDLE):
            continue
        wanted = Agent.Status.BUSY if agent.pk in running else Agent.Status.IDLE
        if agent.status != wanted:
            old, agent.status = agent.status, wanted
            agent.save(update_fields=["status"])
            changes.append((agent, old, "a run started" if wanted == "busy" else "its runs ended"))
    change_statuses(changes, Actor.gateway(gateway.name))
    # "Last seen", for an agent of a gateway, is when one of its sessions was last active (not
    # when the dashboard last synced its list: #31.6).
    latest = dict(
        AgentSession.objects.of_gateway(gateway.pk)
        .filter(agent_id__in=[a.pk for a in agents.values()], last_activity_at__isnull=False)
        .values_list("agent_id")
        .annotate(at=Max("last_activity_at"))
    )
    seen: dict[int, Any] = {}
    for agent in agents.values():
        at = latest.get(agent.pk)
        if at is not None and (agent.last_seen_at is None or at > agent.last_seen_at):
            agent.last_seen_at = at
            agent.save(update_fields=["last_seen_at"])
            seen[agent.pk] = at
    if seen:
        live.publish("fleet", events.seen(seen), gateway_id=gateway.pk)


def _session_pk(gateway_id: int, key: str) -> int | None:
    """The id of the gateway's session `key`, if known here."""
    return (
        AgentSession.objects.of_gateway(gateway_id)
        .filter(key=key[:300])
        .values_list("pk", flat=True)
        .first()
    )


def publish_session_message(
    gateway_id: int,
    key: str,
    message: frames.TranscriptMessage,
    *,
    message_id: str = "",
    streaming: bool = False,
) -> bool:
    """A transcript line for the browsers watching that session (the log keeps it for a
    returning tab; the transcript itself stays on the gateway). False if the session is
    unknown here."""
    session_id = _session_pk(gateway_id, key)
    if session_id is None:
        return False
    event: events.SessionMessage = {
        "type": "session.message",
        "session_id": session_id,
        "gateway_id": gateway_id,
        "message_id": message_id[:80] or message.message_id,
        "role": message.role,
        "text": message.text,
        "at": message.at.isoformat() if message.at else None,
        "streaming": streaming,
        # A finished reply names its run: its streaming line goes when it lands.
        "run_id": "" if streaming else message.run_id,
    }
    with transaction.atomic():
        live.publish("sessions", event, gateway_id=gateway_id)
    return True


def ensure_gateway_session(gateway_id: int, key: str, agent: Agent) -> AgentSession:
    """The session row of `key` (made, bare, if the gateway has not listed it yet: its events
    fill it in), so a page can show it from the first message on."""
    with transaction.atomic():
        session, created = AgentSession.objects.get_or_create(
            gateway_id=gateway_id,
            key=key[:300],
            defaults={
                "agent": agent,
                "synced_at": timezone.now(),
                "last_activity_at": timezone.now(),
            },
        )
        if created:
            session = AgentSession.objects.select_related("gateway", "agent").get(pk=session.pk)
            changed: events.SessionChanged = {
                "type": "session.changed",
                "session": events.session_data(session),
            }
            live.publish("sessions", changed, gateway_id=gateway_id)
    return session


def end_session_run(gateway_id: int, key: str, run_id: str, ended: frames.RunEnd | None) -> bool:
    """A run of a session ended: its streaming line goes; an error or abort is shown instead."""
    session_id = _session_pk(gateway_id, key)
    if session_id is None:
        return False
    event: events.SessionRunEnded = {
        "type": "session.run_ended",
        "session_id": session_id,
        "gateway_id": gateway_id,
        "run_id": frames.text(run_id, 80),
        "role": ("status" if ended.status == "aborted" else "error") if ended else "",
        "text": ended.text[:2000] if ended else "",
    }
    status = ended.status if ended else "ok"
    with transaction.atomic():
        AgentSession.objects.filter(pk=session_id).update(
            last_run_status=status,
            last_run_error=event["text"][:500] if status != "ok" else "",
            last_run_ended_at=timezone.now(),
        )
        live.publish("sessions", event, gateway_id=gateway_id)
    return True


def record_session_action(
    actor: Actor, session: AgentSession, verb: str, detail: Mapping[str, object]
) -> None:
    """The audit row of an operator's action on a gateway session (sent, aborted, reset)."""
    with transaction.atomic():
        audit.record(actor, verb, session, after=dict(detail), gateway_id=session.gateway_id)
