"""Firehose readers: one process per source, feeding the speed pipeline's driver over a pipe.

Reading runs in its own process so that SSE parsing and the Beam batches of the driver use both cores instead of
taking turns on one interpreter lock. A reader resumes from the position it is given, parses each payload once to
find its deduplication key (:func:`sources.normalize.event_key`), and sends what it read in small chunks of
``(sse_id, received_at, data, key, error)``; ``error`` is None, or why the event could not be read whole (a line
or the event exceeded its byte bound: ``data`` is then a short prefix and the event a dead letter). The reader
holds at most :data:`PENDING_LIMIT` events and ``queue_bytes`` bytes of data, and the pipe gives backpressure:
when the driver falls behind, sends block and the reader stops reading, which stops the firehose through TCP.

A position is valid in one log only: when the firehose refuses it (a local firehose started again over another
log), the reader says so in the log and resumes by event time from ``since``, the event time of the newest
committed event of its source, or from the start of the log when there is none.

A reader never commits anything; if it or the driver dies, the driver starts again from the committed positions.

Imports: :mod:`sources` only.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from typing import Any

from airlake.sources.events import RECENTCHANGE_SOURCE
from airlake.sources.normalize import event_key, loads

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.02  # how often a reader sends what it has read
PENDING_LIMIT = 20_000  # events a reader holds before it stops reading until the driver catches up
ERROR = "error"

Received = tuple[str, str | None, float, str, str, str | None]
"""An event as the driver receives it: (source, sse_id, received_at, data, key, error)."""


@dataclass(frozen=True)
class SourceSpec:
    """Where and how to read one firehose.

    Attributes:
        name: the source (``recentchange``, ``orders``).
        url: the SSE URL.
        user_agent: the User-Agent sent.
        read_timeout: seconds without a byte before reconnecting.
        connect_timeout: seconds to wait for a connection.
        backoff_initial: the first backoff ceiling in seconds.
        backoff_max: the largest backoff ceiling in seconds.
        max_line_bytes: the bound on one SSE line; a longer one makes its event a dead letter.
        max_event_bytes: the bound on one SSE event's data; a larger event is a dead letter.
        queue_bytes: bytes of event data the reader holds before it stops reading until the driver catches up.
    """

    name: str
    url: str
    user_agent: str
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_line_bytes: int = 1024 * 1024
    max_event_bytes: int = 4 * 1024 * 1024
    queue_bytes: int = 64 * 1024 * 1024


def _keyed(source: str, sse_id: str | None, data: str) -> str:
    try:
        obj = loads(data)
    except (ValueError, RecursionError):
        obj = None
    return event_key(source, sse_id, data, obj if isinstance(obj, dict) else None)


def since_param(since: datetime) -> str:
    """``since`` as the ``?since=`` value: ISO-8601 UTC with milliseconds and ``Z`` (Wikimedia takes it too)."""
    return since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_source(
    spec: SourceSpec, last_event_id: str | None, conn: Connection, stop: Any, since: datetime | None = None
) -> None:
    """The body of a reader process (see the module docstring)."""
    from airlake.sources.recentchange import is_canary
    from airlake.sources.sse import SseStream

    stream = SseStream(
        spec.url,
        last_event_id=last_event_id,
        user_agent=spec.user_agent,
        read_timeout=spec.read_timeout,
        connect_timeout=spec.connect_timeout,
        backoff_initial=spec.backoff_initial,
        backoff_max=spec.backoff_max,
        drop=is_canary if spec.name == RECENTCHANGE_SOURCE else None,
        max_line_bytes=spec.max_line_bytes,
        max_event_bytes=spec.max_event_bytes,
        resume_since=lambda: since_param(since) if since is not None else None,
        label=spec.name,
    )
    pending: list[tuple] = []
    sizes = [0]  # bytes of data pending
    lock = threading.Lock()
    finished = threading.Event()
    failure: list[str] = []

    def full() -> bool:
        with lock:
            return len(pending) >= PENDING_LIMIT or sizes[0] >= spec.queue_bytes

    def pump() -> None:
        try:
            for event in stream:
                if event.error is None:
                    key = _keyed(spec.name, event.id, event.data)
                else:  # data is only a prefix of the event
                    key = event_key(spec.name, event.id, event.data, None)
                with lock:
                    pending.append((event.id, event.received_at, event.data, key, event.error))
                    sizes[0] += len(event.data)
                while full() and not stop.is_set():
                    time.sleep(FLUSH_SECONDS)
                if stop.is_set():
                    return
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops
            failure.append(f"{type(exc).__name__}: {exc}")
        finally:
            finished.set()

    threading.Thread(target=pump, name=f"sse-{spec.name}", daemon=True).start()
    parent = os.getppid()
    try:
        while not stop.is_set() and os.getppid() == parent:
            done = finished.is_set()
            with lock:
                chunk, pending[:] = list(pending), []
                sizes[0] = 0
            if chunk:
                conn.send(chunk)
            if done:
                if failure:
                    conn.send((ERROR, failure[0]))
                break
            time.sleep(FLUSH_SECONDS)
    except (BrokenPipeError, EOFError, OSError):
        pass  # the driver is gone
    finally:
        stream.close()
        conn.close()


class ReaderProcess:
    """The driver's handle on one reader process.

    Args:
        spec: the source to read.
        last_event_id: the committed position to resume after, or None.
        since: the event time (aware, UTC) of the newest committed event of the source, or None: where to resume
            when the firehose refuses ``last_event_id`` as a position in another log.
    """

    def __init__(self, spec: SourceSpec, last_event_id: str | None, since: datetime | None = None):
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be an aware datetime")
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that has started threads
        self.spec = spec
        self.stop = ctx.Event()
        self.conn, child = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=read_source,
            args=(spec, last_event_id, child, self.stop, since),
            name=f"reader-{spec.name}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.error: str | None = None

    def receive(self) -> list[Received]:
        """What the reader sent since the last call, as (source, sse_id, received_at, data, key, error) tuples."""
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            if self.error is None:
                self.error = f"reader process exited with code {self.process.exitcode}"
            return []
        if isinstance(message, tuple) and message and message[0] == ERROR:
            self.error = message[1]
            return []
        return [(self.spec.name, *item) for item in message]

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        self.conn.close()


def ready(readers: list[ReaderProcess], timeout: float) -> Iterator[ReaderProcess]:
    """The readers that have something to receive within ``timeout`` seconds."""
    by_conn = {r.conn: r for r in readers if r.error is None}
    if not by_conn:
        time.sleep(timeout)
        return
    for conn in wait(list(by_conn), timeout=timeout):
        yield by_conn[conn]
