"""The shell's navigation: apps add their sections in AppConfig.ready()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from missioncontrol.roles import Role


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    role: Role = "viewer"
    order: int = 100
    # Which URL prefix marks the item as the current section.
    prefix: str = ""
    # Settings-like pages sit in the user menu, not the top bar (it holds the daily sections).
    menu: bool = False


_items: dict[str, NavItem] = {}


def register(item: NavItem) -> None:
    _items[item.url_name] = item


def items() -> list[NavItem]:
    return sorted(_items.values(), key=lambda i: (i.order, i.label))


def find_pages(viewer: Any, text: str) -> list[Any]:
    """The palette finds sections by name too ("costs", "audit"): those this user's role
    opens."""
    from django.urls import reverse

    from missioncontrol import overview
    from missioncontrol.roles import RANK

    wanted = text.lower()
    return [
        overview.Found("Page", item.label, reverse(item.url_name))
        for item in items()
        if wanted in item.label.lower() and RANK[viewer.role] >= RANK[item.role]
    ]


register(NavItem("Overview", "home", order=0))
register(NavItem("People", "people", role="admin", order=94, prefix="/settings/people/", menu=True))
register(
    NavItem(
        "API tokens", "my-tokens", role="viewer", order=93, prefix="/account/tokens/", menu=True
    )
)
register(NavItem("Audit log", "audit", role="admin", order=95, prefix="/audit/", menu=True))
register(
    NavItem(
        "Deployment",
        "deployment",
        role="admin",
        order=96,
        prefix="/settings/deployment/",
        menu=True,
    )
)
