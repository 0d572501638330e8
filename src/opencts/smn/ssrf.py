"""The SSRF guard: an http(s) subscription may only point at public addresses.

A subscriber's URL is attacker-chosen, and OpenCTS POSTs to it from inside the operator's network, so
without this guard anyone allowed to subscribe could make OpenCTS probe or poke internal services
(169.254.169.254, the database, an admin port on localhost). The host is resolved and *every* address it
resolves to must be globally routable. The check runs when the subscription is made and again before each
send, which narrows (but cannot fully close) a DNS-rebinding window; redirects are never followed.
``OPENCTS_ALLOW_PRIVATE_ENDPOINTS=1`` lifts it for local testing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class EndpointRefused(ValueError):
    """The endpoint resolves to an address OpenCTS will not send to, or does not resolve."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_url(url: str, *, allow_private: bool, timeout: float = 5.0) -> None:
    """Raise :class:`EndpointRefused` unless every address of ``url``'s host is public (or allowed)."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise EndpointRefused(f"{url!r} has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, TimeoutError, ValueError):  # ValueError: an IDN the resolver cannot encode
        raise EndpointRefused(f"cannot resolve the host {host!r}") from None
    addresses = {str(info[4][0]) for info in infos}
    private = sorted(a for a in addresses if not is_public(a))
    if not addresses or private:
        raise EndpointRefused(
            f"{host!r} resolves to a loopback, link-local, private or reserved address "
            f"({', '.join(private)}); "
            "OpenCTS only sends to public addresses (the operator can set OPENCTS_ALLOW_PRIVATE_ENDPOINTS=1)"
        )
