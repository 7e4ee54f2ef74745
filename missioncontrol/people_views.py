"""The People page (admins): everyone who can sign in, their role, their gateways, and the ways
to add, change, deactivate and reset them (missioncontrol/people.py; grants through
gateways.actions.set_grant)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from gateways import access
from gateways import actions as gateway_actions
from gateways.models import Gateway
from missioncontrol import people, tokens
from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError
from missioncontrol.models import ApiToken
from missioncontrol.roles import ROLES, has_role, prime_roles, role_of, role_required

ROLE_CHOICES = [(r, r.capitalize()) for r in ROLES] + [("", "No role (signs in, sees nothing)")]
LEVELS = [("none", "—"), ("view", "View"), ("operate", "Operate")]


class PersonForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False, max_length=254)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="viewer", required=False)

    def add_action_error(self, error: ActionError) -> None:
        for field, problems in error.message_dict.items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)


def _rows(gateways: list[Gateway]) -> list[dict[str, Any]]:
    with_two_factor = set(
        TOTPDevice.objects.filter(confirmed=True).values_list("user_id", flat=True)
    )
    rows = []
    people = list(get_user_model().objects.order_by("-is_active", "username"))
    prime_roles(people)
    access.prime_grants(people)
    for user in people:
        role = role_of(user) if user.is_active else None
        granted = access.grants(user) if role != "admin" else None
        rows.append(
            {
                "user": user,
                "role": role_of(user),
                "gateways": _levels(gateways, granted or {}),
                "granted_text": ", ".join(
                    f"{g.name} ({level})"
                    for g, level in _levels(gateways, granted or {})
                    if level != "none"
                )
                or "every gateway",
                "narrowed": granted is not None,
                "two_factor": user.pk in with_two_factor,
            }
        )
    return rows


def _page(request: HttpRequest, form: PersonForm, **extra: Any) -> HttpResponse:
    gateways = list(Gateway.objects.order_by("name"))
    return render(
        request,
        "missioncontrol/people.html",
        {
            "rows": _rows(gateways),
            "gateways": gateways,
            "form": form,
            "role_choices": ROLE_CHOICES,
            "levels": LEVELS,
            **extra,
        },
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@role_required("admin")
def people_page(request: HttpRequest) -> HttpResponse:
    """Everyone, and the form to add a person (their one-time password is shown once)."""
    form = PersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        new = people.NewPerson(data["username"], data["email"], data["role"] or None)
        try:
            user, password = people.add_person(Actor.user(request.user), new)
        except ActionError as error:
            form.add_action_error(error)
        else:
            return _page(request, PersonForm(), shown={"user": user, "password": password})
    return _page(request, form)


def _person(pk: int) -> Any:
    return get_object_or_404(get_user_model(), pk=pk)


def _done(request: HttpRequest, action: Any, success: str) -> HttpResponse:
    return _done_at(request, action, success, "people")


@require_POST
@role_required("admin")
def person_role(request: HttpRequest, pk: int) -> HttpResponse:
    user = _person(pk)
    role = request.POST.get("role") or None
    return _done(
        request,
        lambda: people.change_role(Actor.user(request.user), user.pk, role),
        f"{user.get_username()} is now {role or 'without a role'}.",
    )


@require_POST
@role_required("admin")
def person_active(request: HttpRequest, pk: int) -> HttpResponse:
    user = _person(pk)
    active = request.POST.get("active") == "1"
    return _done(
        request,
        lambda: people.set_active(Actor.user(request.user), user.pk, active),
        f"{user.get_username()} {'can sign in again' if active else 'is deactivated and signed out'}.",
    )


@require_POST
@role_required("admin")
def person_password(request: HttpRequest, pk: int) -> HttpResponse:
    user = _person(pk)
    try:
        password = people.new_password(Actor.user(request.user), user.pk)
    except ActionError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("people")
    return _page(request, PersonForm(), shown={"user": user, "password": password, "reset": True})


@require_POST
@role_required("admin")
def person_grants(request: HttpRequest, pk: int) -> HttpResponse:
    """The person's level on each gateway (granting any narrows them to those granted)."""
    user = _person(pk)
    if has_role(user, "admin"):
        messages.error(
            request, "Admins see and act on every gateway; a grant would not narrow them."
        )
        return redirect("people")
    actor = Actor.user(request.user)
    now = {g.pk: level for g, level in _rows_for(user)}
    changed = 0
    try:
        for gateway in Gateway.objects.order_by("name"):
            level = request.POST.get(f"gateway-{gateway.pk}", now.get(gateway.pk, "none"))
            if level != now.get(gateway.pk, "none"):
                gateway_actions.set_grant(actor, gateway, user, level)
                changed += 1
    except ActionError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("people")
    messages.success(
        request,
        f"{user.get_username()}'s gateways: {changed} changed." if changed else "Nothing changed.",
    )
    return redirect("people")


def _levels(gateways: list[Gateway], granted: dict[int, set[str]]) -> list[tuple[Gateway, str]]:
    """Each gateway with the person's level on it: operate, view or none."""
    return [
        (
            g,
            ("operate" if access.OPERATE in granted[g.pk] else "view")
            if g.pk in granted
            else "none",
        )
        for g in gateways
    ]


def _rows_for(user: Any) -> list[tuple[Gateway, str]]:
    return _levels(list(Gateway.objects.order_by("name")), access.grants(user) or {})


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    days = forms.IntegerField(min_value=1, max_value=tokens.MAX_DAYS, required=False)


@require_http_methods(["GET", "POST"])
@role_required("viewer")
def my_tokens(request: HttpRequest) -> HttpResponse:
    """A person's own API tokens: make one (shown once), see when each was used, revoke."""
    form = TokenForm(request.POST or None)
    shown = ""
    if request.method == "POST" and form.is_valid():
        try:
            _token, shown = tokens.issue(
                Actor.user(request.user),
                request.user,
                name=form.cleaned_data["name"] or "",
                days=form.cleaned_data["days"],
            )
        except ActionError as error:
            for field, problems in error.message_dict.items():
                for problem in problems:
                    form.add_error(field if field in form.fields else None, problem)
        else:
            form = TokenForm()
    return render(
        request,
        "missioncontrol/tokens.html",
        {
            "form": form,
            "shown": shown,
            "tokens": ApiToken.objects.filter(user_id=request.user.pk or 0),
            "role": role_of(request.user),
            "mc_url": request.build_absolute_uri("/").rstrip("/"),
        },
        status=400 if form.errors else 200,
    )


@require_POST
@role_required("viewer")
def my_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    return _done_at(
        request,
        lambda: tokens.revoke(Actor.user(request.user), pk, owner=request.user),
        "Token revoked: requests with it are refused from now on.",
        "my-tokens",
    )


def _done_at(request: HttpRequest, action: Any, success: str, where: str) -> HttpResponse:
    try:
        action()
    except ActionError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, success)
    return redirect(where)
