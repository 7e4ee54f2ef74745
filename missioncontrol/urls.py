"""The composition root: every app's routes meet here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLResolver, include, path, re_path
from django.urls.resolvers import RoutePattern

from missioncontrol import (  # noqa: F401 - converters: <id:…>
    audit_views,
    converters,
    people_views,
    two_factor,
    views,
)
from notifications import views as notification_views


class LazyURLconf(URLResolver):
    """A namespaced URLconf imported on the first request it matches (or the first reverse of
    one of its names), not with the rest of the URLs: the API (`agents.api_urls`) brings
    django-ninja and pydantic, which a server whose agents only send heartbeats never needs."""

    def __init__(self, route: str, urlconf: str, namespace: str) -> None:
        super().__init__(RoutePattern(route), urlconf, app_name=namespace, namespace=namespace)

    def _populate(self) -> None:
        # Called by the root's own populate (every page's {% url %}): not yet.
        if "urlconf_module" in self.__dict__:
            super()._populate()

    def check(self) -> list[Any]:
        # The system checks at start would import it: its own patterns are checked once it is
        # (tests/missioncontrol/test_api_stack.py runs them).
        if "urlconf_module" in self.__dict__:
            return super().check()
        return []

    def _imported(self) -> None:
        self.url_patterns  # noqa: B018 - imports the module

    @property
    def reverse_dict(self) -> Any:
        self._imported()
        return super().reverse_dict

    @property
    def namespace_dict(self) -> Any:
        self._imported()
        return super().namespace_dict

    @property
    def app_dict(self) -> Any:
        self._imported()
        return super().app_dict


urlpatterns = [
    path("", views.home, name="home"),
    path("overview/acknowledge/", views.acknowledge, name="acknowledge"),
    path("search/", views.palette_search, name="palette-search"),
    path("healthz", views.healthz, name="healthz"),
    path("csp-report/", views.csp_report, name="csp-report"),
    path("events/stream", views.event_stream, name="event-stream"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/code/", two_factor.login_code, name="login-code"),
    path("account/two-factor/", two_factor.settings_page, name="two-factor"),
    path("account/two-factor/qr.svg", two_factor.qr_code, name="two-factor-qr"),
    path("sso/login/", views.sso_start, name="sso-login"),
    path("sso/callback/", views.sso_callback, name="sso-callback"),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(template_name="registration/password_change.html"),
        name="password_change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="registration/password_change_done.html"
        ),
        name="password_change_done",
    ),
    path("audit/", audit_views.audit_log, name="audit"),
    path("settings/deployment/", views.deployment_page, name="deployment"),
    path("settings/people/", people_views.people_page, name="people"),
    path("account/tokens/", people_views.my_tokens, name="my-tokens"),
    path("account/tokens/<id:pk>/revoke/", people_views.my_token_revoke, name="my-token-revoke"),
    path("settings/people/<id:pk>/role/", people_views.person_role, name="person-role"),
    path("settings/people/<id:pk>/active/", people_views.person_active, name="person-active"),
    path("settings/people/<id:pk>/password/", people_views.person_password, name="person-password"),
    path("settings/people/<id:pk>/gateways/", people_views.person_grants, name="person-grants"),
    path("settings/deployment/clear/", views.deployment_clear, name="deployment-clear"),
    path("audit/export.csv", audit_views.audit_export, name="audit-export"),
    path("admin/", admin.site.urls),
    path("", include("tasks.urls")),
    path("", include("agents.urls")),
    path("", include("gateways.urls")),
    path("", include("billing.urls")),
    path("", include("webhooks.urls")),
    path("", include("crons.urls")),
    path("", include("runs.urls")),
    path("", include("pipelines.urls")),
    path("", include("notifications.urls")),
    LazyURLconf("api/v1/", "agents.api_urls", namespace="api"),
    path("favicon.ico", views.favicon),
    path("sw.js", notification_views.service_worker, name="service-worker"),
    # Last: anything else under /api/ is a JSON 404 (API clients parse the body).
    re_path(r"^api/(?P<rest>.*)$", views.api_not_found),
]

handler400 = views.bad_request
handler403 = views.forbidden
handler404 = views.not_found
handler500 = views.server_error
