"""Every write about gateways: the registry (admins), the connector's state and health.

(What the connector ingests belongs to the apps that own it: a gateway's agents are written by
agents.actions, its usage by billing's actions; `gateways` core imports neither.)

Views, the admin, the connector and commands call these; none of them writes on its own. The
connector never holds a transaction across a gateway call: it calls the gateway, then one of
these with what came back.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from gateways import access, frames
from gateways.models import COLOURS, DeviceIdentity, Gateway, GatewayStateChange, GatewayView
from gateways.protocol import Hello, Identity
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.errors import Conflict, Invalid, NotFound

State = Gateway.State

# --- Events -------------------------------------------------------------------------------------


class GatewayData(TypedDict):
    """A gateway as events carry it: never its token, never host paths."""

    id: int
    name: str
    colour: str
    url: str
    enabled: bool
    state: str
    last_error: str
    remedy: str
    pairing_request_id: str
    server_version: str
    health: dict[str, Any]


class GatewayChanged(TypedDict):
    type: Literal["gateway.added", "gateway.updated", "gateway.deleted", "gateway.state_changed"]
    actor: audit.ActorData
    gateway: GatewayData
    before: str


def gateway_data(gateway: Gateway) -> GatewayData:
    return {
        "id": gateway.pk,
        "name": gateway.name,
        "colour": gateway.colour,
        "url": gateway.url,
        "enabled": gateway.enabled,
        "state": gateway.state,
        "last_error": gateway.last_error,
        "remedy": gateway.remedy,
        "pairing_request_id": gateway.pairing_request_id,
        "server_version": gateway.server_version,
        "health": gateway.health,
    }


def _publish(kind: str, actor: Actor, gateway: Gateway, before: str = "") -> None:
    event: GatewayChanged = {
        "type": kind,  # type: ignore[typeddict-item]
        "actor": actor.as_dict(),
        "gateway": gateway_data(gateway),
        "before": before,
    }
    live.publish("gateways", event, gateway_id=gateway.pk if kind != "gateway.deleted" else None)


# --- The registry (admins) ----------------------------------------------------------------------

_COLOURS = {value for value, _label in COLOURS}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$")


def check_url(url: str) -> str:
    """A gateway URL: ws:// or wss://, a host, no credentials or fragment."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname  # raises on a bracketed host that is no IPv6 address
    except ValueError:
        raise Invalid({"url": ["That is not a URL (check the host in brackets)."]}) from None
    if parts.scheme not in {"ws", "wss"} or not host:
        raise Invalid(
            {"url": ["Use the gateway's WebSocket URL: ws://host:18789/ or wss://host/."]}
        )
    if parts.username or parts.password:
        raise Invalid({"url": ["Put the token in the token field, not in the URL."]})
    if parts.fragment:
        raise Invalid({"url": ["A gateway URL has no #fragment."]})
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise Invalid({"url": ["The port must be a number from 1 to 65535."]}) from None
    return url


TOKEN_AGAIN = (
    "The address now points to another server: enter its token again, or clear the token "
    "(the stored one is not sent to a new address)."
)


def moves_away(gateway: Gateway, url: str) -> bool:
    """Whether `url` is another server than the gateway's (scheme, host or port): its stored
    token and pairing belong to the old one and are never sent there (a URL edited to a
    listener's, then Test connection, used to hand the token over)."""
    return _origin(url) != _origin(gateway.url)


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of a gateway URL (ws → 80, wss → 443 when not written)."""
    parts = urlsplit(url)
    try:
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        port, host = None, ""
    default = {"ws": 80, "wss": 443, "http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, host.lower(), port or default


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    if "name" in fields:
        name = str(fields["name"] or "").strip()
        if not _NAME_RE.match(name):
            errors["name"] = [
                "Use 1–40 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit."
            ]
        clean["name"] = name
    if "url" in fields:
        try:
            clean["url"] = check_url(fields["url"])
        except Invalid as bad:
            errors.update(bad.message_dict)
    if "colour" in fields:
        if fields["colour"] not in _COLOURS:
            errors["colour"] = ["Choose one of the listed colours."]
        clean["colour"] = fields["colour"]
    if "token" in fields:
        token = str(fields["token"] or "").strip()
        if len(token) > 500:
            errors["token"] = ["That token is too long (500 characters at most)."]
        clean["token"] = token
    if "enabled" in fields:
        clean["enabled"] = bool(fields["enabled"])
    if errors:
        raise Invalid(errors)
    return clean


def _shown(gateway: Gateway) -> dict[str, Any]:
    # The audit log shows what changed, never the token itself.
    return {
        "name": gateway.name,
        "url": gateway.url,
        "colour": gateway.colour,
        "enabled": gateway.enabled,
        "token": "set" if gateway.token else "none",
    }


def create_gateway(
    actor: Actor,
    *,
    name: str,
    url: str,
    token: str = "",
    colour: str = "blue",
    enabled: bool = True,
) -> Gateway:
    """Add a gateway; its connector starts within the supervisor's reconcile interval."""
    clean = _clean({"name": name, "url": url, "token": token, "colour": colour, "enabled": enabled})
    with transaction.atomic():
        if Gateway.objects.filter(name__iexact=clean["name"]).exists():
            raise Conflict("A gateway with that name exists already.")
        now = timezone.now()
        gateway = Gateway.objects.create(
            **clean,
            state=State.CONNECTING if clean["enabled"] else State.DISABLED,
            state_since=now,
        )
        GatewayStateChange.objects.create(gateway=gateway, state=gateway.state, at=now)
        audit.record(actor, "gateway.added", gateway, after=_shown(gateway), gateway_id=gateway.pk)
        _publish("gateway.added", actor, gateway)
    _wake()
    return gateway


class GrantChanged(TypedDict):
    """An admin granted a user `view` or `operate` on a gateway, or took it away (`none`)."""

    type: Literal["gateway.grant_changed"]
    actor: audit.ActorData
    gateway: dict[str, Any]
    user: dict[str, Any]
    level: str


class GatewayChanges(TypedDict, total=False):
    """What an edit of a gateway may change; each value checked by `update_gateway`."""

    name: str
    url: str
    colour: str
    token: str
    clear_token: bool
    enabled: bool


def update_gateway(actor: Actor, gateway_id: int, changes: GatewayChanges) -> Gateway:
    """Change a gateway's name, URL, colour, token or enabled flag (an empty token in
    `changes` means "keep the stored one"; `clear_token` removes it)."""
    wanted: dict[str, Any] = dict(changes)
    clear_token = bool(wanted.pop("clear_token", False))
    if "token" in wanted and not wanted["token"] and not clear_token:
        del wanted["token"]
    if clear_token:
        wanted["token"] = ""
    clean = _clean(wanted)
    with transaction.atomic():
        gateway = _lock(gateway_id)
        if (
            "name" in clean
            and Gateway.objects.filter(name__iexact=clean["name"]).exclude(pk=gateway.pk).exists()
        ):
            raise Conflict("A gateway with that name exists already.")
        moved = "url" in clean and moves_away(gateway, clean["url"])
        if moved and gateway.token and "token" not in clean:
            raise Invalid({"token": [TOKEN_AGAIN]})
        before = _shown(gateway)
        for field, value in clean.items():
            setattr(gateway, field, value)
        if moved and gateway.device_token:
            # The old server's pairing of this installation: a new server pairs anew.
            gateway.device_token = ""
            clean["device_token"] = ""
        after = _shown(gateway)
        token_changed = "token" in clean and clean["token"] != ""
        if before == after and not token_changed:
            return gateway
        fields = [*clean.keys(), "updated_at"]
        old_state = gateway.state
        if "enabled" in clean and clean["enabled"] != (old_state != State.DISABLED):
            gateway.state = State.CONNECTING if clean["enabled"] else State.DISABLED
            gateway.state_since = timezone.now()
            gateway.last_error = gateway.remedy = gateway.pairing_request_id = ""
            fields += ["state", "state_since", "last_error", "remedy", "pairing_request_id"]
            GatewayStateChange.objects.create(
                gateway=gateway, state=gateway.state, at=gateway.state_since
            )
        gateway.save(update_fields=fields)
        changed = {k: v for k, v in after.items() if before.get(k) != v}
        if token_changed:
            changed["token"] = "replaced"
        audit.record(
            actor,
            "gateway.updated",
            gateway,
            gateway_id=gateway.pk,
            before={k: before[k] for k in changed if k in before},
            after=changed,
        )
        _publish("gateway.updated", actor, gateway, before=old_state)
    _wake()
    return gateway


def delete_gateway(actor: Actor, gateway_id: int) -> None:
    """Remove a gateway; its agents and their history stay (unattached), as does its usage."""
    with transaction.atomic():
        gateway = _lock(gateway_id)
        audit.record(actor, "gateway.deleted", gateway, before=_shown(gateway))
        _publish("gateway.deleted", actor, gateway)
        gateway.delete()
    _wake()


def _lock(gateway_id: int) -> Gateway:
    try:
        return Gateway.objects.select_for_update(no_key=True).get(pk=gateway_id)
    except Gateway.DoesNotExist:
        raise NotFound("That gateway does not exist (any more).") from None


def _wake() -> None:
    """Tell this process's supervisor to reconcile gateways now (others poll every few s)."""
    from missioncontrol import supervisor

    transaction.on_commit(lambda: supervisor.wake_everywhere("gateways"))


# --- The connector's view -------------------------------------------------------------------


def record_state(
    gateway_id: int,
    state: str,
    *,
    detail: str = "",
    remedy: str = "",
    pairing_request_id: str = "",
) -> Gateway | None:
    """The connector's state of a gateway; a change is logged, audited (as the gateway) and
    published. None if the gateway is gone."""
    now = timezone.now()
    with transaction.atomic():
        try:
            gateway = Gateway.objects.select_for_update(no_key=True).get(pk=gateway_id)
        except Gateway.DoesNotExist:
            return None
        if not gateway.enabled and state != State.DISABLED:
            return gateway  # a connector still winding down after a disable
        if (gateway.state, gateway.last_error, gateway.remedy, gateway.pairing_request_id) == (
            state,
            detail[:500],
            remedy[:500],
            pairing_request_id,
        ):
            return gateway
        old = gateway.state
        gateway.state, gateway.last_error, gateway.remedy = state, detail[:500], remedy[:500]
        gateway.pairing_request_id = pairing_request_id
        fields = ["state", "last_error", "remedy", "pairing_request_id"]
        if old != state:
            gateway.state_since = now
            fields.append("state_since")
            GatewayStateChange.objects.create(
                gateway=gateway, state=state, detail=detail[:500], at=now
            )
            audit.record(
                Actor.gateway(gateway.name),
                "gateway.state_changed",
                gateway,
                gateway_id=gateway.pk,
                before={"state": old},
                after={"state": state, "detail": detail[:200]} if detail else {"state": state},
            )
        gateway.save(update_fields=fields)
        _publish("gateway.state_changed", Actor.gateway(gateway.name), gateway, before=old)
    return gateway


def record_hello(gateway_id: int, hello: Hello) -> Gateway | None:
    """Connected: what hello-ok said (version, scopes, missing features, a new device token)."""
    with transaction.atomic():
        try:
            gateway = Gateway.objects.select_for_update(no_key=True).get(pk=gateway_id)
        except Gateway.DoesNotExist:
            return None
        gateway.server_version = hello.version[:64]
        gateway.protocol = hello.protocol
        gateway.scopes = list(hello.scopes)
        gateway.missing_features = hello.missing_features()
        gateway.connected_at = timezone.now()
        fields = ["server_version", "protocol", "scopes", "missing_features", "connected_at"]
        if hello.device_token and hello.device_token != gateway.device_token:
            gateway.device_token = hello.device_token
            fields.append("device_token")
        gateway.save(update_fields=fields)
    return record_state(gateway_id, State.CONNECTED)


def record_health(gateway_id: int, summary: frames.GatewayHealth) -> None:
    """Fresh health figures (merged into what is known: a `health` event lacks `status`'s)."""
    with transaction.atomic():
        try:
            gateway = Gateway.objects.select_for_update(no_key=True).get(pk=gateway_id)
        except Gateway.DoesNotExist:
            return
        merged = {**gateway.health, **summary.known()}
        gateway.health, gateway.health_at = merged, timezone.now()
        gateway.save(update_fields=["health", "health_at"])
        _publish("gateway.state_changed", Actor.gateway(gateway.name), gateway, gateway.state)


# Reasons kept per kind on the gateway's page (the most frequent), and kinds.
SKIPPED_REASONS = 5
SKIPPED_KINDS = 40


def record_skipped(gateway_id: int, counts: dict[str, dict[str, int]]) -> None:
    """Add what the connector skipped of a gateway's frames ({kind: {reason: n}}) to what its
    page shows (bounded: the most frequent reasons of each kind)."""
    now = timezone.now().isoformat()
    with transaction.atomic():
        gateway = Gateway.objects.select_for_update(no_key=True).filter(pk=gateway_id).first()
        if gateway is None:
            return
        shown = dict(gateway.skipped or {})
        for kind, reasons in counts.items():
            entry = shown.get(kind) or {"count": 0, "reasons": {}}
            merged = dict(entry.get("reasons") or {})
            for reason, n in reasons.items():
                merged[reason] = merged.get(reason, 0) + n
            top = sorted(merged.items(), key=lambda kv: -kv[1])[:SKIPPED_REASONS]
            shown[kind] = {
                "count": entry.get("count", 0) + sum(reasons.values()),
                "reasons": dict(top),
                "at": now,
            }
        if len(shown) > SKIPPED_KINDS:
            latest = sorted(shown.items(), key=lambda kv: kv[1]["at"], reverse=True)
            shown = dict(latest[:SKIPPED_KINDS])
        gateway.skipped = shown
        gateway.save(update_fields=["skipped"])


# --- The device identity ------------------------------------------------------------------------


def device_identity() -> Identity:
    """This installation's Ed25519 identity, made (and stored sealed) on first use."""
    row = DeviceIdentity.objects.order_by("pk").first()
    if row is not None and row.private_key:
        return Identity.from_private(row.private_key)
    identity = Identity.generate()
    with transaction.atomic():
        row = DeviceIdentity.objects.select_for_update(no_key=True).order_by("pk").first()
        if row is not None and row.private_key:
            return Identity.from_private(row.private_key)
        if row is not None:
            row.delete()  # sealed with a lost key: a new identity (gateways pair it again)
        DeviceIdentity.objects.create(
            device_id=identity.device_id,
            public_key=identity.public_key,
            private_key=identity.private_b64u(),
        )
    return identity


def set_grant(actor: Actor, gateway: Gateway, user: AbstractBaseUser, level: str) -> None:
    """Grant a user `view` or `operate` on the gateway (narrowing them to the gateways granted,
    see gateways.access), or remove their grant (`none`); audited."""
    if level not in {"view", "operate", "none"}:
        raise Invalid({"level": ["Choose view, operate or none."]})
    from guardian.shortcuts import assign_perm, remove_perm

    with transaction.atomic():
        for codename in (access.VIEW, access.OPERATE):
            remove_perm(f"gateways.{codename}", user, gateway)
        if level in {"view", "operate"}:
            assign_perm(f"gateways.{access.VIEW}", user, gateway)
        if level == "operate":
            assign_perm(f"gateways.{access.OPERATE}", user, gateway)
        audit.record(
            actor,
            "gateway.grant_changed",
            gateway,
            after={"user": user.get_username(), "level": level},
            gateway_id=gateway.pk,
        )
        changed: GrantChanged = {
            "type": "gateway.grant_changed",
            "actor": actor.as_dict(),
            "gateway": {"id": gateway.pk, "name": gateway.name},
            "user": {"id": user.pk, "username": user.get_username()},
            "level": level,
        }
        live.publish("gateways", changed, min_role="admin", gateway_id=gateway.pk)
    access.forget(user)


def choose_view(user_id: int, gateway: Gateway | None) -> None:
    """The user's gateway switch: one gateway's data everywhere, or all (None)."""
    GatewayView.objects.update_or_create(user_id=user_id, defaults={"gateway": gateway})
