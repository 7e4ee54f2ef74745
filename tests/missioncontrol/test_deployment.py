"""Deployment mistakes found in real traffic: each one named with its variable in the log and on
the admins' Deployment page; strangers get a plain page that names no configuration."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import Client

from missioncontrol import deployment
from missioncontrol.models import AuditEvent, DeploymentFinding


@pytest.fixture(autouse=True)
def fresh() -> None:
    deployment.reset()


def finding(code: str) -> DeploymentFinding | None:
    return DeploymentFinding.objects.filter(code=code).first()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
class TestFromHeaders:
    async def test_forwarded_headers_from_an_untrusted_peer(self, api, settings):
        from channels.db import database_sync_to_async

        settings.MC_TRUSTED_PROXIES = []
        async with api(**{"X-Forwarded-For": "203.0.113.9"}) as client:
            assert (await client.get("/healthz")).status_code == 200
        found = await database_sync_to_async(finding)("untrusted_proxy")
        assert found is not None
        assert "MC_TRUSTED_PROXIES=127.0.0.1" in found.remedy

    async def test_https_through_a_trusted_proxy_with_tls_off(self, api, settings):
        from channels.db import database_sync_to_async

        settings.MC_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
        settings.MC_TLS = False
        headers = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
        async with api(**headers) as client:
            await client.get("/healthz")
        found = await database_sync_to_async(finding)("tls_off")
        assert found is not None
        assert "MC_TLS=1" in found.remedy
        assert await database_sync_to_async(finding)("untrusted_proxy") is None

    async def test_a_proper_setup_finds_nothing(self, api, settings):
        from channels.db import database_sync_to_async

        settings.MC_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
        settings.MC_TLS = True
        headers = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
        async with api(**headers) as client:
            await client.get("/healthz")
        assert not await database_sync_to_async(DeploymentFinding.objects.exists)()


@pytest.mark.django_db
class TestRefusals:
    def test_a_host_not_allowed_gets_a_plain_page_and_the_admin_the_fix(self, caplog):
        response = Client().get("/", HTTP_HOST="mc.example.test")
        assert response.status_code == 400
        page = response.content.decode()
        assert "Bad request" in page
        assert "style=" not in page
        assert "<script" not in page
        assert "MC_ALLOWED_HOSTS" not in page  # strangers are not told the configuration
        found = finding("host")
        assert found is not None
        assert "mc.example.test" in found.detail
        assert "MC_ALLOWED_HOSTS" in found.remedy
        assert "add it to MC_ALLOWED_HOSTS" in caplog.text

    def test_a_form_from_an_untrusted_origin(self, alice_viewer, caplog):
        client = Client(enforce_csrf_checks=True)
        client.force_login(alice_viewer)
        client.get("/")
        token = client.cookies["csrftoken"].value
        response = client.post(
            "/gateways/view/",
            {"gateway": "", "csrfmiddlewaretoken": token},
            HTTP_ORIGIN="https://mc.example.test:8443",
        )
        assert response.status_code == 403
        page = response.content.decode()
        assert "This form could not be sent" in page
        assert "style=" not in page
        found = finding("csrf_origin")
        assert found is not None
        assert "https://mc.example.test:8443" in found.remedy
        assert "MC_CSRF_TRUSTED_ORIGINS" in caplog.text

    def test_random_values_from_strangers_keep_a_bounded_table(self, monkeypatch):
        """Every distinct refused Host used to become a row and a log line (issue #30 §5)."""
        monkeypatch.setattr(deployment, "MAX_PER_CODE", 5)
        for i in range(40):
            deployment.note("host", f"requests for the host h{i}.example are refused", "fix")
        rows = DeploymentFinding.objects.filter(code="host")
        assert rows.count() == 6  # five kept one by one, one row for the rest
        assert rows.get(detail__startswith="More findings").count == 1  # logged once a minute

    def test_noted_once_a_minute_per_process(self):
        for _ in range(3):
            deployment.note("host", "requests for the host x are refused", "fix")
        assert DeploymentFinding.objects.get().count == 1


@pytest.mark.django_db
def test_the_deployment_page_for_admins_and_clearing_is_audited(admin, viewer):
    deployment.note("tls_off", "served over https through the trusted proxy", "Set MC_TLS=1")
    assert viewer.get("/settings/deployment/").status_code == 403
    page = admin.get("/settings/deployment/").content.decode()
    assert "Set MC_TLS=1" in page
    assert "MC_ALLOWED_HOSTS" in page
    assert admin.post("/settings/deployment/clear/").status_code == 302
    assert not DeploymentFinding.objects.exists()
    assert AuditEvent.objects.filter(verb="deployment.findings_cleared").count() == 1
