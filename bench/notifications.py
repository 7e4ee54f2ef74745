"""Notifications against a real `serve` (its evaluator and sender on), a Slack-shaped receiver
on loopback:

1. Latency: a transition committed by another process (a gateway added that cannot connect:
   the server learns of it from the event log) → its message received, for N transitions a few
   seconds apart (each a new gateway: no coalescing). Target p99 ≤ 2 s.
2. Rules: 10,000 people, each with a personal channel and a rule, and one item: the time to
   judge every rule (`_owe`'s matching, recipients cached as the evaluator keeps them), and to
   load the recipients cold. Target ≤ 50 ms for the first.

Usage: python bench/notifications.py [--transitions 30] [--people 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Receiver, Server, manage, pct, prepare

sys.path.insert(0, str(ROOT))

SEED = """
from missioncontrol.audit import Actor
from notifications import actions
actions.save_channel(Actor.system("bench"), actions.ChannelInput(kind="slack", name="bench", target="{url}"))
print("SEEDED")
"""

TRANSITIONS = """
import json, time
from missioncontrol.audit import Actor
from gateways import actions
made = {{}}
for i in range({n}):
    time.sleep({gap})
    actions.create_gateway(Actor.system("bench"), name=f"bench-{{i}}", url="ws://127.0.0.1:9/")
    made[f"bench-{{i}}"] = time.time()  # committed: create_gateway's transaction has ended
print("MADE " + json.dumps(made))
"""

RULES = """
import time
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from notifications import actions, rules
from notifications.models import Channel, Rule
from missioncontrol.overview import NOTIFY_KINDS
User = get_user_model()
n = {n}
users = User.objects.bulk_create([User(username=f"p{{i}}", email=f"p{{i}}@example.com") for i in range(n)])
operators = Group.objects.get(name="operator")
Through = User.groups.through
Through.objects.bulk_create([Through(user_id=u.pk, group_id=operators.pk) for u in users])
Channel.objects.bulk_create([Channel(kind="email", name="me", owner=u, target=u.email, hint="…") for u in users])
Rule.objects.bulk_create([Rule(user=u, kinds=list(NOTIFY_KINDS), time_zone="UTC") for u in users])
started = time.perf_counter()
found = rules.load_recipients()
cold = time.perf_counter() - started
item = rules.Seen(kind="gateway", severity=0, gateway_id=1, role="viewer", people=(), operate=False, ungated=True)
rules.recipients()
times = []
for _ in range(20):
    started = time.perf_counter()
    wanted = [r for r in rules.recipients() if rules.wants(r, item)]
    times.append(time.perf_counter() - started)
times.sort()
print(f"RULES {{len(found)}} {{len(wanted)}} {{cold*1000:.1f}} {{times[len(times)//2]*1000:.1f}} {{times[-1]*1000:.1f}}")
"""


def latency(n: int, gap: float, port: int) -> list[float]:
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-notify-"))
    prepare(data_dir)
    slack = Receiver()
    env = {"MC_WEBHOOK_ALLOW_PRIVATE": "1", "MC_GATEWAY_CONNECTORS": "0", "MC_NOTIFICATIONS": "1"}
    manage(data_dir, "shell", "-c", SEED.format(url=slack.url), env=env)
    server = Server(data_dir, port, env=env)
    try:
        time.sleep(2)  # its first look
        out = manage(data_dir, "shell", "-c", TRANSITIONS.format(n=n, gap=gap), env=env)
        made = json.loads(out.split("MADE ", 1)[1])
        deadline = time.time() + 15
        while len(slack.arrivals) < n and time.time() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    took = []
    for arrived, body in zip(slack.arrivals, slack.bodies, strict=True):
        title = json.loads(body)["text"]  # "Gateway: bench-3 is connecting"
        name = title.split(": ", 1)[1].split(" is ", 1)[0]
        took.append((arrived - made[name]) * 1000)
    return took


def rules_time(people: int) -> str:
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-rules-"))
    prepare(data_dir)
    out = manage(data_dir, "shell", "-c", RULES.format(n=people))
    found, wanted, cold, median, worst = out.split("RULES ", 1)[1].split()
    return (
        f"rules: {int(found):,} people's rules judged for one item in {median} ms "
        f"(median of 20; worst {worst} ms; {int(wanted):,} want it); the recipients loaded cold "
        f"in {cold} ms (then kept, forgotten on a change)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transitions", type=int, default=30)
    parser.add_argument("--people", type=int, default=10_000)
    args = parser.parse_args()
    took = latency(args.transitions, 1.5, 3399)
    print(
        f"latency: {len(took)} transitions committed by another process → message received: "
        f"p50 {pct(took, 50):,.0f} ms, p99 {pct(took, 99):,.0f} ms, max {max(took):,.0f} ms"
    )
    print(rules_time(args.people))


if __name__ == "__main__":
    main()
