from __future__ import annotations

from django.apps import AppConfig


class GatewaysConfig(AppConfig):
    name = "gateways"
    verbose_name = "Gateways"

    def ready(self) -> None:
        from gateways import access, commands, connector, presenters
        from missioncontrol import live, nav, roles, subscriptions

        live.register_topic(
            "gateways",
            "gateway.added",
            "gateway.updated",
            "gateway.deleted",
            "gateway.state_changed",
            "gateway.grant_changed",
            "exec_approval.requested",
            "exec_approval.resolved",
        )
        presenters.register()
        subscriptions.register_gateway_scope(access.visible_ids)
        roles.register_app("gateways")
        nav.register(nav.NavItem("Gateways", "gateways:list", order=30, prefix="/gateways/"))
        from django.conf import settings

        if settings.MC_GATEWAY_CONNECTORS:
            connector.register()
            commands.register()
        from gateways import overview as overview_part

        overview_part.register()
