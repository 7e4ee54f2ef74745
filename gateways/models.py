"""Gateways: the OpenClaw gateways Mission Control connects to, and what it knows of each."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from missioncontrol.secretbox import SealedField

# The badge colours: a fixed palette that reads on light and dark (text colour chosen per badge
# in CSS), rather than any hex an admin types (which could be unreadable on one theme).
COLOURS = [
    ("blue", "Blue"),
    ("teal", "Teal"),
    ("green", "Green"),
    ("amber", "Amber"),
    ("orange", "Orange"),
    ("red", "Red"),
    ("pink", "Pink"),
    ("violet", "Violet"),
    ("slate", "Slate"),
]

gateway_name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$",
    "Use 1–40 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit.",
)


class GatewayQuerySet(models.QuerySet["Gateway"]):
    def enabled(self) -> GatewayQuerySet:
        return self.filter(enabled=True)


class Gateway(models.Model):
    """One OpenClaw gateway: where it is, how to sign in, and the connector's view of it."""

    class State(models.TextChoices):
        CONNECTING = "connecting", "Connecting"
        CONNECTED = "connected", "Connected"
        PAIRING_REQUIRED = "pairing_required", "Pairing required"
        AUTH_FAILED = "auth_failed", "Token rejected"
        PROTOCOL_MISMATCH = "protocol_mismatch", "Protocol mismatch"
        UNREACHABLE = "unreachable", "Unreachable"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=40, unique=True, validators=[gateway_name_validator])
    colour = models.CharField(max_length=16, choices=COLOURS, default="blue")
    url = models.CharField(max_length=500, help_text="ws://host:port/ or wss://host/")
    # The gateway's shared secret (gateway.auth.token): sealed at rest, never sent to a browser.
    token = SealedField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What the connector last saw (written only by gateways.actions.record_state / record_health).
    state = models.CharField(max_length=24, choices=State.choices, default=State.CONNECTING)
    state_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    remedy = models.CharField(max_length=500, blank=True)
    pairing_request_id = models.CharField(max_length=80, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    server_version = models.CharField(max_length=64, blank=True)
    protocol = models.PositiveSmallIntegerField(null=True, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    # Features the gateway lacks (a method missing from hello-ok.features.methods): {feature: why}.
    missing_features = models.JSONField(default=dict, blank=True)
    # Health as shown: version, uptime, event-loop delay, memory, agent and session counts
    # (no host paths: those never leave the connector).
    health = models.JSONField(default=dict, blank=True)
    health_at = models.DateTimeField(null=True, blank=True)
    # What the connector left out of this gateway's frames (values no reader could use):
    # {kind: {"count": n, "reasons": {reason: n}, "at": iso time of the latest}}.
    skipped = models.JSONField(default=dict, blank=True)
    # The device token the gateway issued to this installation's device identity (after pairing).
    device_token = SealedField(blank=True, default="")

    objects = GatewayQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [
            # Per-gateway grant (django-guardian): act on this gateway's agents and sessions.
            ("operate_gateway", "Can message and act on this gateway's agents and sessions"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def fingerprint(self) -> tuple[str, str, bool]:
        """What restarts its connector when changed (the URL or token)."""
        return (self.url, self.token, self.enabled)


class GatewayStateChange(models.Model):
    """One step of a gateway's connection history (the log on its page)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="state_changes")
    state = models.CharField(max_length=24, choices=Gateway.State.choices)
    detail = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # The gateway page's log: newest changes of one gateway.
            models.Index(fields=["gateway", "-at"], name="gw_state_log_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway_id} → {self.state}"


class DeviceIdentity(models.Model):
    """This installation's Ed25519 device identity (one row): the gateways know it by its id."""

    device_id = models.CharField(max_length=64, unique=True)
    public_key = models.CharField(max_length=64)
    private_key = SealedField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "device identities"

    def __str__(self) -> str:
        return self.device_id[:12]


class GatewayView(models.Model):
    """A user's choice in the shell's gateway switch: one gateway, or all (None)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_view"
    )
    gateway = models.ForeignKey(Gateway, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self) -> str:
        return f"{self.user_id} → {self.gateway_id or 'all'}"


class ExecApproval(models.Model):
    """A command an agent of a gateway asks to run, waiting for a person (OpenClaw exec
    approvals): mirrored from the gateway's events and `exec.approval.list`; answered here or on
    the gateway — the gateway records the first answer, and this row says which it was."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        ALLOWED = "allowed", "Allowed"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="exec_approvals")
    external_id = models.CharField(max_length=200)
    command = models.TextField()
    cwd = models.CharField(max_length=500, blank=True)
    agent_external_id = models.CharField(max_length=128, blank=True)
    session_key = models.CharField(max_length=300, blank=True)
    host = models.CharField(max_length=50, blank=True)
    warning = models.CharField(max_length=1000, blank=True)
    allowed = models.JSONField(default=list)  # the decisions it takes
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decision = models.CharField(max_length=30, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "external_id"], name="exec_approval_unique")
        ]
        indexes = [
            models.Index(
                fields=["gateway", "requested_at"],
                name="exec_approval_pending_idx",
                condition=Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.gateway_id}:{self.external_id}"
