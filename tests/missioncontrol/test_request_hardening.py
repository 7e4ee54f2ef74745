"""How requests are read and answered safely: integers in any Unicode digit class, resume points,
`next` redirects, cache headers, key material in the admin, owner-only data files (first found
by probing the running server; each fixed at its family's root)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from agents.models import AgentKey
from missioncontrol.asgi import application
from missioncontrol.http import parse_int
from tests.agents.conftest import issue
from tests.agents.factories import AgentFactory
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

ROOT = Path(__file__).resolve().parents[2]


class TestIntegers:
    @pytest.mark.parametrize("raw", ["²", "١٢", "-1", "1e3", " ", "", "9" * 30, "0x10", None])
    def test_only_plain_bounded_ascii_digits_are_numbers(self, raw):
        assert parse_int(raw) is None

    def test_plain_numbers(self):
        assert parse_int("42") == 42
        assert parse_int(" 7 ") == 7
        assert parse_int("5", low=6) is None

    @pytest.mark.parametrize(
        "path",
        [
            "/board/column/inbox/?offset=9999999999999999999",
            "/board/column/inbox/?offset=²",
            "/tasks/?assignee=user:999999999999999999999999999999",
            "/tasks/?assignee=agent:²",
            "/board/?assignee=agent:99999999999999999999",
            "/tasks/99999999999999999999/",
        ],
    )
    def test_pages_with_odd_numbers_never_500(self, viewer, path):
        assert viewer.get(path).status_code in (200, 404)

    def test_the_edit_forms_version_in_other_digits_is_no_version(self, operator):
        task = make_task("T")
        response = operator.post(
            f"/tasks/{task.pk}/edit/",
            {"title": "New", "priority": "2", "status": "todo", "version": "²"},
        )
        assert response.status_code in (200, 302)

    def test_the_event_stream_ignores_odd_resume_points(self, transactional_db):
        from tests.missioncontrol.test_live import read_sse

        user = UserFactory.create(username="sse-odd", role="viewer")
        client = Client()
        client.force_login(user)
        for path, headers in [
            ("/events/stream?topics=board&since=²", {}),
            ("/events/stream?topics=board", {"Last-Event-ID": "²"}),
        ]:
            response = client.get(path, headers=headers)
            assert response.status_code == 200
            assert read_sse(response, 1)[0]["type"] == "ready"


@pytest.mark.django_db(transaction=True)
async def test_the_live_socket_ignores_an_odd_since():
    user = await sync_to_async(UserFactory.create)(username="wsuser", role="viewer")

    def cookie() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    communicator = WebsocketCommunicator(
        application,
        "/ws/live/?topics=board&since=²",
        headers=[
            (b"host", b"localhost"),
            (b"origin", b"http://localhost"),
            (b"cookie", f"sessionid={await sync_to_async(cookie)()}".encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


class TestNextRedirects:
    @pytest.mark.parametrize(
        "target",
        ["javascript:alert(1)", "https://evil.example/", "//evil.example", "\\\\evil.example"],
    )
    def test_block_form_never_leaves_the_site(self, operator, target):
        task = make_task("T")
        response = operator.post(
            f"/tasks/{task.pk}/block/", {"blocked": "1", "reason": "x", "next": target}
        )
        assert response.status_code == 302
        assert response["Location"] == f"/tasks/{task.pk}/"

    def test_a_local_next_is_followed(self, operator):
        task = make_task("T")
        response = operator.post(
            f"/tasks/{task.pk}/block/", {"blocked": "1", "reason": "x", "next": "/board/"}
        )
        assert response["Location"] == "/board/"


class TestHeaders:
    def test_pages_for_signed_in_users_are_not_cached(self, viewer):
        response = viewer.get("/board/")
        assert "no-store" in response["Cache-Control"]


class TestKeysInTheAdmin:
    def test_the_key_page_shows_no_key_material(self, admin):
        agent = AgentFactory.create(name="keyed")
        key, _full = issue(AgentKey.Kind.AGENT, agent)
        html = admin.get(f"/admin/agents/agentkey/{key.pk}/change/").content.decode()
        assert key.prefix in html
        assert key.secret_hash not in html


@pytest.mark.parametrize("made_before", [False, True])
def test_the_data_dir_and_database_are_owner_only(tmp_path, made_before):
    data = tmp_path / "fresh"
    if made_before:  # `mkdir -p` or a volume: 0755 until the first start
        data.mkdir(mode=0o755)
        data.chmod(0o755)
    env = {
        **os.environ,
        "MC_DATA_DIR": str(data),
        "DJANGO_SETTINGS_MODULE": "missioncontrol.settings",
        "DATABASE_URL": "",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("mission-control.sqlite3", "secret_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


@pytest.mark.django_db
class TestUnstorableInput:
    """A NUL (or a lone surrogate) in any query parameter or form field is refused with a 400
    naming the field, before a view reads it: on PostgreSQL, where text cannot hold NUL, the
    hostile walks found it a 500 on every list page, the audit and cost exports and two posts."""

    def test_a_page_says_which_parameter(self, viewer):
        r = viewer.get("/board/", {"q": "fix\x00it"})
        assert r.status_code == 400
        page = r.content.decode()
        assert "“q”: NUL characters are not allowed." in page
        assert '<a href="/board/">Open this page without it</a>' in page
        assert viewer.get("/tasks/", {"label\x00": "x"}).status_code == 400

    def test_a_form_post_is_refused_and_nothing_is_stored(self, operator):
        from missioncontrol.models import AuditEvent

        before = AuditEvent.objects.count()
        r = operator.post("/overview/acknowledge/", {"key": "task:1\x00"})
        assert r.status_code == 400
        assert "“key”" in r.content.decode()
        assert AuditEvent.objects.count() == before

    def test_the_api_answers_in_its_shape(self, bob_operator):
        from missioncontrol import tokens
        from missioncontrol.audit import Actor

        token = tokens.issue(Actor.system("test"), bob_operator)[1]
        r = Client().get("/api/v1/tasks", {"agent": "\x00"}, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert r.status_code == 400
        assert r.json() == {
            "error": "validation_error",
            "detail": {"agent": ["NUL characters are not allowed."]},
        }


@pytest.mark.django_db(transaction=True)
async def test_dispatch_instructions_with_a_nul_are_refused_by_field(bob_operator):
    import httpx

    from agents.models import Agent
    from missioncontrol import tokens
    from missioncontrol.audit import Actor
    from runs.models import Run

    def setup() -> tuple[str, int]:
        agent = Agent.objects.create(name="nul-agent")
        task = make_task("Nul", assignee=f"agent:{agent.pk}")
        return tokens.issue(Actor.system("test"), bob_operator)[1], task.pk

    token, task_id = await sync_to_async(setup)()
    transport = httpx.ASGITransport(app=application)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        r = await http.post(
            f"/api/v1/tasks/{task_id}/runs",
            json={"instructions": "a\x00b"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == {"instructions": ["NUL characters are not allowed."]}
    assert await Run.objects.acount() == 0
