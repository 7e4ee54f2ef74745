"""mc-agent against a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from agents.models import Agent, AgentKey, AgentStatusChange
from billing.models import UsageRecord
from mcagent.cli import transcript_usage
from tests.agents.conftest import issue
from tests.live import ROOT

DATA = ROOT / "tests" / "agents" / "data"
pytestmark = pytest.mark.slow


def mc_agent(
    live, key: str, home, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MC_URL": live.url,
        "MC_API_KEY": key,
        "XDG_CONFIG_HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "mcagent", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_reports_busy_then_error_and_passes_the_exit_code(live, tmp_path):
    _key, enrollment = issue(AgentKey.Kind.ENROLLMENT)
    result = mc_agent(
        live,
        enrollment,
        tmp_path,
        "run",
        "--name",
        "wrapped",
        "--interval",
        "1",
        "--",
        "sh",
        "-c",
        "sleep 2; echo 'compiling' >&2; echo 'error: disk full' >&2; exit 3",
    )
    assert result.returncode == 3, result.stderr
    # Its stderr passes through as it comes, and its tail is the failure's message.
    assert "error: disk full" in result.stderr
    agent = Agent.objects.get(name="wrapped")
    assert agent.status == "error"
    assert agent.last_message == "exited with code 3: compiling | error: disk full"
    steps = list(
        AgentStatusChange.objects.filter(agent=agent).order_by("id").values_list("new", flat=True)
    )
    assert steps[-2:] == ["busy", "error"]
    # Its own key was stored for next time (0600), and works without the enrollment key.
    stored = tmp_path / "mission-control" / "agents" / "wrapped.key"
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    again = mc_agent(live, "", tmp_path, "heartbeat", "--name", "wrapped", "--status", "idle")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "idle"


def test_run_survives_an_unreachable_server(tmp_path):
    env = {
        **os.environ,
        "MC_URL": "http://127.0.0.1:9",
        "MC_API_KEY": "mc_" + "a" * 12 + "_" + "b" * 43,
        "XDG_CONFIG_HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "mcagent", "run", "--name", "lonely", "--", "sh", "-c", "exit 0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "without reporting" in result.stderr


def test_report_and_its_idempotency_key(live, tmp_path):
    agent = Agent.objects.create(name="reporter")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    for _ in range(2):
        result = mc_agent(
            live,
            full,
            tmp_path,
            "report",
            "--name",
            "reporter",
            "--model",
            "gpt-5",
            "--input",
            "100",
            "--output",
            "20",
            "--id",
            "call-1",
        )
        assert result.returncode == 0, result.stderr
    assert UsageRecord.objects.filter(agent=agent).count() == 1


def test_claude_hook_reports_each_message_once_even_when_run_twice(live, tmp_path):
    agent = Agent.objects.create(name="claude-laptop")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    hook = json.dumps(
        {
            "session_id": "sess-1",
            "transcript_path": str(DATA / "transcript.jsonl"),
            "hook_event_name": "Stop",
        }
    )
    for _ in range(2):
        result = mc_agent(
            live, full, tmp_path, "claude-hook", "--name", "claude-laptop", stdin=hook
        )
        assert result.returncode == 0, result.stderr
    records = {r.client_id: r for r in UsageRecord.objects.filter(agent=agent)}
    assert set(records) == {"msg_01", "msg_02"}
    first = records["msg_01"]
    assert (
        first.input_tokens,
        first.output_tokens,
        first.cache_write_tokens,
        first.cache_read_tokens,
    ) == (1200, 150, 500, 8000)
    assert first.model == "claude-sonnet-4-5"
    assert first.session == "sess-1"
    assert Agent.objects.get(pk=agent.pk).status == "idle"


def test_claude_hook_never_breaks_the_session_on_bad_input(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mcagent", "claude-hook"],
        cwd=ROOT,
        input="not json",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)},
        timeout=30,
    )
    assert result.returncode == 0


def test_transcript_parsing_dedupes_by_message_id():
    records = transcript_usage(DATA / "transcript.jsonl", "s")
    assert [r["id"] for r in records] == ["msg_01", "msg_02"]
    assert records[1]["output_tokens"] == 420


def test_run_refuses_to_start_while_a_budget_pauses_the_agent(live, tmp_path):
    """Exit code 75 and the reason, the command never started; `heartbeat` prints paused."""
    import time
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from billing import actions as billing_actions
    from billing import budgets
    from billing.actions import UsageItem, record_usage
    from billing.models import Budget
    from missioncontrol.audit import Actor

    agent = Agent.objects.create(name="spender")
    _key, own = issue(AgentKey.Kind.AGENT, agent)
    billing_actions.save_budget(
        Actor.system("test"),
        Budget(name="Cap", amount_usd=Decimal("0.01"), thresholds=[100], enforce=True),
    )
    with transaction.atomic():
        record_usage([UsageItem(agent.pk, "gpt-4o", 4000, 2000, timezone.now(), provider="openai")])
    # Until the server process's caches know of the spend (its answer says so, within about
    # budgets.RULES_TTL_S): waited for, not slept for.
    deadline = time.monotonic() + 10 * budgets.RULES_TTL_S
    while (
        not httpx.post(
            f"{live.url}/api/v1/agents/spender/heartbeat",
            headers={"Authorization": f"Bearer {own}"},
            json={"status": "idle"},
            timeout=5,
        )
        .json()
        .get("paused")
    ):
        assert time.monotonic() < deadline, "the server never learnt of the pause"
        time.sleep(0.05)
    marker = tmp_path / "started"
    result = mc_agent(live, own, tmp_path, "run", "--name", "spender", "--", "touch", str(marker))
    assert result.returncode == 75, result.stderr
    assert "paused, not starting" in result.stderr
    assert "Cap" in result.stderr
    assert not marker.exists()
    # (#31.9) Its last word is that the command did not start, not "starting: …".
    from agents.models import AgentMessage

    last = AgentMessage.objects.filter(agent__name="spender").first()
    assert last is not None
    assert last.message.startswith("not started (paused): touch"), last.message
    beat = mc_agent(live, own, tmp_path, "heartbeat", "--name", "spender")
    shown = json.loads(beat.stdout)
    assert shown["paused"] is True
    assert "Cap" in shown["reason"]
    # Leave the shared server as found: its caches forget the deleted budget within the TTLs.
    Budget.objects.all().delete()
    deadline = time.monotonic() + 10
    while json.loads(mc_agent(live, own, tmp_path, "heartbeat", "--name", "spender").stdout).get(
        "paused"
    ):
        assert time.monotonic() < deadline, "the server kept the pause"
        time.sleep(0.3)


def test_work_runs_a_dispatched_task_to_review_with_a_script_for_codex(live, tmp_path):
    """`mc-agent work` (#27): a script stands in for Codex. It is given the brief, says what it
    does, prints its usage in the documented form and answers; the run succeeds, the answer is
    the agent's comment, the task is in Review and the usage is the task's."""
    from missioncontrol.audit import Actor
    from runs import actions as run_actions
    from runs.models import Run
    from tasks.models import Comment, Task
    from tests.tasks.factories import make_task

    agent = Agent.objects.create(name="codex-1", heartbeat_interval_s=1)
    _key, own = issue(AgentKey.Kind.AGENT, agent)
    task = make_task("Rename the flag", assignee=f"agent:{agent.pk}")
    run, _ = run_actions.dispatch(Actor.system("test"), run_actions.Dispatch(task.pk))
    script = (
        'echo "Reading the brief" >&2; '
        'echo \'MC_USAGE {"model": "gpt-4o", "input_tokens": 900, "output_tokens": 100}\'; '
        'sleep 1.5; printf "Renamed it.\\n\\nBrief was: %s\\n" "$1" | head -c 60'
    )
    result = mc_agent(
        live, own, tmp_path, "work", "--name", "codex-1", "--once", "--poll", "0.2",
        "--", "sh", "-c", script, "sh", "{prompt}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run.refresh_from_db()
    task.refresh_from_db()
    assert run.state == "succeeded"
    assert (task.status, task.run_state) == ("review", "succeeded")
    comment = Comment.objects.get(task=task)
    assert comment.body.startswith("Renamed it.")
    assert "Task #" in comment.body  # the brief reached the command as {prompt}
    assert "MC_USAGE" not in comment.body
    usage = UsageRecord.objects.get(agent=agent)
    assert (usage.task_id, usage.input_tokens, usage.output_tokens) == (task.pk, 900, 100)
    assert (run.input_tokens, run.output_tokens) == (900, 100)
    assert Run.objects.count() == 1
    assert Task.objects.get(pk=task.pk).comment_count == 1


def test_work_with_nothing_dispatched_waits_and_once_exits(live, tmp_path):
    agent = Agent.objects.create(name="idle-worker")
    _key, own = issue(AgentKey.Kind.AGENT, agent)
    result = mc_agent(live, own, tmp_path, "work", "--name", "idle-worker", "--once", "--", "true")
    assert result.returncode == 0, result.stderr
    assert "waiting for runs" in result.stderr
