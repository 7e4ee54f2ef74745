from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from billing.models import PriceOverride

MAX_PER_MTOK = Decimal(100_000)


class PriceOverrideForm(forms.ModelForm):
    reprice = forms.BooleanField(
        required=False,
        initial=True,
        label="Reprice this pattern's records from its day on",
        help_text="Records already stored are costed again with this price (audited).",
    )

    class Meta:
        model = PriceOverride
        fields = [
            "provider",
            "model_pattern",
            "input_per_mtok",
            "output_per_mtok",
            "cache_read_per_mtok",
            "cache_write_per_mtok",
            "effective_from",
            "note",
        ]
        widgets = {"effective_from": forms.DateInput(attrs={"type": "date"})}

    def clean_model_pattern(self) -> str:
        pattern = str(self.cleaned_data["model_pattern"]).strip()
        if not pattern or pattern.strip("*?") == "":
            raise forms.ValidationError("Name a model, or a pattern with some of its name.")
        return pattern

    def clean_provider(self) -> str:
        return str(self.cleaned_data.get("provider") or "").strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in (
            "input_per_mtok",
            "output_per_mtok",
            "cache_read_per_mtok",
            "cache_write_per_mtok",
        ):
            value = data.get(name)
            if value is not None and not (Decimal(0) <= value <= MAX_PER_MTOK):
                self.add_error(name, f"Between 0 and {MAX_PER_MTOK:,} USD per million tokens.")
        return data
