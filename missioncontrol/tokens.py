"""People's API tokens (`mct_<prefix>_<secret>`): the operator API and automations act as the
person who made the token — their role and gateway grants, checked on every request, so a
person deactivated, demoted or narrowed is so for their tokens at once. Issued shown once
(only the SHA-256 of the secret is kept), revocable, with an optional expiry; each issue and
revocation audited. An agent's key (`mc_…`) is another thing (agents/keys.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from missioncontrol import audit, ratelimit
from missioncontrol.errors import Forbidden, Invalid, NotFound, RateLimited, Unauthenticated
from missioncontrol.models import ApiToken
from missioncontrol.roles import role_of

TOKEN_RE = re.compile(r"^mct_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_ALPHABET = string.ascii_letters + string.digits
# "Last used" is written at most this often per token (not on every request).
USED_EVERY = timedelta(minutes=1)
MAX_DAYS = 3650
RATE_PER_S, RATE_BURST = 20.0, 60.0
_bucket = ratelimit.TokenBucket("person-token", RATE_PER_S, RATE_BURST)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def is_token(raw: str | None) -> bool:
    """Whether a bearer credential is a person's token (and not an agent's key)."""
    return bool(raw) and str(raw).startswith("mct_")


def bearer(authorization: str | None) -> str:
    raw = authorization or ""
    return raw[7:].strip() if raw[:7].lower() == "bearer " else ""


def issue(
    actor: audit.Actor, user: Any, *, name: str = "", days: int | None = None
) -> tuple[ApiToken, str]:
    """A new token for `user`: (row, the full token — shown once)."""
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise Invalid({"days": [f"Between 1 and {MAX_DAYS} days, or none."]})
    name = (name or "").strip()
    if len(name) > 100:
        raise Invalid({"name": ["At most 100 characters."]})
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            secret_hash=_hash(secret),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        audit.record(
            actor,
            "api_token.issued",
            token,
            object_repr=f"mct_{prefix}_… ({user.get_username()})",
            after={
                "name": name,
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            },
        )
    return token, f"mct_{prefix}_{secret}"


def revoke(actor: audit.Actor, token_id: int, *, owner: Any | None = None) -> ApiToken:
    """Revoke a token (its owner's, when `owner` is given: people revoke only their own)."""
    with transaction.atomic():
        rows = ApiToken.objects.select_for_update(no_key=True).filter(pk=token_id)
        if owner is not None:
            rows = rows.filter(user=owner)
        token = rows.first()
        if token is None:
            raise NotFound("That token does not exist.")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit.record(actor, "api_token.revoked", token, object_repr=str(token))
    return token


def authenticate(
    authorization: str | None,
    *,
    least: str = "viewer",
    known: dict[str, tuple[int, Any]] | None = None,
) -> Any:
    """The person a request's token acts as, with at least the role `least`; raises
    Unauthenticated (no, unknown, revoked or expired token, or a deactivated person), Forbidden
    (a role below `least`) or RateLimited. `known`: tokens already read for earlier requests of
    the same batch (the dispatch route's group commit), read again from there; every request
    still counts against the token's rate limit."""
    from missioncontrol.roles import RANK

    hit = known.get(authorization or "") if known is not None else None
    now = timezone.now()
    if hit is None:
        raw = bearer(authorization)
        match = TOKEN_RE.match(raw)
        if match is None:
            raise Unauthenticated("Send a person's API token as 'Authorization: Bearer mct_…'.")
        prefix, secret = match.groups()
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
        if (
            token is None
            or not hmac.compare_digest(token.secret_hash, _hash(secret))
            or token.revoked_at is not None
            or (token.expires_at is not None and token.expires_at <= now)
            or not token.user.is_active
        ):
            raise Unauthenticated("This API token is unknown, revoked or expired.")
        if token.last_used_at is None or now - token.last_used_at > USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        hit = (token.pk, token.user)
        if known is not None:
            known[authorization or ""] = hit
    token_id, user = hit
    wait = 0.0 if settings.MC_API_RATE_LIMIT_OFF else _bucket.take(token_id)
    if wait:
        raise RateLimited("Too many requests for this token.", retry_after=wait)
    role = role_of(user)
    if role is None or RANK[role] < RANK[least]:
        raise Forbidden(f"This needs the {least} role; the token's person has {role or 'none'}.")
    return user


def expired(token: ApiToken, now: datetime | None = None) -> bool:
    return token.expires_at is not None and token.expires_at <= (now or timezone.now())
