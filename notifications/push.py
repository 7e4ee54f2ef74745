"""Web Push (core): the installation's VAPID keys, a browser's subscription checked, and one
message encrypted for it (RFC 8291 aes128gcm, by pywebpush) with its VAPID signature (RFC 8292,
by py-vapid). The request itself goes through the webhooks' SSRF-guarded POST (the sender)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from notifications.models import PushKey

MAX_PAYLOAD = 3000  # bytes of JSON before encryption (push services take about 4 KB)
TTL_S = 24 * 3600  # a push service keeps it this long for a browser that is offline


class BadSubscription(ValueError):
    """A subscription a browser did not make (no https endpoint, keys missing or malformed)."""


def keys() -> PushKey:
    """The VAPID key pair, made the first time it is asked for (one per installation, whichever
    process gets there first)."""
    found = PushKey.objects.order_by("pk").first()
    if found is not None:
        return found
    from cryptography.hazmat.primitives import serialization
    from py_vapid import Vapid

    vapid = Vapid()
    vapid.generate_keys()
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    try:
        with transaction.atomic():
            return PushKey.objects.create(
                pk=1,
                private_pem=vapid.private_pem().decode(),
                public_key=base64.urlsafe_b64encode(public).decode().rstrip("="),
            )
    except IntegrityError:  # another process made it meanwhile
        return PushKey.objects.get(pk=1)


def _b64(value: Any, length: int | None, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(str(value) + "=" * (-len(str(value)) % 4))
    except (ValueError, TypeError):
        raise BadSubscription(f"{what} is not base64url.") from None
    if length is not None and len(raw) != length:
        raise BadSubscription(f"{what} has {len(raw)} bytes, not {length}.")
    return raw


def subscription(data: Any) -> dict[str, Any]:
    """A PushSubscription's JSON (`{"endpoint", "keys": {"p256dh", "auth"}}`) as stored, checked."""
    if not isinstance(data, dict):
        raise BadSubscription("Send the subscription as a JSON object.")
    endpoint = data.get("endpoint")
    keys_ = data.get("keys")
    if not isinstance(endpoint, str) or len(endpoint) > 1000:
        raise BadSubscription("The subscription has no endpoint.")
    parts = urlsplit(endpoint)
    insecure_ok = settings.MC_WEBHOOK_ALLOW_PRIVATE  # a local push service, in tests
    if parts.scheme != "https" and not (insecure_ok and parts.scheme == "http"):
        raise BadSubscription("A push endpoint is an https:// URL.")
    if not isinstance(keys_, dict):
        raise BadSubscription("The subscription has no keys.")
    p256dh = _b64(keys_.get("p256dh"), 65, "keys.p256dh")
    if p256dh[0] != 4:
        raise BadSubscription("keys.p256dh is not an uncompressed P-256 point.")
    _b64(keys_.get("auth"), 16, "keys.auth")
    return {"endpoint": endpoint, "keys": {"p256dh": keys_["p256dh"], "auth": keys_["auth"]}}


def payload(body: dict[str, Any]) -> bytes:
    """What the service worker shows: a title, the lines, the link, a tag (a newer message
    replaces an older one of the same tag), within the push services' size."""
    items = body["items"]
    lines = []
    for line in items[:6]:
        text = line["title"] if line["transition"] != "resolved" else f"Resolved — {line['title']}"
        lines.append(text + (f": {line['detail']}" if line.get("detail") else ""))
    more = len(items) - 6 + body.get("more", 0)
    if more > 0:
        lines.append(f"and {more} more")
    data = {
        "title": body["title"],
        "body": "\n".join(lines),
        "url": items[0]["url"] if len(items) == 1 else body["url"],
        "tag": items[0]["key"] if len(items) == 1 else "mission-control",
        "urgent": bool(body.get("urgent")),
    }
    encoded = json.dumps(data, ensure_ascii=False).encode()
    while len(encoded) > MAX_PAYLOAD and data["body"]:
        data["body"] = data["body"][: len(data["body"]) // 2] + "…"
        encoded = json.dumps(data, ensure_ascii=False).encode()
    return encoded


def request(target: str, body: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """(the push endpoint, the encrypted body, the headers) of one message for a stored
    subscription (`target`, its JSON)."""
    from py_vapid import Vapid
    from pywebpush import WebPusher

    sub = json.loads(target)
    encrypted = WebPusher(sub).encode(payload(body), content_encoding="aes128gcm")["body"]
    parts = urlsplit(sub["endpoint"])
    vapid = Vapid.from_pem(keys().private_pem.encode())
    signed = vapid.sign(
        {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + 12 * 3600,
            "sub": _contact(),
        }
    )
    headers = {
        "content-type": "application/octet-stream",
        "content-encoding": "aes128gcm",
        "ttl": str(TTL_S),
        "urgency": "high" if body.get("urgent") else "normal",
        "authorization": signed["Authorization"],
    }
    return sub["endpoint"], encrypted, headers


def _contact() -> str:
    """VAPID's `sub`: how a push service reaches the operator (the From address, else the
    installation's URL)."""
    from email.utils import parseaddr

    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    if address and not address.endswith("@localhost"):
        return f"mailto:{address}"
    return (
        settings.MC_PUBLIC_URL
        if settings.MC_PUBLIC_URL.startswith("https:")
        else "mailto:admin@example.com"
    )
