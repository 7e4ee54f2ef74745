from __future__ import annotations

from django.urls import path

from agents import views

app_name = "agents"

urlpatterns = [
    path("agents/", views.agent_list, name="list"),
    path("agents/<name:name>/", views.agent_detail, name="detail"),
    path("agents/<name:name>/message/", views.agent_message, name="message"),
    path("agents/<name:name>/runs/", views.agent_runs, name="runs"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/<id:pk>/", views.session_detail, name="session"),
    path("sessions/<id:pk>/facts/", views.session_facts, name="session-facts"),
    path("sessions/<id:pk>/send/", views.session_send, name="session-send"),
    path("sessions/<id:pk>/abort/", views.session_abort, name="session-abort"),
    path("sessions/<id:pk>/reset/", views.session_reset, name="session-reset"),
    path("settings/keys/", views.key_list, name="keys"),
    path("settings/keys/<id:pk>/revoke/", views.key_revoke, name="revoke"),
]
