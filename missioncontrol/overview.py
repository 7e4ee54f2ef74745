"""The overview (the home page): what needs the operator now, and the fleet at a glance.

This module knows no app. Apps plug in from their ready(): `register_attention` for the
"Needs attention" items they raise (a blocked task, a late cron job, a gateway not connected…)
and `register_panel` for the at-a-glance panels (board, fleet, spend, running now). The home
view asks each one, for the user viewing (their role, the gateways they may see, the gateway
switch), and renders the lot server-side; the page refetches itself, throttled, when any of the
topics the parts name publishes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from missioncontrol import models
from missioncontrol.roles import RANK, Role


@dataclass(frozen=True)
class Viewer:
    """Who is looking: their user, role, the gateways they may see (None: all) and the one the
    gateway switch chose (None: all)."""

    user: Any
    role: Role
    visible: frozenset[int] | None
    chosen: int | None
    limit: int = 20  # items per provider (the page shows a few; notifications want them all)

    @classmethod
    def system(cls, limit: int = 1000) -> Viewer:
        """Nobody in particular: every item of every gateway, whoever may answer it (the
        notifications' evaluator; each item's audience fields say who may see it)."""
        return cls(None, "admin", None, None, limit)

    @property
    def scan(self) -> int:
        """Rows a provider reads to find `limit` items it shows."""
        return max(200, self.limit)

    def may(self, check: Callable[[Any], bool]) -> bool:
        """`check(user)` for a person; True for the system viewer (it sees every item)."""
        return self.user is None or check(self.user)

    def sees(self, gateway_id: int | None) -> bool:
        """Data of this gateway (None: not a gateway's) belongs on this user's overview."""
        if gateway_id is None:
            return self.chosen is None or self.chosen == 0
        if self.visible is not None and gateway_id not in self.visible:
            return False
        return self.chosen is None or self.chosen == gateway_id

    def gateway_q(self, path: str) -> Q:
        """sees() as a filter on rows reaching their gateway through `path` (a ForeignKey path:
        "gateway", "assignee_agent__gateway"; none there: no gateway's), so a provider reads only
        the rows it shows, not a scan to pick them from."""
        nowhere = Q(**{f"{path}__isnull": True})
        if self.chosen == 0:
            return nowhere
        if self.chosen is not None:
            if self.visible is not None and self.chosen not in self.visible:
                return Q(pk__in=[])
            return Q(**{f"{path}_id": self.chosen})
        if self.visible is None:
            return Q()
        return nowhere | Q(**{f"{path}_id__in": sorted(self.visible)})

    def gateway_filter(self) -> tuple[frozenset[int] | None, int | None]:
        return self.visible, self.chosen


@dataclass(frozen=True)
class Attention:
    """One thing that needs someone. `key` names this occurrence (a new occurrence of the same
    trouble gets a new key, so an acknowledgement does not hide it); lower `severity` first."""

    key: str
    kind: str
    severity: int
    title: str
    detail: str
    url: str
    since: datetime | None = None
    gateway: Any = None  # something with pk, name, colour (the badge), or None
    action: str = ""  # the link's words ("Open task", "Fix the token")
    # Where all items of this kind are listed, and what they are called ("blocked tasks"):
    # beyond a few of one kind the overview shows one line that links there.
    more_url: str = ""
    more_label: str = ""
    grouped: int = 0  # for that line: how many items it stands for
    # Who may see it, for a reader with no viewer (notifications judge each person from these):
    # the least role; only these people (usernames; none: anyone with the role); acting on its
    # gateway needed (an operate grant); seen by people narrowed to some gateways when it is no
    # gateway's (a budget over everything is not).
    role: Role = "viewer"
    people: tuple[str, ...] = ()
    operate: bool = False
    ungated: bool = True


def occurrence(trouble: str, pk: Any, since: datetime | None) -> str:
    """An Attention key: the trouble, the object and when it began (a new start, a new key)."""
    return f"{trouble}:{pk}:{int(since.timestamp()) if since else 0}"


# Severities: 0 the fleet is cut off or spending; 1 work is stuck; 2 something is degraded;
# 3 waiting on a person.
CRITICAL, STUCK, DEGRADED, WAITING = 0, 1, 2, 3

Provider = Callable[[Viewer], list[Attention]]


@dataclass(frozen=True)
class Panel:
    name: str
    order: int
    template: str
    context: Callable[[Viewer], dict[str, Any]]
    min_role: Role = "viewer"


# What a person can be notified of (the rules' kinds): each provider of attention items names
# one. tests/notifications check every provider has one.
NOTIFY_KINDS: dict[str, str] = {
    "gateway": "A gateway is not connected",
    "agent": "An agent is in error, or stale with work",
    "run": "A run failed or was lost, or a task is blocked",
    "budget": "A budget crossed a threshold",
    "cron": "A scheduled job is late or failing",
    "approval": "An approval or a question waits for me",
    "webhook": "A webhook endpoint or notification channel is failing",
    "pipeline": "A pipeline run failed",
    "review": "A task waits for review",
}


@dataclass
class _Registry:
    attention: dict[str, tuple[Provider, Role]] = field(default_factory=dict)
    notify: dict[str, str] = field(default_factory=dict)  # provider → NOTIFY_KINDS key
    panels: dict[str, Panel] = field(default_factory=dict)
    topics: dict[str, None] = field(default_factory=dict)


_registry = _Registry()


def register_attention(
    name: str,
    provider: Provider,
    *,
    topics: tuple[str, ...],
    notify: str,
    min_role: Role = "viewer",
) -> None:
    """`provider(viewer)` lists its items; the page refreshes when one of `topics` publishes;
    `notify` is the kind of notification they are (NOTIFY_KINDS)."""
    if notify not in NOTIFY_KINDS:
        raise ValueError(f"{name}: notify={notify!r} is not one of {sorted(NOTIFY_KINDS)}")
    _registry.attention[name] = (provider, min_role)
    _registry.notify[name] = notify
    _registry.topics.update(dict.fromkeys(topics))


def register_panel(panel: Panel, *, topics: tuple[str, ...]) -> None:
    _registry.panels[panel.name] = panel
    _registry.topics.update(dict.fromkeys(topics))


# The command palette's search: each app finds its own things by name.
@dataclass(frozen=True)
class Found:
    kind: str  # "Task", "Agent", "Session", "Job"
    title: str
    url: str
    hint: str = ""


Search = Callable[[Viewer, str], list[Found]]
_searches: dict[str, Search] = {}


def register_search(name: str, search: Search) -> None:
    _searches[name] = search


def search(viewer: Viewer, text: str, per_kind: int = 6) -> list[Found]:
    found: list[Found] = []
    for fn in _searches.values():
        found += fn(viewer, text)[:per_kind]
    return found


_chooser: list[Callable[[Any], int | None]] = []


def register_gateway_choice(chooser: Callable[[Any], int | None]) -> None:
    """How to read the gateway switch's choice from a request (the gateways app's)."""
    _chooser[:] = [chooser]


def viewer_for(request: Any) -> Viewer:
    from missioncontrol import subscriptions
    from missioncontrol.roles import role_of

    role = role_of(request.user)
    assert role is not None
    chosen = _chooser[0](request) if _chooser else None
    return Viewer(request.user, role, subscriptions.gateway_scope(request.user), chosen)


# At most this many items of one kind, then one line for the rest of that kind.
PER_KIND = 3


def attention(viewer: Viewer) -> list[Attention]:
    """Every provider's items this user may see, minus what they acknowledged, most urgent
    (then newest) first: a task blocked a minute ago must not hide behind older ones."""
    now = timezone.now()
    hidden = set(
        models.Acknowledgement.objects.filter(user=viewer.user)
        .filter(Q(until__isnull=True) | Q(until__gt=now))
        .values_list("key", flat=True)
    )
    items: list[Attention] = []
    for _name, provider, min_role in providers():
        if RANK[viewer.role] >= RANK[min_role]:
            items += [item for item in provider(viewer) if item.key not in hidden]
    items.sort(key=lambda i: (i.severity, -(i.since or now).timestamp()))
    # A few of each kind, then one line for the rest of that kind: forty blocked tasks must not
    # push the one gateway that is down out of sight.
    shown: list[Attention] = []
    per_kind: dict[str, list[Attention]] = {}
    for item in items:
        per_kind.setdefault(item.kind, []).append(item)
    for item in items:
        same = per_kind[item.kind]
        index = same.index(item)
        if index < PER_KIND or len(same) == PER_KIND + 1 or not item.more_url:
            shown.append(item)
        elif index == PER_KIND:
            rest = len(same) - PER_KIND
            shown.append(
                replace(
                    item,
                    key=f"group:{item.kind}",
                    title=f"and {rest} more {item.more_label}",
                    detail="",
                    url=item.more_url,
                    gateway=None,
                    action="See all",
                    grouped=rest,
                )
            )
    return shown


@dataclass(frozen=True)
class Standing:
    """An item as the notifications see it: with its notification kind and its provider's
    least role folded into its own."""

    item: Attention
    notify: str
    source: str  # the provider's name


def standing(
    limit: int = 1000, kinds: frozenset[str] | None = None
) -> tuple[list[Standing], frozenset[str]]:
    """Every item of every provider (of these notification `kinds`; None: all), for nobody in
    particular (no acknowledgement hides one, no grouping: `limit` per provider); and the
    providers not read — they failed (logged), or nobody wants their kind: their items are
    unknown this time, not gone."""
    import logging

    viewer = Viewer.system(limit)
    found = []
    failed = set()
    for name, provider, min_role in providers():
        if kinds is not None and _registry.notify[name] not in kinds:
            failed.add(name)
            continue
        try:
            items = provider(viewer)
        except Exception:
            logging.getLogger(__name__).exception("overview: %s failed", name)
            failed.add(name)
            continue
        for item in items:
            role = item.role if RANK[item.role] >= RANK[min_role] else min_role
            found.append(Standing(replace(item, role=role), _registry.notify[name], name))
    return found, frozenset(failed)


def providers() -> list[tuple[str, Provider, Role]]:
    return [(name, fn, role) for name, (fn, role) in _registry.attention.items()]


def panels() -> list[Panel]:
    return sorted(_registry.panels.values(), key=lambda p: (p.order, p.name))


def topics() -> list[str]:
    return list(_registry.topics)
