"""ASGI entry point: HTTP to Django, WebSocket to Channels consumers, forwarded headers first."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "missioncontrol.settings")
# Django must be set up before anything imports models (the consumers below do).
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

import agents.ingest  # noqa: E402, F401 - registers the agent hot routes
import tasks.lean  # noqa: E402, F401 - registers the board's move route
from missioncontrol.consumers import LiveConsumer  # noqa: E402
from missioncontrol.lean import LeanRouter  # noqa: E402
from missioncontrol.proxy import TrustedProxyMiddleware  # noqa: E402

websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),
]

application = TrustedProxyMiddleware(
    ProtocolTypeRouter(
        {
            # The hot routes (heartbeats, usage, board moves) are answered before Django's middleware.
            "http": LeanRouter(django_application),
            # Origin must be one of ALLOWED_HOSTS: another site cannot open a socket with our cookie.
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
