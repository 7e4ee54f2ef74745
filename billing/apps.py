from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import budgets, loops, prices
        from billing.models import Budget, PriceOverride
        from missioncontrol import live, nav, roles

        live.register_topic("costs")
        live.register_topic("alerts")
        roles.register_app("billing")
        nav.register(nav.NavItem("Costs", "billing:costs", order=28, prefix="/costs/"))
        loops.register()

        # This process prices with a changed override at once, and again once it commits (an
        # override read inside the saving transaction is not kept); others within their TTL.
        def forget(**_kwargs: Any) -> None:
            prices.forget_overrides()
            transaction.on_commit(prices.forget_overrides)

        post_save.connect(forget, sender=PriceOverride, weak=False)
        post_delete.connect(forget, sender=PriceOverride, weak=False)

        def forget_budgets(**_kwargs: Any) -> None:
            budgets.forget()
            transaction.on_commit(budgets.forget)

        post_save.connect(forget_budgets, sender=Budget, weak=False)
        post_delete.connect(forget_budgets, sender=Budget, weak=False)
