from __future__ import annotations

from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("webhooks/", views.endpoint_list, name="list"),
    path("webhooks/deliveries/", views.delivery_list, name="deliveries"),
    path("webhooks/deliveries/<id:pk>/", views.delivery_detail, name="delivery"),
    path("webhooks/deliveries/<id:pk>/redeliver/", views.delivery_redeliver, name="redeliver"),
    path("webhooks/deliveries/<id:pk>/cancel/", views.delivery_cancel, name="cancel"),
    path("webhooks/<id:pk>/", views.endpoint_detail, name="detail"),
    path("webhooks/<id:pk>/secret/", views.endpoint_secret, name="secret"),
    path("webhooks/<id:pk>/rotate/", views.endpoint_rotate, name="rotate"),
    path("webhooks/<id:pk>/test/", views.endpoint_test, name="test"),
    path("webhooks/<id:pk>/redeliver/", views.endpoint_redeliver, name="redeliver-failed"),
    path("webhooks/<id:pk>/delete/", views.endpoint_delete, name="delete"),
]
