"""The audit log page (admins): every audited action, filtered by actor, verb, object, gateway
and time; paged by id; the same rows as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
import time_machine

from crons import actions as cron_actions
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent
from tasks import actions as task_actions
from tests.gateways.factories import make_gateway
from tests.streams import read_stream
from tests.tasks.factories import make_task

# The export reads its pages from another thread: it sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


def rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read_stream(response))))


@pytest.fixture
def history(carol_admin):
    with time_machine.travel(datetime(2026, 11, 30, 9, 0, tzinfo=UTC), tick=False):
        task = make_task("Ship the release")
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False):
        task_actions.move_task(Actor.user(carol_admin), task.pk, to_status="review")
        gateway = make_gateway(name="prod")
        cron_actions.create_check(
            Actor.system("cron monitor"),
            {"name": "=HYPERLINK(1)", "kind": "every", "every_s": 3600},
        )
    return task, gateway


def test_only_admins(viewer, operator, outsider, client):
    for who in (viewer, operator, outsider):
        assert who.get("/audit/").status_code == 403
        assert who.get("/audit/export.csv").status_code == 403
    assert client.get("/audit/").status_code == 302


def test_everything_newest_first(admin, history):
    page = admin.get("/audit/").content.decode()
    order = [
        page.index(f'<code class="small">{verb}<')
        for verb in ("cron.check_created", "task.moved", "task.created")
    ]
    assert order == sorted(order)


@pytest.mark.parametrize(
    ("query", "verbs"),
    [
        ("verb=task.moved", ["task.moved"]),
        ("verb=task.*", ["task.moved", "task.created"]),
        ("actor=carol&verb=task.*", ["task.moved"]),
        ("actor_type=system", None),
        ("object=task:{task}", ["task.moved", "task.created"]),
        ("object=release", ["task.moved", "task.created"]),
        ("since=2026-12-01&until=2026-12-01&verb=task.*", ["task.moved"]),
        ("until=2026-11-30", ["task.created"]),
    ],
)
def test_filters(admin, history, query, verbs):
    task, _gateway = history
    query = query.replace("{task}", str(task.pk))
    found = [r["verb"] for r in rows(admin.get(f"/audit/export.csv?{query}"))]
    if verbs is None:
        assert found
        assert all(
            AuditEvent.objects.get(pk=r["id"]).actor_type == "system"
            for r in rows(admin.get(f"/audit/export.csv?{query}"))
        )
    else:
        assert found == verbs
    assert admin.get(f"/audit/?{query}").status_code == 200


def test_by_gateway(admin, history):
    _task, gateway = history
    AuditEvent.objects.filter(verb="task.moved").update(gateway_id=gateway.pk)
    found = [r["verb"] for r in rows(admin.get(f"/audit/export.csv?gateway={gateway.pk}"))]
    assert found == ["gateway.added", "task.moved"]


def test_bad_filters_are_ignored_not_errors(admin, history):
    response = admin.get("/audit/?since=yesterday&gateway=abc&actor_type=robot&before=x")
    assert response.status_code == 200


def test_pages_by_id(admin, history, monkeypatch):
    from missioncontrol import audit_views

    monkeypatch.setattr(audit_views, "PAGE", 2)
    first = admin.get("/audit/")
    older = first.context["older"]
    assert older
    second = admin.get(f"/audit/?before={older}").content.decode()
    ids = [e.pk for e in first.context["events"]]
    assert all(f'id="audit-{pk}"' not in second for pk in ids)


def test_the_csv_is_safe_to_open_in_a_spreadsheet(admin, history):
    exported = rows(admin.get("/audit/export.csv?verb=cron.check_created"))
    assert exported[0]["object"] == "'=HYPERLINK(1)"
    assert exported[0]["actor"] == "cron monitor"
