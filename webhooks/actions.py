"""Webhook actions: every write of the webhooks app (endpoints, deliveries, attempts) is here,
each one transaction, audited where a person acted."""

from __future__ import annotations

import base64
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.db import bulk
from webhooks import events, outbox
from webhooks.models import Attempt, Delivery, Endpoint

# After the n-th failed attempt, the next one waits SCHEDULE[n - 1] seconds (±10 %); after the
# last, the delivery has failed: eight attempts over about 28 hours.
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
RESPONSE_KEPT = 4096  # bytes of a response body kept with its attempt
# An endpoint is disabled when it keeps failing: this many failed attempts in a row, or
# failing for this long with no success between (documented in docs/webhooks.md).
DISABLE_AFTER_FAILURES = 20
DISABLE_AFTER = timedelta(hours=24)
ROTATION_GRACE = timedelta(hours=24)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_data(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as the audit log keeps it (never its secret)."""
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
    }


def save_endpoint(actor: Actor, endpoint: Endpoint) -> Endpoint:
    """Create (with a new secret) or change an endpoint; re-enabling clears its failure run."""
    with transaction.atomic():
        before = None
        if endpoint.pk:
            old = Endpoint.objects.select_for_update(no_key=True).get(pk=endpoint.pk)
            before = endpoint_data(old)
            if endpoint.enabled and not old.enabled:
                endpoint.consecutive_failures = 0
                endpoint.failing_since = None
                endpoint.disabled_reason = ""
        else:
            endpoint.secret = new_secret()
        endpoint.save()
        verb = "webhook.endpoint_changed" if before else "webhook.endpoint_added"
        audit.record(actor, verb, endpoint, before=before, after=endpoint_data(endpoint))
        saved: events.EndpointSaved = {
            "type": "webhook.endpoint_saved",
            "actor": actor.as_dict(),
            "endpoint": {"id": endpoint.pk, **endpoint_data(endpoint)},
            "created": before is None,
        }
        live.publish("alerts", saved, min_role="admin")
    return endpoint


def delete_endpoint(actor: Actor, endpoint: Endpoint) -> None:
    with transaction.atomic():
        audit.record(actor, "webhook.endpoint_deleted", endpoint, before=endpoint_data(endpoint))
        deleted: events.EndpointDeleted = {
            "type": "webhook.endpoint_deleted",
            "actor": actor.as_dict(),
            "endpoint": {"id": endpoint.pk, **endpoint_data(endpoint)},
        }
        live.publish("alerts", deleted, min_role="admin")
        endpoint.delete()


def secret_viewed(actor: Actor, endpoint: Endpoint) -> None:
    """An admin asked to see an endpoint's secret: audited."""
    with transaction.atomic():
        audit.record(actor, "webhook.secret_viewed", endpoint)


def rotate_secret(actor: Actor, endpoint_id: int) -> Endpoint:
    """A new signing secret; the old one signs too (a second signature) for ROTATION_GRACE."""
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update(no_key=True).get(pk=endpoint_id)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_until = timezone.now() + ROTATION_GRACE
        endpoint.secret = new_secret()
        endpoint.save(update_fields=["secret", "previous_secret", "previous_until"])
        audit.record(
            actor,
            "webhook.secret_rotated",
            endpoint,
            after={"previous_valid_until": endpoint.previous_until.isoformat()},
        )
    return endpoint


def send_test(actor: Actor, endpoint_id: int) -> Delivery:
    """A `webhook.test` delivery to this endpoint only, due now."""
    now = timezone.now()
    with transaction.atomic():
        endpoint = Endpoint.objects.get(pk=endpoint_id)
        delivery = Delivery.objects.create(
            endpoint=endpoint,
            event_type=outbox.TEST,
            payload=outbox.body(
                outbox.TEST, now, {"endpoint_id": endpoint.pk, "sent_by": actor.label}
            ),
            next_attempt_at=now,
            created_at=now,
        )
        audit.record(actor, "webhook.test_sent", endpoint)
        live.publish("alerts", events.deliveries_changed([delivery]), min_role="admin")
        transaction.on_commit(outbox.woken.set)
    return delivery


def redeliver(actor: Actor, deliveries: list[int]) -> int:
    """Send these deliveries again from now (same body, same webhook id); the number queued.
    A delivery on its way now is left to finish."""
    now = timezone.now()
    with transaction.atomic():
        queued = (
            Delivery.objects.filter(pk__in=deliveries)
            .exclude(status__in=Delivery.OPEN, claimed_until__gt=now)
            .update(
                status=Delivery.Status.PENDING,
                next_attempt_at=now,
                claimed_until=None,
                finished_at=None,
            )
        )
        if queued:
            audit.record(
                actor,
                "webhook.redelivered",
                object_type="webhooks.delivery",
                object_repr=f"{queued} deliveries",
                after={"deliveries": deliveries[:100], "queued": queued},
            )
            transaction.on_commit(outbox.woken.set)
    return queued


def redeliver_failed(actor: Actor, endpoint_id: int | None, since: datetime) -> int:
    """Every failed delivery since a time (of one endpoint, or all) sent again."""
    failed = Delivery.objects.filter(status=Delivery.Status.FAILED, created_at__gte=since)
    if endpoint_id is not None:
        failed = failed.filter(endpoint_id=endpoint_id)
    return redeliver(actor, list(failed.values_list("pk", flat=True)[:10_000]))


def cancel(actor: Actor, deliveries: list[int]) -> int:
    """Stop the retries of these open deliveries; the number cancelled."""
    with transaction.atomic():
        cancelled = (
            Delivery.objects.open()
            .filter(pk__in=deliveries)
            .update(
                status=Delivery.Status.CANCELLED, next_attempt_at=None, finished_at=timezone.now()
            )
        )
        if cancelled:
            audit.record(
                actor,
                "webhook.cancelled",
                object_type="webhooks.delivery",
                object_repr=f"{cancelled} deliveries",
                after={"deliveries": deliveries[:100], "cancelled": cancelled},
            )
    return cancelled


# --- The dispatcher's side ------------------------------------------------------------------------


def claim_due(limit: int, per_endpoint: int, busy: set[int]) -> list[Delivery]:
    """Up to `limit` due deliveries (at most `per_endpoint` of each endpoint, none of the `busy`
    ones), claimed for MC_WEBHOOK_CLAIM_S."""
    claimed = claim_rows(Delivery, "endpoint_id", limit, per_endpoint, busy)
    return list(Delivery.objects.filter(pk__in=claimed).select_related("endpoint").order_by("pk"))


def claim_rows(
    model: type[models.Model], target: str, limit: int, per_target: int, busy: set[int]
) -> list[int]:
    """The ids of up to `limit` due rows of an outbox table (`status`, `next_attempt_at`,
    `claimed_until`; at most `per_target` of each `target` column's value, none of the `busy`
    ones), claimed for MC_WEBHOOK_CLAIM_S: a conditional UPDATE, so two dispatchers never take
    the same one (on PostgreSQL the second waits for the first's row lock, then sees the
    claim). Webhook deliveries and notification messages share it."""
    now = timezone.now()
    table = model._meta.db_table
    at = connection.ops.adapt_datetimefield_value(now)
    skip = f"AND {target} NOT IN ({', '.join(['%s'] * len(busy))})" if busy else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY {target} "  # noqa: S608 - placeholders only
            f"ORDER BY next_attempt_at, id) AS n FROM {table} WHERE status IN ('pending', "
            "'retrying') AND next_attempt_at <= %s AND (claimed_until IS NULL OR "
            f"claimed_until < %s) {skip}) q WHERE n <= %s ORDER BY id LIMIT %s",
            [at, at, *sorted(busy), per_target, limit],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return []
        claim = timedelta(seconds=settings.MC_WEBHOOK_CLAIM_S)
        until = connection.ops.adapt_datetimefield_value(now + claim)
        cursor.execute(
            f"UPDATE {table} SET claimed_until = %s WHERE id IN ({', '.join(['%s'] * len(ids))}) "  # noqa: S608 - placeholders only
            "AND status IN ('pending', 'retrying') AND (claimed_until IS NULL OR "
            "claimed_until < %s) RETURNING id",
            [until, *ids, at],
        )
        return [row[0] for row in cursor.fetchall()]


@dataclass
class Outcome:
    """What one attempt got: an HTTP status (with headers and the start of the body), or an
    error (refused, unreachable, timed out)."""

    at: datetime
    duration_ms: int
    status_code: int | None = None
    headers: dict[str, str] | None = None
    body: str = ""
    error: str = ""
    sent: bool = False  # handed over by something that is not HTTP (an SMTP server took it)

    @property
    def ok(self) -> bool:
        return self.sent or (self.status_code is not None and 200 <= self.status_code < 300)


def record_attempt(delivery_id: int, outcome: Outcome) -> Delivery | None:
    """record_attempts for one."""
    return record_attempts([(delivery_id, outcome)]).get(delivery_id)


def record_attempts(results: list[tuple[int, Outcome]]) -> dict[int, Delivery]:
    """Attempts' outcomes, in one transaction (the dispatcher hands over what finished since
    its last write): the attempt rows, each delivery delivered / retrying (next time from
    SCHEDULE) / failed, and each endpoint's health — disabled, audited and announced when it
    has kept failing. Deliveries deleted meanwhile are skipped."""
    if not results:
        return {}
    with transaction.atomic():
        ids = sorted({delivery_id for delivery_id, _outcome in results})
        deliveries = {
            d.pk: d
            for d in Delivery.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
        }
        attempts: list[Attempt] = []
        health: dict[int, list[Outcome]] = {}
        for delivery_id, outcome in results:
            delivery = deliveries.get(delivery_id)
            if delivery is None:
                continue
            attempts.append(
                Attempt(
                    delivery=delivery,
                    at=outcome.at,
                    duration_ms=outcome.duration_ms,
                    status_code=outcome.status_code,
                    response_headers=outcome.headers or {},
                    response_body=outcome.body[:RESPONSE_KEPT],
                    error=outcome.error[:500],
                )
            )
            next_state(delivery, outcome, SCHEDULE)
            if delivery.event_type != outbox.TEST:
                health.setdefault(delivery.endpoint_id, []).append(outcome)
        Attempt.objects.bulk_create(attempts)
        bulk.update_many(
            list(deliveries.values()),
            ["attempts", "claimed_until", "status", "next_attempt_at", "finished_at"],
        )
        for endpoint_id in sorted(health):
            _health(endpoint_id, health[endpoint_id])
        live.publish(
            "alerts",
            events.deliveries_changed([deliveries[k] for k in sorted(deliveries)]),
            min_role="admin",
        )
    return deliveries


class Retried(Protocol):
    """An outbox row (a delivery, a notification message)."""

    status: str
    attempts: int
    claimed_until: datetime | None
    next_attempt_at: datetime | None
    finished_at: datetime | None


def next_state(row: Retried, outcome: Outcome, schedule: tuple[int, ...]) -> None:
    """An outbox row after an attempt: delivered, retrying (after the schedule's next wait,
    ±10 %), or failed when the schedule has run out; a cancelled one stays cancelled."""
    row.attempts += 1
    row.claimed_until = None
    if row.status == Delivery.Status.CANCELLED:
        return  # cancelled while on its way: the attempt is kept, nothing more is sent
    if outcome.ok:
        row.status = Delivery.Status.DELIVERED
        row.next_attempt_at = None
        row.finished_at = outcome.at
    elif row.attempts > len(schedule):
        row.status = Delivery.Status.FAILED
        row.next_attempt_at = None
        row.finished_at = outcome.at
    else:
        wait = schedule[row.attempts - 1] * random.uniform(0.9, 1.1)
        row.status = Delivery.Status.RETRYING
        row.next_attempt_at = outcome.at + timedelta(seconds=wait)


class Healthy(Protocol):
    """A target that is disabled when it keeps failing (an endpoint, a channel)."""

    enabled: bool
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None


def health(target: Healthy, outcomes: list[Outcome]) -> str:
    """A target's health after these outcomes (in order); the reason to disable it now, when it
    has kept failing (DISABLE_AFTER_FAILURES in a row, or for DISABLE_AFTER), else ""."""
    for outcome in outcomes:
        if outcome.ok:
            target.consecutive_failures = 0
            target.failing_since = None
            target.last_success_at = outcome.at
        else:
            target.consecutive_failures += 1
            target.failing_since = target.failing_since or outcome.at
    last = outcomes[-1]
    long_failing = (
        target.failing_since is not None and last.at - target.failing_since >= DISABLE_AFTER
    )
    if not (
        target.enabled
        and not last.ok
        and (target.consecutive_failures >= DISABLE_AFTER_FAILURES or long_failing)
    ):
        return ""
    from missioncontrol.templatetags.mc import duration_text

    span = duration_text(last.at - (target.failing_since or last.at))
    error = (last.error or f"HTTP {last.status_code}").rstrip(".")
    return (
        f"Disabled automatically after {target.consecutive_failures} failed attempts in a "
        f"row over {span}; the last: {error}."
    )[:300]


def _health(endpoint_id: int, outcomes: list[Outcome]) -> None:
    """An endpoint's health after these outcomes (in order), and the auto-disable rule."""
    endpoint = Endpoint.objects.select_for_update(no_key=True).filter(pk=endpoint_id).first()
    if endpoint is None:
        return
    reason = health(endpoint, outcomes)
    fields = ["consecutive_failures", "failing_since", "last_success_at"]
    if reason:
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        fields += ["enabled", "disabled_reason"]
        endpoint.save(update_fields=fields)
        audit.record(
            Actor.system("webhook dispatcher"),
            "webhook.endpoint_disabled",
            endpoint,
            after={"reason": reason},
        )
        live.publish("alerts", events.endpoint_disabled(endpoint, reason), min_role="admin")
        return
    endpoint.save(update_fields=fields)


def prune(older_than: datetime) -> int:
    """Delivery history older than this (finished ones only), with its attempts."""
    finished = Delivery.objects.exclude(status__in=Delivery.OPEN).filter(created_at__lt=older_than)
    deleted, _ = finished.delete()
    return deleted
