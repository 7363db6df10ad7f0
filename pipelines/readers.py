"""Firehose readers: one process per source, feeding the speed pipeline's driver over a pipe.

Reading runs in its own process so that SSE parsing and the Beam batches of the driver use both cores instead of
taking turns on one interpreter lock. A reader resumes from the position it is given, parses each payload once to
find its deduplication key (:func:`sources.normalize.event_key`), and sends what it read in small chunks of
``(sse_id, received_at, data, key)``. The pipe gives backpressure: when the driver falls behind, sends block and the
reader stops reading, which stops the firehose through TCP.

A reader never commits anything; if it or the driver dies, the driver starts again from the committed positions.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from sources.normalize import RECENTCHANGE_SOURCE, event_key, loads

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.02  # how often a reader sends what it has read
PENDING_LIMIT = 20_000  # events a reader holds before it stops reading until the driver catches up
ERROR = "error"


@dataclass(frozen=True)
class SourceSpec:
    """Where and how to read one firehose."""

    name: str
    url: str
    user_agent: str
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


def _keyed(source: str, sse_id: str | None, data: str) -> str:
    try:
        obj = loads(data)
    except (ValueError, RecursionError):
        obj = None
    return event_key(source, sse_id, data, obj if isinstance(obj, dict) else None)


def read_source(spec: SourceSpec, last_event_id: str | None, conn: Connection, stop: Any) -> None:
    """The body of a reader process (see the module docstring)."""
    from sources.recentchange import is_canary
    from sources.sse import SseStream

    stream = SseStream(
        spec.url,
        last_event_id=last_event_id,
        user_agent=spec.user_agent,
        read_timeout=spec.read_timeout,
        connect_timeout=spec.connect_timeout,
        backoff_initial=spec.backoff_initial,
        backoff_max=spec.backoff_max,
        drop=is_canary if spec.name == RECENTCHANGE_SOURCE else None,
    )
    pending: list[tuple] = []
    lock = threading.Lock()
    finished = threading.Event()
    failure: list[str] = []

    def pump() -> None:
        try:
            for event in stream:
                item = (event.id, event.received_at, event.data, _keyed(spec.name, event.id, event.data))
                with lock:
                    pending.append(item)
                    full = len(pending) >= PENDING_LIMIT
                while full and not stop.is_set():
                    time.sleep(FLUSH_SECONDS)
                    with lock:
                        full = len(pending) >= PENDING_LIMIT
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
    """The driver's handle on one reader process."""

    def __init__(self, spec: SourceSpec, last_event_id: str | None):
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that has started threads
        self.spec = spec
        self.stop = ctx.Event()
        self.conn, child = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=read_source, args=(spec, last_event_id, child, self.stop), name=f"reader-{spec.name}", daemon=True
        )
        self.process.start()
        child.close()
        self.error: str | None = None

    def receive(self) -> list[tuple[str, str | None, float, str, str]]:
        """What the reader sent since the last call, as (source, sse_id, received_at, data, key) tuples."""
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
