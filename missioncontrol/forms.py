"""Form fields every app's forms use for values a person types: bounded so that what is stored
can be shown again in every time zone (issue #30 §4: a key issued to expire on 9999-12-31 was
stored, then /settings/keys/ was a 500 for every admin east of UTC)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django import forms

from missioncontrol.http import MAX_DAY, MIN_DAY

_RANGE = f"Choose a date between {MIN_DAY.isoformat()} and {MAX_DAY.isoformat()}."


def _in_range(day: date) -> bool:
    return MIN_DAY <= day <= MAX_DAY


class DateTimeField(forms.DateTimeField):
    """forms.DateTimeField, refusing datetimes outside [MIN_DAY, MAX_DAY] (a form error)."""

    def to_python(self, value: Any) -> datetime | None:
        try:
            found = super().to_python(value)
        except OverflowError:  # made aware in the person's zone, past the calendar's end
            raise forms.ValidationError(_RANGE, code="invalid") from None
        if found is not None and not _in_range(found.date()):
            raise forms.ValidationError(_RANGE, code="invalid")
        return found


class DateField(forms.DateField):
    """forms.DateField, refusing dates outside [MIN_DAY, MAX_DAY] (a form error)."""

    def to_python(self, value: Any) -> date | None:
        found = super().to_python(value)
        if found is not None and not _in_range(found):
            raise forms.ValidationError(_RANGE, code="invalid")
        return found
