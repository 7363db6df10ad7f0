"""The demand the generator follows: recentchange events from a JSONL recording or an SSE URL.

Imports :mod:`sources.orders.generator` (event time parsing), and :mod:`sources.sse` and
:mod:`sources.recentchange` lazily, when an SSE demand is read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airlake.sources.orders.generator import parse_event_time_ms

logger = logging.getLogger(__name__)


def read_demand_file(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yields the recentchange events of a JSONL file; blank and malformed lines are skipped (and logged)."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                logger.warning("%s:%d: not JSON, skipped", path, number)
                continue
            if isinstance(event, dict):
                yield event


class SseDemand:
    """Recentchange events from an SSE URL (the live stream or the local replay firehose), canaries dropped.

    Reads through :class:`sources.sse.SseStream`, which reconnects with ``Last-Event-ID``; iterate it once. When
    the demand firehose was started again over another log (it refuses the position), reading goes on by event
    time from the newest demand event seen.
    """

    def __init__(self, url: str, *, user_agent: str, last_event_id: str | None = None, **stream_options: Any) -> None:
        self.url = url
        self.user_agent = user_agent
        self.last_event_id = last_event_id
        self.stream_options = stream_options
        self.malformed = 0
        self._stream: Any = None
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from airlake.sources.recentchange import is_canary  # the SSE-level filter (over sources.events.is_canary)
        from airlake.sources.sse import SseStream

        newest: tuple[int, str] | None = None  # (epoch ms, meta.dt) of the newest demand event seen
        self._stream = SseStream(
            self.url,
            last_event_id=self.last_event_id,
            user_agent=self.user_agent,
            drop=is_canary,
            resume_since=lambda: newest[1] if newest is not None else None,
            label=f"demand {self.url}",
            **self.stream_options,
        )
        if self._closed.is_set():
            self._stream.close()
            return
        for message in self._stream:
            if self._closed.is_set():
                return
            try:
                event = json.loads(message.data)
            except ValueError:
                self.malformed += 1
                continue
            if not isinstance(event, dict):
                continue
            meta = event.get("meta")
            dt = meta.get("dt") if isinstance(meta, dict) else None
            if isinstance(dt, str):
                with contextlib.suppress(ValueError):
                    at = parse_event_time_ms(dt)
                    if newest is None or at > newest[0]:
                        newest = (at, dt)
            yield event

    def close(self) -> None:
        """Stops the stream (also from another thread)."""
        self._closed.set()
        if self._stream is not None:
            self._stream.close()
