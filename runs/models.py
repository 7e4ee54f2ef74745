"""A run: one attempt of an agent at a task, from dispatch to its end.

Exactly once: at most one run of a task is active (queued, sending, running) — a constraint,
so two dispatches at once make one run — and a dispatch carrying an idempotency key returns
the run that key made before. The run row is written with the task change in one transaction;
the agent (a CLI agent through its heartbeats and the API, a gateway agent through the
connector) picks it up from there.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from agents.models import Agent
from tasks.models import Task


def open_blockers() -> models.QuerySet[Any]:
    """The blockers not Done yet of the run's task (a subquery on the run's `task_id`)."""
    through = Task.blocked_by.through
    return through.objects.filter(from_task_id=models.OuterRef("task_id")).exclude(
        to_task__status=Task.Status.DONE
    )


class RunQuerySet(models.QuerySet["Run"]):
    def active(self) -> RunQuerySet:
        return self.filter(state__in=Run.ACTIVE)

    def of_agent(self, agent_id: int) -> RunQuerySet:
        return self.filter(agent_id=agent_id)

    def queued_in_order(self) -> RunQuerySet:
        return self.filter(state=Run.State.QUEUED).order_by("created_at", "id")

    def with_waiting(self) -> RunQuerySet:
        """Annotated `waits`: its task is blocked by a task not Done yet (it does not go out)."""
        return self.annotate(waits=models.Exists(open_blockers()))

    def ready(self) -> RunQuerySet:
        return self.exclude(models.Exists(open_blockers()))

    def lease_expired(self, now: object) -> RunQuerySet:
        return self.filter(
            state__in=(Run.State.SENDING, Run.State.RUNNING), lease_expires_at__lt=now
        )


class Run(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        ABORTED = "aborted", "Aborted"
        TIMED_OUT = "timed_out", "Timed out"
        LOST = "lost", "Lost"

    class LandIn(models.TextChoices):
        REVIEW = "review", "Review"
        DONE = "done", "Done"

    ACTIVE = (State.QUEUED, State.SENDING, State.RUNNING)
    ENDED = (State.SUCCEEDED, State.FAILED, State.ABORTED, State.TIMED_OUT, State.LOST)

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="runs")
    agent = models.ForeignKey(Agent, null=True, on_delete=models.SET_NULL, related_name="runs")
    agent_name = models.CharField(max_length=64)  # as it was when dispatched
    attempt = models.PositiveIntegerField()  # 1, 2, … per task
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    instructions = models.TextField(blank=True)  # the operator's words for this attempt
    prompt = models.TextField()  # the brief the agent is given
    land_in = models.CharField(max_length=16, choices=LandIn.choices, default=LandIn.REVIEW)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_label = models.CharField(max_length=150)
    # An API caller's Idempotency-Key (per person): a retry returns this run.
    idempotency_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Held while sending or running; renewed by the agent's heartbeats and reports (a gateway
    # agent's: by its run's events). Past it, the run is lost.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    progress = models.CharField(max_length=500, blank=True)  # what the agent is doing now
    reply = models.TextField(blank=True)  # the agent's final answer
    error_kind = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_nanos = models.BigIntegerField(default=0)
    # A gateway agent's run: its session and the gateway's run id.
    session_key = models.CharField(max_length=300, blank=True)
    external_run_id = models.CharField(max_length=100, blank=True)
    version = models.PositiveIntegerField(default=1)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(state__in=["queued", "sending", "running"]),
                name="run_one_active_per_task",
            ),
            models.UniqueConstraint(fields=["task", "attempt"], name="run_attempt_unique_per_task"),
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="run_idempotency_key_per_person",
            ),
        ]
        indexes = [
            models.Index(
                fields=["agent", "state"],
                name="run_agent_active_idx",
                condition=Q(state__in=["queued", "sending", "running"]),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="run_lease_idx",
                condition=Q(state__in=["sending", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.attempt} of task #{self.task_id}"

    @property
    def active(self) -> bool:
        return self.state in self.ACTIVE

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_nanos).scaleb(-9)

    @property
    def elapsed(self) -> timedelta | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        return (self.ended_at or timezone.now()) - self.started_at

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens
