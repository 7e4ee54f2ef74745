from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

# 1–64 letters, digits, '.', '_', '-', starting with a letter or digit.
AGENT_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
agent_name_validator = RegexValidator(
    AGENT_NAME_RE, "Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit."
)


# The Agents page's order: what needs attention first; agents never seen come last.
ATTENTION = ("error", "busy", "idle", "stale", "offline")


def attention_rank(status: str, last_seen_at: datetime | None) -> int:
    if last_seen_at is None:
        return len(ATTENTION)
    return ATTENTION.index(status) if status in ATTENTION else len(ATTENTION)


class AgentQuerySet(models.QuerySet["Agent"]):
    def visible_to(self, user: Any) -> AgentQuerySet:
        """Directly registered agents, and those of the gateways `user` may see."""
        from gateways.access import narrowing

        return self.filter(narrowing(user))

    def by_name(self) -> AgentQuerySet:
        return self.order_by("name")

    def with_attention_rank(self) -> AgentQuerySet:
        """Annotated `attention`: error 0, busy 1, idle 2, stale 3, offline 4, never seen 5."""
        return self.annotate(
            attention=models.Case(
                models.When(last_seen_at__isnull=True, then=models.Value(len(ATTENTION))),
                *(
                    models.When(status=status, then=models.Value(rank))
                    for rank, status in enumerate(ATTENTION)
                ),
                default=models.Value(len(ATTENTION)),
                output_field=models.IntegerField(),
            )
        )

    def by_attention(self) -> AgentQuerySet:
        """What needs the operator first (error, busy, idle, stale, offline, never seen), then
        by name: the Agents page's order."""
        return self.with_attention_rank().order_by("attention", "name")  # type: ignore[misc]

    def after_in_attention_order(self, agent: Agent) -> AgentQuerySet:
        """The agents listed below `agent` on the Agents page."""
        rank = attention_rank(agent.status, agent.last_seen_at)
        later = models.Q(attention__gt=rank) | models.Q(attention=rank, name__gt=agent.name)
        return self.with_attention_rank().filter(later).order_by("attention", "name")  # type: ignore[misc]

    def live(self) -> AgentQuerySet:
        """Agents whose status comes from fresh heartbeats (busy, idle, error)."""
        return self.filter(status__in=Agent.LIVE_STATUSES)

    def stale(self, now: datetime) -> AgentQuerySet:
        """Live agents that missed two heartbeats: due to become stale."""
        return self.live().filter(stale_at__lte=now)

    def gone(self, now: datetime) -> AgentQuerySet:
        """Agents not seen for MC_AGENT_OFFLINE_AFTER: due to become offline."""
        cutoff = now - timedelta(seconds=settings.MC_AGENT_OFFLINE_AFTER_S)
        # A gateway's agents follow their gateway's connection instead (gateways.actions).
        return (
            self.exclude(status=Agent.Status.OFFLINE)
            .filter(last_seen_at__lt=cutoff)
            .exclude(source=Agent.Source.GATEWAY)
        )

    def of_gateway(self, gateway_id: int) -> AgentQuerySet:
        return self.filter(gateway_id=gateway_id)


class Agent(models.Model):
    """An agent: from a gateway, or registered directly through the agent API."""

    class Status(models.TextChoices):
        BUSY = "busy", "Busy"
        IDLE = "idle", "Idle"
        ERROR = "error", "Error"
        STALE = "stale", "Stale"
        OFFLINE = "offline", "Offline"

    class Source(models.TextChoices):
        DIRECT = "direct", "Direct"
        GATEWAY = "gateway", "Gateway"

    LIVE_STATUSES = (Status.BUSY, Status.IDLE, Status.ERROR)

    # Unique: the agent's handle (URLs, API keys). A gateway's agent is "<its id>@<gateway>"
    # (see gateways.actions.agent_name), so agents of two gateways never clash.
    name = models.CharField(max_length=64, unique=True, validators=[agent_name_validator])
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.DIRECT)
    # The gateway it came from (None: registered directly, or its gateway was deleted: the agent
    # and its history stay, and the gateway's return adopts them again by name).
    gateway = models.ForeignKey(
        "gateways.Gateway", null=True, blank=True, on_delete=models.SET_NULL, related_name="agents"
    )
    # The agent's id on its gateway (agents.list[].id), shown as its name beside the badge.
    external_id = models.CharField(max_length=128, blank=True)
    framework = models.CharField(max_length=64, blank=True)
    role = models.CharField(max_length=64, blank=True)
    capabilities = models.JSONField(default=list, blank=True)
    version = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE)
    heartbeat_interval_s = models.PositiveIntegerField(default=30)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # last_seen_at + 2 × interval, kept with each heartbeat so the sweep is one indexed range.
    stale_at = models.DateTimeField(null=True, blank=True)
    last_message = models.CharField(max_length=500, blank=True)
    model = models.CharField(max_length=128, blank=True)
    # The task the agent says it works on (tasks → agents: no FK this way round).
    current_task_id = models.BigIntegerField(null=True, blank=True)
    # At most this many runs at once (runs/); further dispatches wait their turn.
    max_runs = models.PositiveSmallIntegerField(default=1)
    # Labels an operator gives it (pipelines' pools pick among the agents carrying a label),
    # beside the capabilities the agent reports itself.
    labels = models.JSONField(default=list, blank=True)
    # A task of its that enters To do is dispatched to it by itself (runs/).
    auto_dispatch = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            # The staleness sweep: live agents whose stale_at has passed.
            models.Index(
                fields=["stale_at"],
                name="agent_stale_idx",
                condition=Q(status__in=["busy", "idle", "error"]),
            ),
            # The offline sweep: not-offline agents by last heartbeat.
            models.Index(fields=["last_seen_at"], name="agent_seen_idx"),
        ]
        constraints = [
            # One row per agent of a gateway: a re-sync updates it, never adds a second.
            models.UniqueConstraint(
                fields=["gateway", "external_id"],
                condition=Q(gateway__isnull=False),
                name="agent_gateway_external_uniq",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        """What the pages show: a gateway's agent by its own id (beside the gateway's badge)."""
        return self.external_id or self.name


class AgentSessionQuerySet(models.QuerySet["AgentSession"]):
    def visible_to(self, user: Any) -> AgentSessionQuerySet:
        """The sessions of the gateways `user` may see."""
        from gateways.access import narrowing

        return self.filter(narrowing(user, direct=False))

    def by_activity(self) -> AgentSessionQuerySet:
        return self.order_by(F("last_activity_at").desc(nulls_last=True), "-id")

    def of_gateway(self, gateway_id: int) -> AgentSessionQuerySet:
        return self.filter(gateway_id=gateway_id)

    def running(self) -> AgentSessionQuerySet:
        return self.filter(has_active_run=True)


class AgentSession(models.Model):
    """A session of a gateway's agent (OpenClaw `sessions.list`), as the gateway last told us.

    Written only by agents.sessions.sync_gateway_sessions (the connector's re-sync and its
    `sessions.changed` events); the transcript itself stays on the gateway (`chat.history`)."""

    gateway = models.ForeignKey(
        "gateways.Gateway", on_delete=models.CASCADE, related_name="sessions"
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    key = models.CharField(max_length=300)  # the gateway's session key, e.g. agent:main:main
    session_id = models.CharField(max_length=80, blank=True)
    label = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    model_provider = models.CharField(max_length=64, blank=True)
    has_active_run = models.BooleanField(default=False)
    active_run_ids = models.JSONField(default=list, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    # estimatedCostUsd as the gateway reports it (exact usage accounting is billing's).
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    last_message_preview = models.CharField(max_length=500, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # The gateway no longer lists it (deleted there): kept for its history, shown as gone.
    gone = models.BooleanField(default=False)
    synced_at = models.DateTimeField()
    # How its last run ended ("ok", "error", "aborted"; "" before any), for the overview.
    last_run_status = models.CharField(max_length=16, blank=True)
    last_run_error = models.CharField(max_length=500, blank=True)
    last_run_ended_at = models.DateTimeField(null=True, blank=True)

    objects = AgentSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        constraints = [
            # One row per session of a gateway: re-syncs and events update it in place.
            models.UniqueConstraint(fields=["gateway", "key"], name="session_gateway_key_uniq"),
        ]
        indexes = [
            # The Sessions page: newest activity first (all gateways, or one).
            models.Index(fields=["-last_activity_at"], name="session_activity_idx"),
            models.Index(fields=["gateway", "-last_activity_at"], name="session_gw_activity_idx"),
            # The overview's failed or aborted runs of the last day.
            models.Index(
                fields=["last_run_ended_at"],
                name="session_failed_run_idx",
                condition=Q(last_run_status__in=["error", "aborted"]),
            ),
        ]

    def __str__(self) -> str:
        return self.label or self.key

    @property
    def title(self) -> str:
        return self.label or self.key


class AgentStatusChange(models.Model):
    """One step of an agent's status history (the timeline on its page)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="status_changes")
    old = models.CharField(max_length=16)
    new = models.CharField(max_length=16)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.agent_id}: {self.old} → {self.new}"


class AgentMessage(models.Model):
    """A message an agent sent with a heartbeat ("running tests", "waiting for review")."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="messages")
    status = models.CharField(max_length=16)
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.message[:60]


class AgentKey(models.Model):
    """An API key: `mc_<prefix>_<secret>`, stored as prefix + SHA-256 of the secret."""

    class Kind(models.TextChoices):
        AGENT = "agent", "Agent key"
        ENROLLMENT = "enrollment", "Enrollment key"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    prefix = models.CharField(max_length=16, unique=True)
    # SHA-256 of a 256-bit random secret: a slow hash buys nothing against that much entropy
    # and would cost every heartbeat a millisecond.
    secret_hash = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True)
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="keys"
    )
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Indexed: every process asks for keys revoked in the last seconds (see agents/keys.py).
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="enrollment", agent__isnull=True)
                | Q(kind="agent", agent__isnull=False),
                name="agentkey_kind_matches_agent",
            )
        ]

    def __str__(self) -> str:
        return f"mc_{self.prefix}_… ({self.get_kind_display()})"
