"""Notification actions: every write of the notifications app, each one transaction.

- `evaluate(standing)`: the items in Needs attention now against those last seen — each new one
  raised, each gone one resolved — and, in the same transaction, what each rule is owed
  (`Pending`, due now or when its quiet hours or digest allow).
- `flush()`: what is due, one message per rule and channel (fifty agents failing at once are
  one message listing them), coalesced per subject (at most one message per thing per the
  rule's window), never telling the same thing twice; the messages go to the outbox in the same
  transaction, and the dispatcher sends them (webhooks.dispatcher, shared with the webhooks).
- channels and rules, saved by admins and people (audited); a test message; the sender's
  claims and attempts; pruning.
"""

from __future__ import annotations

import json
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.models import Acknowledgement
from missioncontrol.overview import NOTIFY_KINDS, Standing
from notifications import rules
from notifications.models import Channel, Item, Message, Pending, Rule, Told
from webhooks import actions as outbox_actions
from webhooks.actions import Outcome
from webhooks.outbox import Wakeup

# After the n-th failed attempt the next waits SCHEDULE[n - 1] s (±10 %); then it has failed:
# six attempts over about an hour and a half (a message hours late is worth little).
SCHEDULE = (5, 30, 120, 600, 1800, 3600)
ITEMS_PER_MESSAGE = 50
GONE = (
    404,
    410,
)  # a push service's answer for a subscription that no longer exists  # listed in one message; the rest are counted ("and 12 more")
woken = Wakeup()  # set after a commit that queued messages: the sender looks at once


class Invalid(Exception):
    """A channel or rule that cannot be saved; `errors` by field, for the form."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def subject_of(source: str, key: str) -> str:
    """The thing an occurrence is about, whatever its state: the provider and the object
    ("gateways.down", "gateway.unreachable:3:1733…" → "gateways.down:3")."""
    parts = key.split(":")
    return f"{source}:{parts[1] if len(parts) > 1 else key}"


def _announce(messages: list[Message]) -> None:
    """Messages queued or attempted: the history pages follow (ids and states only — no title,
    no channel's target: every signed-in page on the topic may receive it)."""
    if messages:
        live.publish(
            "alerts",
            {
                "type": "notification.messages_changed",
                "messages": [
                    {
                        "id": m.pk,
                        "channel_id": m.channel_id,
                        "status": m.status,
                        "attempts": m.attempts,
                    }
                    for m in messages
                ],
            },
        )


# --- Evaluating: transitions and what each rule is owed ----------------------------------------


@dataclass(frozen=True)
class Evaluated:
    raised: list[str]
    resolved: list[str]
    owed: int  # pending rows written


def evaluate(standing: list[Standing], failed: frozenset[str] = frozenset()) -> Evaluated:
    """Compare the items standing now with the open ones last seen. `failed`: providers that
    could not answer (their open items are left as they are, not resolved)."""
    now = timezone.now()
    current = {s.item.key: s for s in standing}
    with transaction.atomic():
        open_rows = {
            row.key: row
            for row in Item.objects.select_for_update(no_key=True).filter(resolved_at__isnull=True)
        }
        new_keys = [k for k in current if k not in open_rows]
        gone = [
            row for key, row in open_rows.items() if key not in current and row.source not in failed
        ]
        for row in gone:
            row.resolved_at = now
        Item.objects.bulk_update(gone, ["resolved_at"])
        # An occurrence seen before (it left the list and came back) is opened again.
        again = {row.key: row for row in Item.objects.filter(key__in=new_keys)}
        for row in again.values():
            _item_row(row, current[row.key], now).save()
        Item.objects.bulk_create(
            [_item_row(Item(key=k), current[k], now) for k in new_keys if k not in again],
            ignore_conflicts=True,  # another evaluator got there first: its row stands
        )
        raised = list(Item.objects.filter(key__in=new_keys, resolved_at__isnull=True))
        owed = _owe(raised, gone, now) if (raised or gone) else 0
    return Evaluated([r.key for r in raised], [r.key for r in gone], owed)


def _item_row(row: Item, standing: Standing, now: datetime) -> Item:
    item = standing.item
    gateway = item.gateway
    row.subject = subject_of(standing.source, item.key)
    row.source = standing.source
    row.kind = standing.notify
    row.label = item.kind[:60]
    row.severity = item.severity
    row.title = item.title[:300]
    row.detail = (item.detail or "")[:1000]
    row.url = item.url[:500]
    row.action = item.action[:60]
    row.gateway_id = getattr(gateway, "pk", None)
    row.gateway_name = str(getattr(gateway, "name", "") or "")[:100]
    row.since = item.since
    row.role = item.role
    row.people = list(item.people)
    row.operate = item.operate
    row.ungated = item.ungated
    row.raised_at = now
    row.resolved_at = None
    return row


def _owe(raised: list[Item], resolved: list[Item], now: datetime) -> int:
    """A Pending row for each transition × rule that wants it (resolved ones only for rules
    that asked for them)."""
    owed = []
    known = rules.recipients()
    # Kept per process for a few seconds: a rule another process deleted meanwhile is skipped.
    alive = set(Rule.objects.filter(pk__in=[r.rule.pk for r in known]).values_list("pk", flat=True))
    for recipient in known:
        rule = recipient.rule
        if rule.pk not in alive:
            continue
        for transition, items in ((Pending.RAISED, raised), (Pending.RESOLVED, resolved)):
            if transition == Pending.RESOLVED and not rule.resolved:
                continue
            for item in items:
                if rules.wants(recipient, rules.seen(item)):
                    owed.append(
                        Pending(
                            rule=rule,
                            item=item,
                            transition=transition,
                            due_at=rules.due(rule, now, item.severity),
                            created_at=now,
                        )
                    )
    Pending.objects.bulk_create(owed, ignore_conflicts=True)
    return len(owed)


# --- Flushing: what is due, as messages --------------------------------------------------------


def flush(now: datetime | None = None) -> list[Message]:
    """Every rule's due transitions as one message per channel; coalesced and never repeated
    (see the module's note). The messages are queued in this transaction."""
    now = now or timezone.now()
    messages: list[Message] = []
    with transaction.atomic():
        due = list(
            Pending.objects.select_for_update(no_key=True, of=("self",))
            .filter(due_at__lte=now)
            .select_related("item", "rule__user", "rule__channel")
            .order_by("rule_id", "created_at", "pk")
        )
        if not due:
            return []
        by_rule: dict[int, list[Pending]] = defaultdict(list)
        for pending in due:
            by_rule[pending.rule_id].append(pending)
        recipients = {r.rule.pk: r for r in rules.recipients()}
        # Channels another process deleted or turned off since the recipients were loaded.
        open_channels = set(
            Channel.objects.filter(
                pk__in={c for r in recipients.values() for c in r.channels}, enabled=True
            ).values_list("pk", flat=True)
        )
        done: list[int] = []
        for rule_id, pendings in by_rule.items():
            recipient = recipients.get(rule_id)
            if recipient is None:  # nowhere to send now (no enabled channel): dropped
                done += [p.pk for p in pendings]
                continue
            sent, handled = _compose(recipient, pendings, now)
            sent = [m for m in sent if m.channel_id in open_channels]
            done += handled
            messages += sent
        Pending.objects.filter(pk__in=done).delete()
        Message.objects.bulk_create(messages)
        if messages:
            _announce(messages)
            transaction.on_commit(woken.set)
    return messages


def _compose(
    recipient: rules.Recipient, pendings: list[Pending], now: datetime
) -> tuple[list[Message], list[int]]:
    """One rule's due transitions → its messages, and the pending rows handled (the others wait
    for their subject's coalescing window)."""
    rule = recipient.rule
    told = {t.subject: t for t in Told.objects.filter(rule=rule)}
    window = timedelta(minutes=rule.coalesce_minutes)
    hidden = _acknowledged(recipient, [p.item.key for p in pendings], now)
    by_subject: dict[str, list[Pending]] = defaultdict(list)
    for pending in pendings:
        by_subject[pending.item.subject].append(pending)
    lines: list[dict[str, Any]] = []
    handled: list[int] = []
    for subject, group in by_subject.items():
        last = told.get(subject)
        if last is not None and not rule.digest and last.at + window > now:
            # Told of this thing within the window: wait for its end (then the state it is in).
            Pending.objects.filter(pk__in=[p.pk for p in group]).update(due_at=last.at + window)
            continue
        handled += [p.pk for p in group]
        line = _settle(rule, last, group, hidden, now)
        if line is not None:
            lines.append(line)
    if not lines:
        return [], handled
    body = _body(rule, lines, now)
    return [
        Message(
            channel_id=channel_id,
            body=body,
            title=body["title"][:300],
            next_attempt_at=now,
            created_at=now,
        )
        for channel_id in recipient.channels
    ], handled


def _settle(
    rule: Rule, last: Told | None, group: list[Pending], hidden: set[str], now: datetime
) -> dict[str, Any] | None:
    """What one subject's transitions come to: the newest occurrence still open (raised), or
    that it cleared (resolved); None when that says nothing new. The Told row follows."""
    open_items = [p.item for p in group if p.item.resolved_at is None]
    if open_items:
        item = max(open_items, key=lambda i: i.raised_at)
        if item.key in hidden or (last and last.state == Pending.RAISED and last.key == item.key):
            return None
        _tell(rule, item, Pending.RAISED, now, last)
        return _line(item, Pending.RAISED)
    item = max((p.item for p in group), key=lambda i: i.resolved_at or now)
    # A resolution is news only to a rule that was told it was raised (and not of its end).
    if last is None or last.state != Pending.RAISED or not rule.resolved:
        return None
    _tell(rule, item, Pending.RESOLVED, now, last)
    return _line(item, Pending.RESOLVED)


def _tell(rule: Rule, item: Item, state: str, now: datetime, last: Told | None) -> None:
    if last is None:
        Told.objects.create(rule=rule, subject=item.subject, key=item.key, state=state, at=now)
    else:
        last.key, last.state, last.at = item.key, state, now
        last.save(update_fields=["key", "state", "at"])


def _acknowledged(recipient: rules.Recipient, keys: list[str], now: datetime) -> set[str]:
    """Keys dismissed or snoozed: by the person; for a team channel, by anyone."""
    rows = Acknowledgement.objects.filter(key__in=keys).filter(
        Q(until__isnull=True) | Q(until__gt=now)
    )
    if recipient.person and recipient.rule.user_id is not None:
        rows = rows.filter(user_id=recipient.rule.user_id)
    return set(rows.values_list("key", flat=True))


def _line(item: Item, transition: str) -> dict[str, Any]:
    return {
        "transition": transition,
        "key": item.key,
        "kind": item.kind,
        "label": item.label,
        "severity": item.severity,
        "title": item.title,
        "detail": item.detail,
        "url": public_url(item.url),
        "action": item.action or "Open",
        "gateway": item.gateway_name,
        "since": item.since.isoformat() if item.since else None,
        "resolved_at": item.resolved_at.isoformat() if item.resolved_at else None,
    }


def public_url(path: str) -> str:
    """A link back, on the address people reach this installation at (MC_PUBLIC_URL)."""
    if path.startswith(("http://", "https://")):
        return path
    return settings.MC_PUBLIC_URL.rstrip("/") + "/" + path.lstrip("/")


def _body(rule: Rule, lines: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    raised = [line for line in lines if line["transition"] == Pending.RAISED]
    cleared = [line for line in lines if line["transition"] == Pending.RESOLVED]
    raised.sort(key=lambda line: (line["severity"], line["title"]))
    shown = (raised + cleared)[:ITEMS_PER_MESSAGE]
    return {
        "kind": "digest" if rule.digest else "notice",
        "title": _title(raised, cleared),
        "items": shown,
        "more": len(lines) - len(shown),
        "urgent": any(line["severity"] == 0 for line in raised),
        "url": public_url("/"),
        "at": now.isoformat(),
    }


def _title(raised: list[dict[str, Any]], cleared: list[dict[str, Any]]) -> str:
    """A message's first line: the one thing, or how many of what."""
    if len(raised) == 1 and not cleared:
        line = raised[0]
        return f"{line['label']}: {line['title']}"
    if not raised and len(cleared) == 1:
        return f"Resolved: {cleared[0]['title']}"
    parts = []
    if raised:
        labels = {line["label"] for line in raised}
        what = next(iter(labels)) if len(labels) == 1 else "Needs attention"
        parts.append(f"{what}: {len(raised)} {'items' if len(raised) != 1 else 'item'}")
    if cleared:
        parts.append(f"{len(cleared)} resolved")
    return " · ".join(parts)


# --- Channels and rules -------------------------------------------------------------------------


def channel_data(channel: Channel) -> dict[str, Any]:
    """A channel as the audit log and events keep it (never its target in full)."""
    return {
        "kind": channel.kind,
        "name": channel.name,
        "target": channel.hint,
        "enabled": channel.enabled,
        "owner": channel.owner.get_username() if channel.owner_id and channel.owner else None,
    }


def hint(kind: str, target: str) -> str:
    """What is shown of a target once saved: an address's domain, a URL's host."""
    from urllib.parse import urlsplit

    if kind == Channel.Kind.EMAIL:
        addresses = [a.strip() for a in target.split(",") if a.strip()]
        first = addresses[0] if addresses else ""
        local, _, domain = first.partition("@")
        shown = f"{local[:1]}…@{domain}" if domain else "…"
        return shown + (f" and {len(addresses) - 1} more" if len(addresses) > 1 else "")
    if kind == Channel.Kind.WEBPUSH:
        try:
            endpoint = json.loads(target).get("endpoint", "")
        except (ValueError, AttributeError):
            endpoint = ""
        return f"push via {urlsplit(endpoint).hostname or 'a push service'}"
    parts = urlsplit(target)
    return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else "…"


@dataclass(frozen=True)
class ChannelInput:
    """A channel as an admin (team) or a person (their own) sends it; `target` "" keeps the
    stored one when editing."""

    kind: str  # Channel.Kind
    name: str
    target: str
    enabled: bool = True


def save_channel(
    actor: Actor, data: ChannelInput, *, owner_id: int | None = None, channel_id: int | None = None
) -> Channel:
    """Create or change a channel (a team one when `owner` is None, with a rule of its own:
    every kind, a sensible severity); re-enabling clears its failure run. The target was
    checked by the form (notifications.targets.check)."""
    with transaction.atomic():
        before = None
        if channel_id is not None:
            channel = (
                Channel.objects.select_for_update(no_key=True)
                .filter(pk=channel_id, owner_id=owner_id)
                .first()
            )
            if channel is None:
                raise Invalid({"__all__": ["That channel no longer exists."]})
            before = channel_data(channel)
            if data.enabled and not channel.enabled:
                channel.consecutive_failures = 0
                channel.failing_since = None
                channel.disabled_reason = ""
        else:
            if data.kind not in Channel.Kind.values:
                raise Invalid({"kind": [f"Choose one of {', '.join(Channel.Kind.values)}."]})
            channel = Channel(kind=data.kind, owner_id=owner_id)
        channel.name = data.name
        channel.enabled = data.enabled
        if data.target:
            channel.target = data.target
            channel.hint = hint(channel.kind, data.target)
        elif not channel.pk:
            raise Invalid({"target": ["Give where it goes."]})
        channel.save()
        if owner_id is None and not Rule.objects.filter(channel=channel).exists():
            Rule.objects.create(channel=channel, kinds=default_kinds())
        after = channel_data(channel)
        verb = "notification.channel_changed" if before else "notification.channel_added"
        audit.record(actor, verb, channel, before=before, after=after)
        live.publish(
            "alerts",
            {
                "type": "notification.channel_saved",
                "actor": actor.as_dict(),
                "channel": {"id": channel.pk, **after},
                "created": before is None,
            },
            min_role="admin",
        )
    return channel


def save_push_channel(
    actor: Actor, owner_id: int, name: str, subscription: dict[str, object]
) -> Channel:
    """A browser's push subscription (checked by notifications.push.subscription) as a channel
    of its person's: the same endpoint again (the browser re-subscribed) replaces its keys."""
    target = json.dumps(subscription, separators=(",", ":"))
    endpoint = str(subscription["endpoint"])
    with transaction.atomic():
        for channel in Channel.objects.select_for_update(no_key=True).filter(
            owner_id=owner_id, kind=Channel.Kind.WEBPUSH
        ):
            if json.loads(channel.target or "{}").get("endpoint") == endpoint:
                return save_channel(
                    actor,
                    ChannelInput(kind=channel.kind, name=name, target=target),
                    owner_id=owner_id,
                    channel_id=channel.pk,
                )
        channel = save_channel(
            actor,
            ChannelInput(kind=Channel.Kind.WEBPUSH, name=name, target=target),
            owner_id=owner_id,
        )
        if not Rule.objects.filter(user_id=owner_id).exists():
            save_rule(actor, default_rule("UTC"), user_id=owner_id)
    return channel


def delete_channel(actor: Actor, channel_id: int, *, owner_id: int | None = None) -> None:
    with transaction.atomic():
        channel = Channel.objects.filter(pk=channel_id, owner_id=owner_id).first()
        if channel is None:
            return
        data = channel_data(channel)
        audit.record(actor, "notification.channel_deleted", channel, before=data)
        live.publish(
            "alerts",
            {
                "type": "notification.channel_deleted",
                "actor": actor.as_dict(),
                "channel": {"id": channel.pk, **data},
            },
            min_role="admin",
        )
        channel.delete()


def default_kinds() -> list[str]:
    """A new rule's kinds: all but tasks waiting for review (the board shows those)."""
    return [k for k in NOTIFY_KINDS if k != "review"]


@dataclass(frozen=True)
class RuleInput:
    kinds: tuple[str, ...]
    gateways: tuple[int, ...]
    max_severity: int
    quiet_start: time | None
    quiet_end: time | None
    time_zone: str
    urgent_in_quiet: bool
    digest: str
    resolved: bool
    coalesce_minutes: int


def default_rule(time_zone: str) -> RuleInput:
    """What a person's first channel follows until they say otherwise."""
    return RuleInput(
        kinds=tuple(default_kinds()),
        gateways=(),
        max_severity=3,
        quiet_start=None,
        quiet_end=None,
        time_zone=time_zone,
        urgent_in_quiet=True,
        digest="",
        resolved=True,
        coalesce_minutes=10,
    )


def rule_for(*, user_id: int | None = None, channel: Channel | None = None) -> Rule:
    """A person's (or team channel's) rule as stored, or a new one with the defaults."""
    found = Rule.objects.filter(user_id=user_id).first() if user_id is not None else None
    if channel is not None:
        found = Rule.objects.filter(channel=channel).first()
    return found or Rule(user_id=user_id, channel=channel, kinds=default_kinds())


def save_rule(
    actor: Actor, data: RuleInput, *, user_id: int | None = None, channel_id: int | None = None
) -> Rule:
    """A person's rule (user) or a team channel's (channel_id), checked: known kinds, a time
    zone the server knows, both ends of quiet hours or neither."""
    errors: dict[str, list[str]] = {}
    unknown = [k for k in data.kinds if k not in NOTIFY_KINDS]
    if unknown:
        errors["kinds"] = [f"Unknown kinds: {', '.join(unknown)}."]
    if (data.quiet_start is None) != (data.quiet_end is None):
        errors["quiet_end"] = ["Give both ends of the quiet hours, or neither."]
    if data.digest not in Rule.Digest.values:
        errors["digest"] = ["Choose how often."]
    try:
        zoneinfo.ZoneInfo(data.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        errors["time_zone"] = [f"{data.time_zone!r} is not a time zone this server knows."]
    if errors:
        raise Invalid(errors)
    with transaction.atomic():
        if channel_id is not None:
            channel = Channel.objects.filter(pk=channel_id, owner__isnull=True).first()
            if channel is None:
                raise Invalid({"__all__": ["That channel no longer exists."]})
            rule = Rule.objects.select_for_update(no_key=True).filter(channel=channel).first()
            rule = rule or Rule(channel=channel)
        elif user_id is not None:
            rule = Rule.objects.select_for_update(no_key=True).filter(user_id=user_id).first()
            rule = rule or Rule(user_id=user_id)
        else:
            raise Invalid({"__all__": ["A rule is a person's or a team channel's."]})
        before = rule_data(rule) if rule.pk else None
        rule.kinds = list(data.kinds)
        rule.gateways = list(data.gateways)
        rule.max_severity = data.max_severity
        rule.quiet_start, rule.quiet_end = data.quiet_start, data.quiet_end
        rule.time_zone = data.time_zone
        rule.urgent_in_quiet = data.urgent_in_quiet
        rule.digest = data.digest
        rule.resolved = data.resolved
        rule.coalesce_minutes = data.coalesce_minutes
        rule.save()
        audit.record(actor, "notification.rule_saved", rule, before=before, after=rule_data(rule))
    return rule


def rule_data(rule: Rule) -> dict[str, Any]:
    return {
        "kinds": list(rule.kinds),
        "gateways": list(rule.gateways),
        "max_severity": rule.max_severity,
        "quiet": f"{rule.quiet_start:%H:%M}–{rule.quiet_end:%H:%M}"
        if rule.quiet_start and rule.quiet_end
        else "",
        "time_zone": rule.time_zone,
        "urgent_in_quiet": rule.urgent_in_quiet,
        "digest": rule.digest,
        "resolved": rule.resolved,
        "coalesce_minutes": rule.coalesce_minutes,
    }


def send_test(actor: Actor, channel_id: int, *, owner_id: int | None = None) -> Message:
    """A test message to this channel only, due now."""
    now = timezone.now()
    with transaction.atomic():
        channel = Channel.objects.filter(pk=channel_id, owner_id=owner_id).first()
        if channel is None:
            raise Invalid({"__all__": ["That channel no longer exists."]})
        text = f"A test from Mission Control, sent by {actor.label}. This channel works."
        message = Message.objects.create(
            channel=channel,
            body={
                "kind": "test",
                "title": "Mission Control: a test message",
                "items": [
                    {
                        "transition": "test",
                        "key": "test",
                        "kind": "test",
                        "label": "Test",
                        "severity": 3,
                        "title": text,
                        "detail": "",
                        "url": public_url("/"),
                        "action": "Open Mission Control",
                        "gateway": "",
                        "since": now.isoformat(),
                        "resolved_at": None,
                    }
                ],
                "more": 0,
                "urgent": False,
                "url": public_url("/"),
                "at": now.isoformat(),
            },
            title="Mission Control: a test message",
            next_attempt_at=now,
            created_at=now,
        )
        audit.record(actor, "notification.test_sent", channel)
        _announce([message])
        transaction.on_commit(woken.set)
    return message


# --- The sender's side ---------------------------------------------------------------------------


def claim_due(limit: int, per_channel: int, busy: set[int]) -> list[Message]:
    ids = outbox_actions.claim_rows(Message, "channel_id", limit, per_channel, busy)
    return list(Message.objects.filter(pk__in=ids).select_related("channel").order_by("pk"))


def record_attempts(results: list[tuple[int, Outcome]]) -> dict[int, Message]:
    """Attempts' outcomes in one transaction: each message sent / retrying / failed, and each
    channel's health — disabled, audited and announced when it has kept failing."""
    if not results:
        return {}
    with transaction.atomic():
        ids = sorted({message_id for message_id, _outcome in results})
        messages = {
            m.pk: m
            for m in Message.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
        }
        health: dict[int, list[Outcome]] = {}
        pushed = set(
            Channel.objects.filter(
                pk__in={m.channel_id for m in messages.values()}, kind=Channel.Kind.WEBPUSH
            ).values_list("pk", flat=True)
        )
        gone: dict[int, Outcome] = {}
        for message_id, outcome in results:
            message = messages.get(message_id)
            if message is None:
                continue
            if message.channel_id in pushed and outcome.status_code in GONE:
                # The browser unsubscribed (or was reset): no retry will reach it.
                gone[message.channel_id] = outcome
                message.status = Message.Status.FAILED
                message.attempts += 1
                message.claimed_until = message.next_attempt_at = None
                message.finished_at = outcome.at
                message.last_error = _error(outcome)
                continue
            outbox_actions.next_state(message, outcome, SCHEDULE)
            message.last_error = "" if outcome.ok else _error(outcome)
            if message.body.get("kind") != "test":
                health.setdefault(message.channel_id, []).append(outcome)
        Message.objects.bulk_update(
            list(messages.values()),
            ["attempts", "claimed_until", "status", "next_attempt_at", "finished_at", "last_error"],
        )
        _announce([messages[k] for k in sorted(messages)])
        for channel_id in sorted(health):
            _health(channel_id, health[channel_id])
        for channel_id in sorted(gone):
            _disable(
                Channel.objects.select_for_update(no_key=True).get(pk=channel_id),
                f"The browser's push subscription ended (HTTP {gone[channel_id].status_code}): "
                "turn browser notifications on again in that browser.",
            )
    return messages


def _error(outcome: Outcome) -> str:
    if outcome.error:
        return outcome.error[:500]
    return f"HTTP {outcome.status_code}: {outcome.body[:200]}".strip()[:500]


def _health(channel_id: int, outcomes: list[Outcome]) -> None:
    channel = Channel.objects.select_for_update(no_key=True).filter(pk=channel_id).first()
    if channel is None:
        return
    reason = outbox_actions.health(channel, outcomes)
    last = outcomes[-1]
    channel.last_error = "" if last.ok else _error(last)
    fields = ["consecutive_failures", "failing_since", "last_success_at", "last_error"]
    channel.save(update_fields=fields)
    if reason:
        _disable(channel, reason)


def _disable(channel: Channel, reason: str) -> None:
    """A channel off, with the reason: audited and announced (locked by the caller)."""
    if not channel.enabled:
        return
    channel.enabled = False
    channel.disabled_reason = reason
    channel.save(update_fields=["enabled", "disabled_reason"])
    audit.record(
        Actor.system("notifications"),
        "notification.channel_disabled",
        channel,
        after={"reason": reason},
    )
    live.publish(
        "alerts",
        {
            "type": "notification.channel_disabled",
            "channel": {"id": channel.pk, **channel_data(channel)},
            "reason": reason,
        },
        min_role="admin",
    )


def prune(older_than: datetime) -> int:
    """Sent or failed messages older than this, and items resolved before it (with the rules'
    memories of them, when nothing newer was told)."""
    with transaction.atomic():
        deleted, _ = (
            Message.objects.exclude(status__in=Message.OPEN)
            .filter(created_at__lt=older_than)
            .delete()
        )
        Item.objects.filter(resolved_at__lt=older_than).delete()
        Told.objects.filter(at__lt=older_than).delete()
    return deleted
