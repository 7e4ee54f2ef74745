"""Notifications: channels (where a message goes: a team's Slack, a person's e-mail), rules
(what each person or team channel wants, and when), the items the evaluator last saw in Needs
attention, what each rule still owes (pending) and last told, and the outbox of messages with
their attempts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from missioncontrol.secretbox import SealedField
from webhooks.models import Outboxed


class Channel(models.Model):
    """Where messages go. A team channel (no owner) is set by admins and has its own rule; a
    person's channel (an owner) follows that person's rule. The target (a chat service's
    incoming-webhook URL, e-mail addresses, a browser's push subscription) is sealed at rest
    and never shown again in full."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        SLACK = "slack", "Slack"
        DISCORD = "discord", "Discord"
        TEAMS = "teams", "Microsoft Teams"
        NTFY = "ntfy", "ntfy"
        WEBPUSH = "webpush", "Browser push"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_channels",
    )
    target = SealedField()
    hint = models.CharField(max_length=120, blank=True)  # what is shown of the target
    enabled = models.BooleanField(default=True)
    # Health: kept by the sender's attempts (as webhook endpoints).
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class Rule(models.Model):
    """What one recipient wants: a person (all their channels) or a team channel."""

    class Digest(models.TextChoices):
        OFF = "", "Each as it happens"
        HOURLY = "hourly", "One summary an hour"
        DAILY = "daily", "One summary a day"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_rule",
    )
    channel = models.OneToOneField(
        Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="rule"
    )
    kinds = models.JSONField(default=list)  # overview.NOTIFY_KINDS keys
    gateways = models.JSONField(default=list)  # gateway ids; none: every one they may see
    # Items this severe or more (0 critical … 3 waiting on a person).
    max_severity = models.PositiveSmallIntegerField(default=3)
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    urgent_in_quiet = models.BooleanField(default=True)
    digest = models.CharField(max_length=8, choices=Digest.choices, default="", blank=True)
    resolved = models.BooleanField(default=True)  # a short "resolved" when it clears
    coalesce_minutes = models.PositiveSmallIntegerField(default=10)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, channel__isnull=True)
                | Q(user__isnull=True, channel__isnull=False),
                name="rule_one_owner",
            )
        ]

    def __str__(self) -> str:
        return f"rule of {self.user or self.channel}"


class Item(models.Model):
    """A Needs-attention item as the evaluator last saw it: open until it leaves the list."""

    key = models.CharField(max_length=200, unique=True)
    subject = models.CharField(max_length=200)  # the thing (a gateway), whatever the occurrence
    source = models.CharField(max_length=64)  # the provider that listed it
    kind = models.CharField(max_length=16)  # overview.NOTIFY_KINDS
    label = models.CharField(max_length=60)  # the overview's kind ("Gateway", "Agent error")
    severity = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=300)
    detail = models.CharField(max_length=1000, blank=True)
    url = models.CharField(max_length=500)
    action = models.CharField(max_length=60, blank=True)
    gateway_id = models.IntegerField(null=True, blank=True)
    gateway_name = models.CharField(max_length=100, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    # Who may see it (overview.Attention's audience fields).
    role = models.CharField(max_length=16, default="viewer")
    people = models.JSONField(default=list)
    operate = models.BooleanField(default=False)
    ungated = models.BooleanField(default=True)
    raised_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["key"], name="notify_item_open_idx", condition=Q(resolved_at__isnull=True)
            ),
            models.Index(fields=["resolved_at"], name="notify_item_resolved_idx"),
        ]

    def __str__(self) -> str:
        return self.key


class Pending(models.Model):
    """A transition a rule is owed, due when its quiet hours, digest or coalescing allow."""

    RAISED, RESOLVED = "raised", "resolved"

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="pending")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    transition = models.CharField(max_length=8)
    due_at = models.DateTimeField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "item", "transition"], name="notify_pending_once"
            )
        ]
        indexes = [models.Index(fields=["due_at"], name="notify_pending_due_idx")]

    def __str__(self) -> str:
        return f"{self.transition} {self.item_id} for rule {self.rule_id}"


class Told(models.Model):
    """What a rule was last told of a subject, and when (coalescing: at most one message per
    subject per the rule's window; nothing said twice)."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=200)
    key = models.CharField(max_length=200)  # the occurrence told of
    state = models.CharField(max_length=8)  # raised | resolved
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "subject"], name="notify_told_once")]

    def __str__(self) -> str:
        return f"rule {self.rule_id} told {self.subject} {self.state}"


class Message(Outboxed):
    """One message to one channel, sent as webhook deliveries are (the same dispatcher)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="messages")
    # {"kind": "notice" | "digest" | "test", "title", "items": [{…, "transition"}], …}
    body = models.JSONField()
    title = models.CharField(max_length=300)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="notify_message_due_idx",
                condition=Q(status__in=["pending", "retrying"]),
            ),
            models.Index(fields=["channel", "-created_at"], name="notify_message_channel_idx"),
            models.Index(fields=["created_at"], name="notify_message_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.title} → {self.channel_id} ({self.status})"


class PushKey(models.Model):
    """The installation's VAPID key pair (Web Push): made on first use, the private half sealed
    at rest like gateway tokens; browsers subscribe with the public half."""

    private_pem = SealedField()
    public_key = models.CharField(max_length=100)  # base64url, uncompressed P-256 point
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"VAPID key {self.public_key[:12]}…"
