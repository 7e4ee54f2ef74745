from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from billing import reports
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import ActionError, Conflict, Invalid, json_error
from missioncontrol.http import MCRequest, parse_int, safe_next
from missioncontrol.models import AuditEvent
from missioncontrol.roles import has_role, role_required
from pipelines.views import pipeline_steps
from runs.views import run_context
from tasks import actions, fastpath
from tasks.cards import render_card
from tasks.filters import TaskFilters
from tasks.forms import BlockForm, CommentForm, TaskForm, assignee_choices
from tasks.models import Task

# Cards per column on first load and per "load more" (loaded as the column scrolls). 50 fills
# several screens; rendering is the board's main cost, so the first paint stays small.
COLUMN_PAGE = 50
LIST_PAGE = 50


def _get_task(pk: int) -> Task:
    task = Task.objects.for_cards().filter(pk=pk).first()
    if task is None:
        raise Http404("No such task.")
    return task


def _column_cards(status: str, filters: TaskFilters, offset: int) -> tuple[list[str], bool]:
    """The rendered cards of one column page, and whether more follow."""
    # Cards never show the description: leave the largest column unread.
    qs = filters.apply(Task.objects.on_board().for_cards()).in_column(status).defer("description")
    tasks = list(qs[offset : offset + COLUMN_PAGE + 1])
    return [render_card(t) for t in tasks[:COLUMN_PAGE]], len(tasks) > COLUMN_PAGE


@require_safe
@role_required("viewer")
def board(request: HttpRequest) -> HttpResponse:
    # The page's live position is read before its data: nothing can fall in between.
    live_seq_for(request)
    filters = TaskFilters.from_query(request.GET)
    counts = dict.fromkeys(Task.Status.values, 0)
    for row in (
        filters.apply(Task.objects.on_board()).values("status").annotate(n=Count("id")).order_by()
    ):
        counts[row["status"]] = row["n"]
    columns = []
    choices = assignee_choices(request.user)
    for status in Task.Status:
        cards, more = _column_cards(status.value, filters, 0)
        columns.append(
            {
                "status": status.value,
                "label": status.label,
                "count": counts[status.value],
                "cards": cards,
                "more": more,
                "next": COLUMN_PAGE,
            }
        )
    return render(
        request,
        "tasks/board.html",
        {
            "columns": columns,
            "filters": filters,
            "filter_qs": filters.querystring(),
            "assignees": choices,
            "priorities": [p.label.lower() for p in Task.Priority],
            # An empty board (a new install): how to begin, above it.
            "fresh": not filters.active and not any(c["count"] for c in columns),
            # Answered at the ASGI layer only (tasks/fastpath.py, missioncontrol/asgi.py).
            "move_url": fastpath.MOVE_URL.format(pk=0),
            "form": TaskForm(user=request.user, assignees=choices)
            if has_role(request.user, "operator")
            else None,
        },
    )


@require_safe
@role_required("viewer")
def board_column(request: HttpRequest, status: str) -> HttpResponse:
    """The next cards of one column (htmx "load more")."""
    if status not in Task.Status.values:
        raise Http404("No such column.")
    # Bounded: an offset past every task is an empty page, not a database error.
    offset = parse_int(request.GET.get("offset"), high=10**9) or 0
    filters = TaskFilters.from_query(request.GET)
    cards, more = _column_cards(status, filters, offset)
    return render(
        request,
        "tasks/board.html#column_cards",
        {
            "column": {
                "status": status,
                "cards": cards,
                "more": more,
                "next": offset + COLUMN_PAGE,
            },
            "filter_qs": filters.querystring(),
        },
    )


@require_http_methods(["GET", "POST"])
@role_required("operator")
def task_new(request: MCRequest) -> HttpResponse:
    # Built once: the form checks the assignee against it, and the blank form the board gets
    # back after a create shows it again (#32: it was built twice per create).
    choices = assignee_choices(request.user)
    form = TaskForm(
        request.POST or None,
        initial={"status": request.GET.get("status", Task.Status.INBOX)},
        user=request.user,
        assignees=choices,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            task = actions.create_task(Actor.user(request.user), **data)
        except ActionError as error:
            form.add_action_error(error)
        else:
            if request.htmx:
                response = render(
                    request,
                    "tasks/board.html#new_task_form",
                    {"form": TaskForm(user=request.user, assignees=choices), "created": task},
                )
                response["HX-Trigger"] = "mc:task-created"
                return response
            messages.success(request, f"Created “{task.title}”.")
            return redirect("tasks:board")
    status = 422 if request.method == "POST" else 200
    template = "tasks/board.html#new_task_form" if request.htmx else "tasks/new.html"
    return render(request, template, {"form": form}, status=status)


def _history(task: Task) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(object_type="tasks.task", object_id=str(task.pk)).order_by("-id")[
            :100
        ]
    )


def _detail_context(
    request: HttpRequest,
    task: Task,
    form: TaskForm | None = None,
    block_form: BlockForm | None = None,
) -> dict[str, Any]:
    return {
        "task": task,
        "form": form
        or TaskForm(
            user=request.user,
            keep=task.assignee_key,
            initial={
                "title": task.title,
                "description": task.description,
                "status": task.status,
                "priority": task.priority,
                "labels": ", ".join(task.label_list),
                "due_date": task.due_date,
                "assignee": task.assignee_key,
            },
        ),
        "comments": task.comments.select_related(None).all(),
        "comment_form": CommentForm(),
        "history": _history(task),
        "cost": reports.task_cost(task.pk),
        "blockers": list(task.blocked_by.order_by("pk").only("pk", "title", "status")),
        "blocking": list(task.blocks.order_by("pk").only("pk", "title", "status")),
        **run_context(request, task),
        "pipeline_steps": pipeline_steps(task),
    }


@require_safe
@role_required("viewer")
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    live_seq_for(request)
    task = _get_task(pk)
    return render(request, "tasks/detail.html", _detail_context(request, task))


@require_POST
@role_required("operator")
def task_edit(request: MCRequest, pk: int) -> HttpResponse:
    task = _get_task(pk)
    form = TaskForm(request.POST, user=request.user, keep=task.assignee_key)
    status = 200
    if form.is_valid():
        try:
            version = parse_int(request.POST.get("version"), low=1)
            task = actions.update_task(
                Actor.user(request.user),
                pk,
                cast(actions.TaskChanges, form.cleaned_data),
                expected_version=version,
            )
            messages.success(request, "Saved.")
            if request.htmx:
                # The whole page shows the task (title, description, badges): load it fresh.
                response = HttpResponse(status=204)
                response["HX-Redirect"] = reverse("tasks:detail", args=[pk])
                return response
            return redirect("tasks:detail", pk=pk)
        except Conflict as conflict:
            task = _get_task(pk)
            if "task" in conflict.extra:
                form.add_error(
                    None,
                    "Someone else changed this task while you were editing. Review their change and save again.",
                )
            else:
                form.add_action_error(conflict)
            status = 409
        except ActionError as error:
            form.add_action_error(error)
            status = 422
    else:
        status = 422
    ctx = _detail_context(request, task, form)
    template = "tasks/detail.html#task_fields" if request.htmx else "tasks/detail.html"
    return render(request, template, ctx, status=status)


@require_POST
@role_required("operator")
def task_block(request: HttpRequest, pk: int) -> HttpResponse:
    form = BlockForm(request.POST)
    if not form.is_valid():
        return json_error(400, form.errors.get_json_data())
    try:
        actions.set_blocked(
            Actor.user(request.user),
            pk,
            blocked=form.cleaned_data["blocked"],
            reason=form.cleaned_data["reason"],
            expected_version=form.cleaned_data["version"],
        )
    except ActionError as error:
        for message in error.messages:
            messages.error(request, message)
    return redirect(safe_next(request, reverse("tasks:detail", args=[pk])))


def parse_task_ids(raw: str) -> list[int]:
    """'#12, 13 #14' → [12, 13, 14]; Invalid names what is not a task number."""
    found: list[int] = []
    for part in raw.replace(",", " ").split():
        number = parse_int(part.removeprefix("#"), low=1)
        if number is None:
            raise Invalid({"blocked_by": [f"{part!r} is not a task number (like #12)."]})
        found.append(number)
    return found


@require_POST
@role_required("operator")
def task_blocked_by(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        ids = parse_task_ids(request.POST.get("blocked_by", "")[:2000])
        actions.set_blocked_by(Actor.user(request.user), pk, ids)
    except ActionError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, "Saved what it waits for.")
    return redirect(reverse("tasks:detail", args=[pk]) + "#waits-for")


@require_POST
@role_required("operator")
def task_comment(request: MCRequest, pk: int) -> HttpResponse:
    _get_task(pk)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            actions.add_comment(Actor.user(request.user), pk, form.cleaned_data["body"])
        except ActionError as error:
            form.add_error("body" if "body" in error.message_dict else None, error.messages[0])
        else:
            if request.htmx:
                return render(
                    request,
                    "tasks/detail.html#comment_form",
                    {"task": _get_task(pk), "comment_form": CommentForm()},
                )
            return redirect("tasks:detail", pk=pk)
    if request.htmx:
        return render(
            request,
            "tasks/detail.html#comment_form",
            {"task": _get_task(pk), "comment_form": form},
            status=422,
        )
    ctx = _detail_context(request, _get_task(pk))
    ctx["comment_form"] = form
    return render(request, "tasks/detail.html", ctx, status=422)


@require_POST
@role_required("operator")
def task_archive(request: HttpRequest, pk: int) -> HttpResponse:
    task = _get_task(pk)
    actions.archive_task(Actor.user(request.user), pk)
    messages.success(request, f"Archived “{task.title}”.")
    return redirect("tasks:board")


@require_POST
@role_required("admin")
def task_delete(request: HttpRequest, pk: int) -> HttpResponse:
    task = _get_task(pk)
    actions.delete_task(Actor.user(request.user), pk)
    messages.success(request, f"Deleted “{task.title}”.")
    return redirect("tasks:board")


@require_safe
@role_required("viewer")
def task_list(request: HttpRequest) -> HttpResponse:
    """Every task, filterable and paginated (Done and archived included)."""
    filters = TaskFilters.from_query(request.GET)
    status = request.GET.get("status", "")
    archived = request.GET.get("archived") == "1"
    qs = Task.objects.for_cards()
    qs = qs.exclude(archived_at__isnull=True) if archived else qs.on_board()
    if status in Task.Status.values:
        qs = qs.filter(status=status)
    qs = (
        filters.apply(qs).order_by("-completed_at", "-updated_at", "-id")
        if status == "done"
        else filters.apply(qs).order_by("-updated_at", "-id")
    )
    page = Paginator(qs, LIST_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "tasks/list.html",
        {
            "page": page,
            "filters": filters,
            "status": status,
            "archived": archived,
            "statuses": Task.Status.choices,
            "assignees": assignee_choices(request.user),
            "priorities": [p.label.lower() for p in Task.Priority],
            "base_qs": filters.querystring(status=status, archived="1" if archived else ""),
        },
    )
