from __future__ import annotations

from django.urls import path

from tasks import views

app_name = "tasks"

urlpatterns = [
    path("board/", views.board, name="board"),
    path("board/column/<str:status>/", views.board_column, name="column"),
    path("tasks/", views.task_list, name="list"),
    path("tasks/new/", views.task_new, name="new"),
    path("tasks/<id:pk>/", views.task_detail, name="detail"),
    path("tasks/<id:pk>/edit/", views.task_edit, name="edit"),
    path("tasks/<id:pk>/block/", views.task_block, name="block"),
    path("tasks/<id:pk>/blocked-by/", views.task_blocked_by, name="blocked-by"),
    path("tasks/<id:pk>/comments/", views.task_comment, name="comment"),
    path("tasks/<id:pk>/archive/", views.task_archive, name="archive"),
    path("tasks/<id:pk>/delete/", views.task_delete, name="delete"),
]
