from __future__ import annotations

import contextlib
import datetime
import re
import threading

import pytest
from django.db import close_old_connections

from missioncontrol.audit import Actor
from missioncontrol.errors import Conflict, Invalid, NotFound
from missioncontrol.models import AuditEvent, LiveEvent
from tasks import actions
from tasks.models import Task
from tests.agents.factories import AgentFactory
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db


def column(status: str) -> list[str]:
    return list(Task.objects.on_board().in_column(status).values_list("title", flat=True))


@pytest.fixture
def bob(db):
    return Actor.user(UserFactory.create(username="bob", role="operator"))


class TestCreateTask:
    def test_lands_in_inbox_at_the_bottom(self, bob):
        first = actions.create_task(bob, title="First")
        second = actions.create_task(bob, title="Second")
        assert first.status == second.status == Task.Status.INBOX
        assert column("inbox") == ["First", "Second"]

    def test_empty_title_is_refused_and_nothing_is_written(self, bob):
        with pytest.raises(Invalid) as error:
            actions.create_task(bob, title="   ")
        assert "title" in error.value.message_dict
        assert Task.objects.count() == 0
        assert AuditEvent.objects.count() == 0

    def test_unknown_column_assignee_and_label(self, bob):
        with pytest.raises(Invalid) as e1:
            actions.create_task(bob, title="x", status="limbo")
        assert "status" in e1.value.message_dict
        with pytest.raises(Invalid) as e2:
            actions.create_task(bob, title="x", assignee="agent:999")
        assert "assignee" in e2.value.message_dict
        with pytest.raises(Invalid) as e3:
            actions.create_task(bob, title="x", labels="ok, <script>")
        assert "labels" in e3.value.message_dict
        assert Task.objects.count() == 0

    def test_assigns_an_agent_or_a_person(self, bob):
        agent = AgentFactory.create(name="coder")
        task = actions.create_task(bob, title="x", assignee=f"agent:{agent.pk}")
        assert task.assignee == agent
        user = UserFactory.create(username="dave", role="operator")
        task = actions.create_task(bob, title="y", assignee=f"user:{user.pk}")
        assert task.assignee == user

    def test_labels_are_normalised(self, bob):
        task = actions.create_task(bob, title="x", labels="Backend, #ops backend")
        assert task.label_list == ["backend", "ops"]
        assert Task.objects.with_label("ops").get() == task

    def test_is_audited_and_broadcast(self, bob, broadcasts):
        task = actions.create_task(bob, title="Ship it", priority=Task.Priority.URGENT)
        audit = AuditEvent.objects.get(verb="task.created")
        assert audit.actor_label == "bob"
        assert audit.changes["after"]["title"] == "Ship it"
        board = [b for b in broadcasts if b["topic"] == "board"]
        assert len(board) == 1
        assert f'id=\\"task-{task.pk}\\"' in board[0]["text"]
        assert '"parent":"col-inbox-list"' in board[0]["text"]

    def test_priority_sorts_urgent_first(self, bob):
        for p in (
            Task.Priority.LOW,
            Task.Priority.URGENT,
            Task.Priority.NORMAL,
            Task.Priority.HIGH,
        ):
            actions.create_task(bob, title=Task.Priority(p).label, priority=p)
        assert list(Task.objects.order_by("priority").values_list("title", flat=True)) == [
            "Urgent",
            "High",
            "Normal",
            "Low",
        ]


class TestMoveTask:
    def test_moves_to_review(self, bob):
        task = make_task("T")
        moved = actions.move_task(bob, task.pk, to_status="review")
        assert moved.status == "review"
        assert moved.version == task.version + 1
        assert AuditEvent.objects.filter(verb="task.moved").exists()

    def test_puts_the_card_above_another(self, bob):
        a, b, c = make_task("A"), make_task("B"), make_task("C")
        actions.move_task(bob, c.pk, to_status="todo", before_id=a.pk)
        assert column("todo") == ["C", "A", "B"]
        actions.move_task(bob, a.pk, to_status="todo", before_id=None)
        assert column("todo") == ["C", "B", "A"]
        assert b.pk

    def test_into_done_goes_to_the_top_and_is_completed(self, bob):
        make_task("Old", status="done")
        task = make_task("New")
        moved = actions.move_task(bob, task.pk, to_status="done")
        assert column("done") == ["New", "Old"]
        assert moved.completed_at is not None
        back = actions.move_task(bob, task.pk, to_status="todo")
        assert back.completed_at is None

    def test_stale_version_is_refused(self, bob):
        task = make_task("T")
        actions.move_task(bob, task.pk, to_status="review", expected_version=task.version)
        with pytest.raises(Conflict):
            actions.move_task(bob, task.pk, to_status="done", expected_version=task.version)
        assert Task.objects.get(pk=task.pk).status == "review"

    def test_unknown_column_and_vanished_neighbour(self, bob):
        task = make_task("T")
        with pytest.raises(Invalid):
            actions.move_task(bob, task.pk, to_status="limbo")
        other = make_task("Elsewhere", status="inbox")
        with pytest.raises(Invalid) as error:
            actions.move_task(bob, task.pk, to_status="review", before_id=other.pk)
        assert "before" in error.value.message_dict
        assert Task.objects.get(pk=task.pk).status == "todo"

    def test_renumbers_a_column_when_gaps_run_out(self, bob):
        a, b = make_task("A"), make_task("B")
        # Squeeze repeatedly between A and B: after ~10 halvings the gap is gone.
        for i in range(25):
            t = make_task(f"N{i}", status="inbox")
            actions.move_task(bob, t.pk, to_status="todo", before_id=b.pk)
        titles = column("todo")
        assert titles[0] == "A"
        assert titles[-1] == "B"
        assert titles[1:-1] == [f"N{i}" for i in range(25)]
        positions = list(Task.objects.in_column("todo").values_list("position", flat=True))
        assert len(set(positions)) == len(positions)
        assert a.pk

    def test_broadcast_carries_the_new_place_and_counts(self, bob, broadcasts):
        a, b = make_task("A"), make_task("B")
        broadcasts.clear()
        actions.move_task(bob, b.pk, to_status="todo", before_id=a.pk)
        text = broadcasts[-1]["text"]
        assert f'"before":"task-{a.pk}"' in text
        assert '"id":"count-todo","text":"2"' in text


class TestConcurrentMoves:
    @pytest.mark.django_db(transaction=True)
    def test_many_moves_in_one_column_keep_positions_consistent(self):
        actor = Actor.system("tests")
        tasks = [make_task(f"T{i}") for i in range(12)]
        errors: list[BaseException] = []

        def worker(offset: int) -> None:
            try:
                for i in range(15):
                    t = tasks[(offset * 5 + i) % len(tasks)]
                    target = tasks[(offset + i * 7) % len(tasks)]
                    with contextlib.suppress(Invalid):
                        actions.move_task(
                            actor,
                            t.pk,
                            to_status="todo",
                            before_id=None if target == t else target.pk,
                        )
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                close_old_connections()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        positions = list(Task.objects.in_column("todo").values_list("position", flat=True))
        assert len(positions) == 12
        assert len(set(positions)) == 12  # no duplicates, none lost

    @pytest.mark.django_db(transaction=True)
    def test_two_moves_of_the_same_task_one_wins_cleanly(self):
        actor = Actor.system("tests")
        task = make_task("Contested")
        results: list[str] = []

        def worker(status: str) -> None:
            try:
                actions.move_task(actor, task.pk, to_status=status, expected_version=task.version)
                results.append(status)
            except Conflict:
                results.append("stale")
            finally:
                close_old_connections()

        threads = [threading.Thread(target=worker, args=(s,)) for s in ("review", "done")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results).count("stale") == 1
        winner = next(r for r in results if r != "stale")
        assert Task.objects.get(pk=task.pk).status == winner


class TestOtherActions:
    def test_block_needs_a_reason_and_unblocks(self, bob):
        task = make_task("T")
        with pytest.raises(Invalid):
            actions.set_blocked(bob, task.pk, blocked=True, reason="")
        blocked = actions.set_blocked(bob, task.pk, blocked=True, reason="waiting on CI")
        assert blocked.blocked
        assert Task.objects.blocked().count() == 1
        unblocked = actions.set_blocked(bob, task.pk, blocked=False)
        assert not unblocked.blocked
        assert unblocked.blocked_reason == ""

    def test_comment_by_person_and_agent(self, bob):
        task = make_task("T")
        actions.add_comment(bob, task.pk, "Looks good")
        agent = AgentFactory.create(name="reviewer")
        actions.add_comment(Actor.agent(agent.name), task.pk, "Tests pass", agent=agent)
        task.refresh_from_db()
        assert task.comment_count == 2
        assert [c.author_label for c in task.comments.all()] == ["bob", "reviewer"]
        last = task.comments.last()
        assert last is not None
        assert last.by_agent
        with pytest.raises(Invalid):
            actions.add_comment(bob, task.pk, "  ")

    def test_update_changes_fields_and_records_the_diff(self, bob):
        task = make_task("T")
        updated = actions.update_task(
            bob, task.pk, {"title": "T2", "priority": Task.Priority.HIGH, "status": "review"}
        )
        assert (updated.title, updated.priority, updated.status) == (
            "T2",
            Task.Priority.HIGH,
            "review",
        )
        audit = AuditEvent.objects.get(verb="task.updated")
        assert audit.changes["before"] == {"title": "T", "status": "todo", "priority": "Normal"}
        assert audit.changes["after"]["status"] == "review"

    def test_archive_hides_from_board_delete_removes(self, bob, broadcasts):
        a, b = make_task("A"), make_task("B")
        actions.archive_task(bob, a.pk)
        assert column("todo") == ["B"]
        assert Task.objects.filter(pk=a.pk).exists()
        actions.delete_task(bob, b.pk)
        assert not Task.objects.filter(pk=b.pk).exists()
        assert f'"op":"remove","id":"task-{b.pk}"' in broadcasts[-1]["text"]


class TestCardCache:
    def test_a_pk_reused_after_a_rollback_never_shows_the_old_card(self, bob):
        from django.db import transaction

        from tasks.cards import render_card

        def create_then_fail() -> None:
            with transaction.atomic():
                actions.create_task(bob, title="Rolled back")  # renders and caches its card
                raise RuntimeError

        with pytest.raises(RuntimeError):
            create_then_fail()
        task = actions.create_task(bob, title="Kept")
        html = render_card(Task.objects.for_cards().get(pk=task.pk))
        assert "Kept" in html
        assert "Rolled back" not in html

    def test_a_change_renders_a_new_card(self, bob):
        from tasks.cards import render_card

        task = make_task("Before")
        assert "Before" in render_card(Task.objects.for_cards().get(pk=task.pk))
        actions.update_task(bob, task.pk, {"title": "After"})
        assert "After" in render_card(Task.objects.for_cards().get(pk=task.pk))

    def test_a_pushed_card_is_the_page_card_and_shares_its_cache_entry(self, bob):
        from agents.models import Agent
        from tasks import cards, events, presenters

        agent = Agent.objects.create(name="ada")
        task = make_task(
            "Ship it", priority=Task.Priority.HIGH, labels="ops,web", assignee=f"agent:{agent.pk}"
        )
        actions.update_task(bob, task.pk, {"due_date": datetime.date(2026, 12, 24)})
        page = cards.render_card(Task.objects.for_cards().get(pk=task.pk))
        pushed = presenters.card_html(events.task_data(Task.objects.for_cards().get(pk=task.pk)))
        assert pushed == page
        assert "ada" in pushed
        assert "ops" in pushed
        assert len(cards._cards) == 1  # one key for both: the push found the page's card


class TestMoveBatch:
    """move_tasks: the board's group commit, many moves in one transaction."""

    def test_each_move_as_if_alone_refusals_write_nothing(self, bob, broadcasts):
        a, b = make_task("A"), make_task("B")
        broadcasts.clear()
        results = actions.move_tasks(
            [
                actions.Move(bob, a.pk, "review", expected_version=a.version),
                actions.Move(bob, a.pk, "done", expected_version=a.version),  # stale now
                actions.Move(bob, 999999, "todo"),
                actions.Move(bob, b.pk, "limbo"),
                actions.Move(bob, b.pk, "review", before_id=a.pk),
            ]
        )
        assert isinstance(results[0], Task)
        assert isinstance(results[1], Conflict)
        assert "task" in results[1].extra  # the current state comes with the refusal
        assert isinstance(results[2], NotFound)
        assert isinstance(results[3], Invalid)
        assert isinstance(results[4], Task)
        a.refresh_from_db()
        b.refresh_from_db()
        assert (a.status, a.version) == ("review", results[0].version)
        assert b.status == "review"
        assert b.position < a.position  # above A, as asked
        assert AuditEvent.objects.filter(verb="task.moved").count() == 2
        board = [m for m in broadcasts if m["topic"] == "board"]
        activity = [m for m in broadcasts if m["topic"] == "activity"]
        assert len(board) == 2
        assert len(activity) == 1  # one feed event carrying both rows
        assert activity[0]["text"].count('"op":"upsert"') == 2
        # Events chain on their topic: each names the one before it.
        assert board[1]["prev"] == board[0]["seq"]
        # B's event places it above A; both carry the final counts of the columns they touched.
        assert f'"before":"task-{a.pk}"' in board[1]["text"]
        assert '"id":"count-review","text":"2"' in board[1]["text"]

    def test_a_batch_that_changes_nothing_publishes_nothing(self, bob, broadcasts):
        broadcasts.clear()
        assert isinstance(actions.move_tasks([actions.Move(bob, 999999, "todo")])[0], Exception)
        assert broadcasts == []


class TestCardHtml:
    def test_a_move_reuses_the_rendered_card_with_its_new_version_and_column(self, bob):
        from tasks import cards

        task = make_task("Card", due_date=datetime.date(2020, 1, 1))
        html = cards.render_card(Task.objects.for_cards().get(pk=task.pk))
        assert f'data-version="{task.version}"' in html
        assert "overdue" in html
        moved = actions.move_task(bob, task.pk, to_status="review")
        again = cards.render_card(Task.objects.for_cards().get(pk=task.pk))
        assert f'data-version="{moved.version}"' in again
        assert 'data-status="review"' in again
        # The same card otherwise (served from the cache, not rendered again).
        same = re.compile(r'data-(version|status)="[^"]*"')
        assert same.sub("", again) == same.sub("", html)
        # Done cards are never overdue: a different cached card.
        actions.move_task(bob, task.pk, to_status="done")
        done = cards.render_card(Task.objects.for_cards().get(pk=task.pk))
        assert "overdue" not in done


@pytest.mark.django_db(transaction=True)
class TestCountsCache:
    def test_counts_carried_forward_and_recounted_after_another_connection_wrote(self, bob):
        a, b = make_task("A"), make_task("B")
        cache = actions.CountsCache()

        def moved(task: Task, status: str) -> dict[str, int]:
            actions.move_tasks([actions.Move(bob, task.pk, status)], cache)
            event = LiveEvent.objects.filter(topic="board").order_by("-seq").first()
            assert event is not None
            return event.payload["board"]["column_counts"]

        def count_in(counts: dict, status: str) -> str:
            return str(counts[status])

        assert count_in(moved(a, "review"), "review") == "1"
        ops = moved(b, "review")  # carried forward from here on
        assert (count_in(ops, "review"), count_in(ops, "todo")) == ("2", "0")

        # Another connection (another thread) adds a task to Review: the next batch recounts.
        def other() -> None:
            make_task("C", status="review")
            close_old_connections()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        ops = moved(b, "todo")
        assert (count_in(ops, "review"), count_in(ops, "todo")) == ("2", "1")  # A and C; B
        ops = moved(a, "todo")
        assert (count_in(ops, "review"), count_in(ops, "todo")) == ("1", "2")
