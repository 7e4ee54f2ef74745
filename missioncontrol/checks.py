"""`./mc manage check --deploy`, in Mission Control's own words: each warning names the MC_
variable to set and the value. Django's generic deployment warnings that our settings already
decide (HSTS, Secure cookies, the HTTPS redirect: all follow MC_TLS, and the proxy redirects)
are silenced in settings.py in favour of these.

The same mistakes seen in real traffic go to the admins' Deployment page (deployment.py); these
are the ones a configuration shows before the first request.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.checks import Info, Tags, Warning, register

LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}


@register(Tags.security, deploy=True)
def deployment(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    found: list[Any] = []
    https_origins = [o for o in settings.CSRF_TRUSTED_ORIGINS if o.startswith("https://")]
    public_hosts = [h for h in settings.ALLOWED_HOSTS if h not in LOOPBACK]
    if settings.DEBUG:
        found.append(
            Warning(
                "MC_DEBUG is on: an error page shows settings and code to whoever reaches it.",
                hint="Unset MC_DEBUG (or set MC_DEBUG=0) anywhere but on your own machine.",
                id="mc.W001",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        found.append(
            Warning(
                "MC_ALLOWED_HOSTS contains '*': any Host header is answered.",
                hint="List the names people use, e.g. MC_ALLOWED_HOSTS=mc.example.com.",
                id="mc.W002",
            )
        )
    if https_origins and not settings.MC_TLS:
        found.append(
            Warning(
                f"MC_CSRF_TRUSTED_ORIGINS names {https_origins[0]}, but MC_TLS is off: cookies "
                "go without Secure and no HSTS is sent.",
                hint="Set MC_TLS=1 when Mission Control is reached over https.",
                id="mc.W003",
            )
        )
    if public_hosts and not settings.CSRF_TRUSTED_ORIGINS:
        found.append(
            Warning(
                f"MC_ALLOWED_HOSTS names {public_hosts[0]} but MC_CSRF_TRUSTED_ORIGINS is empty: "
                "behind a TLS proxy every sign-in and form is refused as cross-site.",
                hint=f"Set MC_CSRF_TRUSTED_ORIGINS=https://{public_hosts[0]} (with :port if not "
                "443), exactly as the browser's address bar shows it.",
                id="mc.W004",
            )
        )
    if public_hosts and not settings.MC_TRUSTED_PROXIES:
        found.append(
            Info(
                "MC_TRUSTED_PROXIES is empty: behind a proxy every client would count as the "
                "proxy's address (one person's wrong passwords would lock a username out for "
                "everyone).",
                hint="Set MC_TRUSTED_PROXIES to the proxy's address (127.0.0.1 when it runs on "
                "this machine).",
                id="mc.I001",
            )
        )
    for network in settings.MC_TRUSTED_PROXIES:
        if network.prefixlen < (8 if network.version == 4 else 32):
            found.append(
                Warning(
                    f"MC_TRUSTED_PROXIES includes {network}: any client there can forge "
                    "X-Forwarded-For (and dodge the sign-in lockout).",
                    hint="Name the proxy's own address or a small network.",
                    id="mc.W005",
                )
            )
    host = settings.MC_HOST.strip("[]")
    try:
        exposed = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        exposed = host != "localhost"
    if exposed and not settings.MC_TLS:
        found.append(
            Warning(
                f"serve listens on {settings.MC_HOST} without TLS: passwords and session cookies "
                "cross the network in clear.",
                hint="Keep MC_HOST=127.0.0.1 and put a TLS proxy in front (README → Running it "
                "for a team), or run it on a tailnet with tailscale serve.",
                id="mc.W006",
            )
        )
    return found
