"""The agent API's authentication is its own: DRF's project defaults are neutral."""

from __future__ import annotations

from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from agents.api_auth import AgentAPIView, AgentKeyAuthentication


class Unnamed(APIView):
    """A view that names no authentication or permission (a future API's mistake)."""

    def get(self, request):  # pragma: no cover - never reached
        raise AssertionError


def test_a_view_that_names_no_permission_refuses_everyone(db):
    response = Unnamed.as_view()(APIRequestFactory().get("/api/v1/x"))
    assert response.status_code in (401, 403)
    assert response.data["error"] in ("unauthenticated", "forbidden")
    assert Unnamed.authentication_classes == []


def test_agent_views_authenticate_by_key_only():
    assert AgentAPIView.authentication_classes == [AgentKeyAuthentication]


def test_a_signed_in_person_is_not_an_agent(viewer):
    response = viewer.get("/api/v1/tasks")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
