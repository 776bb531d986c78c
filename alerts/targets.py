"""A channel's target checked before it is stored, and shown back only as a masked hint.

Webhooks (SSRF): a URL whose host the server connects to (``http(s)``, ``json(s)``,
``form(s)``, ``xml(s)``, ``ntfy(s)``, ``gotify(s)``, ``mattermost(s)``, ``rocket(s)``) must not
name a private, loopback, link-local, multicast or reserved address, or a host name that resolves
to one, unless ``settings.ALERTS_ALLOW_PRIVATE_WEBHOOKS`` is true (a trader's own LAN receiver,
the tests). The host is checked when the channel is saved and again before each send (a name
may resolve elsewhere later). Services addressed by id (``discord://``, ``slack://`` ...) go to
the service's own public host and need no check.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

HOST_SCHEMES = frozenset({"http", "https", "json", "jsons", "form", "forms", "xml", "xmls",
                          "ntfy", "ntfys", "gotify", "gotifys", "mattermost", "mattermosts",
                          "rocket", "rockets"})


class TargetError(ValueError):
    """A target a trader must change; the message says why."""


def _refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified)


def check_webhook_host(url: str, resolve=socket.getaddrinfo) -> None:
    """Refuse a URL that reaches an internal address (see the module docstring)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"not a valid URL: {exc}") from None
    if parts.scheme.lower() not in HOST_SCHEMES:
        return
    if not host:
        raise TargetError("the URL names no host")
    if getattr(settings, "ALERTS_ALLOW_PRIVATE_WEBHOOKS", False):
        return
    try:
        addresses = {info[4][0] for info in resolve(host, port or 443, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError) as exc:
        raise TargetError(f"the host {host} cannot be resolved ({exc})") from None
    bad = sorted(a for a in addresses if _refused(a))
    if bad:
        raise TargetError(
            f"the host {host} is a private or local address ({bad[0]}): webhooks may only "
            "reach public hosts (an administrator can allow private ones with "
            "ALERTS_ALLOW_PRIVATE_WEBHOOKS)"
        )


def check(kind: str, target: str) -> str:
    """The target to store for a channel of ``kind``, or TargetError naming the problem."""
    from alerts import delivery
    from alerts.models import Channel

    target = (target or "").strip()
    if kind == Channel.Kind.WEBHOOK:
        if not target:
            raise TargetError("a webhook channel needs a URL")
        if not delivery.apprise_is_valid(target):
            raise TargetError("not a URL apprise can send to (e.g. https://example.org/hook, "
                              "discord://id/token)")
        check_webhook_host(target)
    elif kind == Channel.Kind.EMAIL:
        if not target:
            raise TargetError("an e-mail channel needs an address")
        try:
            validate_email(target)
        except ValidationError:
            raise TargetError(f"not an e-mail address: {target[:80]!r}") from None
    return target


def hint(kind: str, target) -> str:
    """What a page may show of a stored target: never the secret part."""
    from markets.fields import CredentialsUnreadable, plain

    if not target:
        return "none"
    try:
        text = plain(target)
    except CredentialsUnreadable:
        return "unreadable: enter it again"
    if kind == "email" and "@" in text:
        name, _, domain = text.partition("@")
        return f"{name[:1]}…@{domain}"
    try:
        parts = urlsplit(text)
        if parts.scheme and parts.hostname:
            return f"{parts.scheme}://{parts.hostname}/…"
        if parts.scheme:
            return f"{parts.scheme}://…"
    except ValueError:
        pass
    return "stored (hidden)"
