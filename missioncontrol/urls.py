"""The composition root: every app's routes meet here."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from missioncontrol import (  # noqa: F401 - converters: <id:…>
    audit_views,
    converters,
    two_factor,
    views,
)

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
    path("settings/deployment/clear/", views.deployment_clear, name="deployment-clear"),
    path("audit/export.csv", audit_views.audit_export, name="audit-export"),
    path("admin/", admin.site.urls),
    path("", include("tasks.urls")),
    path("", include("agents.urls")),
    path("", include("gateways.urls")),
    path("", include("billing.urls")),
    path("", include("webhooks.urls")),
    path("", include("crons.urls")),
    path("api/v1/", include("agents.api_urls")),
    path("favicon.ico", views.favicon),
    # Last: anything else under /api/ is a JSON 404 (API clients parse the body).
    re_path(r"^api/(?P<rest>.*)$", views.api_not_found),
]

handler400 = views.bad_request
handler403 = views.forbidden
handler404 = views.not_found
handler500 = views.server_error
