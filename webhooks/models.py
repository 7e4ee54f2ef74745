"""Outbound webhooks: endpoints (who wants which events), deliveries (one event to one endpoint,
retried until delivered or given up) and each delivery's attempts."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from missioncontrol.secretbox import SealedField


class Endpoint(models.Model):
    """A URL subscribed to event types (patterns: `task.*`, `*`, or a type), with its signing
    secret (sealed at rest; during a rotation the previous one signs too until `previous_until`)."""

    url = models.URLField("URL", max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    secret = SealedField()
    previous_secret = SealedField(blank=True, default="")
    previous_until = models.DateTimeField(null=True, blank=True)
    # Health: kept by the dispatcher's attempts.
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url", "pk"]

    def __str__(self) -> str:
        return self.description or self.url


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def open(self) -> DeliveryQuerySet:
        return self.filter(status__in=Delivery.OPEN)


class Outboxed(models.Model):
    """A row of an outbox the dispatcher sends (webhooks.dispatcher): a webhook delivery, a
    notification message. Sent until its target takes it (delivered), or the retry schedule runs
    out (failed), or someone cancels it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.PENDING, Status.RETRYING)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A dispatcher holds it until then (a dispatcher that died lets it go when this passes).
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class Delivery(Outboxed):
    """One event for one endpoint. Its webhook id (`msg_<pk>`) is the same on every attempt, so
    a receiver can drop a repeat."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_seq = models.BigIntegerField(null=True, blank=True)  # the LiveEvent; None: a test event
    event_type = models.CharField(max_length=64)
    # The body as sent: {"type", "timestamp", "data"} (the domain event's data).
    payload = models.JSONField()

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The dispatcher's work queue: open deliveries by when they are due.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due_idx",
                condition=Q(status__in=["pending", "retrying"]),
            ),
            # An endpoint's history, newest first.
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_idx"),
            # The history across endpoints, and pruning by age.
            models.Index(fields=["created_at"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.pk}"


class Attempt(models.Model):
    """One POST of a delivery: what came back, or why nothing did."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)  # the first RESPONSE_KEPT bytes
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.delivery_id} at {self.at:%H:%M:%S}: {self.status_code or self.error}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
