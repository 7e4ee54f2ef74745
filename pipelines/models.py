"""Pipelines: named, versioned definitions of steps (each a task handed to an agent, or an
approval gate), and their runs, which advance by themselves as their steps end.

A run keeps the version it started with; each of its steps is a `StepRun`, whose task (made
when the step becomes ready) carries the agents' runs (runs.Run): a step's attempts are its
task's runs.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import cached_property

from django.conf import settings
from django.db import models
from django.db.models import Q

from missioncontrol.secretbox import SealedField
from pipelines.definition import Definition, stored
from tasks.models import Task


class Pipeline(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # The schedule's next slot (None: no schedule); a slot fires once (PipelineRun.slot).
    next_slot_at = models.DateTimeField(null=True, blank=True)
    # Triggers from other systems (pipelines/triggers.py): a token that may start this pipeline
    # only (its SHA-256 kept; `mcp_<id>_…`) and the inbound webhook's signing secret (sealed).
    trigger_token_hash = models.CharField(max_length=64, blank=True)
    trigger_token_hint = models.CharField(max_length=16, blank=True)  # its last characters
    webhook_secret = SealedField(blank=True, default="")
    triggers_set_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @cached_property
    def current(self) -> PipelineVersion:
        return self.versions.order_by("-number").first()  # type: ignore[return-value]


class PipelineVersion(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()  # as the editor saved it (YAML or JSON)
    data = models.JSONField()  # the checked definition, in the export's shape
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id} v{self.number}"

    @property
    def definition(self) -> Definition:
        """The stored definition, read back (it was checked when saved; agents are not
        re-checked: one renamed since is named when its step starts). A version never changes:
        kept per process."""
        found = _definitions.get(self.pk)
        if found is None:
            found = stored(self.data)
            if len(_definitions) > 1000:
                _definitions.clear()
            _definitions[self.pk] = found
        return found


_definitions: dict[int, Definition] = {}


class PipelineRunQuerySet(models.QuerySet["PipelineRun"]):
    def active(self) -> PipelineRunQuerySet:
        return self.filter(state__in=PipelineRun.ACTIVE)


class PipelineRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"  # waiting for an earlier run (overlap: queue)
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "By hand"
        SCHEDULE = "schedule", "Schedule"
        API = "api", "API"
        WEBHOOK = "webhook", "Webhook"

    ACTIVE = (State.QUEUED, State.RUNNING)
    ENDED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(PipelineVersion, on_delete=models.PROTECT, related_name="runs")
    number = models.PositiveIntegerField()  # 1, 2, … per pipeline
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    inputs = models.JSONField(default=dict)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_label = models.CharField(max_length=150)
    # An API caller's Idempotency-Key (per pipeline): the same key returns the same run.
    idempotency_key = models.CharField(max_length=100, blank=True)
    # A scheduled run's slot: one run per slot, whichever process gets there first.
    slot = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    change = models.PositiveIntegerField(default=1)  # bumped on every change (events' order)

    objects = PipelineRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_run_number"),
            models.UniqueConstraint(
                fields=["pipeline", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="pipeline_run_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["pipeline", "slot"],
                condition=Q(slot__isnull=False),
                name="pipeline_run_once_per_slot",
            ),
        ]
        indexes = [
            models.Index(
                fields=["pipeline", "state"],
                name="pipeline_run_active_idx",
                condition=Q(state__in=["queued", "running"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id} run {self.number}"

    @property
    def active(self) -> bool:
        return self.state in self.ACTIVE

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        return (self.ended_at or timezone.now()) - self.started_at


class StepRun(models.Model):
    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    ENDED = (State.SUCCEEDED, State.FAILED, State.SKIPPED, State.CANCELLED)

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=40)
    position = models.PositiveIntegerField()  # its place in the definition
    state = models.CharField(max_length=20, choices=State.choices, default=State.WAITING)
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="pipeline_steps"
    )
    agent_name = models.CharField(max_length=64, blank=True)  # who it went to
    attempts = models.PositiveIntegerField(default=0)  # agent runs started for it (this round)
    output = models.TextField(blank=True)  # the agent's final reply: later briefs may use it
    error = models.CharField(max_length=1000, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    cost_nanos = models.BigIntegerField(default=0)  # its task's runs, when it ended
    deadline_at = models.DateTimeField(null=True, blank=True)  # its timeout_s, from its start
    approved = models.BooleanField(default=False)  # its approval was given (this round)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step_id"], name="step_run_unique"),
        ]
        indexes = [
            models.Index(
                fields=["task"],
                name="step_run_active_task_idx",
                condition=Q(state__in=["running", "awaiting_approval"]),
            ),
            models.Index(
                fields=["deadline_at"],
                name="step_run_deadline_idx",
                condition=Q(state="running"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.step_id}"

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_nanos).scaleb(-9)

    @property
    def ended(self) -> bool:
        return self.state in self.ENDED


class ApprovalQuerySet(models.QuerySet["Approval"]):
    def pending(self) -> ApprovalQuerySet:
        return self.filter(outcome=Approval.Outcome.PENDING)


class Approval(models.Model):
    """A step's gate: asked when the step is ready to run, answered once (the first answer
    wins), by a person with the role or one of the people named, or by its timeout."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"

    step = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="approvals")
    by_role = models.CharField(max_length=16, default="operator")
    by_users = models.JSONField(default=list, blank=True)  # user names; empty: the role
    instructions = models.TextField(blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    on_timeout = models.CharField(max_length=16, default="reject")
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    answered_label = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = ApprovalQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["step"], condition=Q(outcome="pending"), name="approval_one_pending"
            )
        ]
        indexes = [
            models.Index(
                fields=["deadline_at"],
                name="approval_pending_idx",
                condition=Q(outcome="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"Approval {self.pk} of step {self.step_id}"

    @property
    def pending(self) -> bool:
        return self.outcome == self.Outcome.PENDING


class AgentAsk(models.Model):
    """An agent asks a person before it goes on (over MCP: `request_approval`): a question, an
    answer — approved or rejected, with a comment — from an operator who may act on the agent's
    gateway. The first answer wins; unanswered by its deadline, it expires (the agent is told)."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Waiting"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="asks")
    agent_name = models.CharField(max_length=64)
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    question = models.CharField(max_length=500)
    details = models.TextField(blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    deadline_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    answered_label = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(
                fields=["deadline_at"], name="agent_ask_pending_idx", condition=Q(outcome="pending")
            )
        ]

    def __str__(self) -> str:
        return f"“{self.question[:120]}”"

    @property
    def pending(self) -> bool:
        return self.outcome == self.Outcome.PENDING
