"""The shared backoff: full jitter under a doubling ceiling, a floor, and a stop event that ends the wait."""

from __future__ import annotations

import threading
import time

from airlake.sources.retry import Backoff, jittered_delay


def test_delay_stays_under_the_doubling_ceiling_and_above_the_minimum() -> None:
    for attempt, ceiling in ((0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0), (10_000, 30.0)):
        delays = [jittered_delay(attempt, 0.5, 30.0) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
    assert all(jittered_delay(0, 0.5, 30.0, minimum=2.0) == 2.0 for _ in range(50))


def test_backoff_counts_attempts_and_a_set_stop_ends_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    backoff = Backoff(initial=60.0, stop=stop)
    started = time.monotonic()
    assert not backoff.wait()
    assert time.monotonic() - started < 1.0
    assert backoff.attempt == 1
