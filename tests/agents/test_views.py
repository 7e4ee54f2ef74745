from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from agents import keys
from agents.models import Agent, AgentKey
from tests.agents.conftest import issue
from tests.agents.factories import AgentFactory, UsageRecordFactory
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db

# session, user, role, live seq, gateway grants, the gateway switch (the choice once a session,
# the choices), counts, frameworks, agents, their current tasks' titles, the runs of those
# with none, their last 24 hours' costs.
LIST_QUERIES = 12


class TestAgentsPage:
    def test_viewer_sees_agents_with_counts(self, viewer):
        Agent.objects.create(name="busy-one", status="busy", framework="codex")
        Agent.objects.create(name="gone", status="offline")
        html = viewer.get(reverse("agents:list")).content.decode()
        assert "busy-one" in html
        assert 'id="agent-count-busy">1<' in html
        assert 'id="agent-count-offline">1<' in html
        assert 'id="agent-count-online">1<' in html

    def test_filters(self, viewer):
        Agent.objects.create(name="busy-one", status="busy", framework="codex")
        Agent.objects.create(name="gone", status="offline", framework="claude-code")
        html = viewer.get(reverse("agents:list") + "?status=offline").content.decode()
        assert "gone" in html
        assert "busy-one" not in html
        assert (
            "busy-one"
            not in viewer.get(reverse("agents:list") + "?framework=claude-code").content.decode()
        )

    def test_what_needs_attention_comes_first_then_by_name(self, viewer):
        now = timezone.now()
        for name, status, seen in [
            ("zz-idle", "idle", now),
            ("aa-never", "offline", None),
            ("mm-error", "error", now),
            ("bb-offline", "offline", now),
            ("cc-busy", "busy", now),
            ("dd-stale", "stale", now),
            ("ab-busy", "busy", now),
        ]:
            Agent.objects.create(name=name, status=status, last_seen_at=seen)
        html = viewer.get(reverse("agents:list")).content.decode()
        order = [
            html.index(f">{n}<")
            for n in (
                "mm-error",
                "ab-busy",
                "cc-busy",
                "zz-idle",
                "dd-stale",
                "bb-offline",
                "aa-never",
            )
        ]
        assert order == sorted(order)

    def test_list_query_count_is_pinned(self, viewer, django_assert_num_queries):
        for i in range(5):
            AgentFactory.create(name=f"a{i}", current_task_id=None)
        viewer.get(reverse("agents:list"))  # warm the session
        # No agent works on a task: the titles are not asked for.
        with django_assert_num_queries(LIST_QUERIES - 1):
            viewer.get(reverse("agents:list"))
        for i in range(20):
            task = make_task(title=f"task {i}")
            AgentFactory.create(name=f"b{i}", current_task_id=task.pk)
        with django_assert_num_queries(LIST_QUERIES):
            viewer.get(reverse("agents:list"))

    def test_detail_shows_the_model_from_reported_usage_and_grouped_numbers(self, viewer):
        agent = AgentFactory.create(
            name="bulk-reporter"
        )  # reports usage in bulk, no heartbeat model
        UsageRecordFactory.create(agent=agent, model="gpt-5-codex", input_tokens=12000)
        html = viewer.get(reverse("agents:detail", args=[agent.name])).content.decode()
        assert '<dd class="mono small">gpt-5-codex</dd>' in html
        assert ">12,000<" in html

    def test_detail(self, viewer):
        Agent.objects.create(name="ada", framework="claude-code")
        response = viewer.get(reverse("agents:detail", args=["ada"]))
        assert response.status_code == 200
        assert b"Status history" in response.content
        assert viewer.get(reverse("agents:detail", args=["nobody"])).status_code == 404

    def test_outsider_and_anonymous_are_refused(self, outsider, client):
        assert outsider.get(reverse("agents:list")).status_code == 403
        assert client.get(reverse("agents:list")).status_code == 302

    def test_wrong_method(self, admin):
        assert admin.post(reverse("agents:list")).status_code == 405


class TestKeysPage:
    def test_admin_issues_an_agent_key_shown_once(self, admin):
        agent = Agent.objects.create(name="ada")
        response = admin.post(
            reverse("agents:keys"), {"kind": "agent", "agent": agent.pk, "name": "laptop"}
        )
        assert response.status_code == 200
        full = response.context["new_key"]
        assert full.startswith("mc_")
        assert full in response.content.decode()
        assert getattr(keys.verify(full), "agent_name", None) == "ada"
        assert full not in admin.get(reverse("agents:keys")).content.decode()  # never again

    def test_a_new_key_comes_with_ready_snippets(self, admin):
        """#31.17: env vars, Claude Code's settings and curl, with this server's URL, the key
        and the agent's name, each with a Copy button; an enrollment key's curl registers."""
        agent = Agent.objects.create(name="ada")
        response = admin.post(reverse("agents:keys"), {"kind": "agent", "agent": agent.pk})
        full = response.context["new_key"]
        html = response.content.decode()
        assert f"export MC_URL=http://testserver MC_API_KEY={full}" in html
        assert "mc-agent run --name ada -- your-command" in html
        assert f'"MC_API_KEY": "{full}"' in html
        assert "http://testserver/api/v1/agents/ada/heartbeat" in html
        assert html.count('data-copy="') == 4
        enrolling = admin.post(reverse("agents:keys"), {"kind": "enrollment"}).content.decode()
        assert "http://testserver/api/v1/agents/register" in enrolling
        assert "--name my-agent" in enrolling

    def test_agent_key_needs_an_agent(self, admin):
        response = admin.post(reverse("agents:keys"), {"kind": "agent"})
        assert response.status_code == 422
        assert b"belongs to one agent" in response.content
        assert AgentKey.objects.count() == 0

    def test_enrollment_key_with_limits(self, admin):
        admin.post(reverse("agents:keys"), {"kind": "enrollment", "max_uses": 3})
        key = AgentKey.objects.get()
        assert (key.kind, key.max_uses, key.agent) == ("enrollment", 3, None)

    def test_revoke(self, admin):
        key, full = issue(AgentKey.Kind.ENROLLMENT)
        assert keys.verify(full) is not None
        assert admin.post(reverse("agents:revoke", args=[key.pk])).status_code == 302
        assert keys.verify(full) is None

    @pytest.mark.parametrize("persona", ["viewer", "operator"])
    def test_non_admins_are_refused(self, request, persona):
        client = request.getfixturevalue(persona)
        assert client.get(reverse("agents:keys")).status_code == 403
        assert client.post(reverse("agents:keys"), {"kind": "enrollment"}).status_code == 403
        key, _ = issue(AgentKey.Kind.ENROLLMENT)
        assert client.post(reverse("agents:revoke", args=[key.pk])).status_code == 403
        assert AgentKey.objects.get(pk=key.pk).revoked_at is None

    def test_revoke_needs_post(self, admin):
        key, _ = issue(AgentKey.Kind.ENROLLMENT)
        assert admin.get(reverse("agents:revoke", args=[key.pk])).status_code == 405


class TestCreateAgentKeyCommand:
    def test_agent_key_on_its_own_line_and_the_next_step_beside_it(self):
        out, err = io.StringIO(), io.StringIO()
        call_command("create_agent_key", "--agent", "cli-bot", stdout=out, stderr=err)
        full = out.getvalue().strip()
        assert getattr(keys.verify(full), "agent_name", None) == "cli-bot"
        # (#31.17) What to do with it, on stderr (stdout stays the key alone for scripts).
        assert f"export MC_URL=http://127.0.0.1:3200 MC_API_KEY={full}" in err.getvalue()
        assert "mc-agent run --name cli-bot -- your-command" in err.getvalue()

    def test_enrollment_key(self):
        out = io.StringIO()
        call_command("create_agent_key", "--enrollment", "--max-uses", "5", stdout=out)
        assert getattr(keys.verify(out.getvalue().strip()), "kind", None) == "enrollment"


class TestAgentPageRecords:
    def test_repeated_messages_fold_and_the_records_link_to_the_rest(self, viewer):
        """(#31.16) 50 identical heartbeat lines are one, ×50; '253 records' links to them."""
        from datetime import timedelta

        from django.utils import timezone

        from agents.models import AgentMessage
        from tests.agents.factories import UsageRecordFactory

        agent = Agent.objects.create(name="chatty", framework="codex")
        now = timezone.now()
        rows = [
            AgentMessage(agent=agent, status="busy", message="running tests") for _ in range(50)
        ]
        rows.append(AgentMessage(agent=agent, status="idle", message="done"))
        AgentMessage.objects.bulk_create(rows)
        AgentMessage.objects.filter(agent=agent).update(created_at=now - timedelta(minutes=5))
        UsageRecordFactory.create_batch(25, agent=agent)
        page = viewer.get("/agents/chatty/").content.decode()
        assert page.count("running tests") == 1
        assert "×50 since" in page
        assert "the latest 20 of 25 records" in page
        assert "/costs/records.csv?range=all&amp;agent=chatty" in page
        assert "/costs/?range=all&amp;agent=chatty" in page
        assert viewer.get("/costs/records.csv?range=all&agent=chatty").status_code == 200
