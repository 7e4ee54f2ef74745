from __future__ import annotations

import pytest
from django.urls import reverse

from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent
from tasks import actions
from tasks.models import Task
from tests.agents.factories import AgentFactory
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db


# +2 for the shell's gateway switch: its choices, and the user's choice (once a session).
BOARD_QUERIES = 15
LIST_QUERIES = 10


def url(name: str, *args) -> str:
    return reverse(f"tasks:{name}", args=args)


class TestRoleMatrix:
    @pytest.mark.parametrize("page", ["board", "list"])
    def test_viewer_reads(self, viewer, page):
        assert viewer.get(url(page)).status_code == 200

    def test_viewer_reads_detail_and_column(self, viewer):
        task = make_task()
        assert viewer.get(url("detail", task.pk)).status_code == 200
        assert viewer.get(url("column", "todo")).status_code == 200

    @pytest.mark.parametrize(
        ("name", "data"),
        [
            ("edit", {"title": "x", "status": "todo", "priority": 2}),
            ("block", {"blocked": "1", "reason": "r"}),
            ("comment", {"body": "hi"}),
            ("archive", {}),
            ("delete", {}),
        ],
    )
    def test_viewer_cannot_write(self, viewer, name, data):
        task = make_task()
        assert viewer.post(url(name, task.pk), data).status_code == 403
        task.refresh_from_db()
        assert task.status == "todo"
        assert task.title == "A task"

    def test_viewer_cannot_create(self, viewer):
        assert (
            viewer.post(url("new"), {"title": "x", "status": "inbox", "priority": 2}).status_code
            == 403
        )
        assert viewer.get(url("new")).status_code == 403

    def test_outsider_is_refused_everywhere(self, outsider):
        task = make_task()
        assert outsider.get(url("board")).status_code == 403
        assert outsider.get(url("detail", task.pk)).status_code == 403

    def test_anonymous_is_sent_to_login(self, client):
        assert client.get(url("board")).status_code == 302

    def test_operator_cannot_delete_but_can_archive(self, operator):
        task = make_task()
        assert operator.post(url("delete", task.pk)).status_code == 403
        assert operator.post(url("archive", task.pk)).status_code == 302
        task.refresh_from_db()
        assert task.archived_at is not None

    def test_admin_deletes(self, admin):
        task = make_task()
        assert admin.post(url("delete", task.pk)).status_code == 302
        assert not Task.objects.filter(pk=task.pk).exists()

    @pytest.mark.parametrize("name", ["block", "comment", "archive", "delete", "edit"])
    def test_writes_need_post(self, admin, name):
        task = make_task()
        assert admin.get(url(name, task.pk)).status_code == 405

    def test_board_needs_get(self, admin):
        assert admin.post(url("board")).status_code == 405


class TestBoardPage:
    def test_six_columns_in_order_with_true_counts(self, viewer, settings):
        for status in ("inbox", "todo", "todo", "done"):
            make_task(status=status)
        html = viewer.get(url("board")).content.decode()
        order = [
            html.index(f'id="col-{s}-title"')
            for s in ("inbox", "backlog", "todo", "in_progress", "review", "done")
        ]
        assert order == sorted(order)
        assert 'id="count-todo" aria-label="2 tasks">2<' in html

    def test_columns_show_the_first_page_and_load_more(self, viewer, monkeypatch):
        monkeypatch.setattr("tasks.views.COLUMN_PAGE", 3)
        tasks = [make_task(f"T{i}") for i in range(5)]
        html = viewer.get(url("board")).content.decode()
        assert 'data-complete="false"' in html
        assert f'id="task-{tasks[2].pk}"' in html
        assert f'id="task-{tasks[3].pk}"' not in html
        more = viewer.get(url("column", "todo") + "?offset=3").content.decode()
        assert f'id="task-{tasks[3].pk}"' in more
        assert f'id="task-{tasks[4].pk}"' in more
        assert "Load more" not in more

    def test_viewer_gets_no_controls(self, viewer, operator):
        make_task()
        assert b"New task" not in viewer.get(url("board")).content
        assert b"New task" in operator.get(url("board")).content

    def test_filters_live_in_the_url(self, viewer):
        agent = AgentFactory.create(name="bot")
        make_task("Mine", assignee=f"agent:{agent.pk}", labels="bug", priority=Task.Priority.HIGH)
        make_task("Other")
        html = viewer.get(
            url("board") + f"?assignee=agent:{agent.pk}&label=bug&priority=high"
        ).content.decode()
        assert "Mine" in html
        assert "Other" not in html
        assert 'data-live-refetch="board"' in html
        assert "Other" not in viewer.get(url("board") + "?q=min").content.decode()

    def test_blocked_filter(self, viewer, operator):
        task = make_task("Stuck")
        make_task("Fine")
        operator.post(url("block", task.pk), {"blocked": "1", "reason": "CI down"})
        html = viewer.get(url("board") + "?blocked=1").content.decode()
        assert "Stuck" in html
        assert "Fine" not in html

    def test_query_count_is_pinned(self, viewer, django_assert_num_queries):
        agent = AgentFactory.create(name="bot")
        for i in range(30):
            make_task(
                f"T{i}",
                status=["inbox", "todo", "done"][i % 3],
                assignee=f"agent:{agent.pk}" if i % 2 else None,
            )
        viewer.get(url("board"))  # warm the session
        # session + user + role + live seq + counts + 6 columns + assignee choices (2)
        with django_assert_num_queries(BOARD_QUERIES):
            assert viewer.get(url("board")).status_code == 200
        for i in range(30):
            make_task(f"More{i}", assignee=f"agent:{agent.pk}")
        with django_assert_num_queries(BOARD_QUERIES):  # no N+1
            viewer.get(url("board"))

    def test_task_list_query_count_is_pinned(self, viewer, django_assert_num_queries):
        for i in range(20):
            make_task(f"T{i}")
        viewer.get(url("list"))  # warm the session
        with django_assert_num_queries(LIST_QUERIES):
            assert viewer.get(url("list")).status_code == 200
        for i in range(20):
            make_task(f"U{i}")
        with django_assert_num_queries(LIST_QUERIES):
            viewer.get(url("list"))

    def test_task_list_paginates_done(self, viewer, monkeypatch):
        monkeypatch.setattr("tasks.views.LIST_PAGE", 2)
        for i in range(5):
            make_task(f"D{i}", status="done")
        page2 = viewer.get(url("list") + "?status=done&page=2").content.decode()
        assert "Page 2 of 3" in page2


class TestCreateAndEdit:
    def test_create_through_htmx(self, operator):
        response = operator.post(
            url("new"),
            {"title": "From the dialog", "status": "todo", "priority": 1, "labels": "ui"},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200
        assert response["HX-Trigger"] == "mc:task-created"
        task = Task.objects.get(title="From the dialog")
        assert (task.status, task.priority, task.label_list) == ("todo", 1, ["ui"])

    def test_create_without_js_redirects_to_board(self, operator):
        response = operator.post(
            url("new"), {"title": "Plain form", "status": "inbox", "priority": 2}
        )
        assert response.status_code == 302

    def test_empty_title_is_a_form_error(self, operator):
        response = operator.post(
            url("new"), {"title": "", "status": "inbox", "priority": 2}, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 422
        assert b"A task needs a title" in response.content
        assert Task.objects.count() == 0

    def test_unknown_assignee_is_a_form_error(self, operator):
        response = operator.post(
            url("new"), {"title": "x", "status": "inbox", "priority": 2, "assignee": "agent:404"}
        )
        assert response.status_code == 422
        assert Task.objects.count() == 0

    def test_edit_inline(self, operator):
        task = make_task()
        response = operator.post(
            url("edit", task.pk),
            {
                "title": "Renamed",
                "status": "review",
                "priority": 0,
                "labels": "x",
                "version": task.version,
            },
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 204
        assert response["HX-Redirect"] == url("detail", task.pk)
        task.refresh_from_db()
        assert (task.title, task.status, task.priority) == ("Renamed", "review", 0)

    def test_edit_with_stale_version_is_409_and_keeps_data(self, operator):
        task = make_task()
        actions.move_task(Actor.system("t"), task.pk, to_status="review")
        response = operator.post(
            url("edit", task.pk),
            {"title": "Clobber", "status": "todo", "priority": 2, "version": task.version},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 409
        task.refresh_from_db()
        assert (task.title, task.status) == ("A task", "review")

    def test_comment_and_history(self, operator, viewer, bob_operator):
        task = make_task()
        operator.post(url("comment", task.pk), {"body": "**bold** <script>alert(1)</script>"})
        actions.move_task(Actor.user(bob_operator), task.pk, to_status="review")
        html = viewer.get(url("detail", task.pk)).content.decode()
        assert "<strong>bold</strong>" in html
        assert "<script>alert(1)" not in html
        assert "moved task" in html
        # In words (#31.14): the column's names, not `status todo → review`.
        assert '<span class="muted">column</span> <del>To do</del> → <ins>Review</ins>' in html
        assert "in_progress" not in html
        assert (
            AuditEvent.objects.filter(object_type="tasks.task", object_id=str(task.pk)).count() == 3
        )

    def test_history_reads_as_words_not_internals(self, operator, viewer):
        """Labels as a list, not `labels ['ci', 'eval']`; blocked and its reason named."""
        task = make_task()
        from missioncontrol.audit import Actor
        from tasks import actions

        actions.update_task(Actor.system("tests"), task.pk, {"labels": "ci, eval"})
        operator.post(url("block", task.pk), {"blocked": "1", "reason": "waiting on DNS"})
        html = viewer.get(url("detail", task.pk)).content.decode()
        assert "['ci', 'eval']" not in html
        assert "blocked_reason" not in html
        assert "<ins>ci, eval</ins>" in html
        assert '<span class="muted">reason</span>' in html

    def test_empty_comment_is_a_form_error(self, operator):
        task = make_task()
        response = operator.post(url("comment", task.pk), {"body": " "}, HTTP_HX_REQUEST="true")
        assert response.status_code == 422
        assert b"Write something first" in response.content

    def test_block_without_reason_shows_an_error(self, operator):
        task = make_task()
        response = operator.post(url("block", task.pk), {"blocked": "1", "reason": ""}, follow=True)
        assert b"Say what it is blocked on" in response.content
        task.refresh_from_db()
        assert not task.blocked

    def test_unknown_task_is_404(self, viewer):
        assert viewer.get(url("detail", 424242)).status_code == 404


class TestFirstSteps:
    """(#31.17) Empty pages say how to begin, with this server's real URL."""

    def test_an_empty_board_agents_and_sessions_page_say_how_to_connect_an_agent(
        self, admin, viewer
    ):
        for path in ("/board/", "/agents/"):
            page = admin.get(path).content.decode()
            assert "export MC_URL=http://testserver MC_API_KEY=mc_…" in page, path
            assert "mc-agent run --name my-agent -- your-command" in page
            assert 'href="/settings/keys/"' in page  # an admin is shown where keys come from
        assert "ask an admin for one" in viewer.get("/agents/").content.decode()
        assert "Agents that report directly" in viewer.get("/sessions/").content.decode()
        make_task("The first")
        assert "An empty board" not in admin.get("/board/").content.decode()
