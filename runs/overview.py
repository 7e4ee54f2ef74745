"""The runs' part of the command palette (an edge): "Dispatch #12 to codex-1" beside the tasks
found, for operators — it opens the task's dispatch form (instructions, landing column); the
board's D key sends at once."""

from __future__ import annotations

from django.urls import reverse

from missioncontrol import overview
from missioncontrol.http import parse_int
from runs.models import Run
from tasks.models import Task


def find_dispatchable(viewer: overview.Viewer, text: str) -> list[overview.Found]:
    if viewer.role not in ("operator", "admin"):
        return []
    rows = (
        Task.objects.on_board()
        .exclude(status=Task.Status.DONE)
        .filter(assignee_agent__isnull=False)
        .exclude(run_state__in=Run.ACTIVE)
        .select_related("assignee_agent")
    )
    pk = parse_int(text.lstrip("#"))
    rows = rows.filter(pk=pk) if pk is not None else rows.search(text)
    return [
        overview.Found(
            "Dispatch",
            f"#{t.pk} to {t.assignee_agent.name}",  # type: ignore[union-attr]
            reverse("tasks:detail", args=[t.pk]) + "#runs",
            t.title,
        )
        for t in rows.order_by("-updated_at", "-id")[:3]
    ]


def register() -> None:
    overview.register_search("dispatch", find_dispatchable)
