from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from missioncontrol import roles

pytestmark = pytest.mark.django_db


def run() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_generates_a_password_printed_once(settings):
    settings.MC_ADMIN_USERNAME = ""
    settings.MC_ADMIN_PASSWORD = ""
    first = run()
    assert "username: admin" in first
    password = first.split("password: ")[1].split()[0]
    assert len(password) >= 20
    user = get_user_model().objects.get(username="admin")
    assert user.check_password(password)
    assert password not in user.password  # stored only as a hash
    assert roles.role_of(user) == "admin"
    assert run() == ""  # never printed again, never reset
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_uses_configured_credentials_and_never_resets(settings):
    settings.MC_ADMIN_USERNAME = "ops"
    settings.MC_ADMIN_PASSWORD = "from the environment 1"
    assert "MC_ADMIN_PASSWORD" in run()
    user = get_user_model().objects.get(username="ops")
    assert user.check_password("from the environment 1")
    user.set_password("changed later by the admin")
    user.save()
    settings.MC_ADMIN_PASSWORD = "something else"
    run()
    user.refresh_from_db()
    assert user.check_password("changed later by the admin")
    assert get_user_model().objects.filter(username="ops").count() == 1
