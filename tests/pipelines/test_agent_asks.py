"""An agent asks a person before it goes on (#29's request_approval): the question waits on the
Approvals page and the Overview for the operators who may act on the agent's gateway; the first
answer wins; unanswered by its deadline it expires; every change is a live event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent
from missioncontrol.audit import Actor
from missioncontrol.errors import Conflict, Forbidden, Invalid
from missioncontrol.models import LiveEvent
from pipelines import approvals
from pipelines.models import AgentAsk
from tests.gateways.factories import make_gateway
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada() -> Agent:
    return Agent.objects.create(name="ada")


def test_a_question_is_answered_once_and_the_second_answer_is_refused(
    ada, bob_operator, carol_admin
):
    task = make_task("Drop the old table", assignee=f"agent:{ada.pk}")
    ask = approvals.ask_agent(
        ada.pk, "May I drop table legacy_users?", "It has 0 reads.", task.pk, 600
    )
    assert (ask.outcome, ask.task_id) == ("pending", task.pk)
    answered = approvals.answer_agent(
        Actor.user(bob_operator), bob_operator, ask.pk, "approved", "Yes, after a backup."
    )
    assert (answered.outcome, answered.answered_label, answered.comment) == (
        "approved",
        "bob",
        "Yes, after a backup.",
    )
    with pytest.raises(Conflict, match="bob answered first"):
        approvals.answer_agent(Actor.user(carol_admin), carol_admin, ask.pk, "rejected")
    types = list(
        LiveEvent.objects.filter(topic="pipelines")
        .order_by("seq")
        .values_list("payload__type", flat=True)
    )
    assert types == ["agent_ask.requested", "agent_ask.resolved"]


def test_who_may_ask_and_who_may_answer(ada, alice_viewer, bob_operator):
    theirs = make_task("Someone else's")
    with pytest.raises(Forbidden, match="not yours"):
        approvals.ask_agent(ada.pk, "May I?", task_id=theirs.pk)
    with pytest.raises(Invalid) as refused:
        approvals.ask_agent(ada.pk, "   ", timeout_s=5)
    assert set(refused.value.detail) == {"question", "timeout_s"}
    ask = approvals.ask_agent(ada.pk, "May I deploy?")
    with pytest.raises(Forbidden):
        approvals.answer_agent(Actor.user(alice_viewer), alice_viewer, ask.pk, "approved")
    # An operator narrowed to another gateway may not answer a gateway agent's question.
    from gateways import actions as gateway_actions

    prod, lab = make_gateway("prod"), make_gateway("lab", url="ws://127.0.0.1:10/")
    gw_agent = Agent.objects.create(name="main@prod", gateway=prod, source="gateway")
    gateway_actions.set_grant(Actor.system("test"), lab, bob_operator, "operate")
    gw_ask = approvals.ask_agent(gw_agent.pk, "May I restart nginx?")
    with pytest.raises(Forbidden):
        approvals.answer_agent(Actor.user(bob_operator), bob_operator, gw_ask.pk, "approved")


def test_an_unanswered_question_expires(ada):
    ask = approvals.ask_agent(ada.pk, "May I?", timeout_s=60)
    assert approvals.expire_agent_asks(timezone.now()) == 0
    assert approvals.expire_agent_asks(timezone.now() + timedelta(seconds=61)) == 1
    ask.refresh_from_db()
    assert (ask.outcome, ask.comment) == ("expired", "No answer in time.")


def test_the_page_and_the_overview_show_it_and_an_operator_answers_there(ada, operator, viewer):
    ask = approvals.ask_agent(ada.pk, "May I rotate the API keys?", "**All** of them.")
    page = operator.get("/pipelines/approvals/").content.decode()
    assert f'id="agent-ask-{ask.pk}"' in page
    assert "<strong>All</strong> of them." in page
    # Needs attention links to it for operators; viewers cannot answer it (the activity feed
    # still says it was asked).
    assert f"/pipelines/approvals/#agent-ask-{ask.pk}" in operator.get("/").content.decode()
    assert f"#agent-ask-{ask.pk}" not in viewer.get("/").content.decode()
    assert (
        viewer.post(
            f"/pipelines/approvals/agent/{ask.pk}/answer/", {"outcome": "approved"}
        ).status_code
        == 403
    )
    r = operator.post(
        f"/pipelines/approvals/agent/{ask.pk}/answer/",
        {"outcome": "rejected", "comment": "Not today."},
        HTTP_HX_REQUEST="true",
    )
    assert r.status_code == 204
    assert AgentAsk.objects.get(pk=ask.pk).outcome == "rejected"
    again = operator.post(
        f"/pipelines/approvals/agent/{ask.pk}/answer/",
        {"outcome": "approved"},
        HTTP_HX_REQUEST="true",
    )
    assert again.status_code == 409
