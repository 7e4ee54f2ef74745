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


class TestCspReports:
    """Browsers report what the policy blocked to /csp-report/ (named in the policy); the server
    logs one line per report, rate limited per client, bodies over 8 KB refused."""

    REPORT = {
        "csp-report": {
            "document-uri": "https://mc.example.test/board/",
            "violated-directive": "script-src-elem",
            "blocked-uri": "inline",
        }
    }

    def test_the_policy_names_the_endpoint(self, viewer):
        policy = viewer.get("/board/")["Content-Security-Policy"]
        assert "report-uri /csp-report/" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy

    def test_a_report_is_logged_once(self, client, caplog):
        import json

        from missioncontrol import views

        views._csp_reports.reset()
        response = client.post(
            "/csp-report/", json.dumps(self.REPORT), content_type="application/csp-report"
        )
        assert response.status_code == 204
        assert (
            "CSP blocked inline (script-src-elem) on https://mc.example.test/board/" in caplog.text
        )

    def test_limits(self, client, caplog):
        import json

        from missioncontrol import views

        views._csp_reports.reset()
        assert (
            client.post("/csp-report/", b"x" * 9000, content_type="application/json").status_code
            == 413
        )
        assert client.get("/csp-report/").status_code == 405
        assert (
            client.post("/csp-report/", b"{nope", content_type="application/json").status_code
            == 400
        )
        for _ in range(30):
            client.post(
                "/csp-report/", json.dumps(self.REPORT), content_type="application/csp-report"
            )
        assert caplog.text.count("CSP blocked") <= 20


def test_json_for_a_signed_in_person_is_not_cached(viewer):
    r = viewer.get("/search/?q=x")
    assert "no-store" in r["Cache-Control"]


def test_the_agent_api_is_not_cached(client):
    from agents.models import Agent, AgentKey
    from tests.agents.conftest import issue

    agent = Agent.objects.create(name="cached")
    raw = issue(AgentKey.Kind.AGENT, agent)[1]
    r = client.get("/api/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert r.status_code == 200, r.content
    assert "no-store" in r["Cache-Control"]
