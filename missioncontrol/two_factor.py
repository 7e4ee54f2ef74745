"""Two-factor sign-in (TOTP) for local accounts, with django-otp's TOTP devices.

Optional, per person (Account → Two-factor sign-in); meant for admins, open to anyone with a
local password (people who sign in through the identity provider get its own second factor).

- **Set up**: a secret made here, shown once as a QR code (SVG, served with `no-store`) and as
  text; on only after a code from the app proves it was copied. Audited.
- **Sign-in**: the password first (django-axes counts failures as always), then, for a person
  with a device, a code on a second page before the session is signed in. The step waits five
  minutes and five wrong codes; django-otp's throttle (kept in the database, so it survives a
  restart) spaces wrong codes out per device, and a code works once.
- **Off**: with a current code; an admin can take a person's device away (`manage.py
  reset_two_factor USER`, or the Django admin), audited, for a lost phone.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe
from django_otp.plugins.otp_totp.models import TOTPDevice

from missioncontrol import audit

logger = logging.getLogger(__name__)

PENDING = "mc_2fa_pending"
PENDING_S = 300
MAX_WRONG = 5


def device_for(user: Any) -> TOTPDevice | None:
    """The person's confirmed TOTP device, if two-factor sign-in is on for them."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def _clean(code: str) -> str:
    return "".join(code.split())[:12]


# --- Sign-in, second step -----------------------------------------------------------------------


def begin(request: HttpRequest, user: Any, next_url: str) -> HttpResponse:
    """The password was right and the person has a device: ask for the code."""
    request.session[PENDING] = {
        "user": user.pk,
        "backend": getattr(user, "backend", "django.contrib.auth.backends.ModelBackend"),
        "next": next_url,
        "at": time.time(),
        "wrong": 0,
    }
    return redirect("login-code")


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending["at"] > PENDING_S:
        request.session.pop(PENDING, None)
        messages.error(request, "Sign in again: the code step waits five minutes.")
        return redirect("login")
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    device = device_for(user) if user is not None else None
    if user is None or device is None:
        request.session.pop(PENDING, None)
        return redirect("login")
    error = ""
    if request.method == "POST":
        allowed, why = device.verify_is_allowed()
        if not allowed:
            wait = ""
            if why and why.get("locked_until"):
                from django.utils import timezone

                wait = f" Try again in {max(1, int((why['locked_until'] - timezone.now()).total_seconds()))} s."
            error = "Too many wrong codes in a row." + wait
        elif device.verify_token(_clean(request.POST.get("code", ""))):
            request.session.pop(PENDING, None)
            login(request, user, backend=pending["backend"])
            return redirect(pending["next"] or "home")
        else:
            pending["wrong"] += 1
            logger.warning("two-factor: a wrong code for %s", user.get_username())
            if pending["wrong"] >= MAX_WRONG:
                request.session.pop(PENDING, None)
                messages.error(request, "Too many wrong codes: sign in again.")
                return redirect("login")
            request.session[PENDING] = pending
            error = "That code is not right (or has expired). Codes change every 30 seconds."
    return render(
        request,
        "registration/login_code.html",
        {"error": error, "username": user.get_username()},
        status=400 if error else 200,
    )


# --- The person's own settings ------------------------------------------------------------------


def _record(actor: audit.Actor, verb: str, user: Any) -> None:
    audit.record(actor, verb, user, object_repr=user.get_username())


def _setup_device(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def _secret(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode().rstrip("=")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    user: Any = request.user  # signed in (login_required)
    if not user.has_usable_password():
        return render(request, "missioncontrol/two_factor.html", {"external": True})
    device = device_for(user)
    setup = None if device is not None else _setup_device(user)
    error = ""
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "start" and device is None:
        start_setup(user)
        return redirect("two-factor")
    if action == "confirm" and setup is not None:
        if setup.verify_token(_clean(request.POST.get("code", ""))):
            confirm(setup, user)
            messages.success(request, "Two-factor sign-in is on: sign-in will ask for a code.")
            return redirect("two-factor")
        error = (
            "That code is not right: check the app shows Mission Control, then try the newest code."
        )
    if action == "disable" and device is not None:
        # verify_token refuses while the device is throttled, as at sign-in.
        if device.verify_token(_clean(request.POST.get("code", ""))):
            turn_off(user, audit.Actor.user(user), "two_factor_disabled")
            messages.success(request, "Two-factor sign-in is off.")
            return redirect("two-factor")
        error = "That code is not right; two-factor sign-in stays on."
    context = {
        "device": device,
        "setup": setup,
        "secret": _secret(setup) if setup is not None else "",
        "error": error,
    }
    return render(request, "missioncontrol/two_factor.html", context, status=400 if error else 200)


@never_cache
@login_required
@require_safe
def qr_code(request: HttpRequest) -> HttpResponse:
    """The set-up secret as a QR code; never for a confirmed device (its secret is not shown
    again)."""
    setup = _setup_device(request.user)
    if setup is None:
        return HttpResponse(status=404)
    import segno  # here: only a person setting up needs it

    image = io.BytesIO()
    # A file of its own (an <img>): with the SVG namespace, unlike segno's inline form.
    segno.make(setup.config_url, error="m").save(
        image, kind="svg", scale=5, dark="#111", light="#fff", border=2, xmldecl=False
    )
    svg = image.getvalue()
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    return response


# --- Changes: each in one transaction, audited ------------------------------------------------


def start_setup(user: Any) -> TOTPDevice:
    """A fresh secret to set up (any earlier unconfirmed one is dropped)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=False)


def confirm(setup: TOTPDevice, user: Any) -> None:
    """The app proved it holds the secret: two-factor sign-in is on."""
    with transaction.atomic():
        setup.confirmed = True
        setup.save(update_fields=["confirmed"])
        _record(audit.Actor.user(user), "two_factor_enabled", user)


def turn_off(user: Any, actor: audit.Actor, verb: str) -> int:
    """Every device of the person gone (audited as `verb` if there was one); how many."""
    with transaction.atomic():
        count, _ = TOTPDevice.objects.filter(user=user).delete()
        if count:
            _record(actor, verb, user)
    return count


def reset(user: Any, actor: audit.Actor) -> int:
    """An admin takes the person's devices away (a lost phone)."""
    return turn_off(user, actor, "two_factor_reset")


def redirect_after_password(request: HttpRequest, user: Any, next_url: str) -> HttpResponse | None:
    """LoginView's hook: the code step for a person with a device, else None (sign in now)."""
    if device_for(user) is None:
        return None
    return begin(request, user, next_url)  # already checked by LoginView.get_redirect_url
