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


IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes whose last 32 bits are an IPv4 address the network may translate to and reach:
# NAT64 (64:ff9b::/96, and the local-use 64:ff9b:1::/48), IPv4-compatible (::/96, deprecated),
# SIIT's IPv4-translated (::ffff:0:0/96). IPv4-mapped, 6to4 and Teredo have their own
# properties in `ipaddress`.
_EMBEDDING = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0/96")
)


def _reachable(ip: IP) -> list[IP]:
    """The addresses a connection to `ip` may reach: an IPv6 address that only carries an IPv4
    one (mapped, NAT64, compatible, translated) stands for that IPv4 address alone; 6to4 and
    Teredo addresses for themselves and the IPv4 addresses they embed."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if any(ip in net for net in _EMBEDDING):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    found: list[IP] = [ip]
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _public_unicast(ip: IP) -> bool:
    return (
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
        # The 6to4 relay anycast (RFC 7526: deprecated, reaches whatever relay is nearest).
        and ip not in ipaddress.IPv4Network("192.88.99.0/24")
    )


def check_address(ip: IP, host: str) -> None:
    """Refused unless `ip`, and every IPv4 address it embeds, is public unicast (or internal
    targets are allowed)."""
    if settings.MC_WEBHOOK_ALLOW_PRIVATE or all(_public_unicast(a) for a in _reachable(ip)):
        return
    raise Refused(
        f"{host} resolves to {ip}, an internal address (loopback, link-local, private, "
        "multicast, or one that translates to such an IPv4 address): "
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
