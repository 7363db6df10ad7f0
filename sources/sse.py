"""A resumable Server-Sent Events client.

The wire format is parsed by ``sseclient-py``; this module adds what a long-running consumer of Wikimedia
EventStreams needs on top of it: reconnection on any failure with the ``Last-Event-ID`` of the last event
seen, exponential backoff with full jitter (never shorter than the server's ``retry:`` field or a
``Retry-After`` header), a filter for events to drop (canaries), counters, and a ``close()`` that unblocks a
reading thread.

Example::

    stream = SseStream(url, user_agent=USER_AGENT, drop=is_canary)
    for event in stream:
        handle(event.data)
        checkpoint(stream.last_event_id)
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
import sseclient
import urllib3.exceptions

logger = logging.getLogger(__name__)

READ_SIZE = 65536
"""Bytes asked of the socket per read; a read returns as soon as anything has arrived."""

_BLOCK_ENDS = (b"\r\r", b"\n\n", b"\r\n\r\n")
_ALWAYS_DISPATCH = b"data\n"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched SSE event.

    Attributes:
        id: the last event ID when the event was dispatched (for Wikimedia a JSON array string), as the
            EventSource spec defines it: an event without an ``id:`` field carries the previous one.
        event: the event type, ``"message"`` by default.
        data: the data lines joined by ``\\n``.
        received_at: ``time.time()`` when the event was read.
    """

    id: str | None
    event: str
    data: str
    received_at: float


class SseError(RuntimeError):
    """The stream cannot be (re)opened: a 4xx but 408/429, a wrong content type, or retries exhausted."""


class _Retryable(Exception):
    """A failed attempt worth retrying (HTTP 408, 429, 5xx)."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class _Parser(sseclient.SSEClient):
    """``sseclient-py``'s parser with two adjustments for resuming.

    ``sseclient-py`` drops a block without data, so an ``id:`` or ``retry:`` field on its own would be lost,
    and it dispatches the incomplete block left when a connection breaks mid-event. Each complete block is
    therefore prefixed with an empty ``data`` line (so every block is dispatched and the caller strips the
    leading ``\\n`` from ``data``), and an incomplete trailing block is discarded, as the EventSource spec
    requires.
    """

    def _read(self) -> Iterator[bytes]:
        for block in super()._read():
            if block.endswith(_BLOCK_ENDS):
                yield _ALWAYS_DISPATCH + block


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streaming response, so that another thread can shut it down."""
    raw = response.raw
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(fp, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives (``read1`` returns what is there instead of waiting for a full buffer)."""
    raw = response.raw
    while True:
        data = raw.read1(READ_SIZE)
        if not data:
            return
        yield data


_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, requests.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):
        return "connect_timeout"
    if isinstance(exc, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return "read_timeout"
    if isinstance(exc, requests.ConnectionError | urllib3.exceptions.NewConnectionError | ConnectionError):
        return "connection"
    if isinstance(exc, urllib3.exceptions.ProtocolError | http.client.HTTPException):
        return "protocol"
    return type(exc).__name__


class SseStream:
    """An endless, resumable iteration over the events of an SSE endpoint.

    Args:
        url: the stream URL.
        last_event_id: where to resume (sent as ``Last-Event-ID`` on the first connection).
        params: query parameters sent on every connection (``{"since": ...}``; the server prefers
            ``Last-Event-ID`` once there is one).
        user_agent: a descriptive User-Agent (``name/version (contact) library/version``); Wikimedia
            requires it.
        connect_timeout: seconds to wait for the connection.
        read_timeout: seconds without any byte (events or heartbeats) after which the connection is dropped.
        backoff_initial: the first backoff ceiling in seconds; it doubles with each consecutive failure.
        backoff_max: the largest backoff ceiling.
        max_retries: consecutive failed attempts allowed before :class:`SseError`; None retries forever.
        drop: a predicate; events for which it is true are counted and not yielded.
        session: a ``requests.Session`` to use (one is created otherwise).
    """

    def __init__(
        self,
        url: str,
        *,
        last_event_id: str | None = None,
        params: dict[str, Any] | None = None,
        user_agent: str,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retries: int | None = None,
        drop: Callable[[SseEvent], bool] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if not user_agent:
            raise ValueError("user_agent is required (Wikimedia's User-Agent policy)")
        self.url = url
        self.params = dict(params or {})
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_retries = max_retries
        self.drop = drop
        self._own_session = session is None
        self._session = session or requests.Session()
        self._last_event_id = last_event_id or None
        self._retry_ms: int | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._response: requests.Response | None = None
        self._sock: socket.socket | None = None
        self.stats: dict[str, Any] = {
            "events": 0,
            "dropped": 0,
            "connections": 0,
            "reconnects": 0,
            "errors": {},
        }

    @property
    def last_event_id(self) -> str | None:
        """The last event ID seen: of the last event yielded (or dropped, or of an ``id:`` without data)."""
        return self._last_event_id

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """Ends the iteration; safe to call from any thread, and it unblocks a thread waiting for data."""
        self._closed.set()
        with self._lock:
            sock, response = self._sock, self._response
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        elif response is not None:
            response.close()

    def __enter__(self) -> SseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._own_session:
            self._session.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", "User-Agent": self.user_agent}
        if self._last_event_id:
            headers["Last-Event-ID"] = self._last_event_id
        return headers

    def _connect(self) -> requests.Response:
        response = self._session.get(
            self.url,
            params=self.params or None,
            headers=self._headers(),
            stream=True,
            timeout=(self.connect_timeout, self.read_timeout),
        )
        status = response.status_code
        if status == 200:
            ctype = response.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip().lower() != "text/event-stream":
                response.close()
                raise SseError(f"{self.url} answered with Content-Type {ctype!r}, not text/event-stream")
            return response
        retry_after = _retry_after(response.headers.get("Retry-After"))
        try:
            body = " ".join(response.raw.read(300, decode_content=True).decode("utf-8", "replace").split())
        except _TRANSIENT_ERRORS:
            body = ""
        response.close()
        message = f"HTTP {status} from {self.url}" + (f": {body}" if body else "")
        if status in (408, 429) or 500 <= status <= 599:
            raise _Retryable(f"http_{status}", message, retry_after)
        raise SseError(message)

    def _delay(self, failures: int, minimum: float) -> float:
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** min(failures - 1, 62)))
        delay = random.uniform(0.0, ceiling)
        if self._retry_ms is not None:
            minimum = max(minimum, self._retry_ms / 1000.0)
        return max(delay, minimum)

    def _count_error(self, kind: str) -> None:
        errors = self.stats["errors"]
        errors[kind] = errors.get(kind, 0) + 1

    def __iter__(self) -> Iterator[SseEvent]:
        """Yields events forever, reconnecting as needed; ends only after :meth:`close`.

        Raises:
            SseError: an unrecoverable answer, or more than ``max_retries`` consecutive failures.
        """
        failures = 0
        drop = self.drop
        stats = self.stats
        while not self._closed.is_set():
            minimum = 0.0
            response: requests.Response | None = None
            try:
                response = self._connect()
                with self._lock:
                    self._response, self._sock = response, _socket_of(response)
                if self._closed.is_set():
                    return
                stats["connections"] += 1
                for raw in _Parser(_chunks(response)).events():
                    if raw.retry is not None and raw.retry.isdigit():
                        self._retry_ms = int(raw.retry)
                    if raw.id is not None:
                        self._last_event_id = raw.id or None
                    data = raw.data[1:]
                    if not data:
                        continue
                    failures = 0  # the connection works: the next failure starts the backoff afresh
                    event = SseEvent(self._last_event_id, raw.event, data, time.time())
                    if drop is not None and drop(event):
                        stats["dropped"] += 1
                        continue
                    stats["events"] += 1
                    yield event
                kind, reason = "eof", "the server ended the stream"
            except SseError:
                raise
            except _Retryable as exc:
                kind, reason = exc.kind, str(exc)
                minimum = exc.retry_after or 0.0
            except _TRANSIENT_ERRORS as exc:
                kind, reason = _error_kind(exc), f"{type(exc).__name__}: {exc}"
            finally:
                with self._lock:
                    self._response = self._sock = None
                if response is not None:
                    response.close()
            if self._closed.is_set():
                return
            self._count_error(kind)
            failures += 1
            if self.max_retries is not None and failures > self.max_retries:
                raise SseError(f"giving up on {self.url} after {failures} consecutive failures; last: {reason}")
            delay = self._delay(failures, minimum)
            stats["reconnects"] += 1
            logger.info(
                "reconnecting to %s in %.2fs (attempt %d) after %s; Last-Event-ID %s",
                self.url,
                delay,
                failures,
                reason,
                self._last_event_id,
            )
            if self._closed.wait(delay):
                return
