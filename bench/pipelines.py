"""Pipelines (#28): a 50-step pipeline's run page, the scheduler's tick with 1,000 scheduled
pipelines, and a step's completion → the next step dispatched.

- Seed: a 50-step pipeline (a chain of 10 stages, each of 5 parallel steps needing every step
  of the stage before), one run worked to the end by a CLI agent through runs' own actions
  (claim, finish); the time of each `finish` is the completion → next dispatch latency (the next
  step's run is written in the transaction that ends the step: when `finish` returns, it is
  queued). 1,000 more pipelines with a schedule (slots in the future).
- The run page: GET /pipelines/runs/<id>/ for an operator over loopback to a real `serve`.
- The tick: the pipelines loop's whole tick (timeouts, approvals, due slots), in process.

Usage: python bench/pipelines.py [--scheduled 1000] [--requests 40] [--ticks 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import Server, login, manage, pct, prepare

SEED = r"""
import time
from agents.models import Agent
from missioncontrol.audit import Actor
from pipelines import actions, loops
from runs import actions as runs
from runs.models import Run
actor = Actor.system("bench")
agent = Agent.objects.create(name="bench-ada", framework="codex", heartbeat_interval_s=30)
lines = ["name: Fifty", "inputs:", "  - {name: topic, type: text, default: tides}", "steps:"]
for stage in range(10):
    for i in range(5):
        needs = ", ".join("s%d-%d" % (stage - 1, j) for j in range(5)) if stage else ""
        brief = "Stage {{ inputs.topic }}" + (" after {{ steps.s%d-0.output }}" % (stage - 1) if stage else "")
        lines += ["  - id: s%d-%d" % (stage, i), "    agent: bench-ada", "    needs: [%s]" % needs,
                  "    brief: '%s'" % brief]
version = actions.save(actor, "\n".join(lines) + "\n")
run, _ = actions.start(actor, actions.Start(version.pipeline_id))
finishes = []
while True:
    queued = list(Run.objects.filter(state="queued").values_list("pk", flat=True))
    if not queued:
        break
    for run_id in queued:
        runs.claim(agent.pk, run_id)
        t = time.perf_counter()
        runs.finish(agent.pk, run_id, "succeeded", reply="Done: " + "words " * 200)
        finishes.append((time.perf_counter() - t) * 1000)
run.refresh_from_db()
assert run.state == "succeeded", run.state
finishes.sort()
p = lambda q: finishes[min(len(finishes) - 1, int(len(finishes) * q / 100))]
print("RUN %d FINISH p50 %.1f p99 %.1f n %d" % (run.pk, p(50), p(99), len(finishes)))
sched = "name: S%d\nschedule: {cron: '0 3 * * *', timezone: Europe/Paris}\nsteps:\n  - {id: a, agent: bench-ada}\n"
for n in range(SCHEDULED):
    actions.save(actor, sched % n)
ticks = []
for _ in range(TICKS):
    t = time.perf_counter()
    loops.tick()
    ticks.append((time.perf_counter() - t) * 1000)
ticks.sort()
q = lambda x: ticks[min(len(ticks) - 1, int(len(ticks) * x / 100))]
print("TICK p50 %.2f p99 %.2f" % (q(50), q(99)))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scheduled", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="mc-bench-pipelines-"))
    prepare(data)
    seed = SEED.replace("SCHEDULED", str(args.scheduled)).replace("TICKS", str(args.ticks))
    out = manage(data, "shell", "-c", seed)
    run_line = next(line for line in out.splitlines() if line.startswith("RUN"))
    tick_line = next(line for line in out.splitlines() if line.startswith("TICK"))
    run_id = int(run_line.split()[1])
    finish = run_line.split("FINISH ")[1]
    server = Server(data, 3297, env={"MC_GATEWAY_CONNECTORS": "0"})
    try:
        client = login(server.url)
        first = client.get(f"/pipelines/runs/{run_id}/")
        assert first.status_code == 200, first.status_code
        assert first.text.count('class="pstep ') == 50, "the page shows every step"
        times = []
        for _ in range(args.requests):
            t = time.perf_counter()
            response = client.get(f"/pipelines/runs/{run_id}/")
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.status_code
        print(
            f"run page (50 steps, {len(first.content) // 1024} KB): p50 {pct(times, 50):.0f} ms, "
            f"p99 {pct(times, 99):.0f} ms"
        )
        print(f"a step's end → the next steps queued (finish, ms): {finish}")
        print(f"pipelines loop tick, {args.scheduled:,} scheduled pipelines (ms): {tick_line[5:]}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
