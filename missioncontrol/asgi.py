"""ASGI entry point: HTTP to Django, WebSocket to Channels consumers, forwarded headers first."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "missioncontrol.settings")
# Django must be set up before anything imports models (the consumers below do).
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from agents import ingest  # noqa: E402
from mcpserver.endpoint import WithMcp  # noqa: E402
from missioncontrol.consumers import LiveConsumer, SameOriginOnly  # noqa: E402
from missioncontrol.fastpath import Check, FastPathRouter, Route  # noqa: E402
from missioncontrol.guard import HTTPGuard  # noqa: E402
from missioncontrol.proxy import TrustedProxyMiddleware  # noqa: E402
from runs import fastpath as dispatching  # noqa: E402
from tasks import fastpath as board  # noqa: E402

# The fast path (missioncontrol/fastpath: its admission rule). Every route here has a
# benchmark, a batch action, and its checks listed and tested.
AGENT_CHECKS = (
    Check.HOST,
    Check.BODY_LIMIT,
    Check.AGENT_KEY,
    Check.RATE_LIMIT,
    Check.VALIDATION,
)
FAST_ROUTES = [
    Route(
        "POST",
        r"^/api/(?:v1/)?agents/(?P<name>[^/]+)/heartbeat/?$",
        ingest.heartbeat,
        checks=(*AGENT_CHECKS, Check.OWN_AGENT),
        bench="bench/heartbeat.py",
    ),
    Route(
        "POST", r"^/api/v1/usage/?$", ingest.usage, checks=AGENT_CHECKS, bench="bench/heartbeat.py"
    ),
    Route(
        "POST",
        board.PATTERN,
        board.move,
        checks=(
            Check.HOST,
            Check.BODY_LIMIT,
            Check.CSRF,
            Check.SESSION,
            Check.OPERATOR,
            Check.VALIDATION,
        ),
        bench="bench/board.py",
    ),
    Route(
        "POST",
        dispatching.PATTERN,
        dispatching.dispatch,
        checks=(
            Check.HOST,
            Check.BODY_LIMIT,
            Check.PERSON_TOKEN,
            Check.VALIDATION,
            Check.RATE_LIMIT,
            Check.OPERATOR,
            Check.GATEWAY_GRANT,
        ),
        bench="bench/runs.py",
    ),
]

websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),
]

application = TrustedProxyMiddleware(
    ProtocolTypeRouter(
        {
            # The fast routes are answered before Django's middleware; the rest is Django. The
            # guard turns anything either raises into a whole answer (missioncontrol/guard.py).
            # `/mcp/` is the MCP server's (mcpserver/endpoint.py: its own checks, then the SDK).
            "http": HTTPGuard(WithMcp(FastPathRouter(django_application, FAST_ROUTES))),
            # Origin must be this site's own (scheme, host and port): no other page, not even
            # one on another port of this host, can open a socket with our cookie.
            "websocket": SameOriginOnly(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
