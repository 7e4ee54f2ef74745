from __future__ import annotations

import asyncio
import ipaddress

import pytest

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


async def _call(path: str, method: str = "GET", scheme_header: str = "https") -> list[dict]:
    from missioncontrol.asgi import application

    sent: list[dict] = []
    request = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("10.0.0.2", 5000),
        "server": ("127.0.0.1", 3200),
        "headers": [
            (b"host", b"localhost"),
            (b"x-forwarded-proto", scheme_header.encode()),
            (b"content-type", b"application/json"),
        ],
    }
    bodies = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict:
        if bodies:
            return bodies.pop(0)
        await asyncio.Event().wait()  # the client stays (a disconnect would cancel the answer)
        raise AssertionError

    async def send(message: dict) -> None:
        sent.append(message)

    await application(request, receive, send)
    return sent


def _hsts(messages: list[dict]) -> list[bytes]:
    start = next(m for m in messages if m["type"] == "http.response.start")
    return [v for k, v in start["headers"] if k.lower() == b"strict-transport-security"]


@pytest.mark.django_db(transaction=True)
async def test_hsts_on_every_https_route_fast_ones_too(settings):
    """Under TLS (MC_TLS=1 → SECURE_HSTS_SECONDS) every HTTPS answer carries HSTS once: Django's
    pages, static files and the fast routes that answer before Django's middleware."""
    settings.MC_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    settings.SECURE_HSTS_SECONDS = 31536000
    for path, method in [
        ("/favicon.ico", "GET"),
        ("/api/v1/agents/someone/heartbeat", "POST"),  # fast route: 401 without a key
        ("/api/v1/usage", "POST"),
    ]:
        answer = await _call(path, method)
        assert _hsts(answer) == [b"max-age=31536000"], path
        # Not over plain HTTP (a browser ignores it there, and it would mislead).
        assert _hsts(await _call(path, method, scheme_header="http")) == [], path
    settings.SECURE_HSTS_SECONDS = 0
    assert _hsts(await _call("/api/v1/usage", "POST")) == []
