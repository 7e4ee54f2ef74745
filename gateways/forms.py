from __future__ import annotations

from django import forms

from gateways.models import COLOURS


class GatewayForm(forms.Form):
    """Add or edit a gateway. The token field is write-only: left empty on edit, the stored
    token stays (it is never sent back to the browser)."""

    name = forms.CharField(max_length=40, help_text="How every panel names this gateway.")
    url = forms.CharField(
        label="URL",
        max_length=500,
        help_text="The gateway's WebSocket address, e.g. ws://127.0.0.1:18789/ or wss://gw.example.com/.",
    )
    token = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="gateway.auth.token from the gateway's config. Stored encrypted; never shown again.",
    )
    clear_token = forms.BooleanField(required=False, label="Remove the stored token")
    colour = forms.ChoiceField(choices=COLOURS, initial="blue")
    enabled = forms.BooleanField(required=False, initial=True, label="Connect to this gateway")

    def __init__(self, *args: object, editing: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if editing:
            self.fields[
                "token"
            ].help_text = "Leave empty to keep the stored token; type a new one to replace it."
        else:
            del self.fields["clear_token"]
