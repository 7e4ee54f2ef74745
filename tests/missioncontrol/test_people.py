"""People and roles in the app (#31.19): an admin adds a person with a one-time password, changes
their role and gateways, deactivates and reactivates them, gives them a new password — each
audited, each refused when it would leave no admin — without the Django admin."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from gateways import access
from missioncontrol.models import AuditEvent
from missioncontrol.roles import role_of
from tests.gateways.factories import make_gateway
from tests.live import PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()


def shown_password(html: str) -> str:
    found = re.search(r'id="one-time-password">([^<]+)</pre>', html)
    assert found, "no one-time password shown"
    return found.group(1)


def signs_in(username: str, password: str) -> bool:
    """Through the sign-in page, as a person does (and its lockout counts it)."""
    response = Client().post("/login/", {"username": username, "password": password})
    return response.status_code == 302 and "/login/" not in response["Location"]


def test_an_admin_adds_a_person_who_signs_in_with_the_one_time_password(admin):
    response = admin.post(
        "/settings/people/", {"username": "dana", "email": "dana@example.com", "role": "operator"}
    )
    assert response.status_code == 200
    password = shown_password(response.content.decode())
    dana = User.objects.get(username="dana")
    assert role_of(dana) == "operator"
    assert dana.email == "dana@example.com"
    assert password not in dana.password  # stored hashed
    assert signs_in("dana", password)
    audit = AuditEvent.objects.get(verb="person.added")
    assert (audit.actor_label, audit.object_repr) == ("carol", "dana")
    # Shown once: the page shows it no more.
    assert "one-time-password" not in admin.get("/settings/people/").content.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"username": "two words", "role": "viewer"}, "username"),
        ({"username": "", "role": "viewer"}, "username"),
        ({"username": "x" * 151, "role": "viewer"}, "username"),
        ({"username": "ok", "email": "not-an-address", "role": "viewer"}, "email"),
        ({"username": "ok", "role": "emperor"}, "role"),
        ({"username": "alice", "role": "viewer"}, "username"),  # taken
        ({"username": "ALICE", "role": "viewer"}, "username"),  # taken, in other letters
    ],
)
def test_bad_input_is_a_form_error_and_adds_no_one(admin, alice_viewer, data, field):
    before = User.objects.count()
    response = admin.post("/settings/people/", data)
    assert response.status_code == 400
    assert field in response.context["form"].errors, response.context["form"].errors
    assert User.objects.count() == before


def test_roles_change_and_the_last_admin_stays(admin, carol_admin, alice_viewer):
    assert (
        admin.post(f"/settings/people/{alice_viewer.pk}/role/", {"role": "operator"}).status_code
        == 302
    )
    assert role_of(User.objects.get(pk=alice_viewer.pk)) == "operator"
    # carol is the only admin: she cannot demote herself…
    admin.post(f"/settings/people/{carol_admin.pk}/role/", {"role": "viewer"})
    assert role_of(User.objects.get(pk=carol_admin.pk)) == "admin"
    page = admin.get("/settings/people/").content.decode()
    assert "At least one active admin must remain" in page
    # … until there is another.
    admin.post(f"/settings/people/{alice_viewer.pk}/role/", {"role": "admin"})
    admin.post(f"/settings/people/{carol_admin.pk}/role/", {"role": "viewer"})
    assert role_of(User.objects.get(pk=carol_admin.pk)) == "viewer"
    changes = AuditEvent.objects.filter(verb="person.role_changed").order_by("pk")
    assert [(c.object_repr, c.changes["after"]["role"]) for c in changes] == [
        ("alice", "operator"),
        ("alice", "admin"),
        ("carol", "viewer"),
    ]


def test_deactivating_signs_a_person_out_and_keeps_them_out(
    admin, carol_admin, bob_operator, operator
):
    assert operator.get("/board/").status_code == 200
    admin.post(f"/settings/people/{bob_operator.pk}/active/", {"active": "0"})
    assert not User.objects.get(pk=bob_operator.pk).is_active
    response = operator.get("/board/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert not signs_in("bob", PASSWORD)
    # Nobody deactivates themselves.
    admin.post(f"/settings/people/{carol_admin.pk}/active/", {"active": "0"})
    assert User.objects.get(pk=carol_admin.pk).is_active
    admin.post(f"/settings/people/{bob_operator.pk}/active/", {"active": "1"})
    assert User.objects.get(pk=bob_operator.pk).is_active
    person_rows = AuditEvent.objects.filter(verb__startswith="person.").order_by("pk")
    verbs = list(person_rows.values_list("verb", flat=True))
    assert verbs == ["person.deactivated", "person.reactivated"]


def test_a_new_password_ends_the_old_one_and_its_sessions(admin, bob_operator, operator):
    response = admin.post(f"/settings/people/{bob_operator.pk}/password/")
    password = shown_password(response.content.decode())
    assert "/login/" in operator.get("/board/")["Location"]
    assert signs_in("bob", password)
    assert AuditEvent.objects.filter(verb="person.password_reset", object_repr="bob").exists()


def test_gateways_are_granted_from_the_people_page(admin, alice_viewer, carol_admin):
    prod, staging = make_gateway("prod"), make_gateway("staging")
    admin.post(
        f"/settings/people/{alice_viewer.pk}/gateways/",
        {f"gateway-{prod.pk}": "operate", f"gateway-{staging.pk}": "none"},
    )
    granted = access.grants(User.objects.get(pk=alice_viewer.pk))
    assert granted is not None
    assert set(granted) == {prod.pk}
    assert access.OPERATE in granted[prod.pk]
    page = admin.get("/settings/people/").content.decode()
    assert "prod (operate)" in page
    # An admin sees every gateway: no grant would narrow them.
    admin.post(f"/settings/people/{carol_admin.pk}/gateways/", {f"gateway-{prod.pk}": "view"})
    assert access.grants(User.objects.get(pk=carol_admin.pk)) is None


def test_only_admins_manage_people(operator, viewer, alice_viewer):
    for client in (operator, viewer):
        assert client.get("/settings/people/").status_code == 403
        response = client.post(f"/settings/people/{alice_viewer.pk}/role/", {"role": "admin"})
        assert response.status_code == 403
    assert role_of(User.objects.get(pk=alice_viewer.pk)) == "viewer"


def test_the_django_admin_lists_each_persons_role(admin, alice_viewer, bob_operator):
    html = admin.get("/admin/auth/user/").content.decode()
    assert "Role" in html
    assert ">viewer<" in html
    assert ">operator<" in html
