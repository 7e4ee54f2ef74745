"""Every write to agents and their keys: registration, heartbeats, status, keys.

The agent API (DRF views and the fast-path heartbeat route), the sweep loop, the admin pages and
commands all call these.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.text import slugify

from agents import events, keys
from agents.models import (
    AGENT_NAME_RE,
    Agent,
    AgentKey,
    AgentMessage,
    AgentStatusChange,
)
from gateways import frames
from gateways.models import Gateway
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.db import bulk
from missioncontrol.errors import Conflict, Forbidden, Invalid

# --- Events -----------------------------------------------------------------------------------


def status_counts() -> dict[str, int]:
    counts = dict.fromkeys(Agent.Status.values, 0)
    for row in Agent.objects.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return counts


def _fleet(agent: Agent, counts: dict[str, int]) -> events.FleetData:
    nxt = Agent.objects.after_in_attention_order(agent).values_list("pk", flat=True).first()
    return {"next_agent_id": nxt, "status_counts": counts}


def _publish_added(
    event_type: Literal["agent.registered", "agent.created"], actor: Actor, agent: Agent
) -> None:
    added: events.AgentAdded = {
        "type": event_type,
        "actor": actor.as_dict(),
        "agent": events.agent_data(agent),
        "fleet": _fleet(agent, status_counts()),
    }
    live.publish("fleet", added, gateway_id=agent.gateway_id)


def publish_seen(seen: dict[int, datetime]) -> None:
    """One coalesced event for many heartbeats: each agent's new "last seen"."""
    with transaction.atomic():
        live.publish("fleet", events.seen(seen))


def change_statuses(changes: list[tuple[Agent, str, str]], actor: Actor) -> None:
    """Record status changes (history, audit, one event per agent); inside the caller's
    transaction."""
    if not changes:
        return
    AgentStatusChange.objects.bulk_create(
        [
            AgentStatusChange(agent=agent, old=old, new=agent.status, reason=reason)
            for agent, old, reason in changes
        ]
    )
    counts = status_counts()
    facts = events.row_facts([agent for agent, _, _ in changes])
    for agent, old, reason in changes:
        by = actor if actor.type != "agent" else Actor.agent(agent.name)
        audit.record(
            by,
            "agent.status_changed",
            agent,
            gateway_id=agent.gateway_id,
            before={"status": old},
            after={"status": agent.status, "reason": reason}
            if reason
            else {"status": agent.status},
        )
        changed: events.AgentStatusChanged = {
            "type": "agent.status_changed",
            "actor": by.as_dict(),
            "agent": events.agent_data(agent, facts[agent.pk]),
            "before": old,
            "after": agent.status,
            "reason": reason,
            "fleet": _fleet(agent, counts),
        }
        live.publish("fleet", changed, gateway_id=agent.gateway_id)


# --- Registration and keys ----------------------------------------------------------------------


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not re.match(AGENT_NAME_RE, name):
        raise Invalid(
            {
                "name": [
                    "Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit."
                ]
            },
        )
    return name


@dataclass(frozen=True)
class AgentProfile:
    """What an agent says of itself when it registers (validated by the API's serializer)."""

    framework: str = ""
    role: str = ""
    capabilities: list[str] = field(default_factory=list)
    version: str = ""
    metadata: dict[str, object] = field(default_factory=dict)
    heartbeat_interval_s: int | None = None


@dataclass
class Registration:
    agent: Agent
    created: bool
    new_key: str | None = None


def register_agent(
    key: keys.KeyInfo, *, name: str, profile: AgentProfile | None = None
) -> Registration:
    """Register an agent with an enrollment key (new agent + its own key), or confirm it with
    its own agent key (idempotent: nothing changes)."""
    _check_name(name)
    if key.kind == AgentKey.Kind.AGENT:
        if key.agent_name != name:
            raise Forbidden("This key belongs to another agent.")
        assert key.agent_id is not None
        return Registration(Agent.objects.get(pk=key.agent_id), created=False)
    with transaction.atomic():
        if Agent.objects.filter(name=name).exists():
            raise Conflict(f"An agent named {name!r} already exists; use its own key.")
        # Count the use atomically: two registrations racing for the last use cannot both win.
        claimed = (
            AgentKey.objects.filter(pk=key.id, revoked_at__isnull=True)
            .filter(Q(max_uses__isnull=True) | Q(uses__lt=F("max_uses")))
            .update(uses=F("uses") + 1, last_used_at=timezone.now())
        )
        if claimed != 1:
            raise Forbidden("This enrollment key is used up or revoked.")
        now = timezone.now()
        profile = profile or AgentProfile()
        interval = profile.heartbeat_interval_s or settings.MC_AGENT_DEFAULT_INTERVAL_S
        try:
            with transaction.atomic():
                agent = Agent.objects.create(
                    name=name,
                    source=Agent.Source.DIRECT,
                    status=Agent.Status.IDLE,
                    heartbeat_interval_s=interval,
                    last_seen_at=now,
                    stale_at=now + timedelta(seconds=2 * interval),
                    framework=profile.framework,
                    role=profile.role,
                    capabilities=profile.capabilities,
                    version=profile.version,
                    metadata=profile.metadata,
                )
        except IntegrityError:
            raise Conflict(f"An agent named {name!r} already exists; use its own key.") from None
        full, prefix, digest = keys.generate()
        AgentKey.objects.create(
            kind=AgentKey.Kind.AGENT,
            prefix=prefix,
            secret_hash=digest,
            agent=agent,
            name="enrolled",
        )
        actor = Actor.agent(name)
        audit.record(
            actor,
            "agent.registered",
            agent,
            after={"framework": agent.framework, "role": agent.role},
        )
        AgentStatusChange.objects.create(
            agent=agent, old=Agent.Status.OFFLINE, new=agent.status, reason="registered"
        )
        _publish_added("agent.registered", actor, agent)
    keys.invalidate(key.prefix)  # its use count changed
    return Registration(agent, created=True, new_key=full)


def ensure_agent(actor: Actor, name: str) -> Agent:
    """The agent of that name, created (offline, direct) if missing."""
    _check_name(name)
    with transaction.atomic():
        agent, created = Agent.objects.get_or_create(
            name=name, defaults={"source": Agent.Source.DIRECT}
        )
        if created:
            audit.record(actor, "agent.created", agent)
            _publish_added("agent.created", actor, agent)
    return agent


# --- Agents of a gateway (ingested by the gateway connector) ----------------------------------


def gateway_agent_name(gateway: Gateway, external_id: str) -> str:
    """A gateway agent's unique handle: `<its id>@<gateway>`, shortened with a hash if long."""
    name = f"{external_id}@{slugify(gateway.name) or gateway.pk}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:55]}~{digest}"


def sync_gateway_agents(gateway_id: int, listed: Sequence[frames.ListedAgent]) -> list[Agent]:
    """A gateway's agents as its `agents.list` gave them: new ones added, known ones updated
    (and live again), ones it no longer lists offline. One transaction; idempotent."""
    with transaction.atomic():
        gateway = Gateway.objects.filter(pk=gateway_id).first()
        if gateway is None:
            return []
        actor = Actor.gateway(gateway.name)
        known = {a.external_id: a for a in Agent.objects.of_gateway(gateway_id)}
        synced: list[Agent] = []
        changes: list[tuple[Agent, str, str]] = []
        for item in listed:
            external, primary, framework = item.external_id, item.model, item.framework
            name = gateway_agent_name(gateway, external)
            agent = known.get(external) or (
                # A gateway deleted and added again adopts its old agents (and their history).
                Agent.objects.filter(
                    name=name, source=Agent.Source.GATEWAY, gateway__isnull=True
                ).first()
            )
            if agent is None:
                if Agent.objects.filter(name=name).exists():
                    continue  # a direct agent holds that exact name: never take it over
                agent = Agent.objects.create(
                    name=name,
                    source=Agent.Source.GATEWAY,
                    gateway=gateway,
                    external_id=external,
                    framework=framework,
                    model=primary,
                    status=Agent.Status.IDLE,
                    # Seen when one of its sessions is active (agents.sessions), not when listed.
                    last_seen_at=None,
                )
                audit.record(
                    actor,
                    "agent.created",
                    agent,
                    after={"gateway": gateway.name},
                    gateway_id=gateway.pk,
                )
                AgentStatusChange.objects.create(
                    agent=agent,
                    old=Agent.Status.OFFLINE,
                    new=agent.status,
                    reason="listed by its gateway",
                )
                _publish_added("agent.created", actor, agent)
                synced.append(agent)
                continue
            old = agent.status
            agent.gateway, agent.external_id = gateway, external
            agent.name, agent.framework, agent.model = name, framework, primary
            # Its "last seen" is its sessions' last activity (agents.sessions), not this sync.
            if old not in Agent.LIVE_STATUSES:
                agent.status = Agent.Status.IDLE
                changes.append((agent, old, "its gateway connected"))
            agent.save(
                update_fields=[
                    "name",
                    "gateway",
                    "external_id",
                    "framework",
                    "model",
                    "last_seen_at",
                    "status",
                ]
            )
            synced.append(agent)
        listed_ids = {a.external_id for a in synced}
        for external, agent in known.items():
            if external not in listed_ids and agent.status != Agent.Status.OFFLINE:
                old, agent.status = agent.status, Agent.Status.OFFLINE
                agent.save(update_fields=["status"])
                changes.append((agent, old, "no longer listed by its gateway"))
        change_statuses(changes, actor)
    return synced


def gateway_agents_offline(gateway_id: int, reason: str) -> int:
    """A gateway's live agents go offline (it disconnected, was disabled or deleted)."""
    with transaction.atomic():
        gateway = Gateway.objects.filter(pk=gateway_id).first()
        actor = Actor.gateway(gateway.name if gateway else f"gateway {gateway_id}")
        changes: list[tuple[Agent, str, str]] = []
        for agent in (
            Agent.objects.of_gateway(gateway_id)
            .filter(status__in=Agent.LIVE_STATUSES)
            .select_for_update(no_key=True)
            .order_by("pk")
        ):
            old, agent.status = agent.status, Agent.Status.OFFLINE
            agent.save(update_fields=["status"])
            changes.append((agent, old, reason))
        change_statuses(changes, actor)
    return len(changes)


def issue_key(
    actor: Actor,
    *,
    kind: str,
    agent: Agent | None = None,
    name: str = "",
    max_uses: int | None = None,
    expires_at: datetime | None = None,
) -> tuple[AgentKey, str]:
    """A new key; the full key is returned once and never stored."""
    if kind not in AgentKey.Kind.values:
        raise Invalid({"kind": ["Choose an agent key or an enrollment key."]})
    if kind == AgentKey.Kind.AGENT and agent is None:
        raise Invalid({"agent": ["An agent key belongs to one agent: choose it."]})
    if kind == AgentKey.Kind.ENROLLMENT:
        agent = None
    full, prefix, digest = keys.generate()
    with transaction.atomic():
        key = AgentKey.objects.create(
            kind=kind,
            prefix=prefix,
            secret_hash=digest,
            agent=agent,
            name=name[:100],
            max_uses=max_uses,
            expires_at=expires_at,
            created_by_id=actor.user_id,
        )
        audit.record(
            actor, "agent_key.issued", key, object_repr=f"mc_{prefix}_… ({key.get_kind_display()})"
        )
    return key, full


def revoke_key(actor: Actor, key_id: int) -> AgentKey:
    """Revoke at once: this process forgets the key now; others within keys.KEY_TTL_S."""
    with transaction.atomic():
        key = AgentKey.objects.select_for_update(no_key=True).get(pk=key_id)
        if key.revoked_at is None:
            AgentKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
            key.refresh_from_db()
            audit.record(actor, "agent_key.revoked", key)
    keys.invalidate(key.prefix)
    return key


@dataclass(frozen=True)
class KeyLimits:
    """What may be changed of an issued key: its label, its use and time limits, revocation."""

    name: str
    max_uses: int | None
    expires_at: datetime | None
    revoked: bool


def change_key(actor: Actor, key_id: int, limits: KeyLimits) -> AgentKey:
    """Change a key's label and limits (audited); revoking is final (a revoked key stays
    revoked), and this process forgets the key at once, others within keys.KEY_TTL_S."""
    with transaction.atomic():
        key = AgentKey.objects.select_for_update(no_key=True).get(pk=key_id)
        before = {"name": key.name, "max_uses": key.max_uses, "expires_at": key.expires_at}
        key.name = limits.name[:100]
        key.max_uses = limits.max_uses
        key.expires_at = limits.expires_at
        if limits.revoked and key.revoked_at is None:
            key.revoked_at = timezone.now()
        key.save(update_fields=["name", "max_uses", "expires_at", "revoked_at"])
        after = {"name": key.name, "max_uses": key.max_uses, "expires_at": key.expires_at}
        audit.record(
            actor,
            "agent_key.changed",
            key,
            before={k: str(v) for k, v in before.items() if after[k] != v},
            after={k: str(v) for k, v in after.items() if before[k] != v}
            | ({"revoked": True} if limits.revoked else {}),
        )
    keys.invalidate(key.prefix)
    return key


# --- Heartbeats (batched by the writer) ---------------------------------------------------------


@dataclass
class Heartbeat:
    agent_id: int
    key_id: int
    status: str | None = None
    task_id: int | None = None
    message: str | None = None
    model: str | None = None
    received_at: datetime = field(default_factory=timezone.now)


def apply_heartbeats(beats: list[Heartbeat]) -> dict[int, dict[str, Any]]:
    """Apply many heartbeats in the caller's transaction; returns each agent's new state."""
    if not beats:
        return {}
    # Plain rows, not model instances: instantiating models was most of this function's cost.
    columns = (
        "id",
        "name",
        "status",
        "heartbeat_interval_s",
        "last_message",
        "current_task_id",
        "model",
    )
    ids = sorted({b.agent_id for b in beats})
    with connection.cursor() as cursor:
        # Raw SQL: the ORM's compile step cost more than the query at 2,000 heartbeats/s.
        # FOR NO KEY UPDATE on PostgreSQL: two processes' writers (scale-out) applying heartbeats of the
        # same agent take turns, so the status each computes from is the one the other wrote.
        # SQLite's write transaction already excludes every other writer.
        lock = " ORDER BY id FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM agents_agent WHERE id IN ({', '.join(['%s'] * len(ids))}){lock}",  # noqa: S608 - fixed names, placeholders only
            ids,
        )
        state = {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
    changed: dict[int, tuple[str, str]] = {}
    messages: list[AgentMessage] = []
    for beat in beats:
        agent = state.get(beat.agent_id)
        if agent is None:
            continue
        old = agent["status"]
        new = beat.status or (old if old in Agent.LIVE_STATUSES else Agent.Status.IDLE)
        agent["status"] = new
        agent["last_seen_at"] = beat.received_at
        agent["stale_at"] = beat.received_at + timedelta(seconds=2 * agent["heartbeat_interval_s"])
        if beat.message is not None:
            agent["last_message"] = beat.message
            messages.append(AgentMessage(agent_id=beat.agent_id, status=new, message=beat.message))
        if beat.task_id is not None:
            agent["current_task_id"] = beat.task_id
        if beat.model:
            agent["model"] = beat.model[:128]
        if new != old:
            first_old = changed.get(beat.agent_id, (old, ""))[0]
            reason = "heartbeat" if first_old in Agent.LIVE_STATUSES else f"back from {first_old}"
            changed[beat.agent_id] = (first_old, reason)
    # Raw SQL takes values as the backend stores them (SQLite: naive UTC text, as the ORM writes).
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (
            a["status"],
            adapt(a["last_seen_at"]),
            adapt(a["stale_at"]),
            a["last_message"],
            a["current_task_id"],
            a["model"],
            pk,
        )
        for pk, a in state.items()
        if "last_seen_at" in a
    ]
    # One statement for the whole batch (see missioncontrol/db/bulk.py): the ORM's per-row cost,
    # and then executemany's per-row step, dominated at 2,000 heartbeats/s.
    with connection.cursor() as cursor:
        types = ["varchar", "timestamptz", "timestamptz", "varchar", "bigint", "varchar", "bigint"]
        for values, params in bulk.values_chunks(rows, 7, types):
            cursor.execute(
                "UPDATE agents_agent SET status = v.column1, last_seen_at = v.column2, "  # noqa: S608 - placeholders only
                "stale_at = v.column3, last_message = v.column4, current_task_id = v.column5, "
                f"model = v.column6 FROM (VALUES {values}) AS v WHERE agents_agent.id = v.column7",
                params,
            )
        key_ids = sorted({b.key_id for b in beats})
        cursor.execute(
            f"UPDATE agents_agentkey SET last_used_at = %s WHERE id IN ({', '.join(['%s'] * len(key_ids))})",  # noqa: S608 - placeholders only
            [adapt(timezone.now()), *key_ids],
        )
    if messages:
        AgentMessage.objects.bulk_create(messages)
    # A changed status (rare) gets its history, audit row and live event.
    if changed:
        changes = [
            (agent, *changed[agent.pk])
            for agent in Agent.objects.filter(pk__in=changed).order_by("pk")
            if agent.status != changed[agent.pk][0]
        ]
        change_statuses(changes, Actor.system("heartbeat"))
    return {
        pk: {
            "name": a["name"],
            "status": a["status"],
            "last_seen": a["last_seen_at"],
            "interval": a["heartbeat_interval_s"],
        }
        for pk, a in state.items()
        if "last_seen_at" in a
    }


# --- Status sweep --------------------------------------------------------------------------------


def sweep_statuses(now: datetime | None = None) -> int:
    """Move agents whose heartbeats stopped to stale, then offline; returns how many changed."""
    now = now or timezone.now()
    with transaction.atomic():
        changes: list[tuple[Agent, str, str]] = []
        # Locked (PostgreSQL; SQLite's write transaction excludes writers anyway): a heartbeat
        # committing meanwhile is waited for, and the row is re-checked against it.
        for agent in Agent.objects.gone(now).select_for_update(no_key=True).order_by("pk"):
            old, agent.status = agent.status, Agent.Status.OFFLINE
            changes.append((agent, old, "no heartbeat"))
        gone = {a.pk for a, _o, _r in changes}
        for agent in (
            Agent.objects.stale(now)
            .exclude(pk__in=gone)
            .select_for_update(no_key=True)
            .order_by("pk")
        ):
            old, agent.status = agent.status, Agent.Status.STALE
            changes.append((agent, old, "missed heartbeats"))
        for agent, _old, _reason in changes:
            Agent.objects.filter(pk=agent.pk).update(status=agent.status)
        change_statuses(changes, Actor.system("status sweep"))
    return len(changes)


LABEL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")


def parse_labels(text: str) -> list[str]:
    """Labels as an operator types them (commas or spaces between), lower-cased, each once."""
    found: list[str] = []
    for raw in re.split(r"[,\s]+", text or ""):
        label = raw.strip().lower()
        if not label:
            continue
        if not LABEL_RE.match(label):
            raise Invalid(
                {
                    "labels": [
                        f"“{raw[:40]}”: letters, digits, . _ - (up to 40), starting with one of the first two."
                    ]
                }
            )
        if label not in found:
            found.append(label)
    if len(found) > 20:
        raise Invalid({"labels": ["At most 20 labels."]})
    return found


def set_run_settings(
    actor: Actor,
    agent_id: int,
    *,
    max_runs: int,
    auto_dispatch: bool,
    labels: list[str] | None = None,
) -> Agent:
    """How many runs the agent takes at once (1–20), whether its tasks entering To do are
    dispatched to it by themselves (runs/), and the labels pipelines' pools pick it by (None:
    unchanged; parse_labels checks them)."""
    if not 1 <= max_runs <= 20:
        raise Invalid({"max_runs": ["Between 1 and 20."]})
    with transaction.atomic():
        agent = Agent.objects.select_for_update(no_key=True).get(pk=agent_id)
        labels = agent.labels if labels is None else parse_labels(" ".join(labels))
        before = {
            "max_runs": agent.max_runs,
            "auto_dispatch": agent.auto_dispatch,
            "labels": agent.labels,
        }
        after = {"max_runs": max_runs, "auto_dispatch": auto_dispatch, "labels": labels}
        if before == after:
            return agent
        agent.max_runs, agent.auto_dispatch, agent.labels = max_runs, auto_dispatch, labels
        agent.save(update_fields=["max_runs", "auto_dispatch", "labels"])
        audit.record(
            actor,
            "agent.run_settings_changed",
            agent,
            before=before,
            after=after,
            gateway_id=agent.gateway_id,
        )
    return agent
