"""Board and list filters, read from the URL so a view can be bookmarked and shared."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import QueryDict

from missioncontrol.http import parse_int
from tasks.models import Task, TaskQuerySet


@dataclass(frozen=True)
class TaskFilters:
    assignee: str = ""  # user:<id> | agent:<id> | none
    label: str = ""
    priority: str = ""  # urgent|high|normal|low
    blocked: bool = False
    q: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> TaskFilters:
        priority = query.get("priority", "").strip().lower()
        return cls(
            assignee=query.get("assignee", "").strip(),
            label=query.get("label", "").strip().lower().lstrip("#")[:32],
            priority=priority if priority in {p.label.lower() for p in Task.Priority} else "",
            blocked=query.get("blocked") in {"1", "on", "true"},
            q=query.get("q", "").strip()[:200],
        )

    @property
    def active(self) -> bool:
        return bool(self.assignee or self.label or self.priority or self.blocked or self.q)

    def apply(self, qs: TaskQuerySet) -> TaskQuerySet:
        if self.assignee == "none":
            qs = qs.filter(assignee_user__isnull=True, assignee_agent__isnull=True)
        elif self.assignee.startswith("user:"):
            qs = qs.filter(assignee_user_id=parse_int(self.assignee[5:]) or 0)
        elif self.assignee.startswith("agent:"):
            qs = qs.filter(assignee_agent_id=parse_int(self.assignee[6:]) or 0)
        if self.label:
            qs = qs.with_label(self.label)
        if self.priority:
            qs = qs.filter(
                priority=next(p.value for p in Task.Priority if p.label.lower() == self.priority)
            )
        if self.blocked:
            qs = qs.blocked()
        if self.q:
            qs = qs.search(self.q)
        return qs

    def querystring(self, **extra: object) -> str:
        params = {
            k: v
            for k, v in {
                "assignee": self.assignee,
                "label": self.label,
                "priority": self.priority,
                "blocked": "1" if self.blocked else "",
                "q": self.q,
                **extra,
            }.items()
            if v not in ("", None)
        }
        return urlencode(params)
