from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from billing.models import Budget, PriceOverride
from missioncontrol import forms as mc_forms

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
        field_classes = {"effective_from": mc_forms.DateField}

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


class BudgetForm(forms.ModelForm):
    thresholds_text = forms.CharField(
        label="Alert at (% of the amount)",
        initial="80, 100",
        help_text="Comma-separated percentages, e.g. 50, 80, 100.",
    )

    class Meta:
        model = Budget
        fields = ["name", "scope", "gateway", "agent", "model", "period", "amount_usd", "enforce"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["thresholds_text"] = ", ".join(str(t) for t in self.instance.thresholds)

    def clean_thresholds_text(self) -> list[int]:
        raw = str(self.cleaned_data.get("thresholds_text") or "")
        try:
            found = sorted({int(part) for part in raw.replace(" ", "").split(",") if part})
        except ValueError:
            raise forms.ValidationError("Whole percentages, comma-separated.") from None
        if not found or any(not 1 <= t <= 1000 for t in found) or len(found) > 10:
            raise forms.ValidationError("One to ten percentages, each from 1 to 1000.")
        return found

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope")
        needs = {"gateway": "gateway", "agent": "agent", "model": "model"}
        if scope in needs and not data.get(needs[scope]):
            self.add_error(needs[scope], f"A {scope} budget names its {scope}.")
        if scope == "model" and data.get("enforce"):
            self.add_error(
                "enforce",
                "A model budget cannot pause agents (a model is not an agent): alert on it, "
                "or scope a pausing budget to an agent, a gateway or everything.",
            )
        amount = data.get("amount_usd")
        if amount is not None and not (Decimal("0.01") <= amount <= Decimal(10_000_000)):
            self.add_error("amount_usd", "Between $0.01 and $10,000,000.")
        return data
