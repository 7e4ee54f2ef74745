from __future__ import annotations

from django.urls import path

from agents import views

app_name = "agents"

urlpatterns = [
    path("agents/", views.agent_list, name="list"),
    path("agents/<str:name>/", views.agent_detail, name="detail"),
    path("settings/keys/", views.key_list, name="keys"),
    path("settings/keys/<id:pk>/revoke/", views.key_revoke, name="revoke"),
]
