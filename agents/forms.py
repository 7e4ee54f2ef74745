from __future__ import annotations

from django import forms

from agents.models import Agent, AgentKey
from missioncontrol import forms as mc_forms


class KeyForm(forms.Form):
    kind = forms.ChoiceField(choices=AgentKey.Kind.choices, initial=AgentKey.Kind.AGENT)
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.by_name(), required=False, empty_label="— choose —"
    )
    name = forms.CharField(
        max_length=100, required=False, help_text="What it is for, e.g. “laptop Claude Code”."
    )
    max_uses = forms.IntegerField(
        min_value=1,
        max_value=1_000_000,
        required=False,
        help_text="Enrollment keys: how many agents it may register.",
    )
    expires_at = mc_forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("kind") == AgentKey.Kind.AGENT and not data.get("agent"):
            self.add_error("agent", "An agent key belongs to one agent: choose it.")
        return data
