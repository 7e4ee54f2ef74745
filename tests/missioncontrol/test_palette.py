"""The command palette's search: tasks, agents, sessions and scheduled jobs by name, only what
the user may see; and in Chromium, Ctrl+K, type, Enter."""

from __future__ import annotations

import pytest

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from agents.models import Agent
from crons import actions as cron_actions
from gateways import actions as gateway_actions
from gateways import frames
from missioncontrol.audit import Actor
from tests.gateways.factories import make_gateway
from tests.gateways.test_sessions import session_row
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

ADMIN = Actor.system("tests")


def results(client, q: str) -> list[tuple[str, str]]:
    return [(r["kind"], r["title"]) for r in client.get("/search/", {"q": q}).json()["results"]]


@pytest.mark.django_db
class TestSearch:
    def test_finds_each_kind_by_name(self, viewer):
        task = make_task("Rotate the deploy keys")
        Agent.objects.create(name="deployer")
        gateway = make_gateway(name="prod")
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agent_sessions.sync_gateway_sessions(
            gateway.pk, frames.sessions([session_row(label="deploy review")])
        )
        cron_actions.create_check(
            ADMIN, {"name": "nightly deploy", "kind": "every", "every_s": 3600}
        )
        found = results(viewer, "deploy")
        assert ("Task", f"#{task.pk} Rotate the deploy keys") in found
        assert ("Agent", "deployer") in found
        assert ("Session", "deploy review") in found
        assert ("Job", "nightly deploy") in found
        assert results(viewer, f"#{task.pk}") == [("Task", f"#{task.pk} Rotate the deploy keys")]
        assert results(viewer, "") == []

    def test_open_tasks_come_before_done_ones_and_pages_are_found(self, viewer, admin):
        """#31.16: a done task changed last no longer hides the open one; "costs" finds the
        Costs page, and admins' pages only for admins."""
        open_task = make_task("Tune the cache")
        done = make_task("Tune the cache TTL")
        from tasks import actions as task_actions

        task_actions.move_task(ADMIN, done.pk, to_status="done")
        found = results(viewer, "tune the cache")
        assert found.index(("Task", f"#{open_task.pk} Tune the cache")) < found.index(
            ("Task", f"#{done.pk} Tune the cache TTL")
        )
        assert ("Page", "Costs") in results(viewer, "costs")
        assert ("Page", "Audit log") not in results(viewer, "audit")
        assert ("Page", "Audit log") in results(admin, "audit")

    def test_grants_narrow_it(self, viewer, alice_viewer):
        prod, edge = make_gateway(name="prod"), make_gateway(name="edge")
        for gateway in (prod, edge):
            agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        gateway_actions.set_grant(ADMIN, prod, alice_viewer, "view")
        names = [title for kind, title in results(viewer, "main")]
        assert names == ["main"]  # one of the two gateways' agents

    def test_signed_out_is_sent_to_sign_in(self, client):
        assert client.get("/search/", {"q": "x"}).status_code == 302


@pytest.mark.slow
@pytest.mark.browser
def test_ctrl_k_type_enter_opens_it(browser, live):
    UserFactory.create(username="vic", role="viewer")
    task = make_task("Upgrade the gateway fleet")
    browser.login("vic")
    page = browser.page
    page.keyboard.press("Control+k")
    page.wait_for_selector("#palette[open]")
    page.keyboard.type("upgrade the")
    page.wait_for_selector("#palette a[aria-selected=true]:has-text('Upgrade the gateway fleet')")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/tasks/{task.pk}/")
    assert browser.csp_violations() == []
