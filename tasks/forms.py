from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from agents.models import Agent
from missioncontrol import forms as mc_forms
from missioncontrol.errors import ActionError
from missioncontrol.http import MAX_ID
from missioncontrol.roles import ROLES
from tasks.models import Task


def assignee_choices(user: Any, keep: str = "") -> list[tuple[str, Any]]:
    """People (with a role) and the agents `user` may see (grants narrow them), as
    'user:<id>' / 'agent:<id>' choices; `keep`: the task's assignee now, kept whoever it is
    (saving a task must not need to change who has it)."""
    people = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=ROLES))
        .distinct()
        .order_by("username")
        .values_list("pk", "username")
    )
    kept = Q(pk=int(keep.removeprefix("agent:"))) if keep.startswith("agent:") else Q(pk__in=[])
    agents = (
        Agent.objects.filter(Q(pk__in=Agent.objects.visible_to(user).values("pk")) | kept)
        .by_name()
        .values_list("pk", "name")
    )
    return [
        ("", "Unassigned"),
        ("People", [(f"user:{pk}", name) for pk, name in people]),
        ("Agents", [(f"agent:{pk}", name) for pk, name in agents]),
    ]


class TaskForm(forms.Form):
    title = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False)
    status = forms.ChoiceField(choices=Task.Status.choices, initial=Task.Status.INBOX)
    priority = forms.TypedChoiceField(
        choices=Task.Priority.choices, coerce=int, initial=Task.Priority.NORMAL
    )
    labels = forms.CharField(
        required=False, max_length=500, help_text="Comma-separated, e.g. bug, backend"
    )
    due_date = mc_forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    assignee = forms.ChoiceField(required=False)

    def __init__(
        self,
        *args: Any,
        user: Any,
        keep: str = "",
        assignees: list[tuple[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        assignee = self.fields["assignee"]
        assert isinstance(assignee, forms.ChoiceField)
        assignee.choices = assignees if assignees is not None else assignee_choices(user, keep)

    def add_action_error(self, error: ActionError) -> None:
        for field, messages in error.message_dict.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class BlockForm(forms.Form):
    blocked = forms.BooleanField(required=False)
    reason = forms.CharField(required=False, max_length=500)
    version = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class MoveForm(forms.Form):
    status = forms.ChoiceField(choices=Task.Status.choices)
    before = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    version = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class CommentForm(forms.Form):
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=20000, required=False
    )
