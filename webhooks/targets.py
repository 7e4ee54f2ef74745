"""Where a webhook may go (shared by the endpoint form and the dispatcher): http(s) only, and
no internal address unless MC_WEBHOOK_ALLOW_PRIVATE. A delivery resolves the name once and
connects to that address (`pinned`), so DNS cannot point it elsewhere between check and use."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings


class Refused(Exception):
    """The URL may not be called (scheme, name, or an internal address)."""


def check_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> None:
    if settings.MC_WEBHOOK_ALLOW_PRIVATE or ip.is_global:
        return
    raise Refused(
        f"{host} resolves to {ip}, an internal address (loopback, link-local or private): "
        "refused. Set MC_WEBHOOK_ALLOW_PRIVATE=1 to allow internal targets."
    )


def _parts(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("Only http:// and https:// URLs with a host name are allowed.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("The URL's port is not a number from 1 to 65535.") from None
    return parts.scheme, parts.hostname, port


def check_url(url: str) -> None:
    """Refused unless the URL may be called now (for forms: resolves the name, synchronously)."""
    _scheme, host, port = _parts(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as failed:
        raise Refused(f"{host} cannot be resolved ({failed.strerror or failed}).") from None
    for info in infos:
        check_address(ipaddress.ip_address(info[4][0]), host)


async def pinned(url: str) -> tuple[str, str, str]:
    """(the URL with its host replaced by the one address it resolves to, the Host header, the
    TLS server name); Refused when that address is internal (unless allowed) or unresolvable."""
    scheme, host, port = _parts(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as failed:
        raise Refused(f"{host} cannot be resolved ({failed.strerror or failed}).") from None
    ip = ipaddress.ip_address(infos[0][4][0])
    check_address(ip, host)
    parts = urlsplit(url)
    netloc = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    host_header = host if default else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if default else f"[{host}]:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")), host_header, host
