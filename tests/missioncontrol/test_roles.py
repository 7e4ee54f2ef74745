from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from missioncontrol import roles
from tests.missioncontrol.factories import UserFactory

pytestmark = pytest.mark.django_db


class TestRoleGroups:
    def test_migration_creates_the_three_groups(self):
        assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "operator", "admin"}

    def test_viewer_group_only_views(self):
        codenames = set(
            Group.objects.get(name="viewer").permissions.values_list("codename", flat=True)
        )
        assert "view_auditevent" in codenames
        assert all(c.startswith("view_") for c in codenames)

    def test_admin_group_has_every_permission(self):
        assert Group.objects.get(name="admin").permissions.filter(codename="change_user").exists()

    def test_highest_group_wins(self):
        user = UserFactory.create(role="viewer")
        user.groups.add(Group.objects.get(name="operator"))
        user = type(user).objects.get(pk=user.pk)
        assert roles.role_of(user) == "operator"

    def test_superuser_is_admin(self):
        user = UserFactory.create(is_superuser=True)
        assert roles.role_of(user) == "admin"

    def test_inactive_user_has_no_role(self):
        user = UserFactory.create(role="admin", is_active=False)
        assert roles.role_of(user) is None

    def test_has_role_ranks(self):
        user = UserFactory.create(role="operator")
        assert roles.has_role(user, "viewer")
        assert roles.has_role(user, "operator")
        assert not roles.has_role(user, "admin")


class TestOverviewAccess:
    def test_viewer_sees_overview(self, viewer):
        assert viewer.get(reverse("home")).status_code == 200

    def test_outsider_gets_403_with_explanation(self, outsider):
        response = outsider.get(reverse("home"))
        assert response.status_code == 403
        assert b"No role yet" in response.content

    def test_wrong_method_is_405(self, viewer):
        assert viewer.post(reverse("home")).status_code == 405

    def test_shell_shows_user_and_role(self, operator):
        html = operator.get(reverse("home")).content.decode()
        assert "bob" in html
        assert "role-badge role-operator" in html
        assert 'action="/logout/"' in html

    def test_nav_hides_django_admin_from_non_admins(self, viewer, admin):
        assert b"Django admin" not in viewer.get(reverse("home")).content
        assert b"Django admin" in admin.get(reverse("home")).content


class TestDjangoAdmin:
    def test_viewer_is_refused(self, viewer):
        assert viewer.get("/admin/").status_code == 403

    def test_operator_is_refused(self, operator):
        assert operator.get("/admin/auth/user/").status_code == 403

    def test_admin_reaches_it(self, admin):
        response = admin.get("/admin/")
        assert response.status_code == 200
        assert b"Users" in response.content

    def test_admin_sees_users_and_audit(self, admin):
        assert admin.get("/admin/auth/user/").status_code == 200
        assert admin.get("/admin/missioncontrol/auditevent/").status_code == 200

    def test_anonymous_goes_to_the_app_login(self, client):
        response = client.get("/admin/", follow=True)
        assert response.redirect_chain[-1][0].startswith(reverse("login"))
