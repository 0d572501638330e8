"""Alarm on logins and logouts from addresses outside a whitelist (a CTS trigger's function).

The best practice "Auditing and Analyzing Logins and Logouts with FunctionGraph", without its sample's
three bugs:

1. ``action not in ("login" or "logout")`` is ``action not in "login"``: logouts were never checked.
   Here both are, by exact name.
2. ``if ip.find(source_ip) < 0: return`` returns when the address is *not* listed, so only whitelisted
   addresses raised alarms. Here only an address outside the list does.
3. ``find`` matches substrings: ``10.0.0.1`` was "in" ``10.0.0.10``. Here entries are parsed as addresses
   or CIDR ranges (IPv4 and IPv6) and compared as such.

An address that cannot be parsed is outside the list (an alarm, not silence), and so is every address
when the list has no valid entry. A list entry that cannot be parsed is reported in the log and ignored.

Environment (the function's ``user_data``): ``SMN_Topic`` (topic name), ``RegionName``, ``IP`` (addresses
and CIDR ranges separated by commas), and ``SMN_ENDPOINT``, the SMN API's base URL (OpenCTS's address;
default ``https://smn.{RegionName}.otc.t-systems.com``). Standard library and ``requests`` only, so the
file runs on FunctionGraph unchanged.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any
from urllib.parse import quote

import requests

ACTIONS = ("login", "logout")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """An address, with an IPv6 zone dropped and an IPv4-mapped IPv6 address read as IPv4."""
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_whitelist(text: str) -> tuple[list[Network], list[str]]:
    """The networks of a comma-separated list (a bare address is a /32 or /128), and the invalid entries."""
    networks: list[Network] = []
    invalid: list[str] = []
    for entry in (e.strip() for e in text.replace(";", ",").split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            address = parse_address(entry)
            if address is None:
                invalid.append(entry)
            else:
                networks.append(ipaddress.ip_network(address))
    return networks, invalid


def is_listed(source_ip: str, networks: list[Network]) -> bool:
    address = parse_address(source_ip)
    return address is not None and any(address in network for network in networks)


def alarm_text(cts: dict[str, Any], whitelist: str) -> str | None:
    """The alarm for one trace, or None: a login or logout from an address outside ``whitelist``."""
    action = str(cts.get("trace_name") or "")
    if action not in ACTIONS:
        return None
    source_ip = str(cts.get("source_ip") or "")
    networks, _ = parse_whitelist(whitelist)
    if is_listed(source_ip, networks):
        return None
    return f"Illegal operation[IP:{source_ip or 'unknown'}, Action:{action}]"


def _setting(context: Any, name: str, default: str = "") -> str:
    value = context.getUserData(name)
    if value is None or value == "":
        value = os.environ.get(name, default)
    return str(value)


def publish_url(endpoint: str, region: str, project_id: str, topic: str) -> str:
    urn = f"urn:smn:{region}:{project_id}:{topic}"
    return f"{endpoint.rstrip('/')}/v2/{project_id}/notifications/topics/{quote(urn, safe='')}/publish"


def handler(event: dict[str, Any], context: Any) -> str:
    logger = context.getLogger()
    cts = event.get("cts")
    if not isinstance(cts, dict):
        return "not a CTS event"
    whitelist = _setting(context, "IP")
    _, invalid = parse_whitelist(whitelist)
    if invalid:
        logger.warn("IP holds entries that are neither addresses nor CIDR ranges: " + ", ".join(invalid))
    text = alarm_text(cts, whitelist)
    if text is None:
        return "reasonable " + str(cts.get("trace_name"))
    topic = _setting(context, "SMN_Topic")
    region = _setting(context, "RegionName")
    if not topic.strip() or not region.strip():
        logger.error('set the environment variables "SMN_Topic" and "RegionName"')
        raise RuntimeError("SMN_Topic and RegionName are required")
    endpoint = _setting(context, "SMN_ENDPOINT", f"https://smn.{region}.otc.t-systems.com")
    url = publish_url(endpoint, region, context.getProjectID(), topic)
    body = {"message": text, "subject": "CTSTrigger"}
    headers = {
        "X-Auth-Token": context.getToken(),
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    response = requests.post(url, headers=headers, data=json.dumps(body), timeout=10)
    if response.status_code >= 300:
        logger.error(f"SMN publish answered {response.status_code}: {response.text[:500]}")
        # raising makes the invocation fail, so it is retried and then kept as a dead letter
        raise RuntimeError(f"send alarm message failed: HTTP {response.status_code}")
    logger.info(text)
    return "send alarm success"
