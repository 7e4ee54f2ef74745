"""The notification pages: team channels (admins: Slack, Discord, Teams, ntfy, e-mail, each with
its rule, health and message history) and each person's own (their e-mail and rule)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from gateways import access
from gateways.models import Gateway
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import json_error
from missioncontrol.overview import NOTIFY_KINDS
from missioncontrol.roles import role_required
from notifications import actions, push
from notifications.forms import ChannelForm, RuleForm
from notifications.models import Channel, Message

HISTORY = 30
PERSONAL_KINDS = (Channel.Kind.EMAIL, Channel.Kind.NTFY)  # browser push: its own button
SERVICE_WORKER = Path(__file__).resolve().parent.parent / "static" / "js" / "sw.js"


def _gateways(user: Any) -> list[Gateway]:
    return list(Gateway.objects.filter(access.narrowing(user, "pk", direct=False)).order_by("name"))


def _rule_summary(rule: Any) -> str:
    kinds = rule.kinds or list(NOTIFY_KINDS)
    parts = [f"{len(kinds)} of {len(NOTIFY_KINDS)} kinds"]
    if rule.quiet_start and rule.quiet_end:
        parts.append(f"quiet {rule.quiet_start:%H:%M}–{rule.quiet_end:%H:%M} {rule.time_zone}")
    if rule.digest:
        parts.append(f"{rule.digest} digest")
    return " · ".join(parts)


def _failed(form: Any, error: actions.Invalid) -> None:
    for field, problems in error.errors.items():
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)


def _saved(request: HttpRequest, form: Any, save: Callable[[], object], said: str) -> bool:
    """`save()` for a valid form: True when it saved (said so), else its refusal on the form."""
    if not form.is_valid():
        return False
    try:
        save()
    except actions.Invalid as invalid:
        _failed(form, invalid)
        return False
    messages.success(request, said)
    return True


# --- Team channels (admins) ---------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required("admin")
def team(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    form = ChannelForm(request.POST or None, initial={"kind": "slack"})
    if request.method == "POST" and form.is_valid():
        try:
            channel = actions.save_channel(Actor.user(request.user), form.to_input())
        except actions.Invalid as invalid:
            _failed(form, invalid)
        else:
            messages.success(request, f"Channel “{channel.name}” added. Send it a test.")
            return redirect("notifications:channel", channel.pk)
    channels = list(Channel.objects.filter(owner__isnull=True).select_related("rule"))
    for channel in channels:
        channel.summary = _rule_summary(channel.rule) if hasattr(channel, "rule") else ""  # type: ignore[attr-defined]
    return render(
        request,
        "notifications/team.html",
        {
            "channels": channels,
            "form": form,
            "recent": Message.objects.filter(channel__owner__isnull=True).select_related("channel")[
                :10
            ],
            "email_ready": bool(_email_ready()),
        },
        status=422 if form.errors else 200,
    )


def _email_ready() -> str:
    from django.conf import settings

    return settings.MC_EMAIL_URL


@require_http_methods(["GET", "POST"])
@role_required("admin")
def channel_detail(request: HttpRequest, pk: int) -> HttpResponse:
    live_seq_for(request)
    channel = get_object_or_404(Channel, pk=pk, owner__isnull=True)
    rule = actions.rule_for(channel=channel)
    gateways = list(Gateway.objects.order_by("name"))
    posted = request.POST.get("form") if request.method == "POST" else None
    form = ChannelForm(request.POST if posted == "channel" else None, editing=channel)
    rule_form = RuleForm(request.POST if posted == "rule" else None, rule=rule, gateways=gateways)
    actor = Actor.user(request.user)
    if posted == "channel" and _saved(
        request,
        form,
        lambda: actions.save_channel(actor, form.to_input(), channel_id=channel.pk),
        "Channel saved.",
    ):
        return redirect("notifications:channel", channel.pk)
    if posted == "rule" and _saved(
        request,
        rule_form,
        lambda: actions.save_rule(actor, rule_form.to_input(), channel_id=channel.pk),
        "What this channel is told was saved.",
    ):
        return redirect("notifications:channel", channel.pk)
    return render(
        request,
        "notifications/channel.html",
        {
            "channel": channel,
            "form": form,
            "rule_form": rule_form,
            "history": channel.messages.all()[:HISTORY],
        },
        status=422 if (form.errors or rule_form.errors) else 200,
    )


@require_POST
@role_required("admin")
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        actions.send_test(Actor.user(request.user), pk)
    except actions.Invalid:
        messages.error(request, "That channel no longer exists.")
        return redirect("notifications:team")
    messages.success(request, "A test message is on its way; its outcome is in the history below.")
    return redirect("notifications:channel", pk)


@require_POST
@role_required("admin")
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    actions.delete_channel(Actor.user(request.user), pk)
    messages.success(request, "Channel deleted.")
    return redirect("notifications:team")


# --- A person's own -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required("viewer")
def mine(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    user = request.user
    rule = actions.rule_for(user_id=user.pk)
    if not rule.pk:
        from django.utils import timezone

        rule.time_zone = timezone.get_current_timezone_name()
    gateways = _gateways(user)
    posted = request.POST.get("form") if request.method == "POST" else None
    form = ChannelForm(
        request.POST if posted == "channel" else None,
        kinds=PERSONAL_KINDS,
        initial={"kind": "email", "name": "My e-mail", "target": getattr(user, "email", "")},
    )
    rule_form = RuleForm(request.POST if posted == "rule" else None, rule=rule, gateways=gateways)
    actor = Actor.user(user)

    def add_channel() -> None:
        actions.save_channel(actor, form.to_input(), owner_id=user.pk)
        if not rule.pk:
            actions.save_rule(actor, actions.default_rule(rule.time_zone), user_id=user.pk)

    if posted == "channel" and _saved(request, form, add_channel, "Channel added. Send it a test."):
        return redirect("notifications:mine")
    if posted == "rule" and _saved(
        request,
        rule_form,
        lambda: actions.save_rule(actor, rule_form.to_input(), user_id=user.pk),
        "Your notification settings were saved.",
    ):
        return redirect("notifications:mine")
    channels = list(Channel.objects.filter(owner_id=user.pk))
    return render(
        request,
        "notifications/mine.html",
        {
            "channels": channels,
            "form": form,
            "rule_form": rule_form,
            "rule": rule,
            "history": Message.objects.filter(channel__owner_id=user.pk).select_related("channel")[
                :HISTORY
            ],
            "email_ready": bool(_email_ready()),
            "push_key": push.keys().public_key,
        },
        status=422 if (form.errors or rule_form.errors) else 200,
    )


@require_POST
@role_required("viewer")
def mine_test(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        actions.send_test(Actor.user(request.user), pk, owner_id=request.user.pk)
    except actions.Invalid:
        messages.error(request, "That channel no longer exists.")
    else:
        messages.success(
            request, "A test message is on its way; its outcome is in the history below."
        )
    return redirect("notifications:mine")


@require_POST
@role_required("viewer")
def mine_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk, owner_id=request.user.pk)
    actions.save_channel(
        Actor.user(request.user),
        actions.ChannelInput(
            kind=channel.kind, name=channel.name, target="", enabled=not channel.enabled
        ),
        owner_id=request.user.pk,
        channel_id=channel.pk,
    )
    return redirect("notifications:mine")


@require_POST
@role_required("viewer")
def mine_delete(request: HttpRequest, pk: int) -> HttpResponse:
    actions.delete_channel(Actor.user(request.user), pk, owner_id=request.user.pk)
    messages.success(request, "Channel deleted.")
    return redirect("notifications:mine")


@require_POST
@role_required("viewer")
def mine_push(request: HttpRequest) -> HttpResponse:
    """This browser's push subscription (JSON, from static/js/push.js): a channel of the
    person's, replacing one with the same endpoint."""
    try:
        data = json.loads(request.body or b"{}")
        subscription = push.subscription(
            data.get("subscription") if isinstance(data, dict) else None
        )
    except (ValueError, push.BadSubscription) as bad:
        detail = str(bad) if isinstance(bad, push.BadSubscription) else "The body is not JSON."
        return json_error(400, detail)
    name = str(data.get("name") or "This browser").strip()[:100] or "This browser"
    channel = actions.save_push_channel(
        Actor.user(request.user), int(request.user.pk or 0), name, subscription
    )
    return JsonResponse({"channel": channel.pk, "name": channel.name}, status=201)


@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker that shows pushed notifications, served from the root so its scope
    is the whole site (a file under /static/ could only control /static/)."""
    response = HttpResponse(SERVICE_WORKER.read_bytes(), content_type="text/javascript")
    response["Cache-Control"] = "no-cache"
    return response
