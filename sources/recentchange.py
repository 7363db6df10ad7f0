"""Wikimedia recentchange events: what to drop before the pipeline sees them."""

from __future__ import annotations

import json

from sources.sse import SseEvent


def is_canary(event: SseEvent) -> bool:
    """Whether an event is one of the canary events Wikimedia injects to monitor the stream.

    A substring check rules out almost every event before any JSON is parsed. Malformed JSON is not a
    canary: it passes through so that the pipeline dead-letters it.

    Args:
        event: an event read from the recentchange stream.

    Returns:
        True when the event's ``meta.domain`` is ``"canary"``.
    """
    if '"canary"' not in event.data:
        return False
    try:
        meta = json.loads(event.data).get("meta")
    except (ValueError, AttributeError):
        return False
    return isinstance(meta, dict) and meta.get("domain") == "canary"
