"""Which URLs verify-by-URL may fetch: http(s) without credentials, to a public address or to a host the
operator allow-listed. Pure checks on text and addresses; app/url_fetch.py resolves, connects and reads.

Messages name only what the person typed (scheme, host): never a path or query string (they may carry
tokens and end up in logs), never an address a name resolved to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from urllib.parse import quote, urlsplit

from signing import UrlRefusedError

IPAddress = IPv4Address | IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
# A last label of digits or 0x-hex makes a host an IPv4 address to URL parsers and to the C resolver
# (http://2130706433/, http://0177.0.0.1/): only the plain dotted-quad spelling is accepted.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
# Characters a request line may carry as they are; anything else in a path is percent-encoded.
_PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"

# IPv6 forms that carry an IPv4 address and would reach it through a translator or the host's own stack.
_EMBEDDING_V4 = (
    IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    IPv6Network("::/96"),  # IPv4-compatible (deprecated)
    IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    IPv6Network("2001::/32"),  # Teredo
    IPv6Network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
)
_NAT64 = IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: judged by the IPv4 address it embeds
_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT


@dataclass(frozen=True)
class Target:
    """One checked http(s) URL, split for the request. `request_path` is never logged or echoed."""

    scheme: str
    host: str  # lower-case, no trailing dot, IPv6 without brackets
    port: int
    request_path: str
    literal: IPAddress | None  # the host, when it is an IP address

    @property
    def origin(self) -> str:
        """scheme://host[:port], for messages and logs: what a person typed, without path or query."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def refused(message: str, reason: str, **details: object) -> UrlRefusedError:
    return UrlRefusedError(message, details={"reason": reason, **details})


def parse_target(url: str) -> Target:
    """Split and check a URL; raises UrlRefusedError (422) naming what is wrong."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise refused("The URL contains spaces or control characters.", "malformed")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"'{scheme}:' URLs" if scheme else "URLs without a scheme"
        raise refused(f"Only http and https URLs can be fetched, not {shown}.", "scheme")
    if "@" in parts.netloc:
        raise refused(
            "The URL carries a user name or password; this service sends no credentials.", "userinfo"
        )
    host = normalise_host(parts.hostname or "")
    try:
        port = DEFAULT_PORTS[scheme] if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise refused(f"The URL's port is not a number from 1 to 65535 (host {host}).", "port")
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE)
    return Target(scheme, host, port, path, _literal(host))


def normalise_host(raw: str) -> str:
    """Lower-case, without a trailing dot, IDNA-encoded, IPv6 compressed; refuses what no server is called."""
    host = raw.lower().removesuffix(".")
    if not host:
        raise refused("The URL names no host.", "host")
    if "%" in host:
        raise refused(f"'{raw}' carries a zone index or an escape; name the host plainly.", "host")
    if ":" in host:
        try:
            return str(IPv6Address(host))
        except ValueError:
            raise refused(f"'{raw}' is not a valid IPv6 address.", "host") from None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise refused(f"'{raw}' is not a valid host name.", "host") from None
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        try:
            return str(IPv4Address(host))
        except ValueError:
            raise refused(
                f"'{raw}' is an unusual spelling of an IP address; write it as four decimal numbers.",
                "host",
            ) from None
    if not _HOST.match(host):
        raise refused(f"'{raw}' is not a valid host name.", "host")
    return host


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def address_refusal(address: IPAddress) -> str | None:
    """Why the service will not connect to `address` (words a person understands); None if it is public."""
    if address.is_loopback or address.is_unspecified:
        return "loopback" if address.is_loopback else "unspecified"
    if isinstance(address, IPv6Address):
        if any(address in net for net in _EMBEDDING_V4):
            return "an IPv4 address written in IPv6 form"
        if address in _NAT64:
            return address_refusal(IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return address_refusal(address.sixtofour)
        if address.is_site_local:
            return "site-local"
    for kind in ("link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if address in _SHARED:
        return "shared (carrier-grade NAT)"
    if not address.is_global:
        return "not public"
    return None


class AllowList:
    """`host[:port]` entries the operator lets through whatever they resolve to; no port: any port."""

    def __init__(self, entries: list[str]):
        self.entries = frozenset(parse_allow_entry(e) for e in entries)

    def admits(self, target: Target) -> bool:
        return (target.host, target.port) in self.entries or (target.host, None) in self.entries

    def __bool__(self) -> bool:
        return bool(self.entries)


def parse_allow_entry(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (normalised host, port or None); ValueError if not."""
    parts = urlsplit("//" + entry.strip())
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{entry!r} is not a host[:port]")
    try:
        port = parts.port
        host = normalise_host(parts.hostname or "")
    except (ValueError, UrlRefusedError):
        raise ValueError(f"{entry!r} is not a host[:port]") from None
    return host, port


def allow_entry_text(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"
