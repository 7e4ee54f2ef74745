"""#27, exactly once across a crash of Mission Control itself: a real `serve` (its connector and
run sender in the process) is killed with SIGKILL while a dispatched run is still answering on
the real gateway, the run ends while nobody listens, and the restarted server finishes its
bookkeeping once: one reply, one comment, one run, one model call."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import pytest

from agents.models import Agent
from gateways.models import Gateway
from missioncontrol.audit import Actor
from runs import actions as run_actions
from runs.models import Run
from tasks.models import Comment, Task
from tests.gateways import fakellm
from tests.gateways.factories import make_gateway
from tests.gateways.waiting import wait_for
from tests.live import ServerProcess
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROMPT = "Finish this once, whatever happens to Mission Control"


def test_mission_control_killed_mid_run_finishes_it_once_after_restart(
    alpha, fake_model, test_db_path, static_built, monkeypatch
):
    release, thinking = threading.Event(), threading.Event()
    calls: list[dict[str, Any]] = []
    original = fakellm._Handler.reply

    def slow(self: Any, request: dict[str, Any]) -> list[str]:
        if PROMPT in json.dumps(request):
            calls.append(request)
            thinking.set()
            release.wait(60)  # still answering when Mission Control is killed
        return original(self, request)

    monkeypatch.setattr(fakellm._Handler, "reply", slow)
    gateway = make_gateway(name="alpha", url=alpha.url, token=alpha.token)
    mc = ServerProcess(test_db_path, extra_env={"MC_LIVE_GRACE_MS": "300"})
    try:
        mc.start()
        wait_for(lambda: Gateway.objects.get(pk=gateway.pk).state == "connected")
        agent = wait_for(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
        task = make_task(PROMPT, assignee=f"agent:{agent.pk}")
        run, _ = run_actions.dispatch(Actor.system("test"), run_actions.Dispatch(task.pk))
        # The server's sender started it on the gateway, and the model is answering.
        assert thinking.wait(60), "the run never reached the model"
        wait_for(lambda: Run.objects.get(pk=run.pk).state == "running")
        mc.stop(signal.SIGKILL)
        # The run ends on the gateway while no Mission Control listens.
        release.set()
        wait_for(lambda: len(fake_model.server.requests) and not _answering(calls, fake_model))
        assert Run.objects.get(pk=run.pk).state == "running"  # nobody heard the end
        mc.start()
        # Asked about as soon as its gateway is connected again (2 s here; before, at the
        # next lease renewal: 32 s), not only once it is 20 s old at a renewal.
        ended = wait_for(
            lambda: Run.objects.filter(pk=run.pk, state__in=Run.ENDED).first(), timeout=20
        )
    finally:
        release.set()
        mc.stop()
    assert ended.state == "succeeded", (ended.state, ended.error_kind, ended.error, mc.output())
    assert ended.reply
    [comment] = Comment.objects.filter(task=task)
    assert comment.body == ended.reply
    assert comment.author_agent_id == agent.pk
    done = Task.objects.get(pk=task.pk)
    assert (done.status, done.run_state, done.blocked) == ("review", "succeeded", False)
    assert Run.objects.filter(task=task).count() == 1
    assert len(calls) == 1, "the run was started on the gateway twice"


def _answering(calls: list[dict[str, Any]], model: Any) -> bool:
    """The model still owes an answer to one of our prompt's calls."""
    answered = [r for r in model.server.requests if PROMPT in json.dumps(r)]
    return len(answered) < len(calls)
