from __future__ import annotations

import ipaddress

from missioncontrol.proxy import apply_forwarded


def scope(client: str, **headers: str) -> dict:
    return {
        "type": "http",
        "scheme": "http",
        "client": (client, 5000),
        "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_forwarded_headers_ignored_without_trusted_proxies(settings):
    settings.MC_TRUSTED_PROXIES = []
    result = apply_forwarded(
        scope("203.0.113.9", X_Forwarded_For="1.2.3.4", X_Forwarded_Proto="https")
    )
    assert result["client"] == ("203.0.113.9", 5000)
    assert result["scheme"] == "http"


def test_forwarded_headers_ignored_from_an_untrusted_peer(settings):
    settings.MC_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    result = apply_forwarded(scope("203.0.113.9", X_Forwarded_For="1.2.3.4"))
    assert result["client"][0] == "203.0.113.9"


def test_trusted_proxy_sets_client_and_scheme(settings):
    settings.MC_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    # A client-forged first hop is skipped: the right-most untrusted address is the client.
    result = apply_forwarded(
        scope(
            "10.0.0.2", X_Forwarded_For="6.6.6.6, 198.51.100.7, 10.0.0.3", X_Forwarded_Proto="https"
        )
    )
    assert result["client"][0] == "198.51.100.7"
    assert result["scheme"] == "https"
