"""Exponential backoff with full jitter: the one retry delay of airlake (SSE reconnects, lake commits).

Imports nothing of airlake's (the standard library only), so that the lake may use it as well as the sources.
"""

from __future__ import annotations

import random
import threading

_MAX_DOUBLINGS = 62  # past this, the ceiling is ``maximum`` anyway; it keeps 2**attempt a small number


def jittered_delay(attempt: int, initial: float, maximum: float, minimum: float = 0.0) -> float:
    """Seconds to wait before retry number ``attempt + 1``: full jitter under an exponential ceiling.

    Args:
        attempt: failed attempts before this one, minus one (0 for the first retry).
        initial: the first ceiling; it doubles with each attempt.
        maximum: the largest ceiling.
        minimum: the delay is never shorter (a server's ``retry:`` field or ``Retry-After``).

    Returns:
        A uniform draw from ``[0, min(maximum, initial * 2**attempt)]``, raised to ``minimum``.
    """
    ceiling = min(maximum, initial * 2 ** min(attempt, _MAX_DOUBLINGS))
    return max(random.uniform(0.0, ceiling), minimum)


class Backoff:
    """Exponential backoff with full jitter, interruptible by an event."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, stop: threading.Event | None = None):
        self.initial, self.maximum, self.stop = initial, maximum, stop or threading.Event()
        self.attempt = 0

    def wait(self) -> bool:
        """Sleeps before the next attempt; returns False when stopped meanwhile."""
        delay = jittered_delay(self.attempt, self.initial, self.maximum)
        self.attempt += 1
        return not self.stop.wait(delay)
