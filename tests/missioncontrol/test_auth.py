from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from missioncontrol.models import AuditEvent
from tests.live import PASSWORD

pytestmark = pytest.mark.django_db


class TestLogin:
    def test_signs_in_and_lands_on_the_overview(self, alice_viewer):
        client = Client()
        response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
        assert response.status_code == 302
        assert response["Location"] == reverse("home")
        page = client.get(reverse("home"))
        assert page.status_code == 200
        assert b"alice" in page.content

    def test_sign_in_is_audited_with_the_clients_address(self, alice_viewer):
        Client(REMOTE_ADDR="203.0.113.9").post(
            reverse("login"), {"username": "alice", "password": PASSWORD}
        )
        event = AuditEvent.objects.get(verb="signed_in")
        assert event.actor_label == "alice"
        assert event.actor_user == alice_viewer
        assert event.changes == {"after": {"address": "203.0.113.9"}}

    def test_wrong_password_shows_an_error(self, alice_viewer):
        response = Client().post(reverse("login"), {"username": "alice", "password": "nope"})
        assert response.status_code == 200
        assert b"Please enter a correct username and password" in response.content
        assert b'role="alert"' in response.content

    def test_anonymous_is_sent_to_login(self):
        response = Client().get(reverse("home"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))

    def test_locks_out_after_repeated_failures(self, alice_viewer, settings):
        client = Client()
        for _ in range(settings.AXES_FAILURE_LIMIT):
            client.post(reverse("login"), {"username": "alice", "password": "nope"})
        response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
        assert response.status_code == 429
        assert b"Too many failed attempts" in response.content
        assert AccessAttempt.objects.filter(username="alice").exists()

    def test_logout_needs_post_and_ends_the_session(self, viewer):
        assert viewer.get(reverse("logout")).status_code == 405
        response = viewer.post(reverse("logout"))
        assert response.status_code == 302
        assert viewer.get(reverse("home")).status_code == 302


class TestPasswordChange:
    def test_changes_password(self, viewer, alice_viewer):
        response = viewer.post(
            reverse("password_change"),
            {
                "old_password": PASSWORD,
                "new_password1": "a much better one 42",
                "new_password2": "a much better one 42",
            },
        )
        assert response.status_code == 302
        alice_viewer.refresh_from_db()
        assert alice_viewer.check_password("a much better one 42")

    def test_wrong_old_password_is_a_form_error(self, viewer):
        response = viewer.post(
            reverse("password_change"),
            {
                "old_password": "wrong",
                "new_password1": "a much better one 42",
                "new_password2": "a much better one 42",
            },
        )
        assert response.status_code == 200
        assert b"field-error" in response.content
