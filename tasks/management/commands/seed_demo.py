"""`manage.py seed_demo`: realistic demo data (people, agents, open and done tasks).

Bulk inserts for speed: this writes demo data, not business changes, so it skips the audit
trail and live events that tasks/actions.py produces for real changes.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from agents.models import Agent
from missioncontrol import roles
from tasks.models import POSITION_STEP, Task

VERBS = [
    "Fix",
    "Add",
    "Investigate",
    "Refactor",
    "Document",
    "Review",
    "Upgrade",
    "Remove",
    "Speed up",
    "Test",
]
THINGS = [
    "login throttling",
    "cost export",
    "gateway reconnect",
    "cron lateness alert",
    "webhook retries",
    "token accounting",
    "agent heartbeat",
    "board filters",
    "session replay",
    "budget alerts",
    "price table",
    "API key rotation",
    "SSE fallback",
    "dark theme",
    "usage backfill",
]
LABELS = ["backend", "frontend", "ops", "bug", "perf", "security", "docs", "agents", "billing"]
OPEN_STATUSES = ["inbox", "backlog", "todo", "in_progress", "review"]


class Command(BaseCommand):
    help = (
        "Create demo data: people, agents, open and done tasks, usage records (run again, "
        "people, agents and usage records are kept once; tasks are added each time)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--open", type=int, default=200, help="Open tasks to create.")
        parser.add_argument("--done", type=int, default=300, help="Done tasks to create.")
        parser.add_argument("--agents", type=int, default=12)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--batch", type=int, default=2000)
        parser.add_argument(
            "--usage", type=int, default=5000, help="Usage records over the last 30 days."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        rng = random.Random(opts["seed"])
        people = self._people()
        agents = self._agents(opts["agents"])
        now = timezone.now()
        top = {
            s: (
                Task.objects.filter(status=s)
                .order_by("-position")
                .values_list("position", flat=True)
                .first()
                or 0
            )
            for s in [*OPEN_STATUSES, "done"]
        }
        total = opts["open"] + opts["done"]
        batch: list[Task] = []
        with tqdm(total=total, desc="tasks", unit="task", disable=opts["verbosity"] == 0) as bar:
            for i in range(total):
                done = i >= opts["open"]
                status = "done" if done else rng.choice(OPEN_STATUSES)
                top[status] += POSITION_STEP
                who = rng.random()
                created = now - timedelta(minutes=rng.randint(10, 60 * 24 * 90))
                task = Task(
                    title=f"{rng.choice(VERBS)} {rng.choice(THINGS)}",
                    description="Seeded demo task.\n\n- [ ] first step\n- [ ] second step",
                    status=status,
                    position=top[status],
                    priority=rng.choices([0, 1, 2, 3], weights=[1, 3, 8, 4])[0],
                    labels="," + ",".join(rng.sample(LABELS, rng.randint(0, 2))) + ","
                    if rng.random() < 0.7
                    else "",
                    assignee_agent=rng.choice(agents) if who < 0.5 else None,
                    assignee_user=rng.choice(people) if 0.5 <= who < 0.8 else None,
                    blocked=not done and rng.random() < 0.05,
                    blocked_reason="Waiting on review" if not done else "",
                    completed_at=created + timedelta(hours=rng.randint(1, 72)) if done else None,
                )
                task.labels = "" if task.labels == ",," else task.labels
                if not task.blocked:
                    task.blocked_reason = ""
                batch.append(task)
                if len(batch) >= opts["batch"]:
                    self._flush(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                self._flush(batch)
                bar.update(len(batch))
        # Its own generator: the same records (agent, id) whatever else this run seeded, so a
        # second run adds none.
        usage_rng = random.Random(opts["seed"] + 1)
        self._usage(usage_rng, agents, opts["usage"], opts["batch"], opts["verbosity"] == 0)
        self.stdout.write(
            f"Seeded {opts['open']} open and {opts['done']} done tasks, {len(agents)} agents, "
            f"{len(people)} people, {opts['usage']} usage records."
        )

    def _usage(
        self, rng: random.Random, agents: list[Agent], count: int, size: int, quiet: bool
    ) -> None:
        """Usage through billing's own action (priced and rolled up as agents' reports are):
        each agent mostly on one model, some calls on a task, over the last 30 days."""
        from billing.actions import UsageItem, record_usage, recount_task_costs

        models = [
            ("claude-sonnet-4-5", "anthropic"),
            ("claude-3-5-haiku", "anthropic"),
            ("gpt-4o", "openai"),
            ("gpt-4o-mini", "openai"),
        ]
        tasks = list(Task.objects.filter(assignee_agent__isnull=False).values_list("pk", flat=True))
        now = timezone.now()
        items = []
        for i in range(count):
            a = rng.randrange(len(agents))
            model, provider = models[a % len(models)] if rng.random() < 0.8 else rng.choice(models)
            at = now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
            items.append(
                UsageItem(
                    agent_id=agents[a].pk,
                    model=model,
                    provider=provider,
                    input_tokens=rng.randint(200, 8000),
                    output_tokens=rng.randint(50, 1500),
                    cache_read_tokens=rng.choice((0, 0, rng.randint(1000, 20000))),
                    occurred_at=at,
                    client_id=f"seed-demo-{i}",
                    task_id=rng.choice(tasks) if tasks and rng.random() < 0.4 else None,
                    # One run (a session) per agent every three hours.
                    session=f"run-{agents[a].name}-{int(at.timestamp()) // 10800}",
                )
            )
        with tqdm(total=count, desc="usage", unit="record", disable=quiet) as bar:
            for start in range(0, count, size):
                with transaction.atomic():
                    record_usage(items[start : start + size])
                bar.update(min(size, count - start))
        recount_task_costs()  # the cards' costs (a server does this as usage arrives)

    def _flush(self, batch: list[Task]) -> None:
        with transaction.atomic():
            Task.objects.bulk_create(batch)

    def _people(self) -> list[Any]:
        User = get_user_model()
        people = []
        for name, role in [
            ("ana", "operator"),
            ("ben", "operator"),
            ("chen", "viewer"),
            ("dev", "admin"),
        ]:
            user, created = User.objects.get_or_create(username=name)
            if created:
                user.set_unusable_password()
                user.save()
                roles.set_role(user, role)  # type: ignore[arg-type]
            people.append(user)
        return people

    def _agents(self, count: int) -> list[Agent]:
        frameworks = ["claude-code", "codex", "openclaw", "script"]
        return [
            Agent.objects.get_or_create(
                name=f"agent-{i:02d}", defaults={"framework": frameworks[i % 4], "role": "worker"}
            )[0]
            for i in range(count)
        ]
