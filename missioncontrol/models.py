from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Who did what to which object, and when: one row for every mutation."""

    class ActorType(models.TextChoices):
        USER = "user", "User"
        AGENT = "agent", "Agent"
        GATEWAY = "gateway", "Gateway"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(auto_now_add=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The actor's name at the time (users get renamed, agents and gateways deleted).
    actor_label = models.CharField(max_length=150)
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    # The gateway whose data the change concerns (no FK: this app knows no other app), so a
    # user narrowed by per-gateway grants never sees another gateway's activity.
    gateway_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # History of one object ("task 12's history"), newest first.
            models.Index(fields=["object_type", "object_id", "-id"], name="audit_object_idx"),
            # Retention prunes by age.
            models.Index(fields=["created_at"], name="audit_created_idx"),
            # The audit log page filtered by verb (exact or a prefix such as `task.`).
            models.Index(fields=["verb", "-id"], name="audit_verb_idx"),
            # One gateway's entries (the audit log's gateway filter, a narrowed user's feed).
            models.Index(fields=["gateway_id", "-id"], name="audit_gateway_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.verb} {self.object_type}:{self.object_id}"


class LiveEvent(models.Model):
    """The event log: every change that reaches a browser, in global order (`seq`)."""

    class MinRole(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        OPERATOR = "operator", "Operator"
        ADMIN = "admin", "Admin"

    # SQLite AUTOINCREMENT never reuses a pruned id, and IMMEDIATE transactions commit in
    # seq order, so seq is the order clients see. (On PostgreSQL live.publish serialises
    # publishers with an advisory lock for the same guarantee.)
    seq = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64)
    topic = models.CharField(max_length=64)
    # seq of the previous event on the same topic: a receiver that did not see it lost one.
    prev_seq = models.BigIntegerField(null=True, blank=True)
    gateway_id = models.BigIntegerField(null=True, blank=True)
    min_role = models.CharField(max_length=16, choices=MinRole.choices, default=MinRole.VIEWER)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["seq"]
        indexes = [
            # Replay for a returning client: events of its topics after its last seq;
            # and prev_seq lookup of the newest event on a topic.
            models.Index(fields=["topic", "seq"], name="live_topic_seq_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type} → {self.topic}"


class Acknowledgement(models.Model):
    """An operator took one "Needs attention" item (by its occurrence key) off their overview,
    for a while (`until`) or until it changes (`until` null: a new occurrence has a new key)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One acknowledgement per user and item (acknowledging again replaces it).
            models.UniqueConstraint(fields=["user", "key"], name="ack_once_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class DeploymentFinding(models.Model):
    """A deployment mistake seen in real traffic (missioncontrol/deployment.py), with its fix."""

    code = models.CharField(max_length=32)
    detail = models.CharField(max_length=300)
    remedy = models.TextField()
    count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            # One row per mistake: every sighting counts on it.
            models.UniqueConstraint(fields=["code", "detail"], name="finding_once"),
        ]

    def __str__(self) -> str:
        return self.detail


class ExternalIdentity(models.Model):
    """A person known to the organisation's identity provider (OpenID Connect): its issuer and
    subject (`sub`, stable for the account there) name one local user. Sign-in finds the user by
    these, never by e-mail: an address the provider does not vouch for must not open someone
    else's account (missioncontrol/sso.py)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_signed_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "external identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="identity_once"),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject}"


class ApiToken(models.Model):
    """A person's API token (`mct_<prefix>_<secret>`): the operator API acts as that person, with
    their role and gateway grants. Only the secret's SHA-256 is kept; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"mct_{self.prefix}_… ({self.user})"
