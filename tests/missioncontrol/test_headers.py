from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PAGES = ["/login/", "/", "/account/password/", "/admin/", "/healthz", "/nope/"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_strict_csp(admin, path):
    response = admin.get(path)
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    for directive in (
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ):
        assert directive in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_unknown_host_is_refused():
    response = Client(HTTP_HOST="evil.example").get("/login/")
    assert response.status_code == 400


def test_no_hsts_without_tls(client):
    assert "Strict-Transport-Security" not in client.get("/login/")


def test_pages_have_no_inline_script_or_style(admin):
    html = admin.get(reverse("home")).content.decode()
    assert "style=" not in html
    assert "<script>" not in html
    assert "hx-on" not in html


def test_healthz_is_public_json_without_secrets(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
