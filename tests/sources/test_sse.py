"""Tests of the resumable SSE client (sources/sse.py) against scripted servers on real loopback sockets."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from airlake.sources.recentchange import is_canary
from airlake.sources.sse import PositionNotInLog, SseError, SseEvent, SseParser, SseStream

USER_AGENT = "airlake-tests/0.1 (tests@herecomestheairplane.example) requests"
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
)

pytestmark = pytest.mark.timeout(20)


@dataclass
class Request:
    """One request the scripted server received."""

    index: int
    at: float
    path: str
    headers: dict[str, str]


Script = Callable[[Request, socket.socket, threading.Event], None]


@dataclass
class ScriptedServer:
    """A raw-socket HTTP server whose answer to each connection is written by a test function."""

    script: Script
    requests: list[Request] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, path: str = "/stream") -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            request = Request(len(self.requests), time.monotonic(), path, headers)
            self.requests.append(request)
            self.script(request, conn, self.stopped)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        self.thread.join(timeout=2)


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def take(stream: SseStream, n: int) -> list[SseEvent]:
    events: list[SseEvent] = []
    for event in stream:
        events.append(event)
        if len(events) == n:
            break
    return events


def fast_stream(url: str, **kwargs: object) -> SseStream:
    options: dict[str, object] = {
        "user_agent": USER_AGENT,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "read_timeout": 5.0,
        "connect_timeout": 2.0,
    }
    options.update(kwargs)
    return SseStream(url, **options)  # type: ignore[arg-type]


def numbered(start: int, stop: int) -> bytes:
    return b"".join(b'id: %d\ndata: {"n": %d}\n\n' % (i, i) for i in range(start, stop))


def test_wire_format_cases(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD)
        if request.index == 0:
            conn.sendall(
                b": a comment, never an event\n\n"
                b"retry: 300\n\n"
                b"id: 1\nevent: update\ndata: line one\ndata: line two\n\n"
                b"data: carries the previous id\n\n"
                b"id: 7\n\n"  # an id without data: not an event, but it moves the last event id
                b"event: ping\r\ndata: crlf\r\n\r\n"
                b"data:no space after the colon\nunknown: ignored\n\n"
                b"data\n\n"  # a data field without a value: an empty event, not yielded
                b"id: 99\ndata: cut off by the connection"
            )
        else:
            conn.sendall(b"id: 8\ndata: after the reconnect\n\n")
            stopped.wait(10)

    server = serve(script)
    stream = fast_stream(server.url())
    events = take(stream, 5)
    stream.close()

    assert [(e.id, e.event, e.data) for e in events] == [
        ("1", "update", "line one\nline two"),
        ("1", "message", "carries the previous id"),
        ("7", "ping", "crlf"),
        ("7", "message", "no space after the colon"),
        ("8", "message", "after the reconnect"),
    ]
    assert all(isinstance(e.received_at, float) and e.received_at > 0 for e in events)
    # The truncated event was discarded, so the reconnect resumes after id 7, no sooner than retry: 300.
    assert server.requests[1].headers["last-event-id"] == "7"
    assert server.requests[1].at - server.requests[0].at >= 0.28
    assert stream.stats["events"] == 5
    assert stream.stats["reconnects"] == 1
    assert stream.stats["errors"] == {"eof": 1}


def test_headers_user_agent_accept_and_resume_id(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD + numbered(5, 6))
        stopped.wait(10)

    server = serve(script)
    stream = fast_stream(server.url(), last_event_id="4", params={"since": "2018-03-07T16:16:17Z"})
    assert [e.data for e in take(stream, 1)] == ['{"n": 5}']
    stream.close()
    request = server.requests[0]
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["last-event-id"] == "4"
    assert request.path == "/stream?since=2018-03-07T16%3A16%3A17Z"
    assert stream.last_event_id == "5"


def test_user_agent_is_required() -> None:
    with pytest.raises(ValueError, match="user_agent"):
        SseStream("http://127.0.0.1:9/stream", user_agent="")


def test_resume_after_dropped_connections_loses_and_repeats_nothing(
    serve: Callable[[Script], ScriptedServer],
) -> None:
    total, per_connection = 60, 7

    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        last = request.headers.get("last-event-id")
        start = int(last) + 1 if last is not None else 0
        stop = min(total, start + per_connection)
        # Close abruptly in the middle of the next event, as a broken network would.
        conn.sendall(SSE_HEAD + b"retry: 10\n\n" + numbered(start, stop) + b'id: %d\ndata: {"n"' % stop)

    server = serve(script)
    stream = fast_stream(server.url())
    events = take(stream, total)
    stream.close()

    assert [json.loads(e.data)["n"] for e in events] == list(range(total))
    assert [e.id for e in events] == [str(i) for i in range(total)]
    resumed = [r.headers.get("last-event-id") for r in server.requests]
    assert resumed[0] is None
    assert resumed[1:] == [str(i) for i in range(per_connection - 1, total - 1, per_connection)]
    assert stream.stats["reconnects"] == len(server.requests) - 1


def test_429_with_retry_after_then_503_then_recovery(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        if request.index == 0:
            body = b"slow down"
            conn.sendall(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (len(body), body)
            )
        elif request.index == 1:
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            conn.sendall(SSE_HEAD + numbered(0, 3))
            stopped.wait(10)

    server = serve(script)
    stream = fast_stream(server.url())
    events = take(stream, 3)
    stream.close()

    assert [e.id for e in events] == ["0", "1", "2"]
    assert server.requests[1].at - server.requests[0].at >= 0.95  # Retry-After: 1 is the minimum delay
    assert stream.stats["errors"] == {"http_429": 1, "http_503": 1}


def test_read_timeout_reconnects(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        last = request.headers.get("last-event-id")
        start = int(last) + 1 if last is not None else 0
        conn.sendall(SSE_HEAD + numbered(start, start + 2))
        stopped.wait(10)  # stall far beyond the client's read timeout

    server = serve(script)
    stream = fast_stream(server.url(), read_timeout=0.4)
    started = time.monotonic()
    events = take(stream, 6)
    stream.close()

    assert [e.id for e in events] == [str(i) for i in range(6)]
    assert stream.stats["errors"].get("read_timeout") == 2
    assert time.monotonic() - started < 5


def test_404_raises(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        body = b'{"error": "no such stream"}'
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = serve(script)
    with pytest.raises(SseError, match="HTTP 404.*no such stream"):
        take(fast_stream(server.url()), 1)
    assert len(server.requests) == 1


def test_wrong_content_type_raises(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi")

    server = serve(script)
    with pytest.raises(SseError, match="text/html"):
        take(fast_stream(server.url()), 1)


def test_retries_exhausted_raise(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    server = serve(script)
    with pytest.raises(SseError, match="3 consecutive failures"):
        take(fast_stream(server.url(), max_retries=2), 1)
    assert len(server.requests) == 3


def test_connection_refused_is_retried_then_raises() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe is closed
    stream = fast_stream(f"http://127.0.0.1:{port}/stream", max_retries=1)
    with pytest.raises(SseError, match="2 consecutive failures"):
        take(stream, 1)
    assert stream.stats["errors"] == {"connection": 2}


def test_canary_events_are_dropped(serve: Callable[[Script], ScriptedServer]) -> None:
    canary = {"meta": {"domain": "canary", "id": "c1"}, "wiki": "canarywiki"}
    edit = {"meta": {"domain": "en.wikipedia.org", "id": "e1"}, "comment": "about a canary"}
    payloads = [
        json.dumps(edit),
        json.dumps(canary),
        json.dumps(canary, separators=(",", ":")),
        '{"meta": {"domain": "canary", "id": "broken"',  # malformed: passes through to be dead-lettered
        json.dumps({**edit, "comment": '"canary"'}),
    ]

    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        body = b"".join(b"id: %d\ndata: %s\n\n" % (i, p.encode()) for i, p in enumerate(payloads))
        conn.sendall(SSE_HEAD + body)
        stopped.wait(10)

    server = serve(script)
    stream = fast_stream(server.url(), drop=is_canary)
    events = take(stream, 3)
    stream.close()
    assert [e.id for e in events] == ["0", "3", "4"]
    assert stream.stats["dropped"] == 2
    assert stream.stats["events"] == 3


def test_is_canary() -> None:
    def event(data: str) -> SseEvent:
        return SseEvent(None, "message", data, 0.0)

    assert is_canary(event('{"meta": {"domain": "canary"}}'))
    assert not is_canary(event('{"meta": {"domain": "www.wikidata.org"}}'))
    assert not is_canary(event('{"meta": {"domain": "canary"'))
    assert not is_canary(event('["canary"]'))
    assert not is_canary(event('{"meta": "canary"}'))


def test_close_from_another_thread_unblocks_iteration(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD + numbered(0, 1))
        stopped.wait(15)  # then nothing: the reader blocks in recv

    server = serve(script)
    stream = fast_stream(server.url(), read_timeout=30.0)
    received: list[SseEvent] = []
    first = threading.Event()

    def consume() -> None:
        for event in stream:
            received.append(event)
            first.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert first.wait(5)
    time.sleep(0.2)  # let the reader block waiting for more
    closed_at = time.monotonic()
    stream.close()
    reader.join(timeout=3)
    assert not reader.is_alive()
    assert time.monotonic() - closed_at < 1.0
    assert [e.id for e in received] == ["0"]
    assert stream.closed
    assert len(server.requests) == 1  # closing does not reconnect


def test_close_during_backoff_ends_iteration(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n")

    server = serve(script)
    stream = fast_stream(server.url())
    threading.Timer(0.3, stream.close).start()
    started = time.monotonic()
    assert list(stream) == []
    assert time.monotonic() - started < 2.0
    assert len(server.requests) == 1


# ---- input limits, content decoding, positions in another log ----------------------------------------


def parse_pieces(pieces: list[bytes], **kwargs: int) -> tuple[list[tuple], SseParser]:
    parser = SseParser(**kwargs)
    out: list[tuple] = []
    for piece in pieces:
        out.extend(parser.feed(piece))
    return out, parser


def test_parser_line_ends_bom_and_split_pieces() -> None:
    body = b"\xef\xbb\xbfid: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\rdata: c\n\n: comment\n\nid: 3\n\nid: 4\ndata: cut"
    expected = [("1", "message", "a", None), ("2", "message", "b", None), ("2", "message", "c", None)]
    whole, parser = parse_pieces([body])
    assert whole == expected
    assert parser.last_event_id == "3"  # the id-only block moved it; the incomplete block did not
    # Byte by byte (a CR and its LF, and the byte order mark, split across reads): the same events.
    split, parser = parse_pieces([body[i : i + 1] for i in range(len(body))])
    assert split == expected
    assert parser.last_event_id == "3"


def test_parser_bounds_lines_and_events_and_goes_on() -> None:
    big_line = b"id: 1\ndata: " + b"x" * 5000 + b"\ndata: more\n\n"
    many_lines = b"id: 2\n" + b"data: abc\n" * 1000 + b"\n"
    comment = b": " + b"c" * 5000 + b"\n\n"
    after = b"id: 3\ndata: fine\n\n"
    body = big_line + many_lines + comment + after
    for pieces in ([body], [body[i : i + 700] for i in range(0, len(body), 700)]):
        events, parser = parse_pieces(pieces, max_line_bytes=3000, max_event_bytes=3000)
        assert [(e[0], e[3]) for e in events] == [
            ("1", "SSE line of 5,006 bytes exceeds max_line_bytes=3,000"),
            ("2", "SSE event of 3,999 bytes exceeds max_event_bytes=3,000"),
            ("3", None),
        ]
        assert events[0][2] == "x" * 1024 and events[1][2].startswith("abc\nabc") and len(events[1][2]) <= 1024
        assert events[2][2] == "fine"
        assert parser.last_event_id == "3"


def take_traced(url: str, count: int) -> tuple[SseStream, list[SseEvent], int]:
    """The first ``count`` events of ``url``, and the peak of memory traced while reading them."""
    tracemalloc.start()
    try:
        stream = fast_stream(url)
        events = take(stream, count)
        stream.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return stream, events, peak


def test_a_10_mb_line_is_an_error_event_in_bounded_memory(serve: Callable[[Script], ScriptedServer]) -> None:
    piece = b"x" * 65536
    pieces = 10 * 1024 * 1024 // len(piece)

    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(SSE_HEAD + b"id: 0\ndata: ")
        for _ in range(pieces):  # 10 MB without a newline
            conn.sendall(piece)
        conn.sendall(b"\n\n" + numbered(1, 4))
        stopped.wait(10)

    server = serve(script)
    stream, events, peak = take_traced(server.url(), 4)
    first = events[0]
    assert first.id == "0"
    assert first.error == f"SSE line of {pieces * len(piece) + 6:,} bytes exceeds max_line_bytes=1,048,576"
    assert first.data == "x" * 1024
    assert [(e.id, e.data, e.error) for e in events[1:]] == [(str(i), f'{{"n": {i}}}', None) for i in (1, 2, 3)]
    assert stream.stats["oversized"] == 1 and stream.stats["events"] == 4
    assert peak < 4 * 1024 * 1024, f"peak {peak:,} bytes"


def gzip_head(encoding: bytes = b"gzip") -> bytes:
    return SSE_HEAD.replace(b"Cache-Control", b"Content-Encoding: %s\r\nCache-Control" % encoding)


def test_gzip_and_deflate_bodies_are_decoded(serve: Callable[[Script], ScriptedServer]) -> None:
    body = numbered(0, 500)

    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        if request.path.endswith("gzip"):
            # Two gzip members, sent in small pieces as a stream would arrive.
            payload = gzip.compress(body[:3000]) + gzip.compress(body[3000:])
            conn.sendall(gzip_head())
        else:
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # raw deflate, as some servers send it
            payload = packer.compress(body) + packer.flush()
            conn.sendall(gzip_head(b"deflate"))
        for i in range(0, len(payload), 100):
            conn.sendall(payload[i : i + 100])
        stopped.wait(10)

    server = serve(script)
    for path in ("/gzip", "/deflate"):
        stream = fast_stream(server.url(path))
        events = take(stream, 500)
        stream.close()
        assert [e.id for e in events] == [str(i) for i in range(500)]
        assert events[-1].data == '{"n": 499}'
    assert all(r.headers["accept-encoding"] == "identity" for r in server.requests)


def test_a_gzip_bomb_is_read_in_bounded_memory(serve: Callable[[Script], ScriptedServer]) -> None:
    packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    bomb = packer.compress(b"id: 0\ndata: ")
    zeros = b"0" * (1024 * 1024)
    bomb += b"".join(packer.compress(zeros) for _ in range(64))  # 64 MB in about 64 KB
    bomb += packer.compress(b"\n\n" + numbered(1, 3)) + packer.flush()
    assert len(bomb) < 200_000

    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(gzip_head() + bomb)
        stopped.wait(10)

    server = serve(script)
    _, events, peak = take_traced(server.url(), 3)
    assert events[0].error is not None and "max_line_bytes" in events[0].error
    assert [e.data for e in events[1:]] == ['{"n": 1}', '{"n": 2}']
    assert peak < 4 * 1024 * 1024, f"peak {peak:,} bytes"


def test_other_content_encodings_are_refused(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(gzip_head(b"br") + b"whatever")

    server = serve(script)
    with pytest.raises(SseError, match="Content-Encoding 'br'"):
        take(fast_stream(server.url()), 1)


def test_409_raises_position_not_in_log(serve: Callable[[Script], ScriptedServer]) -> None:
    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        body = json.dumps({"error": "offset 5 is a position in log aaaa; this server serves log bbbb", "log": "bbbb"})
        conn.sendall(
            b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body.encode())
        )

    server = serve(script)
    position = '[{"topic":"t","partition":0,"offset":5,"log":"aaaa"}]'
    with pytest.raises(PositionNotInLog, match="does not hold position.*serves log bbbb") as caught:
        take(fast_stream(server.url(), last_event_id=position), 1)
    assert isinstance(caught.value, SseError)
    assert (caught.value.position, caught.value.served_log) == (position, "bbbb")
    assert len(server.requests) == 1  # not retried


def test_409_with_resume_since_goes_on_by_event_time(serve: Callable[[Script], ScriptedServer]) -> None:
    conflict = json.dumps({"error": "offset 5 is a position in log aaaa; this server serves log bbbb", "log": "bbbb"})

    def script(request: Request, conn: socket.socket, stopped: threading.Event) -> None:
        if "last-event-id" in request.headers:
            conn.sendall(
                b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(conflict), conflict.encode())
            )
            return
        conn.sendall(SSE_HEAD + numbered(7, 9))
        stopped.wait(5)

    server = serve(script)
    position = '[{"topic":"t","partition":0,"offset":5,"log":"aaaa"}]'
    stream = fast_stream(server.url(), last_event_id=position, resume_since=lambda: "2026-12-03T10:00:00.000Z")
    assert [e.data for e in take(stream, 2)] == ['{"n": 7}', '{"n": 8}']
    stream.close()
    assert stream.stats["log_changes"] == 1
    assert "since=2026-12-03T10%3A00%3A00.000Z" in server.requests[1].path  # by event time, no position
    assert "last-event-id" not in server.requests[1].headers
