from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class MissionControlConfig(AppConfig):
    default = True
    name = "missioncontrol"
    verbose_name = "Mission Control"

    def ready(self) -> None:
        from missioncontrol import (  # noqa: F401 - connects receivers, registers checks
            checks,
            live,
            loops,
            presenters,
            roles,
            signals,
        )

        live.register_topic("activity", "audit.recorded")
        from missioncontrol import nav, overview

        overview.register_search("pages", nav.find_pages)

        # Groups get their permissions after every migrate (and after a test flush), so
        # permissions of models added later reach the roles without another data migration.
        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="mc-sync-roles")
        loops.register()


class MissionControlAdminConfig(admin_apps.AdminConfig):
    default = False  # AdminConfig says True; this module's default is MissionControlConfig
    default_site = "missioncontrol.admin_site.MissionControlAdminSite"
