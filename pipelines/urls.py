from __future__ import annotations

from django.urls import path

from pipelines import views

app_name = "pipelines"

urlpatterns = [
    path("pipelines/", views.pipeline_list, name="list"),
    path("pipelines/new/", views.edit, name="new"),
    path("pipelines/new/form/", views.form_edit, name="new-form"),
    path("pipelines/approvals/", views.approvals_page, name="approvals"),
    path("pipelines/approvals/<id:pk>/answer/", views.answer, name="answer"),
    path("pipelines/approvals/exec/<id:pk>/answer/", views.exec_answer, name="exec-answer"),
    path("pipelines/approvals/agent/<id:pk>/answer/", views.ask_answer, name="ask-answer"),
    path("pipelines/runs/<id:pk>/", views.run_page, name="run"),
    path("pipelines/runs/<id:pk>/cancel/", views.cancel, name="cancel"),
    path("pipelines/runs/<id:pk>/rerun/", views.rerun, name="rerun"),
    path("pipelines/<id:pk>/", views.detail, name="detail"),
    path("pipelines/<id:pk>/edit/", views.edit, name="edit"),
    path("pipelines/<id:pk>/form/", views.form_edit, name="form"),
    path("pipelines/<id:pk>/export/", views.export, name="export"),
    path("pipelines/<id:pk>/start/", views.start, name="start"),
    path("pipelines/<id:pk>/archive/", views.archive, name="archive"),
    path("pipelines/<id:pk>/triggers/", views.rotate_triggers, name="triggers"),
    path("api/v1/pipelines/<id:pk>/webhook", views.webhook, name="webhook"),
]
