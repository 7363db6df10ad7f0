"""A resumable Server-Sent Events client with bounded input.

:class:`SseParser` parses the wire format incrementally (the EventSource specification: ``data``, ``id``,
``event`` and ``retry`` fields, comments, CR, LF and CRLF line ends, a leading byte order mark; an ``id:`` field
on its own moves the last event ID; an incomplete block at disconnect is discarded). It never buffers more than
``max_line_bytes`` of a line or ``max_event_bytes`` of an event: an oversized one is skipped to its end and comes
out as an event whose ``error`` names the reason and whose ``data`` is a short prefix, and the stream goes on.

:class:`SseStream` adds what a long-running consumer of Wikimedia EventStreams needs on top of it: reconnection
on any failure with the ``Last-Event-ID`` of the last event seen, exponential backoff with full jitter (never
shorter than the server's ``retry:`` field or a ``Retry-After`` header), a filter for events to drop (canaries),
counters, a ``close()`` that unblocks a reading thread, and content decoding (it asks for ``identity``; a gzip or
deflate body is still decoded incrementally, with bounded output per read). A server that answers HTTP 409 to a
``Last-Event-ID`` holds another log than the one the position was taken from: :class:`PositionNotInLog`.

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
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions

from airlake.sources.retry import jittered_delay

logger = logging.getLogger(__name__)

READ_SIZE = 65536
"""Bytes asked of the socket per read (a read returns as soon as anything has arrived), and the most bytes one
decompression step may produce."""

MAX_LINE_BYTES = 1024 * 1024
"""Default bound on one line of the stream (without its line end)."""

MAX_EVENT_BYTES = 4 * 1024 * 1024
"""Default bound on the data of one event (its ``data`` lines and the newlines between them)."""

ERROR_PREFIX_BYTES = 1024
"""How much of an oversized event's data is kept in :attr:`SseEvent.data`."""

_BOM = b"\xef\xbb\xbf"
_DECODED_ENCODINGS = ("gzip", "x-gzip", "deflate")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched SSE event.

    Attributes:
        id: the last event ID when the event was dispatched (for Wikimedia a JSON array string), as the
            EventSource spec defines it: an event without an ``id:`` field carries the previous one.
        event: the event type, ``"message"`` by default.
        data: the data lines joined by ``\\n``; for an event with an ``error``, at most the first
            :data:`ERROR_PREFIX_BYTES` of them.
        received_at: ``time.time()`` when the event was read.
        error: None, or why the event could not be read whole (a line or the event exceeded its byte bound).
    """

    id: str | None
    event: str
    data: str
    received_at: float
    error: str | None = None


class SseError(RuntimeError):
    """The stream cannot be (re)opened: a 4xx but 408/429, a wrong content type, or retries exhausted."""


class PositionNotInLog(SseError):
    """The server answered HTTP 409: the ``Last-Event-ID`` is a position in another log than the one it serves.

    Resume by event time (``?since=``) or from the start of the log instead.

    Attributes:
        position: the ``Last-Event-ID`` that was refused.
        served_log: the identity of the log the server serves (None when it did not say).
        reason: the server's explanation.
    """

    def __init__(self, message: str, *, position: str | None, served_log: str | None, reason: str) -> None:
        super().__init__(message)
        self.position = position
        self.served_log = served_log
        self.reason = reason


class _Retryable(Exception):
    """A failed attempt worth retrying (HTTP 408, 429, 5xx)."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


ParsedEvent = tuple[str | None, str, str, str | None]
"""What :meth:`SseParser.feed` returns per event: (last event id, event type, data, error)."""


class SseParser:
    """An incremental parser of the ``text/event-stream`` format with byte bounds (see the module docstring).

    Feed it the body as it arrives; each call returns the events completed by that piece. A line longer than
    ``max_line_bytes`` or an event whose data exceeds ``max_event_bytes`` is not buffered: the parser skips to
    the end of the event and returns it with ``error`` set and ``data`` cut to :data:`ERROR_PREFIX_BYTES` (an
    oversized comment line is skipped silently). A parser serves one connection; what is left unfinished when
    it ends is discarded.

    Args:
        last_event_id: the last event ID before this connection (events without ``id:`` carry it).
        max_line_bytes: the bound on one line, without its line end.
        max_event_bytes: the bound on the data of one event.

    Attributes:
        last_event_id: the last event ID after the last complete block (``id:`` fields take effect at the blank
            line that ends their block, also in a block without data).
        retry_ms: the reconnection time of the last valid ``retry:`` field, or None.
    """

    def __init__(
        self,
        *,
        last_event_id: str | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError("max_line_bytes and max_event_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._id = last_event_id  # the last event ID buffer
        self._event = b""  # the event type buffer
        self._data: list[bytes] = []  # the data buffer, one item per data line
        self._size = 0  # bytes in the data buffer (with the newlines that will join it)
        self._error: str | None = None  # "line" or "event" once the block is oversized
        self._longest = 0  # the longest oversized line of the block
        self._prefix = b""  # the start of an oversized event's data
        self._partial: list[bytes] = []  # pieces of the incomplete last line
        self._partial_size = 0
        self._skipping = False  # inside an oversized line: its bytes are counted, not kept
        self._skip_lf = False  # the last piece ended with CR: an LF at the start of the next one belongs to it
        self._prefix_line = b""  # the start of an oversized line
        self._head: bytes | None = b""  # the first bytes, until it is known whether they are a byte order mark

    def feed(self, chunk: bytes) -> list[ParsedEvent]:
        """Parses the next piece of the body; returns the events it completed, in order."""
        if self._head is not None:
            chunk = self._head + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._head = chunk
                return []
            self._head = None
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = chunk.rfind(b"\n")
        if end < 0:
            self._extend(chunk)
            return []
        out: list[ParsedEvent] = []
        start = 0
        if self._partial_size or self._skipping:
            start = chunk.find(b"\n") + 1
            self._extend(chunk[: start - 1])
            if self._skipping:
                self._skipping = False
                self._oversized_line(self._prefix_line, self._partial_size)
            else:
                self._lines([b"".join(self._partial)], out)
            self._partial, self._partial_size = [], 0
        if start <= end:
            self._lines(chunk[start:end].split(b"\n"), out)
        if end + 1 < len(chunk):
            self._extend(chunk[end + 1 :])
        return out

    def _extend(self, piece: bytes) -> None:
        """Adds to the incomplete last line, switching to skipping once it is longer than the bound."""
        if not piece:
            return
        self._partial_size += len(piece)
        if self._skipping:
            return
        self._partial.append(piece)
        if self._partial_size > self.max_line_bytes:
            joined = b"".join(self._partial)
            self._prefix_line = joined[: ERROR_PREFIX_BYTES + 16]
            self._partial = []
            self._skipping = True

    def _oversized_line(self, head: bytes, size: int) -> None:
        """A line of ``size`` bytes beginning with ``head`` exceeded the bound: the block becomes an error."""
        if head[:1] == b":":
            return  # a comment: nothing of an event is lost
        self._fail("line")
        self._longest = max(self._longest, size)
        if head[:5] == b"data:":
            value = head[5:]
            self._keep(value[1:] if value[:1] == b" " else value)

    def _fail(self, kind: str) -> None:
        if self._error is None:
            self._error = kind
            self._prefix = b"\n".join(self._data)[:ERROR_PREFIX_BYTES]
            self._data = []

    def _keep(self, value: bytes) -> None:
        """Adds a data line to the prefix of an oversized event."""
        room = ERROR_PREFIX_BYTES - len(self._prefix)
        if room > 0:
            self._prefix = (self._prefix + b"\n" + value if self._prefix else value)[:ERROR_PREFIX_BYTES]

    def _lines(self, lines: list[bytes], out: list[ParsedEvent]) -> None:
        max_line, max_event = self.max_line_bytes, self.max_event_bytes
        data = self._data
        for line in lines:
            if not line:
                self.last_event_id = self._id
                if self._error is not None:
                    out.append(self._error_event())
                    data = self._data
                elif data:
                    value = data[0] if len(data) == 1 else b"\n".join(data)
                    event = self._event.decode("utf-8", "replace") if self._event else "message"
                    out.append((self._id, event, value.decode("utf-8", "replace"), None))
                    data.clear()
                    self._size = 0
                self._event = b""
                continue
            if len(line) > max_line:
                self._oversized_line(line[: ERROR_PREFIX_BYTES + 16], len(line))
                data = self._data
                continue
            colon = line.find(b":")
            if colon == 0:
                continue  # a comment
            if colon < 0:
                name, value = line, b""
            else:
                name, value = line[:colon], line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
            if name == b"data":
                self._size += len(value) + 1
                if self._error is not None:
                    self._keep(value)
                elif self._size - 1 > max_event:
                    self._fail("event")
                    self._keep(value)
                    data = self._data
                else:
                    data.append(value)
            elif name == b"id":
                if b"\0" not in value:
                    self._id = value.decode("utf-8", "replace")
            elif name == b"event":
                self._event = value
            elif name == b"retry" and value.isdigit():
                self.retry_ms = int(value)

    def _error_event(self) -> ParsedEvent:
        if self._error == "line":
            reason = f"SSE line of {self._longest:,} bytes exceeds max_line_bytes={self.max_line_bytes:,}"
        else:
            reason = f"SSE event of {self._size - 1:,} bytes exceeds max_event_bytes={self.max_event_bytes:,}"
        event = self._event.decode("utf-8", "replace") if self._event else "message"
        parsed = (self._id, event, self._prefix.decode("utf-8", "replace"), reason)
        self._error, self._prefix, self._longest, self._size, self._data = None, b"", 0, 0, []
        return parsed


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


def _decompressor(encoding: str, first: bytes) -> Any:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate: tell them apart by the header.
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)


def _chunks(response: requests.Response, encoding: str | None = None) -> Iterator[bytes]:
    """The body as it arrives (``read1`` returns what is there instead of waiting for a full buffer).

    With ``encoding`` (gzip or deflate) the body is decompressed here, at most :data:`READ_SIZE` bytes per
    step, so that a small body that inflates to gigabytes is never held in memory at once.
    """
    raw = response.raw
    decoder: Any = None
    while True:
        data = raw.read1(READ_SIZE, decode_content=False)
        if not data:
            return
        if encoding is None:
            yield data
            continue
        while data:
            if decoder is None:
                decoder = _decompressor(encoding, data)
            out = decoder.decompress(data, READ_SIZE)
            if out:
                yield out
            if decoder.eof:  # gzip allows several members one after the other
                data, decoder = decoder.unused_data, None
            else:
                data = decoder.unconsumed_tail


_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    zlib.error,
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
    if isinstance(exc, zlib.error):
        return "decode"
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
        drop: a predicate; events for which it is true are counted and not yielded (events with an ``error``
            are always yielded).
        session: a ``requests.Session`` to use (one is created otherwise).
        max_line_bytes: the bound on one line of the stream (see :class:`SseParser`).
        max_event_bytes: the bound on the data of one event (see :class:`SseParser`).
        resume_since: when the server refuses the position as one of another log (HTTP 409), the stream says so
            in the log and goes on by event time with ``?since=`` set to what this returns (from the start of the
            log when it returns None); without it, :class:`PositionNotInLog` is raised.
        label: names the stream in log messages (default: the URL).
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
        max_line_bytes: int = MAX_LINE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        resume_since: Callable[[], str | None] | None = None,
        label: str | None = None,
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
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self.resume_since = resume_since
        self.label = label or url
        self._own_session = session is None
        self._session = session or requests.Session()
        self._last_event_id = last_event_id or None
        self._retry_ms: int | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._response: requests.Response | None = None
        self.stats: dict[str, Any] = {
            "events": 0,
            "dropped": 0,
            "oversized": 0,
            "log_changes": 0,
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
            response = self._response
        if response is not None:
            # urllib3's public shutdown() (2.3+) unblocks a thread waiting in a read, which close() does not.
            with contextlib.suppress(Exception):
                response.raw.shutdown()

    def __enter__(self) -> SseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._own_session:
            self._session.close()

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
            "Cache-Control": "no-cache",
            "User-Agent": self.user_agent,
        }
        if self._last_event_id:
            headers["Last-Event-ID"] = self._last_event_id
        return headers

    def _connect(self) -> tuple[requests.Response, str | None]:
        """Opens a connection; returns the response and the content encoding to undo (None for identity)."""
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
            encoding = response.headers.get("Content-Encoding", "").strip().lower()
            if encoding in ("", "identity"):
                return response, None
            if encoding in _DECODED_ENCODINGS:
                return response, encoding
            response.close()
            raise SseError(
                f"{self.url} answered with Content-Encoding {encoding!r}; only identity, gzip and deflate are read"
            )
        retry_after = _retry_after(response.headers.get("Retry-After"))
        try:
            text = response.raw.read(2000, decode_content=True).decode("utf-8", "replace")
        except _TRANSIENT_ERRORS:
            text = ""
        response.close()
        body = " ".join(text.split())[:300]
        if status == 409:
            raise self._not_in_log(text)
        message = f"HTTP {status} from {self.url}" + (f": {body}" if body else "")
        if status in (408, 429) or 500 <= status <= 599:
            raise _Retryable(f"http_{status}", message, retry_after)
        raise SseError(message)

    def _not_in_log(self, text: str) -> PositionNotInLog:
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        reason = str(answer.get("error") or " ".join(text.split())[:300] or "HTTP 409")
        served = answer.get("log")
        served_log = served if isinstance(served, str) else None
        return PositionNotInLog(
            f"{self.url} does not hold position {self._last_event_id}: {reason}",
            position=self._last_event_id,
            served_log=served_log,
            reason=reason,
        )

    def _resume_by_time(self, refused: PositionNotInLog) -> None:
        """Drops a position the server holds no more and goes on by event time from ``resume_since()``."""
        since = self.resume_since() if self.resume_since is not None else None
        logger.warning(
            "%s: position %s is not in the log the firehose serves now (%s); resuming by event time %s",
            self.label,
            refused.position,
            refused.reason,
            f"since {since}" if since else "from the start of the log (nothing committed yet)",
        )
        self._last_event_id = None
        self.params = {k: v for k, v in self.params.items() if k != "since"} | ({"since": since} if since else {})
        self.stats["log_changes"] += 1

    def _delay(self, failures: int, minimum: float) -> float:
        if self._retry_ms is not None:
            minimum = max(minimum, self._retry_ms / 1000.0)
        return jittered_delay(failures - 1, self.backoff_initial, self.backoff_max, minimum)

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
                response, encoding = self._connect()
                with self._lock:
                    self._response = response
                if self._closed.is_set():
                    return
                stats["connections"] += 1
                parser = SseParser(
                    last_event_id=self._last_event_id,
                    max_line_bytes=self.max_line_bytes,
                    max_event_bytes=self.max_event_bytes,
                )
                for chunk in _chunks(response, encoding):
                    parsed = parser.feed(chunk)
                    if parser.retry_ms is not None:
                        self._retry_ms = parser.retry_ms
                    if parsed:
                        failures = 0  # the connection works: the next failure starts the backoff afresh
                        received_at = time.time()
                        for event_id, event_type, data, error in parsed:
                            self._last_event_id = event_id or None
                            if not data and error is None:
                                continue  # an empty data field: nothing to hand on
                            event = SseEvent(self._last_event_id, event_type, data, received_at, error)
                            if error is not None:
                                stats["oversized"] += 1
                            elif drop is not None and drop(event):
                                stats["dropped"] += 1
                                continue
                            stats["events"] += 1
                            yield event
                    self._last_event_id = parser.last_event_id or None  # also moved by blocks without data
                kind, reason = "eof", "the server ended the stream"
            except PositionNotInLog as exc:
                if self.resume_since is None or exc.position is None:
                    raise  # refused without a position: resuming by time would not help
                self._resume_by_time(exc)
                continue
            except SseError:
                raise
            except _Retryable as exc:
                kind, reason = exc.kind, str(exc)
                minimum = exc.retry_after or 0.0
            except _TRANSIENT_ERRORS as exc:
                kind, reason = _error_kind(exc), f"{type(exc).__name__}: {exc}"
            finally:
                with self._lock:
                    self._response = None
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
