"""Sign-in through the organisation's identity provider (OpenID Connect), beside local accounts.

Off unless `MC_OIDC_ISSUER` and `MC_OIDC_CLIENT_ID` are set. The code flow (with PKCE, state and
nonce) is mozilla-django-oidc's; what is ours:

- **Discovery**: the provider's endpoints come from `<issuer>/.well-known/openid-configuration`,
  fetched when first needed and kept for an hour. A provider that cannot be reached makes the
  SSO button answer with a message; local sign-in never depends on it.
- **Who**: a person is found by (issuer, `sub`) in `ExternalIdentity`, never by e-mail (an
  address the provider does not vouch for must not open another account). The first sign-in
  makes a user (its username from `preferred_username`, else the e-mail's local part, made
  unique) with no usable password.
- **Role**: from a claim (`MC_OIDC_ROLES_CLAIM`, default `groups`; a list or a space/comma
  separated string, read from the ID token and userinfo alike): the highest role whose group
  list (`MC_OIDC_ADMIN_GROUPS`, `MC_OIDC_OPERATOR_GROUPS`, `MC_OIDC_VIEWER_GROUPS`) names one of
  the person's groups, else `MC_OIDC_DEFAULT_ROLE` (empty: refused, with a message saying so).
  Set on every sign-in, so a change at the provider takes effect at the next one; audited.
- **Failures** (provider down, a refused code, a bad token, no role) send the person back to the
  sign-in page with a message; never a 500.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from missioncontrol import audit, state
from missioncontrol.roles import RANK, Role, role_of, set_role

logger = logging.getLogger(__name__)

DISCOVERY_TTL_S = 3600.0
# mozilla-django-oidc's endpoint settings → the discovery document's keys.
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


class Unavailable(Exception):
    """The identity provider could not be asked (discovery failed)."""


def enabled() -> bool:
    return bool(settings.MC_OIDC_ISSUER and settings.MC_OIDC_CLIENT_ID)


_discovered: dict[str, tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


def discovery() -> dict[str, Any]:
    """The provider's discovery document (cached an hour; a failure is not cached)."""
    issuer = settings.MC_OIDC_ISSUER.rstrip("/")
    with _lock:
        cached = _discovered.get(issuer)
    if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
        return cached[1]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        answer = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        answer.raise_for_status()
        document = answer.json()
        missing = [key for key in ENDPOINTS.values() if not document.get(key)]
        if missing:
            raise ValueError(f"it names no {', '.join(missing)}")
    except (requests.RequestException, ValueError) as failure:
        logger.warning("sso: discovery at %s failed: %s", url, failure)
        raise Unavailable(f"{url}: {failure}") from None
    with _lock:
        _discovered[issuer] = (time.monotonic(), document)
    return document


def forget_discovery() -> None:
    with _lock:
        _discovered.clear()


state.register("sso discovery", forget_discovery)


def oidc_setting(attr: str, *default: Any) -> Any:
    """mozilla-django-oidc's settings, its provider endpoints from discovery."""
    if attr in ENDPOINTS:
        return discovery()[ENDPOINTS[attr]]
    return import_from_settings(attr, *default)


def groups_of(claims: dict[str, Any]) -> set[str]:
    value = claims.get(settings.MC_OIDC_ROLES_CLAIM)
    if isinstance(value, str):
        return {part for part in value.replace(",", " ").split() if part}
    if isinstance(value, list | tuple):
        return {str(part) for part in value}
    return set()


def role_for(claims: dict[str, Any]) -> Role | None:
    """The highest role a group of the person's grants, else the default (None: refused)."""
    groups = groups_of(claims)
    for role, names in (
        ("admin", settings.MC_OIDC_ADMIN_GROUPS),
        ("operator", settings.MC_OIDC_OPERATOR_GROUPS),
        ("viewer", settings.MC_OIDC_VIEWER_GROUPS),
    ):
        if groups & set(names):
            return role  # type: ignore[return-value]
    default = settings.MC_OIDC_DEFAULT_ROLE
    return default if default in RANK else None  # type: ignore[return-value]


def _refuse(request: HttpRequest | None, text: str) -> None:
    if request is not None and not getattr(request, "_mc_sso_refused", False):
        request._mc_sso_refused = True  # type: ignore[attr-defined]
        messages.error(request, text)


class Backend(OIDCAuthenticationBackend):
    """Authenticates the provider's callback only; answers None to everything else (local
    passwords go to Django's ModelBackend) and when SSO is off or its provider unreachable."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.UserModel = get_user_model()
        self.usable = False  # set up lazily: most authenticate() calls are local passwords

    def _set_up(self) -> None:
        super().__init__()
        self.usable = True

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if request is None or not enabled() or "code" not in request.GET:
            return None
        try:
            self._set_up()
        except Unavailable:
            _refuse(request, unavailable_text())
            return None
        return super().authenticate(request, **kwargs)

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        # The ID token's claims (some providers put groups only there), then userinfo's.
        claims = dict(payload)
        claims.update(super().get_userinfo(access_token, id_token, payload) or {})
        if claims.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo is about another subject than the ID token")
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not claims.get("sub"):
            _refuse(self.request, f"{settings.MC_OIDC_LABEL} did not say who you are (no sub).")
            return False
        if role_for(claims) is None:
            logger.info("sso: %s has no group that grants a role", claims.get("sub"))
            _refuse(
                self.request,
                f"You signed in at {settings.MC_OIDC_LABEL}, but none of your groups there "
                "grants a role in Mission Control. Ask an admin to add you to a group it maps "
                "(MC_OIDC_ADMIN_GROUPS, MC_OIDC_OPERATOR_GROUPS or MC_OIDC_VIEWER_GROUPS).",
            )
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(
            external_identities__issuer=settings.MC_OIDC_ISSUER,
            external_identities__subject=str(claims["sub"]),
        )

    def create_user(self, claims: dict[str, Any]) -> Any:
        from missioncontrol.models import ExternalIdentity

        with transaction.atomic():
            user = self.UserModel(username=self._free_username(claims))
            user.set_unusable_password()
            user.save()
            ExternalIdentity.objects.create(
                user=user, issuer=settings.MC_OIDC_ISSUER, subject=str(claims["sub"])
            )
            audit.record(
                audit.Actor.system("sso"),
                "user_created",
                user,
                object_repr=user.get_username(),
                after={"via": settings.MC_OIDC_LABEL},
            )
        return self.update_user(user, claims)

    def _free_username(self, claims: dict[str, Any]) -> str:
        wanted = str(
            claims.get("preferred_username")
            or str(claims.get("email") or "").split("@")[0]
            or f"user-{claims['sub']}"
        )[:140]
        candidate, n = wanted, 1
        while self.UserModel.objects.filter(username__iexact=candidate).exists():
            n += 1
            candidate = f"{wanted}-{n}"
        return candidate

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        from missioncontrol.models import ExternalIdentity

        role = role_for(claims)
        with transaction.atomic():
            fields = {
                "email": str(claims.get("email") or user.email)[:254],
                "first_name": str(claims.get("given_name") or user.first_name)[:150],
                "last_name": str(claims.get("family_name") or user.last_name)[:150],
            }
            changed = [name for name, value in fields.items() if getattr(user, name) != value]
            for name in changed:
                setattr(user, name, fields[name])
            if changed:
                user.save(update_fields=changed)
            before = role_of(user)
            if before != role:
                set_role(user, role)
                audit.record(
                    audit.Actor.system("sso"),
                    "role_changed",
                    user,
                    object_repr=user.get_username(),
                    before={"role": before},
                    after={"role": role, "groups": sorted(groups_of(claims))[:20]},
                )
            ExternalIdentity.objects.filter(
                user=user, issuer=settings.MC_OIDC_ISSUER, subject=str(claims["sub"])
            ).update(last_signed_in_at=timezone.now())
        return user


def unavailable_text() -> str:
    return (
        f"{settings.MC_OIDC_LABEL} cannot be reached right now, so single sign-on is "
        "unavailable. Try again shortly; local accounts still sign in here."
    )


class Start(OIDCAuthenticationRequestView):
    """/sso/login/: off to the provider (its authorization endpoint from discovery)."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.unavailable = False
        try:
            super().__init__(*args, **kwargs)
        except Unavailable:
            self.unavailable = True

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("Single sign-on is not configured.")
        if self.unavailable:
            messages.error(request, unavailable_text())
            return redirect("login")
        return super().get(request)


class Callback(OIDCAuthenticationCallbackView):
    """/sso/callback/: the provider sends the person back here with a code."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("Single sign-on is not configured.")
        if request.GET.get("error"):
            _refuse(
                request,
                f"{settings.MC_OIDC_LABEL} refused the sign-in: "
                f"{request.GET.get('error_description') or request.GET['error']}"[:300],
            )
        try:
            return super().get(request)
        except (requests.RequestException, SuspiciousOperation, Unavailable, ValueError) as failure:
            # A code refused at the token endpoint, a token that fails its checks, a callback
            # whose state this browser never started (an old tab, a forged link).
            logger.warning("sso: sign-in failed: %s", failure)
            _refuse(
                request,
                f"Signing in through {settings.MC_OIDC_LABEL} failed; please try again. "
                "(The details are in the server log.)",
            )
            return self.login_failure()

    def login_failure(self) -> HttpResponseRedirect:
        _refuse(self.request, f"Signing in through {settings.MC_OIDC_LABEL} did not complete.")
        return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL_FAILURE)
