from __future__ import annotations

from django.urls import path

from crons import views

app_name = "crons"

urlpatterns = [
    path("crons/", views.job_list, name="list"),
    path("crons/checks/new/", views.check_new, name="check-new"),
    path("crons/<id:pk>/", views.job_detail, name="detail"),
    path("crons/<id:pk>/run/", views.job_run, name="run"),
    path("crons/<id:pk>/enabled/", views.job_enabled, name="enabled"),
    path("crons/<id:pk>/settings/", views.job_settings, name="settings"),
    path("crons/<id:pk>/delete/", views.check_delete, name="delete"),
    path("crons/<id:pk>/rotate/", views.check_rotate, name="rotate"),
    path("api/v1/checkins/<uuid:token>", views.checkin, name="checkin"),
    path(
        "api/v1/checkins/<uuid:token>/start",
        views.checkin,
        {"signal": "start"},
        name="checkin-start",
    ),
    path(
        "api/v1/checkins/<uuid:token>/fail", views.checkin, {"signal": "fail"}, name="checkin-fail"
    ),
]
