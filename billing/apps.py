from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import budgets, loops, prices
        from billing.models import Budget, PriceOverride
        from missioncontrol import live, nav, roles

        live.register_topic("costs", "usage.recorded", "budget.saved", "budget.deleted")
        live.register_topic(
            "alerts",
            "budget.threshold_crossed",
            "budget.pause_lifted",
            "budget.alert_acknowledged",
        )
        roles.register_app("billing")
        nav.register(nav.NavItem("Costs", "billing:costs", order=28, prefix="/costs/"))
        loops.register()
        # An agent a spent budget pauses is given no new work (tasks asks, without importing
        # billing).
        from tasks import actions as task_actions

        task_actions.register_work_guard("budget pause", budgets.refuse_if_paused)

        # Changed prices and budgets apply in this process at once (others within their TTL).
        prices._overrides.forget_on_change(PriceOverride)
        budgets._rules.forget_on_change(Budget)
        from agents import events as agent_events
        from billing import facts
        from billing import overview as overview_part

        agent_events.register_row_facts(facts.agent_row_facts)

        overview_part.register()
