from __future__ import annotations

from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("settings/notifications/", views.team, name="team"),
    path("settings/notifications/<id:pk>/", views.channel_detail, name="channel"),
    path("settings/notifications/<id:pk>/test/", views.channel_test, name="test"),
    path("settings/notifications/<id:pk>/delete/", views.channel_delete, name="delete"),
    path("account/notifications/", views.mine, name="mine"),
    path("account/notifications/push/", views.mine_push, name="mine-push"),
    path("account/notifications/<id:pk>/test/", views.mine_test, name="mine-test"),
    path("account/notifications/<id:pk>/toggle/", views.mine_toggle, name="mine-toggle"),
    path("account/notifications/<id:pk>/delete/", views.mine_delete, name="mine-delete"),
]
