from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.db import connection
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from missioncontrol import (
    actions,
    audit,
    deployment,
    overview,
    presenters,
    streaming,
    subscriptions,
)
from missioncontrol.consumers import parse_live_query
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import json_error
from missioncontrol.http import parse_int, safe_next
from missioncontrol.models import AuditEvent, DeploymentFinding
from missioncontrol.ratelimit import TokenBucket
from missioncontrol.roles import RANK, role_of, role_required

logger = logging.getLogger(__name__)

# SSE keep-alive comment interval: under the idle timeouts of common proxies (60 s).
SSE_KEEPALIVE_S = 15.0


ATTENTION_SHOWN = 30
ACTIVITY_PAGE = 30
# The activity feed's kinds: key → (label, verb prefix).
ACTIVITY_KINDS = {
    "task": ("Tasks", "task."),
    "agent": ("Agents", "agent."),
    "gateway": ("Gateways", "gateway."),
    "cron": ("Crons", "cron."),
    "webhook": ("Webhooks", "webhook."),
    "budget": ("Budgets", "budget."),
    "signed": ("Sign-ins", "signed_"),
}
SNOOZES = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(hours=24)}


@require_safe
@role_required("viewer")
def home(request: HttpRequest) -> HttpResponse:
    """The overview: what needs the operator now, then the fleet at a glance."""
    live_seq_for(request)
    viewer = overview.viewer_for(request)
    items = overview.attention(viewer)
    total = sum(item.grouped or 1 for item in items)
    panels = [
        render_to_string(panel.template, panel.context(viewer), request=request)
        for panel in overview.panels()
        if RANK[viewer.role] >= RANK[panel.min_role]
    ]
    feed = AuditEvent.objects.select_related(None).order_by("-id")
    if viewer.visible is not None:
        feed = feed.filter(Q(gateway_id__isnull=True) | Q(gateway_id__in=viewer.visible))
    # The gateway switch, as on the rest of the overview (Viewer.sees): one gateway's lines, or
    # only what is no gateway's ("direct").
    if viewer.chosen == 0:
        feed = feed.filter(gateway_id__isnull=True)
    elif viewer.chosen is not None:
        feed = feed.filter(gateway_id=viewer.chosen)
    kind = request.GET.get("activity", "")
    if kind in ACTIVITY_KINDS:
        feed = feed.filter(verb__startswith=ACTIVITY_KINDS[kind][1])
    else:
        kind = ""
    before = parse_int(request.GET.get("before"))
    if before is not None:
        feed = feed.filter(id__lt=before)
    activity = list(feed[: ACTIVITY_PAGE + 1])
    for line in activity:
        line.gateway_badge = presenters.gateway_badge(line.gateway_id)  # type: ignore[attr-defined]
    older = activity[ACTIVITY_PAGE - 1].pk if len(activity) > ACTIVITY_PAGE else None
    topics = overview.topics()
    return render(
        request,
        "missioncontrol/home.html",
        {
            "attention": items[:ATTENTION_SHOWN],
            "attention_more": max(0, len(items) - ATTENTION_SHOWN),
            "attention_count": total,
            "panels": panels,
            "activity": activity[:ACTIVITY_PAGE],
            "activity_kind": kind,
            "activity_kinds": [(key, label) for key, (label, _prefix) in ACTIVITY_KINDS.items()],
            "activity_older": older,
            # A filtered feed reloads on each event (the live push cannot tell what belongs).
            "activity_paged": bool(kind) or before is not None or viewer.chosen is not None,
            "live_topics": ",".join(topics),
            "refetch_topics": " ".join(topics),
            "can_ack": RANK[viewer.role] >= RANK["operator"],
        },
    )


@require_safe
@role_required("viewer")
def palette_search(request: HttpRequest) -> JsonResponse:
    """The command palette: tasks, agents, sessions and jobs whose name holds `q` (what this
    user may see), as JSON for static/js/palette.js."""
    text = request.GET.get("q", "").strip()[:100]
    if not text:
        return JsonResponse({"results": []})
    found = overview.search(overview.viewer_for(request), text)
    return JsonResponse(
        {
            "results": [
                {"kind": f.kind, "title": f.title, "url": f.url, "hint": f.hint} for f in found
            ]
        }
    )


@require_POST
@role_required("operator")
def acknowledge(request: HttpRequest) -> HttpResponse:
    """Take one "Needs attention" item off this operator's overview: for a while (snooze) or
    until it changes (a new occurrence has a new key). Audited."""
    key = request.POST.get("key", "").strip()[:200]
    snooze = request.POST.get("for", "")
    if not key or (snooze and snooze not in SNOOZES):
        return json_error(400, "Give the item's key and 1h, 4h, 24h or nothing.")
    until = timezone.now() + SNOOZES[snooze] if snooze else None
    actions.acknowledge(
        audit.Actor.user(request.user),
        int(request.user.pk or 0),
        key,
        until=until,
        title=request.POST.get("title", ""),
    )
    return redirect(safe_next(request, reverse("home")))


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@csrf_exempt  # it changes nothing: a POST to a path that does not exist is a 404, not a 403
def api_not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Every unknown path under /api/ (any method) answers JSON, never the HTML page; a path
    that only lacks its trailing slash is redirected as Django would."""
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return json_error(404, f"No API endpoint at {request.path}.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: JSON under /api/, the styled page elsewhere."""
    if _is_api(request):
        return json_error(404, "Not found.")
    return defaults.page_not_found(request, exception or Http404())


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: JSON under /api/, the styled page elsewhere."""
    if _is_api(request):
        return json_error(403, str(exception or "") or "Not allowed.")
    return defaults.permission_denied(request, exception or PermissionDenied())


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/ (the error is logged; nothing about it is shown)."""
    if _is_api(request):
        return json_error(500, "Something went wrong on our side; it was logged.")
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /api/ (API clients use keys, not cookies); elsewhere our own
    page (Django's is styled inline, which our CSP blocks). A refused origin is a deployment
    finding naming MC_CSRF_TRUSTED_ORIGINS; the page itself names no configuration."""
    if _is_api(request):
        return json_error(403, "CSRF check failed (send an agent key, not cookies).")
    origin = str(request.META.get("HTTP_ORIGIN", ""))[:200]
    if origin and "origin" in reason.lower():
        deployment.note(
            "csrf_origin",
            f"forms from {origin} are refused (the origin is not trusted)",
            f"If {origin} is how people reach Mission Control, add it to MC_CSRF_TRUSTED_ORIGINS "
            "(scheme, host and port exactly, no trailing slash).",
        )
    return render(request, "errors/csrf.html", status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: JSON under /api/; elsewhere a plain page. A host not allowed is a deployment
    finding naming MC_ALLOWED_HOSTS (Django's own log line for it is silenced)."""
    if isinstance(exception, DisallowedHost):
        host = str(request.META.get("HTTP_HOST", ""))[:100]
        deployment.note(
            "host",
            f"requests for the host {host} are refused",
            f"If {host} is a name people use for Mission Control, add it to MC_ALLOWED_HOSTS.",
        )
    if request.path.startswith("/api/"):
        return json_error(400, "Bad request.")
    # Standalone: the shell would ask for the host again.
    return render(request, "errors/400.html", status=400)


@require_safe
@role_required("admin")
def deployment_page(request: HttpRequest) -> HttpResponse:
    """Admins: the deployment mistakes seen in real traffic, each with its fix; and what the
    configuration says now."""
    from django.conf import settings

    return render(
        request,
        "missioncontrol/deployment.html",
        {
            "findings": DeploymentFinding.objects.all()[:100],
            "config": [
                ("MC_TLS", "on" if settings.MC_TLS else "off"),
                ("MC_ALLOWED_HOSTS", ", ".join(settings.ALLOWED_HOSTS)),
                ("MC_CSRF_TRUSTED_ORIGINS", ", ".join(settings.CSRF_TRUSTED_ORIGINS) or "—"),
                (
                    "MC_TRUSTED_PROXIES",
                    ", ".join(str(n) for n in settings.MC_TRUSTED_PROXIES) or "—",
                ),
            ],
            "request_secure": request.is_secure(),
        },
    )


@require_POST
@role_required("admin")
def deployment_clear(request: HttpRequest) -> HttpResponse:
    """Forget the findings (after fixing the configuration): what recurs comes back."""
    actions.clear_deployment_findings(audit.Actor.user(request.user))
    deployment.reset()
    return redirect("deployment")


CSP_REPORT_MAX = 8192
# Per client address: a page in a loop of violations must not flood the log.
_csp_reports = TokenBucket("csp-report", rate=0.5, burst=20)


@csrf_exempt  # browsers send reports without a token; the view changes nothing stored
def csp_report(request: HttpRequest) -> HttpResponse:
    """POST /csp-report/: a browser's report of something the Content-Security-Policy blocked,
    logged as one line (rate limited per client; bodies over 8 KB refused)."""
    if request.method != "POST":
        response = json_error(405, "Reports are POSTed by browsers.")
        response["Allow"] = "POST"
        return response
    length = request.META.get("CONTENT_LENGTH") or ""
    if (length.isdigit() and int(length) > CSP_REPORT_MAX) or len(request.body) > CSP_REPORT_MAX:
        return json_error(413, f"Reports are limited to {CSP_REPORT_MAX} bytes.")
    if _csp_reports.take(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse(status=204)  # counted, not logged again
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "A report is JSON.")
    reports = body if isinstance(body, list) else [body]
    for item in reports[:5]:
        report = item.get("csp-report") or item.get("body") if isinstance(item, dict) else None
        if not isinstance(report, dict):
            continue

        def field(*names: str, report: dict[str, Any] = report) -> str:
            for name in names:
                if report.get(name):
                    return str(report[name])[:200]
            return "-"

        logger.warning(
            "CSP blocked %s (%s) on %s",
            field("blocked-uri", "blockedURL"),
            field("violated-directive", "effectiveDirective", "effective-directive"),
            field("document-uri", "documentURL"),
        )
    return HttpResponse(status=204)


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on their own: the logo."""
    return HttpResponsePermanentRedirect(static("img/logo.svg"))


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database check for monitors; unauthenticated and secret-free."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("healthz: database check failed")
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


# Per account, from every address together: django-axes locks a (username, address) pair; one
# account guessed at from many addresses was judged every time (issue #30 §5). Failed sign-ins
# take from the account's bucket (in the process, or Redis in the scale-out profile); once it is
# empty the account's attempts are refused unjudged until the next one is due — one per 30 s
# after a burst of 10 — and the page says how long to wait: slowed, never locked out.
_per_account = TokenBucket("signin-account", rate=1 / 30, burst=10)
# When each throttled account may try again (this process; bounded like the buckets).
_account_due: dict[str, float] = {}


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = (request.POST.get("username") or "").strip().lower()[:150]
        wait = _account_due.get(username, 0.0) - time.monotonic()
        if wait > 0:
            # The password is not judged (an unbound form: validating would authenticate).
            form = self.form_class(request=request, initial={"username": username})
            refused = (
                f"Too many sign-in attempts for this account. Try again in {max(1, round(wait))} s."
            )
            context = self.get_context_data(form=form, refused=refused)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(max(1, round(wait)))
            return response
        response = super().post(request, *args, **kwargs)
        if username and response.status_code != 302:  # not signed in (nor on to the code step)
            wait = _per_account.take(username)
            if wait:
                if len(_account_due) > 10_000:
                    _account_due.clear()
                _account_due[username] = time.monotonic() + wait
        return response

    def form_valid(self, form: Any) -> HttpResponse:
        from missioncontrol import two_factor

        # The password was right; a person with two-factor sign-in on gives a code first.
        asked = two_factor.redirect_after_password(
            self.request, form.get_user(), self.get_redirect_url()
        )
        return asked if asked is not None else super().form_valid(form)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if settings.MC_OIDC_ISSUER and settings.MC_OIDC_CLIENT_ID:  # sso.enabled()
            context["sso_label"] = settings.MC_OIDC_LABEL
        return context


# Single sign-on's views, imported on first use: the OpenID Connect client (requests, PyJWT,
# mozilla-django-oidc) is ~8 MB a server without SSO never needs (idle memory, bench/startup.py).
def sso_start(request: HttpRequest) -> HttpResponse:
    from missioncontrol import sso

    return sso.Start.as_view()(request)


def sso_callback(request: HttpRequest) -> HttpResponse:
    from missioncontrol import sso

    return sso.Callback.as_view()(request)


async def event_stream(request: HttpRequest) -> HttpResponseBase:
    """SSE fallback of /ws/live/: same topics, same replay rules, `Last-Event-ID` resume."""
    if request.method != "GET":
        refused = json_error(405, "Use GET.")
        refused["Allow"] = "GET"
        return refused
    user = await request.auser()
    role = await database_sync_to_async(role_of)(user)
    if role is None:
        if not user.is_authenticated:
            return json_error(401, "Sign in first.")
        return json_error(403, "This needs a role in Mission Control: ask an admin for one.")
    query = request.META.get("QUERY_STRING", "")
    topics, since = parse_live_query(query)
    if "fallback=ws" in query.split("&"):
        # The page tried the WebSocket three times and it never opened: the usual cause is a
        # proxy that does not pass the upgrade on. Live updates still work (this stream).
        await database_sync_to_async(deployment.note)(
            "websocket",
            f"WebSocket connections to {request.get_host()} never open; browsers fall back to "
            "Server-Sent Events",
            "The proxy in front of Mission Control does not forward the WebSocket upgrade. nginx: "
            "in the location for /, add `proxy_http_version 1.1; proxy_set_header Upgrade "
            '$http_upgrade; proxy_set_header Connection "upgrade";` (Caddy and tailscale serve '
            "forward it by themselves). See README → Running it for a team.",
        )
    resumed = parse_int(request.headers.get("Last-Event-ID"))
    if resumed is not None:
        since = resumed
    scope = await database_sync_to_async(subscriptions.gateway_scope)(user)
    sub = subscriptions.Subscription(topics, role, gateways=scope)
    return streaming.event_stream(
        "retry: 2000\n\n",
        subscriptions.sse(
            sub,
            since,
            still_allowed=subscriptions.session_still_allowed(request.session.session_key, user.pk),
            frame=_sse_frame,
            keepalive_s=SSE_KEEPALIVE_S,
        ),
        what="live event stream",
    )


def _sse_frame(text: str) -> str:
    # Every frame carries its seq as the event id: a reconnect resumes exactly there.
    seq = subscriptions.seq_of(text)
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}data: {text}\n\n"
