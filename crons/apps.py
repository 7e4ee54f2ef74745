from __future__ import annotations

from django.apps import AppConfig


class CronsConfig(AppConfig):
    name = "crons"
    verbose_name = "Scheduled jobs"

    def ready(self) -> None:
        from crons import loops, presenters  # noqa: F401 - registers presenters
        from missioncontrol import live, nav, roles

        live.register_topic(
            "crons", "cron.job_changed", "cron.job_removed", "cron.run_started", "cron.run_finished"
        )
        live.register_events("alerts", "cron.late", "cron.failed", "cron.recovered")
        roles.register_app("crons")
        nav.register(nav.NavItem("Crons", "crons:list", order=32, prefix="/crons/"))
        loops.register()
        from crons import context_processors
        from crons.models import Job

        context_processors._attention.forget_on_change(Job)
        from crons import overview as overview_part

        overview_part.register()
