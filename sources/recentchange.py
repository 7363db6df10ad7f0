"""Wikimedia recentchange events: what to drop before the pipeline sees them.

Imports :mod:`sources.events` (what a canary is) and :mod:`sources.sse` (the event type it filters).
"""

from __future__ import annotations

import json

from airlake.sources import events
from airlake.sources.sse import SseEvent


def is_canary(event: SseEvent) -> bool:
    """Whether an event read from the stream is a canary (:func:`sources.events.is_canary`), as an ``SseStream`` drop.

    A substring check rules out almost every event before any JSON is parsed. Malformed JSON is not a
    canary: it passes through so that the pipeline dead-letters it.

    Args:
        event: an event read from the recentchange stream.

    Returns:
        True when the event's ``meta.domain`` is ``"canary"``.
    """
    if f'"{events.CANARY_DOMAIN}"' not in event.data:
        return False
    try:
        parsed = json.loads(event.data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and events.is_canary(parsed)
