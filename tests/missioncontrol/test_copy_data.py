"""`manage.py copy_data`: a one-machine SQLite installation moved into this database (the
PostgreSQL profile's, or another SQLite file on the default profile)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from agents.models import Agent, AgentKey
from billing.models import UsageRecord
from missioncontrol.models import AuditEvent, LiveEvent
from tasks.models import Comment, Task
from tests.live import ROOT
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SEED = """
from agents import actions as agent_actions
from agents.models import Agent, AgentKey
from billing.models import UsageRecord
from missioncontrol import roles
from missioncontrol.audit import Actor
from tasks import actions
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("olga", password="pw-olga-123")
roles.set_role(user, "operator")
actor = Actor.user(user)
ada = Agent.objects.create(name="ada")
_key, raw = agent_actions.issue_key(Actor.system("t"), kind=AgentKey.Kind.AGENT, agent=ada)
print("KEY", raw)
for i in range(12):
    task = actions.create_task(actor, title=f"Old task {i}", status="todo")
actions.add_comment(actor, task.pk, "- [x] moved over")
from django.utils import timezone
UsageRecord.objects.create(
    agent=ada, model="m", input_tokens=5, output_tokens=1, client_id="u1", occurred_at=timezone.now()
)
"""


@pytest.fixture(scope="module")
def old_install(tmp_path_factory) -> tuple[Path, str]:
    """A SQLite installation made the way a user's is: migrate, then use it."""
    path = tmp_path_factory.mktemp("old") / "mission-control.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{path}",
        "CHANNEL_LAYER_URL": "memory://",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    run = [sys.executable, "manage.py"]
    subprocess.run([*run, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [*run, "shell", "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    key = next(line.split()[1] for line in out.splitlines() if line.startswith("KEY"))
    return path, key


def copy_data(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`manage.py copy_data` as a user runs it: its own process, on this test database."""
    url = target if "://" in target else f"sqlite:///{target}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        [sys.executable, "manage.py", "copy_data", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def counts(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    tables = {
        "tasks": "tasks_task",
        "comments": "tasks_comment",
        "agents": "agents_agent",
        "keys": "agents_agentkey",
        "usage": "billing_usagerecord",
        "audit": "missioncontrol_auditevent",
        "events": "missioncontrol_liveevent",
        "users": "auth_user",
    }
    found = {
        name: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for name, t in tables.items()
    }
    con.close()
    return found


def test_everything_moves_over_and_keeps_working(old_install, client, test_db_path):
    path, key = old_install
    done = copy_data(test_db_path, "--from", f"sqlite:///{path}")
    assert done.returncode == 0, done.stderr
    assert "Copied" in done.stdout
    before = counts(path)
    # The shared live server runs on this database too: a loop of its may add an event of its
    # own meanwhile (an earlier test's pending batch), so the events compared are those copied.
    con = sqlite3.connect(path)
    event_ids = [row[0] for row in con.execute("SELECT seq FROM missioncontrol_liveevent")]
    con.close()
    assert {
        "tasks": Task.objects.count(),
        "comments": Comment.objects.count(),
        "agents": Agent.objects.count(),
        "keys": AgentKey.objects.count(),
        "usage": UsageRecord.objects.count(),
        "audit": AuditEvent.objects.count(),
        "events": LiveEvent.objects.filter(pk__in=event_ids).count(),
        "users": get_user_model().objects.count(),
    } == before
    # The user keeps their password and role; ids are kept; new rows continue after them.
    olga = get_user_model().objects.get(username="olga")
    assert olga.check_password("pw-olga-123")
    assert olga.groups.filter(name="operator").exists()
    newest = Task.objects.order_by("-pk").first()
    assert newest is not None
    assert make_task("After the move").pk > newest.pk
    # The agent's key still authenticates (its hash moved with it).
    from agents import keys

    assert keys.verify(key) is not None
    client.force_login(olga)
    assert client.get("/board/").status_code == 200


def test_refuses_a_database_in_use(old_install, test_db_path):
    path, _key = old_install
    make_task("Already here")
    done = copy_data(test_db_path, "--from", f"sqlite:///{path}")
    assert done.returncode != 0
    assert "already holds data" in done.stderr
    assert Task.objects.count() == 1


def test_refuses_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="No database file"):
        call_command("copy_data", "--from", f"sqlite:///{tmp_path}/nothing.sqlite3")


def test_refuses_to_copy_a_database_into_itself(test_db_path):
    source = test_db_path if "://" in test_db_path else f"sqlite:///{test_db_path}"
    done = copy_data(test_db_path, "--from", source)
    assert done.returncode != 0
    assert "The source is this database" in done.stderr
