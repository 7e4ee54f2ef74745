from __future__ import annotations

from typing import Any

from django import forms

from crons.actions import GRACE_MAX_S
from crons.schedules import EVERY_MAX_S, EVERY_MIN_S

KINDS = [("cron", "Cron expression"), ("every", "Every N minutes")]


class MonitoringForm(forms.Form):
    """A job's monitoring (any job); for a direct check also its name and schedule. Minutes in
    the form, seconds in the actions."""

    grace_min = forms.IntegerField(
        label="Grace period (minutes)",
        min_value=0,
        max_value=GRACE_MAX_S // 60,
        help_text="How long after an expected run the job may be silent before it is late.",
    )
    failure_threshold = forms.IntegerField(
        label="Failing after",
        min_value=1,
        max_value=100,
        help_text="Failed runs in a row before the job counts as failing.",
    )
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(max_length=500, required=False)
    kind = forms.ChoiceField(label="Schedule", choices=KINDS, required=False)
    expr = forms.CharField(
        label="Cron expression", max_length=120, required=False, help_text="e.g. 0 3 * * *"
    )
    tz = forms.CharField(label="Time zone", max_length=64, required=False, initial="UTC")
    every_min = forms.IntegerField(
        label="Every (minutes)",
        min_value=EVERY_MIN_S // 60,
        max_value=EVERY_MAX_S // 60,
        required=False,
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("grace_min") is not None:
            data["grace_s"] = data["grace_min"] * 60
        if data.get("every_min") is not None:
            data["every_s"] = data["every_min"] * 60
        return data


class CheckForm(MonitoringForm):
    """A new direct check: a name and a schedule are required."""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(label="Schedule", choices=KINDS)
