"""A task's page with a long history (#27): one task with 50 attempts (49 failed and retried,
the last succeeded with a long markdown reply), 10,000 run events in the event log (200
progress reports per attempt, each published), and the comments and audit trail those leave.
Server time of GET /tasks/<id>/ for an operator over loopback to a real `serve`, p50 / p99.

Usage: python bench/task_page.py [--attempts 50] [--progress 200] [--requests 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import Server, login, manage, pct, prepare, query

SEED = """
import time
from agents.models import Agent
from missioncontrol.audit import Actor
from runs import actions as runs
from tasks import actions as tasks
runs._progress_due = lambda run_id: True  # every report published (the log holds them all)
actor = Actor.system("bench")
agent = Agent.objects.create(name="bench-ada", framework="codex")
task = tasks.create_task(actor, title="Rename the CLI's --out flag", status="todo",
                         description="Keep the old name as an alias.\\n\\n" + "Context. " * 300,
                         assignee=f"agent:{{agent.pk}}")
run, _ = runs.dispatch(actor, runs.Dispatch(task.pk, instructions="Mind the changelog. " * 20))
started = time.perf_counter()
for n in range({attempts}):
    runs.claim(agent.pk, run.pk)
    for i in range({progress}):
        runs.report_progress(agent.pk, run.pk, f"Step {{i}}: editing src/cli/module_{{i}}.py")
    if n < {attempts} - 1:
        runs.finish(agent.pk, run.pk, "failed", error=f"Tests failed: {{n}} of 812 (see log)")
        run, _ = runs.retry(actor, run.pk, f"bench-{{n}}")
    else:
        reply = "## Done\\n\\n" + "\\n".join(f"- changed `module_{{i}}.py`: **renamed**" for i in range(80))
        runs.finish(agent.pk, run.pk, "succeeded", reply=reply)
print(f"TASK {{task.pk}} seeded in {{time.perf_counter() - started:.0f}} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=50)
    parser.add_argument("--progress", type=int, default=200)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="mc-bench-task-page-"))
    prepare(data)
    out = manage(data, "shell", "-c", SEED.format(attempts=args.attempts, progress=args.progress))
    task_id = int(next(line for line in out.splitlines() if line.startswith("TASK")).split()[1])
    events = query(data, "SELECT COUNT(*) FROM missioncontrol_liveevent WHERE type LIKE 'run.%%'")
    attempts = query(data, "SELECT COUNT(*) FROM runs_run WHERE task_id = %s", (task_id,))
    server = Server(data, 3298, env={"MC_GATEWAY_CONNECTORS": "0"})
    try:
        client = login(server.url)
        first = client.get(f"/tasks/{task_id}/")
        assert first.status_code == 200, first.status_code
        assert "Attempt 50" in first.text or args.attempts != 50, "the page shows every attempt"
        times = []
        for _ in range(args.requests):
            t = time.perf_counter()
            response = client.get(f"/tasks/{task_id}/")
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.status_code
        print(
            f"task page ({attempts[0][0]} attempts, {events[0][0]:,} run events, "
            f"{len(first.content) // 1024} KB): p50 {pct(times, 50):.0f} ms, "
            f"p99 {pct(times, 99):.0f} ms"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
