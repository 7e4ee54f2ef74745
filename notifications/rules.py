"""Who is told of what, and when (core, no writes): the recipients (each rule with what its
owner may see), whether a rule wants an item, and when a transition is due (quiet hours,
digests). Pure functions over loaded rows, so the evaluator judges 10,000 people's rules for one
event without a query each (bench/notifications.py)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from missioncontrol.cached import Reloaded
from missioncontrol.overview import CRITICAL
from missioncontrol.roles import RANK, Role, prime_roles, role_of
from notifications.models import Channel, Rule

OPERATE = "operate_gateway"
DAILY_AT = time(9, 0)  # a daily digest comes at 9:00 in the rule's time zone


@dataclass(frozen=True)
class Recipient:
    """A rule and what its owner may see: a person's role, grants ({gateway: codenames}, None:
    not narrowed) and username; a team channel sees what its rule names."""

    rule: Rule
    person: bool
    role: Role
    username: str
    grants: dict[int, set[str]] | None
    channels: tuple[int, ...]  # the enabled channels its messages go to


@dataclass(frozen=True)
class Seen:
    """What a rule judges of an item (an Item row, or an item not stored yet)."""

    kind: str
    severity: int
    gateway_id: int | None
    role: str
    people: tuple[str, ...]
    operate: bool
    ungated: bool


def recipients() -> list[Recipient]:
    """load_recipients(), kept per process (forgotten on any change of a rule or channel here;
    a role or grant change reaches the evaluator within RECIPIENTS_TTL_S)."""
    return _recipients.get()


def load_recipients() -> list[Recipient]:
    """Every rule with somewhere to send: a person's (active, with a role, with an enabled
    channel of their own) and each enabled team channel's. Five queries, whatever the count."""
    from django.contrib.auth import get_user_model

    from gateways import access

    channels: dict[int | None, list[int]] = {}
    team: dict[int, Channel] = {}
    for channel in Channel.objects.filter(enabled=True).only("pk", "owner_id"):
        if channel.owner_id is None:
            team[channel.pk] = channel
        else:
            channels.setdefault(channel.owner_id, []).append(channel.pk)
    rules = list(
        Rule.objects.filter(user_id__in=list(channels)) | Rule.objects.filter(channel_id__in=team)
    )
    people = {
        u.pk: u
        for u in get_user_model().objects.filter(
            pk__in=[r.user_id for r in rules if r.user_id], is_active=True
        )
    }
    users = list(people.values())
    prime_roles(users)
    access.prime_grants(users)
    found = []
    for rule in rules:
        if rule.channel_id is not None:
            found.append(Recipient(rule, False, "admin", "", None, (rule.channel_id,)))
            continue
        user = people.get(rule.user_id or 0)
        role = role_of(user) if user is not None else None
        if user is None or role is None:
            continue
        found.append(
            Recipient(
                rule,
                True,
                role,
                user.get_username(),
                None if role == "admin" else access.grants(user),
                tuple(channels.get(user.pk, ())),
            )
        )
    return found


def wanted_kinds() -> frozenset[str]:
    """The notification kinds some rule with somewhere to send wants (a rule naming none wants
    them all)."""
    from missioncontrol.overview import NOTIFY_KINDS

    found: set[str] = set()
    for recipient in recipients():
        found.update(recipient.rule.kinds or NOTIFY_KINDS)
    return frozenset(found)


RECIPIENTS_TTL_S = 5.0
_recipients = Reloaded("notification recipients", load_recipients, ttl_s=RECIPIENTS_TTL_S)
_recipients.forget_on_change(Rule)
_recipients.forget_on_change(Channel)


def may_see(recipient: Recipient, item: Seen) -> bool:
    """The person may see the item (their role, the people it is for, their gateway grants), as
    their overview would show it. A team channel sees all."""
    if not recipient.person:
        return True
    if RANK[recipient.role] < RANK.get(item.role, 0):
        return False
    if item.people and recipient.username not in item.people:
        return False
    grants = recipient.grants
    if grants is not None:
        if item.gateway_id is None:
            if not item.ungated:
                return False
        elif item.gateway_id not in grants:
            return False
    if item.operate and recipient.role != "admin":
        if grants is None:
            return RANK[recipient.role] >= RANK["operator"]
        return item.gateway_id is not None and OPERATE in grants.get(item.gateway_id, set())
    return True


def wants(recipient: Recipient, item: Seen) -> bool:
    """The rule asks for this kind, severity and gateway, and its owner may see it."""
    rule = recipient.rule
    if rule.kinds and item.kind not in rule.kinds:
        return False
    if item.severity > rule.max_severity:
        return False
    if rule.gateways and item.gateway_id is not None and item.gateway_id not in rule.gateways:
        return False
    return may_see(recipient, item)


def zone(rule: Rule) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(rule.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _next_at(local: datetime, at: time) -> datetime:
    """The next `at` (wall clock) strictly after `local`, in its zone."""
    candidate = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (candidate + timedelta(days=1)).replace(hour=at.hour, minute=at.minute)
    return candidate


def in_quiet(rule: Rule, when: datetime) -> bool:
    start, end = rule.quiet_start, rule.quiet_end
    if start is None or end is None or start == end:
        return False
    now = when.astimezone(zone(rule)).time()
    return start <= now < end if start < end else (now >= start or now < end)


def urgent(rule: Rule, severity: int) -> bool:
    """Sent at once, whatever the quiet hours and digest say (the rule lets urgent ones pass)."""
    return severity <= CRITICAL and rule.urgent_in_quiet


def due(rule: Rule, now: datetime, severity: int) -> datetime:
    """When a transition noticed now may be sent: now; else the digest's next time; and never
    inside quiet hours (then at their end) — unless it is urgent and the rule lets those pass."""
    if urgent(rule, severity):
        return now
    when = now
    local = now.astimezone(zone(rule))
    if rule.digest == Rule.Digest.HOURLY:
        top = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        when = top.astimezone(now.tzinfo)
    elif rule.digest == Rule.Digest.DAILY:
        when = _next_at(local, DAILY_AT).astimezone(now.tzinfo)
    if in_quiet(rule, when) and rule.quiet_end is not None:
        when = _next_at(when.astimezone(zone(rule)), rule.quiet_end).astimezone(now.tzinfo)
    return when


def seen(row: Any) -> Seen:
    """An Item row (or anything with its fields) as rules judge it."""
    return Seen(
        kind=row.kind,
        severity=row.severity,
        gateway_id=row.gateway_id,
        role=row.role,
        people=tuple(row.people or ()),
        operate=row.operate,
        ungated=row.ungated,
    )
