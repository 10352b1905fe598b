"""Enrichment before validation and storage: the seed's server-side rules.

* `$eventplan_bot`, `$eventplan_bot_name` on a bot's events (`bots.py`).
* `ip_hash`: hex of the first 8 bytes of SHA-256 of the client IP (seed §3). The IP
  is the socket peer, or, when the peer is a trusted proxy, the nearest untrusted
  `X-Forwarded-For` address. The raw IP, and any `$ip` a client sends, is never kept.
* `referrer_url` ("direct" when empty) and `referrer_domain` from the referrer,
  `utm_*` from the current URL, `entry_path` / `entry_query` from the current URL —
  each only on events whose plan defines it and only when the client did not send it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from eventplan.capture.bots import label_bot
from eventplan.plan.model import Plan

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
DERIVED_PROPERTIES = frozenset(
    {"referrer_url", "referrer_domain", "entry_path", "entry_query", *UTM_KEYS}
)
DIRECT = "direct"


def ip_hash(ip: str) -> str:
    return hashlib.sha256(ip.encode()).digest()[:8].hex()


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the peer, unless the peer is a proxy we trust.

        Behind trusted proxies, `X-Forwarded-For` is read from the right, skipping
        our own proxies; the first address we do not trust is the client. (The
        left-most entry is whatever the client chose to send.)
        """
        if peer is None or not forwarded_for or not self._trusted(peer):
            return peer
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            try:
                client = str(ipaddress.ip_address(hop.strip()))
            except ValueError:
                return client
            if not self._trusted(client):
                return client
        return client

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


def referrer_domain(referrer: Any) -> str:
    if not isinstance(referrer, str) or referrer in ("", DIRECT, "$direct"):
        return DIRECT
    host = urlsplit(referrer if "//" in referrer else f"//{referrer}").hostname
    return host or DIRECT


class Enricher:
    """Fills the plan's derivable properties on the events that plan them."""

    def __init__(self, plan: Plan) -> None:
        self._wants: dict[str, frozenset[str]] = {}
        for name in plan.events:
            wanted = DERIVED_PROPERTIES & set(plan.properties_of(name))
            if wanted:
                self._wants[name] = frozenset(wanted)

    def enrich(self, event: str, properties: dict[str, Any], user_agent: str | None = None) -> None:
        properties.pop("$ip", None)
        label_bot(properties, user_agent)
        wanted = self._wants.get(event)
        if not wanted:
            return
        if "referrer_url" in wanted and "referrer_url" not in properties:
            referrer = properties.get("$referrer")
            properties["referrer_url"] = (
                referrer
                if isinstance(referrer, str) and referrer and referrer != "$direct"
                else DIRECT
            )
        if "referrer_domain" in wanted and "referrer_domain" not in properties:
            properties["referrer_domain"] = referrer_domain(
                properties.get("referrer_url", properties.get("$referrer"))
            )
        current = properties.get("$current_url")
        if not isinstance(current, str) or not current:
            return
        parts = urlsplit(current)
        if "entry_path" in wanted and "entry_path" not in properties:
            properties["entry_path"] = parts.path or "/"
        if "entry_query" in wanted and "entry_query" not in properties and parts.query:
            properties["entry_query"] = parts.query
        query = parse_qs(parts.query)
        for key in UTM_KEYS:
            if key in wanted and key not in properties and query.get(key):
                properties[key] = query[key][0]
