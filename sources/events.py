"""Facts about the events airlake ingests, stated once: the source names, the order event types, the canary test,
and how the local firehoses make deterministic event ids.

Imports nothing of airlake's: every other module (the normalizer, the order generator, the Beam transforms, the
readers) takes these names from here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

RECENTCHANGE_SOURCE = "recentchange"
ORDERS_SOURCE = "orders"
SOURCES = (RECENTCHANGE_SOURCE, ORDERS_SOURCE)

PLACED = "placed"
ACCEPTED = "accepted"
PICKED_UP = "picked_up"
DELIVERED = "delivered"
CANCELLED = "cancelled"
ORDER_EVENT_TYPES = (PLACED, ACCEPTED, PICKED_UP, DELIVERED, CANCELLED)
"""The order lifecycle's event types, in lifecycle order (a cancellation can end any stage)."""
TERMINAL_ORDER_EVENT_TYPES = frozenset({DELIVERED, CANCELLED})

CANARY_DOMAIN = "canary"


def is_canary(event: Mapping[str, Any]) -> bool:
    """Whether a parsed recentchange event is one of the canary events Wikimedia injects to monitor the stream."""
    meta = event.get("meta")
    return isinstance(meta, Mapping) and meta.get("domain") == CANARY_DOMAIN


def uuid5(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))``, computed a few times faster (the firehoses make one per
    event; callers keep their namespace's ``.bytes`` in a constant)."""
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
