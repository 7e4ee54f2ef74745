"""The Gateways pages: who may see and do what, bad input, tokens never shown."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from agents import actions as agent_actions
from agents.models import Agent
from gateways import frames
from gateways.models import Gateway
from missioncontrol.models import AuditEvent
from tests.gateways.factories import make_gateway

pytestmark = pytest.mark.django_db

SECRET = "s3cret-token-that-must-never-show"


@pytest.fixture
def gateway() -> Gateway:
    return make_gateway(token=SECRET)


def _form(**overrides: object) -> dict[str, object]:
    return {
        "name": "staging",
        "url": "ws://10.0.0.5:18789/",
        "token": SECRET,
        "colour": "teal",
        "enabled": "on",
        **overrides,
    }


class TestWhoMaySee:
    def test_viewer_sees_list_and_detail_without_the_token(self, viewer, gateway):
        for url in (reverse("gateways:list"), reverse("gateways:detail", args=[gateway.pk])):
            response = viewer.get(url)
            assert response.status_code == 200
            html = response.content.decode()
            assert "prod" in html
            assert SECRET not in html
            assert reverse("gateways:edit", args=[gateway.pk]) not in html

    @pytest.mark.parametrize("who", ["viewer", "operator"])
    def test_only_admins_add_edit_test_and_delete(self, who, request, gateway):
        client = request.getfixturevalue(who)
        assert client.get(reverse("gateways:new")).status_code == 403
        assert client.post(reverse("gateways:new"), _form()).status_code == 403
        assert client.get(reverse("gateways:edit", args=[gateway.pk])).status_code == 403
        assert client.post(reverse("gateways:delete", args=[gateway.pk])).status_code == 403
        assert client.post(reverse("gateways:test", args=[gateway.pk])).status_code == 403
        assert Gateway.objects.count() == 1

    def test_outsider_and_anonymous_are_refused(self, outsider, client, gateway):
        assert outsider.get(reverse("gateways:list")).status_code == 403
        assert client.get(reverse("gateways:list")).status_code == 302

    def test_wrong_methods(self, admin, gateway):
        assert admin.get(reverse("gateways:delete", args=[gateway.pk])).status_code == 405
        assert admin.get(reverse("gateways:test", args=[gateway.pk])).status_code == 405
        assert admin.post(reverse("gateways:list")).status_code == 405


class TestAdminManages:
    def test_adds_a_gateway_audited_with_the_token_sealed(self, admin):
        response = admin.post(reverse("gateways:new"), _form())
        gateway = Gateway.objects.get(name="staging")
        assert response.status_code == 302
        assert gateway.token == SECRET
        assert gateway.colour == "teal"
        assert gateway.state == "connecting"
        audit = AuditEvent.objects.get(verb="gateway.added")
        assert audit.actor_label == "carol"
        assert SECRET not in str(audit.changes)
        page = admin.get(reverse("gateways:edit", args=[gateway.pk])).content.decode()
        assert SECRET not in page

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("url", "http://example.com/", "WebSocket URL"),
            ("url", "ws://user:pw@host/", "not in the URL"),
            ("url", "ws://host:99999/", "port"),
            ("name", "  ", "required"),
            ("name", "x" * 41, "40"),
            ("colour", "#fff", "valid choice"),
        ],
    )
    def test_bad_input_is_a_form_error_and_stores_nothing(self, admin, field, value, message):
        response = admin.post(reverse("gateways:new"), _form(**{field: value}))
        assert response.status_code == 422
        assert message in response.content.decode()
        assert not Gateway.objects.exists()

    def test_a_taken_name_is_a_form_error(self, admin, gateway):
        response = admin.post(reverse("gateways:new"), _form(name="PROD"))
        assert response.status_code == 422
        assert "exists already" in response.content.decode()

    def test_edit_keeps_the_token_when_left_empty_and_replaces_it_when_typed(self, admin, gateway):
        url = reverse("gateways:edit", args=[gateway.pk])
        admin.post(url, _form(name="prod", url=gateway.url, token=""))
        assert Gateway.objects.get(pk=gateway.pk).token == SECRET
        admin.post(url, _form(name="prod", url=gateway.url, token="new-token"))
        assert Gateway.objects.get(pk=gateway.pk).token == "new-token"
        changed = AuditEvent.objects.filter(verb="gateway.updated").order_by("pk").last()
        assert changed is not None
        assert changed.changes["after"]["token"] == "replaced"
        assert "new-token" not in str(changed.changes)

    def test_a_new_server_needs_its_token_typed_again(self, admin, gateway):
        """The stored token is never sent to another address (issue #30 §5): moving the URL to
        another host or port without a token is a form error, and nothing changes."""
        url = reverse("gateways:edit", args=[gateway.pk])
        for elsewhere in ("ws://10.9.9.9:9/", "ws://127.0.0.1:10/", "wss://127.0.0.1:9/"):
            refused = admin.post(url, _form(name="prod", url=elsewhere, token=""))
            assert refused.status_code == 422, elsewhere
            assert "enter its token again" in refused.content.decode()
            assert Gateway.objects.get(pk=gateway.pk).url == gateway.url
        # Same server, another path: the token stays.
        admin.post(url, _form(name="prod", url="ws://127.0.0.1:9/gw", token=""))
        kept = Gateway.objects.get(pk=gateway.pk)
        assert (kept.url, kept.token) == ("ws://127.0.0.1:9/gw", SECRET)
        # With the new server's token typed: saved.
        admin.post(url, _form(name="prod", url="ws://10.9.9.9:9/", token="theirs"))
        moved = Gateway.objects.get(pk=gateway.pk)
        assert (moved.url, moved.token) == ("ws://10.9.9.9:9/", "theirs")

    def test_the_django_admin_asks_for_the_token_too(self, client, carol_admin, gateway):
        carol_admin.is_superuser = carol_admin.is_staff = True
        carol_admin.save(update_fields=["is_superuser", "is_staff"])
        client.force_login(carol_admin)
        r = client.post(
            f"/admin/gateways/gateway/{gateway.pk}/change/",
            {"name": "prod", "url": "ws://10.9.9.9:9/", "token": "", "colour": gateway.colour},
        )
        assert r.status_code == 200  # the form again, with the error
        assert "enter its token again" in r.content.decode()
        assert Gateway.objects.get(pk=gateway.pk).url == gateway.url

    def test_disable_is_a_state_and_enable_connects_again(self, admin, gateway):
        url = reverse("gateways:edit", args=[gateway.pk])
        admin.post(url, _form(name="prod", url=gateway.url, enabled=""))
        assert Gateway.objects.get(pk=gateway.pk).state == "disabled"
        admin.post(url, _form(name="prod", url=gateway.url))
        assert Gateway.objects.get(pk=gateway.pk).state == "connecting"

    def test_delete_keeps_its_agents_and_a_new_gateway_of_that_name_adopts_them(
        self, admin, gateway
    ):
        [agent] = agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        assert agent.name == "main@prod"
        assert agent.status == "idle"
        assert admin.post(reverse("gateways:delete", args=[gateway.pk])).status_code == 302
        agent.refresh_from_db()
        assert agent.gateway_id is None
        assert agent.status == "offline"
        again = make_gateway()
        [adopted] = agent_actions.sync_gateway_agents(again.pk, frames.agents([{"id": "main"}]))
        assert adopted.pk == agent.pk
        assert adopted.gateway_id == again.pk
        assert adopted.status == "idle"

    def test_test_connection_reports_the_outcome(self, admin, gateway):
        # Nothing listens on port 9: the exact outcome, with its remedy, on the page.
        response = admin.post(reverse("gateways:test", args=[gateway.pk]), follow=True)
        html = response.content.decode()
        assert "Test connection" in html
        assert "Unreachable" in html
        assert "Nothing answered at ws://127.0.0.1:9/" in html

    def test_words_of_a_result_and_of_stale_health(self, admin, gateway):
        """(#31.6) "Token rejected", not AUTHFAILED; health kept from when it was connected
        says so ("as of")."""
        from django.utils import timezone

        session = admin.session
        session[f"gateway-test-{gateway.pk}"] = {"state": "auth_failed", "detail": "no"}
        session.save()
        Gateway.objects.filter(pk=gateway.pk).update(
            state="unreachable", health={"uptime_s": 3600, "rss_mb": 210}, health_at=timezone.now()
        )
        html = admin.get(reverse("gateways:detail", args=[gateway.pk])).content.decode()
        assert "Test connection: Token rejected" in html
        assert "Last known, as of" in html


class TestTaskOfAGatewayAgent:
    def test_the_task_page_says_assigning_does_not_tell_it(self, viewer, gateway):
        from agents.models import Agent
        from tests.tasks.factories import make_task

        agent = Agent.objects.create(name="main@prod", gateway=gateway, external_id="main")
        task = make_task("Ask main", assignee=f"agent:{agent.pk}")
        html = viewer.get(f"/tasks/{task.pk}/").content.decode()
        assert "being assigned a task does not tell it" in html


class TestAgentsOfGateways:
    def test_agents_page_shows_the_gateway_badge_next_to_direct_agents(self, viewer, gateway):
        agent_actions.sync_gateway_agents(
            gateway.pk, frames.agents([{"id": "main", "model": {"primary": "m"}}])
        )
        Agent.objects.create(name="laptop-claude", status="idle")
        html = viewer.get(reverse("agents:list")).content.decode()
        assert 'class="gw-badge gw-blue"' in html
        assert ">prod</a>" in html
        assert "laptop-claude" in html
        assert ">direct<" in html

    def test_two_gateways_agents_of_the_same_id_never_clash(self, gateway):
        other = make_gateway(name="staging", url="ws://127.0.0.1:10/")
        a = agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))[0]
        b = agent_actions.sync_gateway_agents(other.pk, frames.agents([{"id": "main"}]))[0]
        assert (a.name, b.name) == ("main@prod", "main@staging")
        assert a.display_name == b.display_name == "main"

    def test_an_agent_the_gateway_stops_listing_goes_offline(self, gateway):
        agent_actions.sync_gateway_agents(
            gateway.pk, frames.agents([{"id": "main"}, {"id": "old"}])
        )
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        assert Agent.objects.get(name="old@prod").status == "offline"
        assert Agent.objects.get(name="main@prod").status == "idle"

    def test_a_direct_agent_name_is_never_taken_over(self, gateway):
        Agent.objects.create(name="main@prod", status="idle")
        assert agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}])) == []


class TestNamesAGatewayChooses:
    """Whatever id a gateway gives its agents, every page that links them renders, and the
    link leads to the agent (issue #30 §3: an id with `/` was a 500 for every user)."""

    @pytest.mark.parametrize("ident", ["ops/main", "a%2Fb", "<b>x</b>", "50% off", "..", "é/ü"])
    def test_pages_linking_an_agent_render_and_the_link_works(self, viewer, ident):
        gateway = make_gateway(token=SECRET)
        [agent] = agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": ident}]))
        link = reverse("agents:detail", args=[agent.name])
        for page in ("/agents/", f"/gateways/{gateway.pk}/", "/search/?q=" + ident[:3]):
            r = viewer.get(page)
            assert r.status_code == 200, page
        listed = viewer.get("/agents/").content.decode()
        assert link in listed
        assert "<b>x</b>" not in listed
        detail = viewer.get(link)
        assert detail.status_code == 200
        assert escape(agent.display_name) in detail.content.decode()
