"""Two-factor sign-in (TOTP) for local accounts: set up from the account page, then every
sign-in asks for a code after the password; wrong codes throttled in the database; a code works
once; off with a code, or by an admin for a lost phone. Codes are computed as an authenticator
app would, from the key the page shows."""

from __future__ import annotations

import base64
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from missioncontrol.models import AuditEvent
from missioncontrol.roles import set_role

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-password-42"


def code_for(key: bytes, offset_steps: int = 0) -> str:
    totp = TOTP(key, step=30, t0=0, digits=6, drift=0)
    totp.time = time.time() + offset_steps * 30
    return f"{totp.token():06d}"


@pytest.fixture
def person(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("grace", password=PASSWORD)
    set_role(user, "admin")
    return user


def turn_on(client: Client) -> bytes:
    """Set up from the page as a person would; the key as the page shows it."""
    assert client.post("/account/two-factor/", {"action": "start"}).status_code == 302
    page = client.get("/account/two-factor/").content.decode()
    assert 'src="/account/two-factor/qr.svg"' in page
    shown = re.search(r'class="mono secret-key">([A-Z2-7]+)<', page)
    assert shown is not None
    key = base64.b32decode(shown.group(1) + "=" * (-len(shown.group(1)) % 8))
    wrong = client.post("/account/two-factor/", {"action": "confirm", "code": "000000"})
    assert wrong.status_code == 400
    assert "That code is not right" in wrong.content.decode()
    TOTPDevice.objects.update(throttling_failure_timestamp=None, throttling_failure_count=0)
    right = client.post("/account/two-factor/", {"action": "confirm", "code": code_for(key)})
    assert right.status_code == 302
    return key


def signed_in(client: Client) -> bool:
    return client.get("/tasks/").status_code == 200


def password_step(client: Client, next_url: str = "") -> Any:
    data = {"username": "grace", "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post("/login/", data)


def test_set_up_shows_the_key_once_then_sign_in_asks_for_a_code(person):
    client = Client()
    client.force_login(person)
    qr_before = client.get("/account/two-factor/qr.svg")
    assert qr_before.status_code == 404  # nothing being set up
    client.post("/account/two-factor/", {"action": "start"})
    qr = client.get("/account/two-factor/qr.svg")
    assert qr.status_code == 200
    assert qr["Content-Type"] == "image/svg+xml"
    assert qr["Cache-Control"].startswith("no-store") or "no-store" in qr["Cache-Control"]
    assert qr.content.startswith(b"<svg")
    assert b'xmlns="http://www.w3.org/2000/svg"' in qr.content  # an <img> needs it to show
    assert b"style=" not in qr.content
    client.post("/account/two-factor/", {"action": "start"})  # a fresh key replaces the first
    key = turn_on(client)
    assert TOTPDevice.objects.get(user=person).confirmed
    assert AuditEvent.objects.filter(verb="two_factor_enabled", object_repr="grace").exists()
    # The key is never shown again.
    assert client.get("/account/two-factor/qr.svg").status_code == 404
    assert "secret-key" not in client.get("/account/two-factor/").content.decode()

    fresh = Client()
    asked = password_step(fresh, "/costs/")
    assert asked.status_code == 302
    assert asked["Location"] == "/login/code/"
    assert not signed_in(fresh)  # the password alone does not sign in
    page = fresh.get("/login/code/")
    assert page.status_code == 200
    assert "Signing in as <strong>grace</strong>" in page.content.decode()
    # The code of the next 30 s (the app's clock may run ahead; the set-up used this one's).
    done = fresh.post("/login/code/", {"code": code_for(key, 1)})
    assert done.status_code == 302
    assert done["Location"] == "/costs/"
    assert signed_in(fresh)
    assert AuditEvent.objects.filter(verb="signed_in", object_repr="grace").exists()


def test_a_code_works_once_and_wrong_codes_are_throttled_across_sessions(person):
    client = Client()
    client.force_login(person)
    key = turn_on(client)  # used the current code

    first = Client()
    password_step(first)
    replay = first.post("/login/code/", {"code": code_for(key)})
    assert replay.status_code == 400
    assert not signed_in(first)
    # Throttled (1 s after one failure, doubling), in the database: another browser too.
    other = Client()
    password_step(other)
    TOTPDevice.objects.update(throttling_failure_timestamp=timezone.now())
    throttled = other.post("/login/code/", {"code": code_for(key, 1)})
    assert throttled.status_code == 400
    assert "Too many wrong codes in a row" in throttled.content.decode()
    assert not signed_in(other)
    TOTPDevice.objects.update(throttling_failure_timestamp=timezone.now() - timedelta(minutes=1))
    assert other.post("/login/code/", {"code": code_for(key, 1)}).status_code == 302
    assert signed_in(other)


def test_five_wrong_codes_or_five_minutes_mean_the_password_again(person):
    client = Client()
    client.force_login(person)
    key = turn_on(client)
    browser = Client()
    password_step(browser)
    for _ in range(4):
        TOTPDevice.objects.update(throttling_failure_timestamp=None)
        assert browser.post("/login/code/", {"code": "123456"}).status_code == 400
    TOTPDevice.objects.update(throttling_failure_timestamp=None)
    out = browser.post("/login/code/", {"code": "123456"})
    assert out.status_code == 302
    assert out["Location"] == "/login/"
    assert browser.get("/login/code/")["Location"] == "/login/"

    TOTPDevice.objects.update(throttling_failure_timestamp=None, throttling_failure_count=0)
    late = Client()
    password_step(late)
    session = late.session
    session["mc_2fa_pending"]["at"] -= 301
    session.save()
    expired = late.post("/login/code/", {"code": code_for(key, 1)})
    assert expired.status_code == 302
    assert expired["Location"] == "/login/"
    assert not signed_in(late)


def test_off_with_a_code_or_by_an_admin(person, capsys):
    client = Client()
    client.force_login(person)
    key = turn_on(client)
    refused = client.post("/account/two-factor/", {"action": "disable", "code": "000000"})
    assert refused.status_code == 400
    assert TOTPDevice.objects.filter(user=person).exists()
    TOTPDevice.objects.update(throttling_failure_timestamp=None)
    off = client.post("/account/two-factor/", {"action": "disable", "code": code_for(key, 1)})
    assert off.status_code == 302
    assert not TOTPDevice.objects.filter(user=person).exists()
    assert AuditEvent.objects.filter(verb="two_factor_disabled").exists()

    key = turn_on(client)
    call_command("reset_two_factor", "grace")
    assert "off for grace" in capsys.readouterr().out
    assert not TOTPDevice.objects.filter(user=person).exists()
    assert AuditEvent.objects.filter(verb="two_factor_reset", object_repr="grace").exists()
    plain = Client()
    assert password_step(plain)["Location"] != "/login/code/"
    assert signed_in(plain)


def test_people_of_the_identity_provider_have_nothing_to_set_up(django_user_model):
    user = django_user_model.objects.create_user("sso-person")
    user.set_unusable_password()
    user.save()
    set_role(user, "viewer")
    client = Client()
    client.force_login(user)
    page = client.get("/account/two-factor/").content.decode()
    assert "identity provider" in page
    client.post("/account/two-factor/", {"action": "start"})
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert "Two-factor sign-in" not in client.get("/tasks/").content.decode()


def test_the_admin_never_shows_the_secret(person, admin_client):
    client = Client()
    client.force_login(person)
    turn_on(client)
    device = TOTPDevice.objects.get(user=person)
    listing = admin_client.get("/admin/otp_totp/totpdevice/").content.decode()
    detail = admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
    assert "grace" in listing
    assert device.key not in listing
    assert device.key not in detail
