from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from django.conf import settings

        from missioncontrol import live, nav

        nav.register(
            nav.NavItem(
                "Notifications",
                "notifications:team",
                role="admin",
                order=62,
                prefix="/settings/notifications/",
                menu=True,
            )
        )
        nav.register(
            nav.NavItem(
                "Your notifications",
                "notifications:mine",
                role="viewer",
                order=92,
                prefix="/account/notifications/",
                menu=True,
            )
        )
        live.register_events(
            "alerts",
            "notification.channel_saved",
            "notification.channel_deleted",
            "notification.channel_disabled",
            "notification.messages_changed",
        )
        if settings.MC_NOTIFICATIONS:
            from notifications import loops, sender

            live.register_sink(loops.sink)
            loops.register()
            sender.register()
        from notifications import overview as overview_part

        overview_part.register()
