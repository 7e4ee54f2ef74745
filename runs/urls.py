from __future__ import annotations

from django.urls import path

from runs import views

app_name = "runs"

urlpatterns = [
    path("tasks/<id:pk>/dispatch/", views.dispatch, name="dispatch"),
    path("runs/<id:pk>/", views.detail, name="detail"),
    path("runs/<id:pk>/abort/", views.abort, name="abort"),
    path("runs/<id:pk>/retry/", views.retry, name="retry"),
]
