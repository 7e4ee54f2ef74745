from __future__ import annotations

import re
from typing import Any

from django import forms

from missioncontrol import forms as mc_forms
from webhooks import outbox
from webhooks.models import Endpoint
from webhooks.targets import Refused, check_url


class EndpointForm(forms.ModelForm):
    event_types = forms.CharField(
        label="Event types",
        initial="*",
        help_text="Types or patterns, separated by spaces or commas: task.*, agent.status_changed, "
        "* for all.",
    )

    class Meta:
        model = Endpoint
        fields = ["url", "description", "event_types", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["event_types"] = " ".join(self.instance.event_types)

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"]).strip()
        try:
            check_url(url)
        except Refused as refused:
            raise forms.ValidationError(str(refused)) from None
        return url

    def clean_event_types(self) -> list[str]:
        patterns = [p for p in re.split(r"[\s,]+", self.cleaned_data["event_types"]) if p]
        if not patterns:
            raise forms.ValidationError("Name at least one event type, or * for all.")
        unknown = [p for p in patterns if not any(outbox.matches([p], t) for t in outbox.CATALOGUE)]
        if unknown:
            raise forms.ValidationError(
                f"No event type matches {', '.join(unknown)} (the catalogue is listed below)."
            )
        return sorted(set(patterns))


class RedeliverForm(forms.Form):
    since = mc_forms.DateTimeField(
        label="Failed since",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
