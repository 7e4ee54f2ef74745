"""Single sign-on through a real (small, local) OpenID Connect provider: the code flow with
PKCE over real HTTP, RS256 ID tokens checked against the provider's JWKS, roles from groups,
and every way it can fail ending on the sign-in page with a message — never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.test import Client

from missioncontrol import sso
from missioncontrol.models import AuditEvent, ExternalIdentity
from missioncontrol.roles import role_of
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def provider(settings: Any) -> Iterator[Provider]:
    running = Provider().start()
    settings.MC_OIDC_ISSUER = running.issuer
    settings.MC_OIDC_CLIENT_ID = settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.MC_OIDC_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.MC_OIDC_LABEL = "Acme SSO"
    settings.MC_OIDC_ADMIN_GROUPS = ["mc-admins"]
    settings.MC_OIDC_OPERATOR_GROUPS = ["mc-operators", "sre"]
    settings.MC_OIDC_VIEWER_GROUPS = ["staff"]
    settings.MC_OIDC_DEFAULT_ROLE = ""
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "missioncontrol.sso.Backend",
    ]
    sso.forget_discovery()
    yield running
    running.stop()
    sso.forget_discovery()


def sign_in(client: Client, provider: Provider, next_url: str = "/tasks/") -> Any:
    """The browser's round trip: here → the provider (who signs the person in) → back here."""
    start = client.get("/sso/login/", {"next": next_url})
    assert start.status_code == 302, start
    assert start["Location"].startswith(f"{provider.issuer}/authorize?")
    at_provider = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert at_provider.status_code == 302
    back = urlsplit(at_provider.headers["Location"])
    assert back.path == "/sso/callback/"
    return client.get(f"{back.path}?{back.query}")


def login_page_text(client: Client) -> str:
    return client.get("/login/").content.decode()


def test_first_sign_in_makes_the_user_with_the_role_of_its_groups(provider):
    provider.person = {
        "sub": "u-1",
        "email": "ada@example.test",
        "preferred_username": "ada",
        "given_name": "Ada",
        "groups": ["staff", "sre"],
    }
    client = Client()
    landed = sign_in(client, provider)
    assert landed.status_code == 302
    assert landed["Location"] == "/tasks/"
    user = User.objects.get(username="ada")
    assert role_of(user) == "operator"  # the highest of staff (viewer) and sre (operator)
    assert user.email == "ada@example.test"
    assert user.first_name == "Ada"
    assert not user.has_usable_password()
    assert ExternalIdentity.objects.get(user=user).subject == "u-1"
    assert client.get("/tasks/").status_code == 200
    verbs = set(AuditEvent.objects.filter(object_repr="ada").values_list("verb", flat=True))
    assert {"user_created", "role_changed", "signed_in"} <= verbs


def test_the_provider_decides_the_role_at_every_sign_in_and_sub_names_the_person(provider):
    provider.person = {"sub": "u-2", "email": "bo@example.test", "groups": ["mc-admins"]}
    sign_in(Client(), provider)
    user = User.objects.get(username="bo")
    assert role_of(user) == "admin"
    # Demoted and renamed at the provider: the same account (found by sub), now a viewer.
    provider.person = {"sub": "u-2", "email": "robert@example.test", "groups": "staff"}
    client = Client()
    sign_in(client, provider)
    assert User.objects.filter(external_identities__subject="u-2").count() == 1
    user = User.objects.get(pk=user.pk)
    assert role_of(user) == "viewer"
    assert user.email == "robert@example.test"
    assert client.get("/settings/deployment/").status_code == 403
    change = AuditEvent.objects.filter(verb="role_changed", object_repr="bo").order_by("-pk")[0]
    assert change.changes["before"] == {"role": "admin"}
    assert change.changes["after"]["role"] == "viewer"


def test_no_group_that_grants_a_role_is_refused_with_the_reason(provider):
    provider.person = {"sub": "u-3", "email": "eve@example.test", "groups": ["marketing"]}
    client = Client()
    back = sign_in(client, provider)
    assert back.status_code == 302
    assert back["Location"] == "/login/"
    assert client.get("/tasks/").status_code == 302  # not signed in
    assert "none of your groups there grants a role" in login_page_text(client)
    assert not User.objects.filter(email="eve@example.test").exists()


def test_a_default_role_admits_everyone_the_provider_knows(provider, settings):
    settings.MC_OIDC_DEFAULT_ROLE = "viewer"
    provider.person = {"sub": "u-4", "email": "kim@example.test"}
    sign_in(Client(), provider)
    assert role_of(User.objects.get(username="kim")) == "viewer"


def test_a_local_account_with_the_same_address_is_not_taken_over(provider):
    local = User.objects.create_user("ada", email="ada@example.test", password="local-pass-123")
    provider.person = {
        "sub": "u-5",
        "email": "ada@example.test",
        "preferred_username": "ada",
        "groups": ["mc-admins"],
    }
    client = Client()
    sign_in(client, provider)
    arrived = User.objects.get(external_identities__subject="u-5")
    assert arrived.pk != local.pk
    assert arrived.username == "ada-2"
    assert role_of(User.objects.get(pk=local.pk)) is None
    # Local accounts keep signing in with their password.
    other = Client()
    assert (
        other.post("/login/", {"username": "ada", "password": "local-pass-123"}).status_code == 302
    )
    assert other.get("/account/password/").status_code == 200


@pytest.mark.parametrize("failure", ["refused_code", "forged_signature"])
def test_a_bad_token_answer_ends_on_the_sign_in_page(provider, failure):
    provider.person = {"sub": "u-6", "email": "x@example.test", "groups": ["staff"]}
    if failure == "refused_code":
        provider.refuse_token = True
    else:
        provider.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        provider.jwks = lambda: {"keys": []}
    client = Client()
    back = sign_in(client, provider)
    assert back.status_code == 302
    assert back["Location"] == "/login/"
    assert "Signing in through Acme SSO failed" in login_page_text(client)
    assert client.get("/tasks/").status_code == 302
    assert not User.objects.filter(email="x@example.test").exists()


def test_a_callback_this_browser_never_started_is_refused(provider):
    provider.person = {"sub": "u-7", "email": "m@example.test", "groups": ["mc-admins"]}
    # Started in one browser, the code delivered to another (a forged link).
    start = Client().get("/sso/login/")
    at_provider = requests.get(start["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(at_provider.headers["Location"])
    victim = Client()
    victim.get("/login/")
    landed = victim.get(f"{back.path}?{back.query}")
    assert landed.status_code == 302
    assert landed["Location"] == "/login/"
    assert victim.get("/tasks/").status_code == 302


def test_the_provider_saying_no_is_shown(provider):
    client = Client()
    client.get("/sso/login/")
    back = client.get("/sso/callback/", {"error": "access_denied", "error_description": "MFA"})
    assert back.status_code == 302
    assert back["Location"] == "/login/"
    assert "Acme SSO refused the sign-in: MFA" in login_page_text(client)


def test_an_unreachable_provider_leaves_local_sign_in_working(provider, settings, admin_user):
    provider.stop()
    client = Client()
    refused = client.get("/sso/login/")
    assert refused.status_code == 302
    assert refused["Location"] == "/login/"
    assert "Acme SSO cannot be reached right now" in login_page_text(client)
    signed_in = client.post("/login/", {"username": admin_user.username, "password": "password"})
    assert signed_in.status_code == 302
    assert client.get("/tasks/").status_code == 200
    provider.server.server_close()  # the fixture's stop() again is harmless
    provider.stop = lambda: None


def test_the_button_shows_only_when_configured(provider, settings):
    page = login_page_text(Client())
    assert 'id="sso-login"' in page
    assert "Sign in with Acme SSO" in page
    settings.MC_OIDC_ISSUER = ""
    assert 'id="sso-login"' not in login_page_text(Client())
    assert Client().get("/sso/login/").status_code == 404
    assert Client().get("/sso/callback/", {"code": "x", "state": "y"}).status_code == 404
