"""People and their roles, managed in the app (issue #31.19): an admin adds a person (with a
one-time password to pass on), changes their role, deactivates or reactivates them, and sets a
new one-time password. Each is one transaction with its audit row. Gateway grants are the
gateways app's (`gateways.actions.set_grant`); the People page offers them beside the role.

Rules: a username is Django's (letters, digits and @.+-_, at most 150); at least one active
admin always remains (no one demotes or deactivates the last); nobody deactivates themselves.
A deactivated person, or one given a new password, is signed out everywhere: at their next
request (Django checks the flag and the password's hash on every one), and their open pages and
streams within `subscriptions.ACCESS_CHECK_S`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from missioncontrol import audit
from missioncontrol.errors import Conflict, Forbidden, Invalid, NotFound
from missioncontrol.roles import ROLES, Role, role_of, set_role


@dataclass(frozen=True)
class NewPerson:
    username: str
    email: str = ""
    role: Role | None = "viewer"


def one_time_password() -> str:
    """A password to pass on once (the person changes it under Account → Password)."""
    return secrets.token_urlsafe(12)


def _person(user_id: int) -> Any:
    found = get_user_model().objects.select_for_update(no_key=True).filter(pk=user_id).first()
    if found is None:
        raise NotFound("That person does not exist (any more).")
    return found


def _admins_left(without: int) -> int:
    """Active admins other than `without` (superusers count: they are admins)."""
    return sum(
        1
        for user in get_user_model().objects.filter(is_active=True).exclude(pk=without)
        if role_of(user) == "admin"
    )


def _check_role(role: str | None) -> Role | None:
    if role in (None, ""):
        return None
    if role not in ROLES:
        raise Invalid({"role": [f"One of {', '.join(ROLES)}, or none."]})
    return role


def add_person(actor: audit.Actor, new: NewPerson) -> tuple[Any, str]:
    """A new person with a role and a one-time password (returned once, stored hashed)."""
    username = new.username.strip()
    errors: dict[str, list[str]] = {}
    try:
        if not username:
            raise ValidationError("Give a username.")
        if len(username) > 150:
            raise ValidationError("At most 150 characters.")
        UnicodeUsernameValidator()(username)
    except ValidationError as problem:
        errors["username"] = list(problem.messages)
    email = new.email.strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = ["Enter an e-mail address, or leave it empty."]
    try:
        role = _check_role(new.role)
    except Invalid as problem:
        errors.update(problem.message_dict)
    if errors:
        raise Invalid(errors)
    password = one_time_password()
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict({"username": [f"Someone is already called {username!r}."]})
        user = User.objects.create_user(username=username, email=email, password=password)
        set_role(user, role)
        audit.record(actor, "person.added", user, after={"role": role or "none", "email": email})
    return user, password


def change_role(actor: audit.Actor, user_id: int, role: str | None) -> Any:
    wanted = _check_role(role)
    with transaction.atomic():
        user = _person(user_id)
        before = role_of(user)
        if before == wanted:
            return user
        if user.is_superuser:
            raise Forbidden("A superuser is always an admin (the Django admin can change that).")
        if before == "admin" and _admins_left(without=user.pk) == 0:
            raise Conflict("At least one active admin must remain: make someone else admin first.")
        set_role(user, wanted)
        audit.record(
            actor,
            "person.role_changed",
            user,
            before={"role": before or "none"},
            after={"role": wanted or "none"},
        )
    return user


def set_active(actor: audit.Actor, user_id: int, active: bool) -> Any:
    with transaction.atomic():
        user = _person(user_id)
        if user.is_active == active:
            return user
        if not active:
            if user.pk == actor.user_id:
                raise Forbidden("You cannot deactivate yourself.")
            if role_of(user) == "admin" and _admins_left(without=user.pk) == 0:
                raise Conflict("At least one active admin must remain.")
        user.is_active = active
        user.save(update_fields=["is_active"])
        audit.record(actor, "person.reactivated" if active else "person.deactivated", user)
    return user


def new_password(actor: audit.Actor, user_id: int) -> str:
    """A new one-time password for someone who lost theirs: their sessions end."""
    password = one_time_password()
    with transaction.atomic():
        user = _person(user_id)
        user.set_password(password)
        user.save(update_fields=["password"])
        audit.record(actor, "person.password_reset", user)
    return password
