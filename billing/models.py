from __future__ import annotations

from django.db import models
from django.db.models import Q

from agents.models import Agent


class UsageRecord(models.Model):
    """Token usage of one model call (or one reported batch), kept with its token counts so a
    reprice can recompute cost exactly."""

    # No index of its own: usage_agent_time_idx and the unique constraint both start with it
    # (one B-tree fewer to update per record on the heartbeat path).
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="usage", db_index=False)
    # The client's idempotency key: a record with the same id for the same agent counts once.
    # NULL, not "": records without an id must not collide in the unique constraint.
    client_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    model = models.CharField(max_length=128)
    provider = models.CharField(max_length=64, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    # As reported by the agent; the computed cost and its price version arrive with billing.
    reported_cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    price_version = models.CharField(max_length=32, blank=True)
    session = models.CharField(max_length=128, blank=True)
    task_id = models.BigIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "client_id"],
                condition=Q(client_id__isnull=False),
                name="usage_agent_client_id_uniq",
            )
        ]
        indexes = [
            # Usage of one agent over time (agent page, per-agent costs).
            models.Index(fields=["agent", "occurred_at"], name="usage_agent_time_idx"),
            # Per-day and per-model totals.
            models.Index(fields=["occurred_at"], name="usage_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.input_tokens}+{self.output_tokens}"
