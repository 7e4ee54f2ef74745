from __future__ import annotations

from django.urls import path

from gateways import views

app_name = "gateways"

urlpatterns = [
    path("gateways/", views.gateway_list, name="list"),
    path("gateways/view/", views.gateway_view, name="view"),
    path("gateways/new/", views.gateway_new, name="new"),
    path("gateways/<id:pk>/", views.gateway_detail, name="detail"),
    path("gateways/<id:pk>/edit/", views.gateway_edit, name="edit"),
    path("gateways/<id:pk>/delete/", views.gateway_delete, name="delete"),
    path("gateways/<id:pk>/test/", views.gateway_test, name="test"),
    path("gateways/<id:pk>/access/", views.gateway_access, name="access"),
]
