"""A small SSE server that serves event logs the way Wikimedia EventStreams serves Kafka topics.

Each stream path serves one :class:`EventLog`. An event goes out as::

    id: [{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":42,"log":"3f9c1a0b2d4e5f60"}]
    event: message
    data: {...}

``log`` is the identity of the log (:attr:`EventLog.log_id`): offsets count in one log only, and a firehose
started again over other content (or over a live demand) serves another log. A client resumes with the
``Last-Event-ID`` header (the id above; the server continues at offset + 1) or with ``?since=`` (epoch
milliseconds or an ISO-8601 date). An offset of another log, or one without a ``log``, is answered with HTTP 409
and JSON ``{"error": ..., "log": <the served log>}``: the client must resume by event time instead. Wikimedia's
own form, ``{"topic", "partition", "timestamp"}``, resumes by time. Without either, the live service starts at
"now"; this server starts at offset 0, so a recorded log is replayed from its beginning. When a finite log has been
sent the response ends (a client reconnects and gets nothing new until the log grows).

The response is HTTP/1.1 chunked. Events are batched into chunks of about :data:`BATCH_BYTES` when sent as
fast as possible; a per-connection ticker flushes a partial batch within :data:`FLUSH_AFTER` seconds when
the log is waiting for events, and writes a heartbeat comment after :data:`HEARTBEAT_SECONDS` without
output.

Fault injection (:class:`Faults`) and pacing (:class:`Pacing`) apply per connection. ``GET /healthz`` answers
200 with JSON (the streams and their log identities), ``GET /stats`` the counters of every stream, its
``log_id`` and the log's own ``stats()`` when it has one. Plain HTTP routes (:meth:`SseServer.add_route`) serve
anything else under a path prefix, such as the order firehose's photos.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

BATCH_BYTES = 64 * 1024
"""Bytes of events gathered into one chunk when not pacing."""

FLUSH_AFTER = 0.02
"""Seconds a partial batch may wait while the log has nothing new."""

HEARTBEAT_SECONDS = 15.0
"""Seconds without output after which a heartbeat comment is sent."""

MAX_PACING_GAP = 60.0
"""Event-time gaps longer than this (or negative ones) are not waited for when pacing by event time."""

RETRY_MS = 1000
"""The ``retry:`` field sent first on every stream: clients wait at least this long before reconnecting."""


class EventLog(Protocol):
    """An ordered log of JSON events with integer offsets, like one partition of a Kafka topic."""

    topic: str
    log_id: str
    """The log's identity, a short hex string: the same for a log of the same content (so that a position
    taken from it stays valid after a restart), different for any other."""

    def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
        """Yields (offset, event_time_epoch_seconds_or_None, data_json) from `offset` on, in order; blocks
        waiting for more events when the log is live, returns when the log is finished or `stop` is set."""
        ...

    def offset_for_time(self, epoch_seconds: float) -> int:
        """The first offset with event time >= ``epoch_seconds`` (for ``?since=``)."""
        ...


@dataclass
class Faults:
    """Server-level faults, counted per connection.

    Attributes:
        drop_every: close the connection abruptly after every N events sent on it (0: never).
        stall_every: after every N events, stop sending for ``stall_seconds`` (0: never).
        stall_seconds: how long a stall lasts.
    """

    drop_every: int = 0
    stall_every: int = 0
    stall_seconds: float = 0.0


@dataclass
class Pacing:
    """How fast a connection is fed.

    Attributes:
        rate: events per second; None or 0 sends as fast as possible.
        speedup: follow the event times, sped up this many times (exclusive with ``rate``). Gaps longer than
            :data:`MAX_PACING_GAP` and negative gaps are not waited for.
    """

    rate: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if self.rate and self.speedup:
            raise ValueError("Pacing takes a rate or a speedup, not both")
        if (self.rate or 0) < 0 or (self.speedup or 0) < 0:
            raise ValueError("Pacing rate and speedup must be positive")


@dataclass
class _Stream:
    path: str
    log: EventLog
    pacing: Pacing
    faults: Faults
    id_prefix: bytes
    id_suffix: bytes
    log_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: dict[str, int] = field(
        default_factory=lambda: {"connections": 0, "active": 0, "events_sent": 0, "drops": 0, "stalls": 0}
    )

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] += n


class BadRequest(ValueError):
    """A request the server answers with 400."""


class PositionInOtherLog(ValueError):
    """A ``Last-Event-ID`` offset of another log than the one served (the server answers 409)."""


def new_log_id() -> str:
    """A fresh random log identity, for a log whose content cannot be reproduced (a live demand)."""
    return secrets.token_hex(8)


def log_identity(*parts: object) -> str:
    """A log identity derived from what determines the log's content (JSON-serialisable parts)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_since(value: str) -> float:
    """Epoch seconds from a ``since`` parameter: epoch milliseconds or an ISO-8601 date (UTC when naive).

    Raises:
        BadRequest: the value is neither.
    """
    value = value.strip()
    try:
        return float(value) / 1000.0
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(f"since={value!r} is neither epoch milliseconds nor an ISO-8601 date") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def resume_offset(log: EventLog, last_event_id: str | None, since: str | None, log_id: str | None = None) -> int:
    """The offset a request starts at: after ``Last-Event-ID``, else at ``since``, else 0.

    Args:
        log: the log served.
        last_event_id: the request's ``Last-Event-ID``.
        since: the request's ``since`` parameter.
        log_id: the identity of the log served (default: ``log.log_id``).

    Raises:
        BadRequest: the Last-Event-ID is malformed or names no position in this log's topic, or since is
            invalid.
        PositionInOtherLog: the Last-Event-ID names an offset of another log, or an offset without a log.
    """
    served = log_id if log_id is not None else getattr(log, "log_id", None)
    if last_event_id:
        try:
            assignments = json.loads(last_event_id)
        except ValueError as exc:
            raise BadRequest(f"Last-Event-ID is not JSON: {last_event_id[:200]!r}") from exc
        if not isinstance(assignments, list) or not all(isinstance(a, dict) for a in assignments):
            raise BadRequest(
                'Last-Event-ID must be a JSON array of {"topic", "partition", "offset"|"timestamp"} objects'
            )
        for assignment in assignments:
            if assignment.get("topic") != log.topic:
                continue
            offset, timestamp = assignment.get("offset"), assignment.get("timestamp")
            if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
                named = assignment.get("log")
                if named is None:
                    raise PositionInOtherLog(
                        f"offset {offset} of {log.topic} names no log; offsets count in one log only and this "
                        f"server serves log {served}: resume by event time (?since=) or from the start"
                    )
                if named != served:
                    raise PositionInOtherLog(
                        f"offset {offset} of {log.topic} is a position in log {named}, and this server serves "
                        f"log {served} (the firehose was started again over other content): resume by event "
                        "time (?since=) or from the start"
                    )
                return offset + 1
            if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
                return log.offset_for_time(timestamp / 1000.0)
            raise BadRequest(f"Last-Event-ID entry for topic {log.topic} has no valid offset or timestamp")
        raise BadRequest(f"Last-Event-ID has no entry for topic {log.topic}")
    if since:
        return log.offset_for_time(parse_since(since))
    return 0


class _Writer:
    """Batches events into HTTP chunks on one connection; shared by the handler and its ticker thread."""

    def __init__(self, sock: socket.socket, stream: _Stream) -> None:
        self.sock = sock
        self.stream = stream
        self.lock = threading.Lock()
        self.parts: list[bytes] = []
        self.size = 0
        self.pending = 0
        self.last_write = time.monotonic()
        self.last_add = self.last_write

    def _send(self, payload: bytes) -> None:
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(payload), payload))
        self.last_write = time.monotonic()

    def _flush_locked(self) -> None:
        if not self.parts:
            return
        payload = b"".join(self.parts)
        pending = self.pending
        self.parts, self.size, self.pending = [], 0, 0
        self._send(payload)
        self.stream.add("events_sent", pending)

    def add(self, record: bytes) -> None:
        with self.lock:
            self.parts.append(record)
            self.size += len(record)
            self.pending += 1
            self.last_add = time.monotonic()
            if self.size >= BATCH_BYTES:
                self._flush_locked()

    def write_now(self, payload: bytes) -> None:
        with self.lock:
            self._flush_locked()
            self._send(payload)

    def flush(self) -> None:
        with self.lock:
            self._flush_locked()

    def tick(self) -> None:
        with self.lock:
            now = time.monotonic()
            if self.parts:
                if now - self.last_add >= FLUSH_AFTER:
                    self._flush_locked()
            elif now - self.last_write >= HEARTBEAT_SECONDS:
                self._send(b":\n\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "airlake-sse/0.1"
    owner: SseServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        logger.debug("%s %s", self.address_string(), format % args)

    def _json(self, status: int, body: Any) -> None:
        payload = json.dumps(body, indent=1).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        owner = type(self).owner
        if url.path == "/healthz":
            logs = {path: stream.log_id for path, stream in sorted(owner._streams.items())}
            self._json(200, {"status": "ok", "streams": sorted(owner._streams), "logs": logs})
        elif url.path == "/stats":
            self._json(200, owner.stats)
        elif url.path in owner._streams:
            self._serve_stream(owner, owner._streams[url.path], parse_qs(url.query))
        elif (route := owner._route(url.path)) is not None:
            self._serve_route(route, url.path, parse_qs(url.query))
        else:
            self._json(404, {"error": f"no stream at {url.path}", "streams": sorted(owner._streams)})

    def _serve_route(self, route: Route, path: str, query: dict[str, list[str]]) -> None:
        try:
            status, headers, body = astuple_response(route(path, query, dict(self.headers.items())))
        except Exception:  # a broken handler answers 500; the server goes on
            logger.exception("route %s failed", path)
            status, headers, body = 500, {"Content-Type": "application/json"}, b'{"error": "internal error"}\n'
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve_stream(self, owner: SseServer, stream: _Stream, query: dict[str, list[str]]) -> None:
        try:
            since = query.get("since", [None])[-1]
            start = resume_offset(stream.log, self.headers.get("Last-Event-ID"), since, stream.log_id)
        except BadRequest as exc:
            self._json(400, {"error": str(exc)})
            return
        except PositionInOtherLog as exc:
            self._json(409, {"error": str(exc), "log": stream.log_id})
            return
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        stop = threading.Event()
        owner._register(self.connection, stop)
        stream.add("connections")
        stream.add("active")
        writer = _Writer(self.connection, stream)
        ticker_done = threading.Event()
        ticker = threading.Thread(target=_tick, args=(writer, stop, ticker_done), daemon=True)
        try:
            writer.write_now(b"retry: %d\n\n:ok\n\n" % owner.retry_ms)
            ticker.start()
            if self._send_events(stream, writer, start, stop):
                writer.write_now(b"")  # the last chunk: the stream ended cleanly
        except OSError as exc:
            logger.debug("client %s went away: %s", self.address_string(), exc)
        except Exception:
            logger.exception("stream %s failed; closing the connection", stream.path)
            _abort(self.connection)
        finally:
            stop.set()
            ticker_done.set()
            owner._unregister(self.connection)
            stream.add("active", -1)

    def _send_events(self, stream: _Stream, writer: _Writer, start: int, stop: threading.Event) -> bool:
        """Sends events until the log ends (True) or the connection is dropped or stopped (False)."""
        pacing, faults = stream.pacing, stream.faults
        rate, speedup = pacing.rate or 0.0, pacing.speedup or 0.0
        prefix, suffix = stream.id_prefix, stream.id_suffix
        began = time.monotonic()
        due = began
        previous_time: float | None = None
        for sent, (offset, event_time, data) in enumerate(stream.log.read(start, stop), start=1):
            if stop.is_set():
                return False
            if rate:
                due = began + (sent - 1) / rate
            elif speedup and event_time is not None:
                if previous_time is not None and 0.0 < event_time - previous_time <= MAX_PACING_GAP:
                    due += (event_time - previous_time) / speedup
                previous_time = event_time
            if (rate or speedup) and due > time.monotonic():
                writer.flush()
                if stop.wait(due - time.monotonic()):
                    return False
            if "\n" in data or "\r" in data:
                data = "\ndata: ".join(data.splitlines())
            writer.add(b"%s%d%s\nevent: message\ndata: %s\n\n" % (prefix, offset, suffix, data.encode()))
            if faults.drop_every and sent % faults.drop_every == 0:
                writer.flush()
                stream.add("drops")
                _abort(self.connection)
                return False
            if faults.stall_every and sent % faults.stall_every == 0:
                writer.flush()
                stream.add("stalls")
                if stop.wait(faults.stall_seconds):
                    return False
                due = time.monotonic()
                began = due - sent / rate if rate else began
        writer.flush()
        return not stop.is_set()


def _tick(writer: _Writer, stop: threading.Event, done: threading.Event) -> None:
    while not done.wait(FLUSH_AFTER):
        try:
            writer.tick()
        except OSError:
            stop.set()
            return


def _abort(sock: socket.socket) -> None:
    """Closes a connection abruptly (no last chunk), as a broken network would."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


Route = Callable[[str, Mapping[str, list[str]], Mapping[str, str]], Any]
"""A plain HTTP handler: ``(path, query, request headers)`` to an object with ``status``, ``headers`` (a dict) and
``body`` (bytes), such as :class:`sources.photos.Response`."""


def astuple_response(response: Any) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of what a :data:`Route` returned."""
    return int(response.status), dict(response.headers), bytes(response.body)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SseServer:
    """Serves event logs over SSE on a loopback port.

    Args:
        host: the address to bind (keep it on loopback).
        port: the port; 0 picks a free one (see :attr:`port`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._streams: dict[str, _Stream] = {}
        self._routes: dict[str, tuple[Route, Callable[[], Mapping[str, Any]] | None]] = {}
        self._connections: dict[socket.socket, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._serving = False
        self.retry_ms = RETRY_MS
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = _HttpServer((host, port), handler)
        self.host = host

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    def url(self, path: str = "") -> str:
        """The URL of a path on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def add_stream(self, path: str, log: EventLog, *, pacing: Pacing = Pacing(), faults: Faults = Faults()) -> None:
        """Serves ``log`` at ``path`` (for example ``/v2/stream/recentchange``).

        A log without a ``log_id`` gets a fresh random one: its positions are valid while this server runs.
        """
        if not path.startswith("/") or path in ("/healthz", "/stats"):
            raise ValueError(f"invalid stream path {path!r}")
        log_id = str(getattr(log, "log_id", None) or new_log_id())
        prefix = b'id: [{"topic":%s,"partition":0,"offset":' % json.dumps(log.topic).encode()
        suffix = b',"log":%s}]' % json.dumps(log_id).encode()
        self._streams[path] = _Stream(path, log, pacing, faults, prefix, suffix, log_id)

    def add_route(self, prefix: str, handler: Route, stats: Callable[[], Mapping[str, Any]] | None = None) -> None:
        """Answers plain ``GET`` requests for ``prefix`` and the paths under it with ``handler``; ``stats`` (if given)
        shows at ``/stats`` under ``prefix``."""
        if not prefix.startswith("/") or prefix in ("/healthz", "/stats") or prefix in self._streams:
            raise ValueError(f"invalid route prefix {prefix!r}")
        self._routes[prefix] = (handler, stats)

    def _route(self, path: str) -> Route | None:
        for prefix, (handler, _) in self._routes.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return handler
        return None

    @property
    def stats(self) -> dict[str, Any]:
        """Per path: connections, active, events_sent, drops, stalls, log_id, and the log's ``stats()`` if any."""
        result: dict[str, Any] = {}
        for path, stream in self._streams.items():
            with stream.lock:
                entry: dict[str, Any] = dict(stream.counters)
            entry["log_id"] = stream.log_id
            log_stats = getattr(stream.log, "stats", None)
            if callable(log_stats):
                log_stats = log_stats()
            if isinstance(log_stats, Mapping):
                entry["log"] = dict(log_stats)
            result[path] = entry
        for prefix, (_, route_stats) in self._routes.items():
            if route_stats is not None:
                result[prefix] = dict(route_stats())
        return result

    def start(self) -> None:
        """Serves in a background (daemon) thread."""
        self._serving = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="sse-server", daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serves in the calling thread until :meth:`stop` is called from another thread."""
        self._serving = True
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stops accepting, ends every open stream and closes the socket."""
        with self._lock:
            connections = list(self._connections.items())
        for sock, stop in connections:
            stop.set()
            _abort(sock)
        if self._serving:
            self._serving = False
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _register(self, sock: socket.socket, stop: threading.Event) -> None:
        with self._lock:
            self._connections[sock] = stop

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def __enter__(self) -> SseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_pacing_arguments(parser: argparse.ArgumentParser, *, default: str, times: str) -> None:
    """The mutually exclusive ``--rate``, ``--speedup`` and ``--max`` flags of a firehose command.

    Args:
        parser: the command's parser.
        default: what happens without any of them, for the help text.
        times: which event times ``--speedup`` follows, for the help text.
    """
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument(
        "--rate", type=float, metavar="EVENTS_PER_S", help=f"events per second per connection; 0 is --max ({default})"
    )
    speed.add_argument("--speedup", type=float, metavar="N", help=f"follow {times} sped up N times")
    speed.add_argument("--max", action="store_true", help="send as fast as possible")


def pacing_from_args(args: argparse.Namespace, default_rate: float | None) -> Pacing:
    """The :class:`Pacing` chosen by :func:`add_pacing_arguments` flags; ``default_rate`` None means no pacing.

    Raises:
        ValueError: a negative rate or a speedup that is not positive.
    """
    if args.rate is not None and args.rate < 0:
        raise ValueError("--rate must be >= 0")
    if args.max or args.rate == 0:
        return Pacing()
    if args.speedup is not None:
        if args.speedup <= 0:
            raise ValueError("--speedup must be > 0")
        return Pacing(speedup=args.speedup)
    return Pacing(rate=args.rate if args.rate is not None else default_rate)


def serve_until_stopped(server: SseServer, banner: Callable[[], str], stopped: str) -> int:
    """Runs a firehose command's server until SIGTERM or Ctrl-C: starts it, prints ``banner()``, waits, stops it.

    Returns:
        The exit status (0).
    """
    import signal

    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    previous = signal.signal(signal.SIGTERM, _on_signal)
    server.start()
    print(banner(), flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
        print(stopped, flush=True)
    return 0
