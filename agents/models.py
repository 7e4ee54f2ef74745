from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

# 1–64 letters, digits, '.', '_', '-', starting with a letter or digit.
agent_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    "Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class AgentQuerySet(models.QuerySet["Agent"]):
    def by_name(self) -> AgentQuerySet:
        return self.order_by("name")


class Agent(models.Model):
    """An agent: from a gateway, or registered directly through the agent API."""

    class Status(models.TextChoices):
        BUSY = "busy", "Busy"
        IDLE = "idle", "Idle"
        ERROR = "error", "Error"
        STALE = "stale", "Stale"
        OFFLINE = "offline", "Offline"

    name = models.CharField(max_length=64, unique=True, validators=[agent_name_validator])
    framework = models.CharField(max_length=64, blank=True)
    role = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
