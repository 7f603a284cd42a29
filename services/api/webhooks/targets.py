"""Which URLs an endpoint may name, and which addresses a delivery may reach (SSRF defence).

At registration: ``https`` (plain ``http`` only to loopback or where the settings allow it), a host,
no credentials or fragment; an IP literal must be an allowed address. At delivery the host name
is resolved and every address checked again, and the connection is pinned to a checked address
(``Host`` header and TLS SNI keep the name), so a name that later resolves to an internal address
(DNS rebinding) reaches nothing. Outside production private networks are allowed (development
receivers run on the same machine or network).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from services.api.webhooks.settings import WebhookSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL or the address it resolves to may not be called."""


def _address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def address_refusal(address: IPAddress, settings: WebhookSettings, env: str) -> str | None:
    """Why ``address`` may not be a target, or None when it may."""
    if address.is_loopback:
        return None if settings.allow_loopback else "a loopback address"
    if address.is_global and not address.is_multicast:
        return None
    if settings.private_allowed(env) and not (address.is_multicast or address.is_unspecified):
        return None
    return "a private, link-local or reserved address"


def check_url(url: str, settings: WebhookSettings, env: str) -> str:
    """The URL, normalised; :class:`TargetRefused` saying what is wrong otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise TargetRefused(f"not a URL: {exc}") from None
    if parsed.scheme not in ("https", "http"):
        raise TargetRefused("the scheme must be https")
    host = parsed.host
    if not host:
        raise TargetRefused("the URL has no host")
    if parsed.userinfo:
        raise TargetRefused("credentials in the URL are not accepted")
    if parsed.fragment:
        raise TargetRefused("a fragment is not sent; remove it")
    address = _address(host)
    loopback = _is_loopback_name(host) or (address is not None and address.is_loopback)
    if loopback and not settings.allow_loopback:
        raise TargetRefused("loopback targets are not accepted here")
    if address is not None:
        refusal = address_refusal(address, settings, env)
        if refusal:
            raise TargetRefused(f"the host is {refusal}")
    if parsed.scheme == "http" and not (loopback or settings.http_allowed(env)):
        raise TargetRefused("the scheme must be https (http only to loopback)")
    return str(parsed)


@dataclass(frozen=True)
class Target:
    """Where to connect: the URLs to try in order (one per checked address when pinned) and
    what keeps the original name."""

    urls: list[httpx.URL]
    headers: dict[str, str]
    extensions: dict[str, str]


async def resolve(url: str, settings: WebhookSettings, env: str) -> Target:
    """The target to connect to; pinned to a checked address unless every address is allowed."""
    parsed = httpx.URL(url)
    host = parsed.host
    if settings.private_allowed(env) and settings.allow_loopback:
        return Target([parsed], {}, {})
    literal = _address(host)
    if literal is not None:
        refusal = address_refusal(literal, settings, env)
        if refusal:
            raise TargetRefused(f"the host is {refusal}")
        return Target([parsed], {}, {})
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"the host does not resolve: {exc}") from None
    addresses = [a for a in (_address(str(info[4][0])) for info in infos) if a is not None]
    if not addresses:
        raise TargetRefused("the host does not resolve")
    for address in addresses:
        refusal = address_refusal(address, settings, env)
        if refusal:
            raise TargetRefused(f"the host resolves to {refusal}")
    pinned = [parsed.copy_with(host=str(a)) for a in dict.fromkeys(addresses)]
    host_header = host if parsed.port is None else f"{host}:{parsed.port}"
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return Target(pinned, {"Host": host_header}, extensions)
