from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from missioncontrol import live, nav, roles
        from webhooks import dispatcher, outbox
        from webhooks.models import Endpoint

        roles.register_app("webhooks")
        nav.register(
            nav.NavItem(
                "Webhooks", "webhooks:list", role="admin", order=60, prefix="/webhooks/", menu=True
            )
        )
        live.register_sink(outbox.enqueue)
        live.register_events(
            "alerts",
            "webhook.endpoint_saved",
            "webhook.endpoint_deleted",
            "webhook.endpoint_disabled",
            "webhook.deliveries_changed",
        )
        outbox._endpoints.forget_on_change(Endpoint)
        from django.conf import settings

        if settings.MC_WEBHOOK_DISPATCHER:
            dispatcher.register()
        from webhooks import overview as overview_part

        overview_part.register()
