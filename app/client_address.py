"""Who the client is: the peer address, or, behind a trusted proxy, the address that proxy reports."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from starlette.types import Scope

Network = IPv4Network | IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """IPs or CIDRs (`10.0.0.0/8`, `::1`); a bare IP is a /32 (/128)."""
    return tuple(ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(text: str, proxies: tuple[Network, ...]) -> bool:
    addr = _address(text)
    return addr is not None and any(addr in net for net in proxies)


def client_id(scope: Scope, proxies: tuple[Network, ...]) -> str:
    """The peer address; when the peer is a trusted proxy, the rightmost `X-Forwarded-For` entry that is not
    itself a trusted proxy (entries left of it were written by the client and prove nothing). The header
    of an untrusted peer is never read: anyone can send one."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [
        hop.strip()
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
        for hop in bytes(value).decode("latin-1").split(",")
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            addr = _address(hop)
            # A hop that is no address is what the proxy was sent, unchecked: count it as the proxy's own.
            return str(addr) if addr is not None else peer
    return peer
