"""The notification forms: a channel (where to), and a rule (what, when)."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import validate_email

from missioncontrol.overview import NOTIFY_KINDS
from notifications import actions
from notifications.models import Channel, Rule
from webhooks.targets import Refused, check_url

SEVERITIES = [
    (0, "Only critical (a gateway down, a budget that pauses agents)"),
    (1, "Critical and stuck work"),
    (2, "Also degraded things"),
    (3, "Everything, and what waits on me"),
]
MAX_ADDRESSES = 20


def _zones() -> list[tuple[str, str]]:
    return [(z, z) for z in sorted(zoneinfo.available_timezones())]


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(choices=Channel.Kind.choices)
    name = forms.CharField(max_length=100)
    target = forms.CharField(max_length=2000, required=False)
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(
        self, *args: Any, editing: Channel | None = None, kinds: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if kinds is not None:
            self.fields["kind"].choices = [c for c in Channel.Kind.choices if c[0] in kinds]  # type: ignore[attr-defined]
        if editing is not None:
            self.fields["kind"].required = False
            self.fields["kind"].disabled = True
            self.initial.update(
                {"kind": editing.kind, "name": editing.name, "enabled": editing.enabled}
            )
            self.fields["target"].help_text = f"Stored: {editing.hint}. Leave empty to keep it."
        else:
            self.fields["target"].required = True
            del self.fields["enabled"]  # a new channel is on
        self.fields["target"].widget.attrs["autocomplete"] = "off"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = self.editing.kind if self.editing else data.get("kind")
        target = (data.get("target") or "").strip()
        data["target"] = target
        if not target or not kind:
            return data
        if kind == Channel.Kind.EMAIL:
            if not settings.MC_EMAIL_URL:
                self.add_error("kind", "E-mail needs an SMTP server: set MC_EMAIL_URL (README).")
            addresses = [a.strip() for a in target.split(",") if a.strip()]
            if len(addresses) > MAX_ADDRESSES:
                self.add_error("target", f"At most {MAX_ADDRESSES} addresses.")
            for address in addresses:
                try:
                    validate_email(address)
                except forms.ValidationError:
                    self.add_error("target", f"{address!r} is not an e-mail address.")
                    break
            data["target"] = ", ".join(addresses)
        else:
            try:
                check_url(target)
            except Refused as refused:
                self.add_error("target", str(refused))
        return data

    def to_input(self) -> actions.ChannelInput:
        data = self.cleaned_data
        return actions.ChannelInput(
            kind=self.editing.kind if self.editing else data["kind"],
            name=data["name"].strip(),
            target=data["target"],
            enabled=bool(data.get("enabled", True)),
        )


class RuleForm(forms.Form):
    kinds = forms.MultipleChoiceField(
        choices=list(NOTIFY_KINDS.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Tell me when",
    )
    gateways = forms.TypedMultipleChoiceField(
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every gateway.",
    )
    max_severity = forms.TypedChoiceField(
        choices=SEVERITIES, coerce=int, initial=3, label="How serious"
    )
    quiet_start = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    quiet_end = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    time_zone = forms.ChoiceField(choices=_zones, initial="UTC")
    urgent_in_quiet = forms.BooleanField(required=False, initial=True)
    digest = forms.ChoiceField(choices=Rule.Digest.choices, required=False)
    resolved = forms.BooleanField(required=False, initial=True)
    coalesce_minutes = forms.IntegerField(
        min_value=0,
        max_value=1440,
        initial=10,
        label="At most one message per thing every (minutes)",
    )

    def __init__(self, *args: Any, rule: Rule, gateways: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gateways"].choices = [(g.pk, g.name) for g in gateways]  # type: ignore[attr-defined]
        if not gateways:
            del self.fields["gateways"]
        self.initial.update(
            {
                "kinds": rule.kinds,
                "gateways": rule.gateways,
                "max_severity": rule.max_severity,
                "quiet_start": rule.quiet_start,
                "quiet_end": rule.quiet_end,
                "time_zone": rule.time_zone,
                "urgent_in_quiet": rule.urgent_in_quiet,
                "digest": rule.digest,
                "resolved": rule.resolved,
                "coalesce_minutes": rule.coalesce_minutes,
            }
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            self.add_error("quiet_end", "Give both ends of the quiet hours, or neither.")
        return data

    def to_input(self) -> actions.RuleInput:
        data = self.cleaned_data
        return actions.RuleInput(
            kinds=tuple(data["kinds"]),
            gateways=tuple(data.get("gateways") or ()),
            max_severity=data["max_severity"],
            quiet_start=data.get("quiet_start"),
            quiet_end=data.get("quiet_end"),
            time_zone=data["time_zone"],
            urgent_in_quiet=bool(data.get("urgent_in_quiet")),
            digest=data.get("digest") or "",
            resolved=bool(data.get("resolved")),
            coalesce_minutes=data["coalesce_minutes"],
        )
