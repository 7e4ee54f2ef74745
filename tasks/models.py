from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent

# Gap between neighbours' positions; a move between two cards takes the midpoint, and a
# column is renumbered only when two neighbours have no integer left between them.
POSITION_STEP = 1024


class TaskQuerySet(models.QuerySet["Task"]):
    def on_board(self) -> TaskQuerySet:
        """Not archived: what the board shows."""
        return self.filter(archived_at__isnull=True)

    def in_column(self, status: str) -> TaskQuerySet:
        return self.filter(status=status).order_by("position", "id")

    def open(self) -> TaskQuerySet:
        return self.on_board().exclude(status=Task.Status.DONE)

    def assigned_to(self, assignee: Any) -> TaskQuerySet:
        if isinstance(assignee, Agent):
            return self.filter(assignee_agent=assignee)
        return self.filter(assignee_user=assignee)

    def owners(self, ids: set[int]) -> dict[int, int | None]:
        """The agent each of these tasks is assigned to (None: a person or nobody); ids that
        are no task are absent. The rule "an agent reports on its own tasks only" reads this."""
        if not ids:
            return {}
        return dict(self.filter(pk__in=ids).values_list("pk", "assignee_agent_id"))

    def owned_by_agent(self, agent_id: int) -> TaskQuerySet:
        """The tasks an agent works on: assigned to it (the rule for its heartbeats' task, its
        usage's task and its changes through the API)."""
        return self.filter(assignee_agent_id=agent_id)

    def blocked(self) -> TaskQuerySet:
        return self.filter(blocked=True)

    def waiting_on(self, task_id: int) -> TaskQuerySet:
        """The tasks `task_id` is blocked by that are not Done yet (what a dispatch waits for):
        from its own edges (the dependency table's index), not from every task."""
        edges = Task.blocked_by.through.objects.filter(from_task_id=task_id)
        return self.filter(pk__in=edges.values("to_task_id")).exclude(status=Task.Status.DONE)

    def with_label(self, label: str) -> TaskQuerySet:
        return self.filter(labels__contains=f",{label},")

    def search(self, text: str) -> TaskQuerySet:
        return self.filter(Q(title__icontains=text) | Q(description__icontains=text))

    def for_cards(self) -> TaskQuerySet:
        """Everything a card shows, in one query."""
        return self.select_related("assignee_user", "assignee_agent")


class Task(models.Model):
    class Status(models.TextChoices):
        INBOX = "inbox", "Inbox"
        BACKLOG = "backlog", "Backlog"
        TODO = "todo", "To do"
        IN_PROGRESS = "in_progress", "In progress"
        REVIEW = "review", "Review"
        DONE = "done", "Done"

    class Priority(models.IntegerChoices):
        # Stored as numbers so ORDER BY priority puts urgent first.
        URGENT = 0, "Urgent"
        HIGH = 1, "High"
        NORMAL = 2, "Normal"
        LOW = 3, "Low"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INBOX)
    position = models.BigIntegerField(default=0)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    # Normalised ",label-a,label-b," so one label is a LIKE '%,x,%' away on any database.
    labels = models.CharField(max_length=500, blank=True, default="")
    due_date = models.DateField(null=True, blank=True)
    assignee_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tasks",
    )
    assignee_agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tasks"
    )
    blocked = models.BooleanField(default=False)
    blocked_reason = models.CharField(max_length=500, blank=True)
    blocked_at = models.DateTimeField(null=True, blank=True)
    comment_count = models.PositiveIntegerField(default=0)
    # What the work on it cost so far (usage reported with its id), in nano-dollars: derived
    # from billing's rollups by tasks.actions.set_costs, never edited (its card shows it).
    cost_nanos = models.BigIntegerField(default=0)
    # Its latest run's state ("" if never dispatched), kept by runs.actions in the run's own
    # transaction: the card shows it without a query.
    run_state = models.CharField(max_length=16, blank=True, default="")
    # What the agent of its running run says it is doing now (the card's line; "" otherwise).
    run_progress = models.CharField(max_length=500, blank=True, default="")
    # Tasks that must be Done first: a dispatch of this one waits for them (runs/), and goes
    # out by itself when the last is Done. Cycles are refused (tasks.actions.set_blocked_by).
    blocked_by = models.ManyToManyField(
        "self", symmetrical=False, related_name="blocks", blank=True
    )
    # How many of `blocked_by` are not Done yet (the card's "Waits for"), kept by
    # tasks.actions when the list changes and when a blocker enters or leaves Done.
    waiting_count = models.PositiveIntegerField(default=0)
    # Bumped on every change: a client acting on an older version gets "stale", not a clobber.
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["status", "position", "id"]
        indexes = [
            # A board column: non-archived tasks of one status in position order.
            models.Index(
                fields=["status", "position"],
                name="task_column_idx",
                condition=Q(archived_at__isnull=True),
            ),
            # The full task list, newest activity first.
            models.Index(fields=["-updated_at"], name="task_updated_idx"),
            # The overview's blocked tasks, longest blocked first.
            models.Index(
                fields=["blocked_at"],
                name="task_blocked_idx",
                condition=Q(blocked=True, archived_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~(Q(assignee_user__isnull=False) & Q(assignee_agent__isnull=False)),
                name="task_one_assignee",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def label_list(self) -> list[str]:
        return [label for label in self.labels.split(",") if label]

    @property
    def assignee(self) -> Any:
        return self.assignee_agent or self.assignee_user

    @property
    def assignee_display(self) -> str:
        """The assignee's name ("" if none); a task loaded for a move carries it already
        (`assignee_name`, joined in), so its card renders without loading the related row."""
        name = getattr(self, "assignee_name", None)
        if name is not None:
            return str(name)
        return str(self.assignee or "")

    @property
    def assignee_key(self) -> str:
        if self.assignee_agent_id:
            return f"agent:{self.assignee_agent_id}"
        if self.assignee_user_id:
            return f"user:{self.assignee_user_id}"
        return ""

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_nanos).scaleb(-9)

    @property
    def is_overdue(self) -> bool:
        return bool(
            self.due_date
            and self.status != self.Status.DONE
            and self.due_date < timezone.localdate()
        )

    @property
    def priority_name(self) -> str:
        return self.Priority(self.priority).label.lower()


class Comment(models.Model):
    """A comment by a person or an agent."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="comments")
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The author's name when written (users get renamed, agents deleted).
    author_label = models.CharField(max_length=150)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.author_label} on #{self.task_id}"

    @property
    def by_agent(self) -> bool:
        return self.author_agent_id is not None
