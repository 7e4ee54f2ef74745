from __future__ import annotations

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("costs/", views.costs, name="costs"),
    path("costs/today/", views.spend_chip, name="spend-chip"),
    path("costs/records.csv", views.export, name="export"),
    path("costs/prices/", views.price_list, name="prices"),
    path("costs/prices/<id:pk>/delete/", views.price_delete, name="price-delete"),
    path("costs/budgets/", views.budget_list, name="budgets"),
    path("costs/budgets/<id:pk>/", views.budget_edit, name="budget-edit"),
    path("costs/budgets/<id:pk>/delete/", views.budget_delete, name="budget-delete"),
    path("costs/budgets/<id:pk>/lift/", views.budget_lift, name="budget-lift"),
    path("costs/alerts/<id:pk>/acknowledge/", views.alert_acknowledge, name="alert-ack"),
]
