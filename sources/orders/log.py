"""The in-memory event log of generated orders (topic ``airlake.orders``) that the SSE server serves.

Imports :mod:`sources.orders.generator`, :mod:`sources.orders.demand` and :mod:`sources.sse_server` (log
identities).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from airlake.sources.orders.demand import SseDemand, read_demand_file
from airlake.sources.orders.generator import OrderGenerator, parse_event_time_ms
from airlake.sources.sse_server import log_identity, new_log_id

logger = logging.getLogger(__name__)

TOPIC = "airlake.orders"
DEFAULT_RETENTION = 2_000_000


class OffsetOutOfRetention(LookupError):
    """A reader asked for an offset the log no longer holds."""


class OrderLog:
    """An in-memory event log of generated orders (topic ``airlake.orders``), for :class:`SseServer`.

    A background thread feeds the demand through an :class:`OrderGenerator` and appends the order events. The
    log keeps the newest ``retention`` events; offsets are absolute and never reused. ``log_id`` is the log's
    identity (see ``docs/orders.md``).
    """

    topic = TOPIC

    def __init__(
        self,
        demand: Iterable[Mapping[str, Any]],
        generator: OrderGenerator,
        *,
        retention: int = DEFAULT_RETENTION,
        log_id: str | None = None,
    ) -> None:
        """Creates the log; call :meth:`start` to begin generating.

        Args:
            demand: the recentchange events (a file reader, an :class:`SseDemand`, or any iterable of dicts);
                if it has ``close()``, :meth:`close` calls it.
            generator: the order generator.
            retention: how many events to keep in memory.
            log_id: the log identity; default: a fresh random one (the demand may not be reproducible).
        """
        if retention < 1:
            raise ValueError("retention must be positive")
        self.log_id = log_id or new_log_id()
        self.demand = demand
        self.generator = generator
        self.retention = retention
        self.error: BaseException | None = None
        self._times: list[float] = []
        self._data: list[str] = []
        self._base = 0
        self._finished = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def from_file(cls, path: str | Path, generator: OrderGenerator, **kwargs: Any) -> OrderLog:
        """A log whose demand is a JSONL file of recentchange events (deterministic, and so is its identity)."""
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        log_id = log_identity("orders", TOPIC, generator.parameters(), digest)
        return cls(read_demand_file(path), generator, log_id=log_id, **kwargs)

    @classmethod
    def from_url(
        cls,
        url: str,
        generator: OrderGenerator,
        *,
        user_agent: str,
        retention: int = DEFAULT_RETENTION,
        **stream_options: Any,
    ) -> OrderLog:
        """A log whose demand is an SSE stream of recentchange events read with :class:`SseStream`.

        Its identity is random (live demand cannot be replayed), and it becomes the generator's id namespace
        unless the generator has one, so that the order ids of two such logs never meet.
        """
        log_id = new_log_id()
        if not generator.id_namespace:
            generator.id_namespace = log_id
        demand = SseDemand(url, user_agent=user_agent, **stream_options)
        return cls(demand, generator, retention=retention, log_id=log_id)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> OrderLog:
        """Starts generating in a background thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="order-generator", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stops generating (the log stays readable) and wakes blocked readers."""
        self._stopping.set()
        closer = getattr(self.demand, "close", None)
        if callable(closer):
            closer()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Waits until the demand is exhausted and every event is in the log; returns whether it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._finished, timeout)

    @property
    def finished(self) -> bool:
        return self._finished

    def stats(self) -> dict[str, Any]:
        """Counters of the log and its generator (``SseServer`` shows them at ``/stats``)."""
        with self._cond:
            counts = {"events": self._base + len(self._data), "first_offset": self._base}
        return {
            **counts,
            "log_id": self.log_id,
            "finished": self._finished,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "generator": asdict(self.generator.stats),
        }

    def __len__(self) -> int:
        """The offset the next event will get (events ever appended)."""
        with self._cond:
            return self._base + len(self._data)

    @property
    def first_offset(self) -> int:
        """The oldest offset still retained."""
        with self._cond:
            return self._base

    def _run(self) -> None:
        try:
            for demand in self.demand:
                if self._stopping.is_set():
                    return
                released = self.generator.feed(demand)
                if released:
                    self._append(released)
            if not self._stopping.is_set():
                self._append(self.generator.finish())
        except Exception as exc:  # the reason is kept and logged; readers must not hang
            self.error = exc
            logger.exception("order generation stopped")
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _append(self, events: list[dict[str, Any]]) -> None:
        rows = [
            (
                parse_event_time_ms(e["event_time"]) / 1000,
                json.dumps(e, ensure_ascii=False, separators=(",", ":")),
            )
            for e in events
        ]
        with self._cond:
            for at, data in rows:
                self._times.append(at)
                self._data.append(data)
            excess = len(self._data) - self.retention
            # Trim in chunks so that appending stays amortised O(1).
            if excess > 0 and excess >= max(1, self.retention // 16):
                del self._times[:excess]
                del self._data[:excess]
                self._base += excess
            self._cond.notify_all()

    # -- EventLog ----------------------------------------------------------------------------------

    def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
        """Yields ``(offset, event_time_epoch_seconds, data_json)`` from ``offset`` on, in order.

        Blocks for more while the demand is live; returns once the demand is finished and everything was read,
        or when ``stop`` is set.

        Raises:
            OffsetOutOfRetention: ``offset`` is older than the oldest retained event.
            ValueError: ``offset`` is negative.
        """
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        position = offset
        while not stop.is_set():
            with self._cond:
                while position >= self._base + len(self._data) and not self._finished and not stop.is_set():
                    self._cond.wait(timeout=0.5)
                if position < self._base:
                    raise OffsetOutOfRetention(
                        f"offset {position} of {self.topic} is no longer retained "
                        f"(oldest is {self._base}, retention {self.retention} events)"
                    )
                start = position - self._base
                times = self._times[start : start + 1000]
                data = self._data[start : start + 1000]
                done = self._finished and not data
            if done:
                return
            for at, payload in zip(times, data, strict=True):
                if stop.is_set():
                    return
                yield position, at, payload
                position += 1

    def offset_for_time(self, epoch_seconds: float) -> int:
        """The offset of the first retained event at or after ``epoch_seconds`` (the end if there is none)."""
        with self._cond:
            return self._base + bisect.bisect_left(self._times, epoch_seconds)
