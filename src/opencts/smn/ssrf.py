"""The SSRF guard: an http(s) subscription may only point at public addresses.

A subscriber's URL is attacker-chosen, and OpenCTS POSTs to it from inside the operator's network, so
without this guard anyone allowed to subscribe could make OpenCTS probe or poke internal services
(169.254.169.254, the database, an admin port on localhost). The host is resolved and *every* address it
resolves to must be globally routable. The check runs when the subscription is made and again before each
send, which narrows (but cannot fully close) a DNS-rebinding window; redirects are never followed.
``OPENCTS_ALLOW_PRIVATE_ENDPOINTS=1`` lifts it for local testing.

"Public" means all of:

* ``ipaddress`` calls it global and it is not multicast;
* it is in none of :data:`NOT_GLOBAL`, the IANA special-purpose ranges that the ``ipaddress`` of some
  Python versions still calls global (site-local, IPv4-compatible, local-use NAT64, documentation, SRv6);
* an IPv4 address embedded in it (IPv4-mapped, IPv4-translated, NAT64 ``64:ff9b::/96``, 6to4, Teredo)
  is itself public, since a host or gateway that unwraps it reaches that IPv4 address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: ranges refused whatever ``is_global`` says (IANA IPv4/IPv6 special-purpose address registries)
NOT_GLOBAL: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT, shared address space
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, and the limited broadcast address
        "::/96",  # IPv4-compatible IPv6 (deprecated, RFC 4291); includes :: and ::1
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, RFC 3879)
        "ff00::/8",  # multicast
    )
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


class EndpointRefused(ValueError):
    """The endpoint resolves to an address OpenCTS will not send to, or does not resolve."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address a translator, tunnel or dual-stack socket could unwrap from ``ip``."""
    found: list[ipaddress.IPv4Address] = []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64 or ip in _TRANSLATED:
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client): the client is the tunnel's far end
    return found


def _plainly_public(ip: IPAddress) -> bool:
    return ip.is_global and not ip.is_multicast and not any(ip in net for net in NOT_GLOBAL)


def is_public(address: str) -> bool:
    """Whether OpenCTS may send to ``address`` (an IP literal, with or without an IPv6 ``%zone``)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not _plainly_public(ip):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        return all(_plainly_public(v4) for v4 in embedded_ipv4(ip))
    return True


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
