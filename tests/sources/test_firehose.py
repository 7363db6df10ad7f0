"""Tests of the SSE server (sources/sse_server.py) and the recentchange replay firehose (sources/firehose.py)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from airlake.sources import sse_server
from airlake.sources.firehose import (
    DEFAULT_SOURCE_DIR,
    STREAM_PATH,
    TOPIC,
    FaultyLog,
    RecordedLog,
    SourceError,
    build_log,
    event_time,
    resolve_sources,
)
from airlake.sources.sse import PositionNotInLog, SseError, SseEvent, SseStream
from airlake.sources.sse_server import (
    BadRequest,
    EventLog,
    Faults,
    Pacing,
    PositionInOtherLog,
    SseServer,
    resume_offset,
)
from tests.conftest import SHARED_DATA

WIKIMEDIA = SHARED_DATA
WIKIDATA_FILE = WIKIMEDIA / "recentchange-2018-03-07-wikidata.jsonl"
MODERN_FILE = WIKIMEDIA / "recentchange-2026-modern-samples.jsonl"
REPO = Path(__file__).resolve().parents[2]
USER_AGENT = "airlake-tests/0.1 (tests@herecomestheairplane.example) requests"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


def file_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


WIKIDATA = file_events(WIKIDATA_FILE)
WIKIDATA_TIMES = [event_time(e) for e in WIKIDATA]


@pytest.fixture
def serve() -> Iterator:
    servers: list[SseServer] = []

    def start(log: EventLog, *, pacing: Pacing = Pacing(), faults: Faults = Faults(), retry_ms: int = 50) -> SseServer:
        server = SseServer()
        server.retry_ms = retry_ms
        server.add_stream(STREAM_PATH, log, pacing=pacing, faults=faults)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def client(url: str, **kwargs: object) -> SseStream:
    options: dict[str, object] = {"user_agent": USER_AGENT, "backoff_initial": 0.01, "read_timeout": 5.0}
    options.update(kwargs)
    return SseStream(url, **options)  # type: ignore[arg-type]


def take(stream: SseStream, n: int) -> list[SseEvent]:
    events: list[SseEvent] = []
    if n == 0:
        return events
    for event in stream:
        events.append(event)
        if len(events) == n:
            break
    stream.close()
    return events


def offset_of(event: SseEvent) -> int:
    assert event.id is not None
    (assignment,) = json.loads(event.id)
    assert assignment["topic"] == TOPIC and assignment["partition"] == 0
    assert re.fullmatch(r"[0-9a-f]{16}", assignment["log"])
    return assignment["offset"]


def test_replay_as_fast_as_possible_is_the_file_in_order(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE))
    events = take(client(server.url(STREAM_PATH)), len(WIKIDATA))
    ids = [json.loads(e.data)["meta"]["id"] for e in events]
    assert len(events) == 3818
    assert ids == [e["meta"]["id"] for e in WIKIDATA]
    assert len(set(ids)) == 3818
    assert [offset_of(e) for e in events] == list(range(3818))
    assert events[0].data == WIKIDATA_FILE.read_text(encoding="utf-8").splitlines()[0]  # served verbatim
    assert server.stats[STREAM_PATH]["events_sent"] == 3818


def test_dropped_connections_still_deliver_every_event_once(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE), faults=Faults(drop_every=500))
    stream = client(server.url(STREAM_PATH))
    events = take(stream, len(WIKIDATA))
    ids = [json.loads(e.data)["meta"]["id"] for e in events]
    assert len(set(ids)) == 3818
    assert ids == [e["meta"]["id"] for e in WIKIDATA]
    assert stream.stats["reconnects"] == 7
    assert server.stats[STREAM_PATH]["drops"] == 7
    assert server.stats[STREAM_PATH]["connections"] == 8


def test_stalls_beyond_the_read_timeout_cause_exact_resumes(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE), faults=Faults(stall_every=1000, stall_seconds=1.5))
    stream = client(server.url(STREAM_PATH), read_timeout=0.4)
    events = take(stream, len(WIKIDATA))
    assert [json.loads(e.data)["meta"]["id"] for e in events] == [e["meta"]["id"] for e in WIKIDATA]
    assert stream.stats["errors"] == {"read_timeout": 3}
    assert server.stats[STREAM_PATH]["stalls"] == 3

    short = serve(build_log(WIKIDATA_FILE), faults=Faults(stall_every=1000, stall_seconds=0.2))
    stream = client(short.url(STREAM_PATH), read_timeout=2.0)
    started = time.monotonic()
    assert len(take(stream, len(WIKIDATA))) == 3818
    assert time.monotonic() - started >= 0.55  # three stalls of 0.2 s, no reconnect
    assert stream.stats["errors"] == {} and stream.stats["reconnects"] == 0


def test_retry_field_is_sent_first_and_slows_reconnects(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE), faults=Faults(drop_every=1000), retry_ms=400)
    with requests.get(server.url(STREAM_PATH), stream=True, timeout=5) as response:
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        head = response.raw.read1(64)
    assert head.startswith(b"retry: 400\n\n:ok\n\n")
    started = time.monotonic()
    take(client(server.url(STREAM_PATH)), 2500)
    assert time.monotonic() - started >= 0.75  # two reconnects, each at least 400 ms


def test_since_in_milliseconds_and_iso(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE))
    times = [event_time(e) for e in WIKIDATA]
    target = times[2000]
    expected = next(i for i, t in enumerate(times) if t is not None and t >= target)
    assert 0 < expected <= 2000
    url = server.url(STREAM_PATH)
    (by_ms,) = take(client(url, params={"since": str(int(target * 1000))}), 1)
    iso = datetime.fromtimestamp(target, UTC).isoformat().replace("+00:00", "Z")
    (by_iso,) = take(client(url, params={"since": iso}), 1)
    assert offset_of(by_ms) == offset_of(by_iso) == expected
    assert json.loads(by_ms.data)["meta"]["id"] == WIKIDATA[expected]["meta"]["id"]
    response = requests.get(url, params={"since": "yesterday"}, timeout=5)
    assert response.status_code == 400
    assert "since" in response.json()["error"]


def test_last_event_id_resume_is_exact(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE))
    url = server.url(STREAM_PATH)
    first = take(client(url), 1000)
    rest = take(client(url, last_event_id=first[-1].id), len(WIKIDATA) - 1000)
    ids = [json.loads(e.data)["meta"]["id"] for e in first + rest]
    assert ids == [e["meta"]["id"] for e in WIKIDATA]


def test_malformed_last_event_id_is_a_400(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE))
    url = server.url(STREAM_PATH)
    for bad in ("not json", '{"offset": 3}', '[{"topic": "other.topic", "partition": 0, "offset": 3}]'):
        response = requests.get(url, headers={"Last-Event-ID": bad}, timeout=5)
        assert response.status_code == 400, bad
        assert "Last-Event-ID" in response.json()["error"]
    with pytest.raises(SseError, match="HTTP 400.*Last-Event-ID"):
        take(client(url, last_event_id="garbage"), 1)


def test_resume_offset_rules() -> None:
    log = build_log(WIKIDATA_FILE)
    assert resume_offset(log, None, None) == 0
    position = [{"topic": TOPIC, "partition": 0, "offset": 41, "log": log.log_id}]
    assert resume_offset(log, json.dumps(position), "0") == 42
    # An offset names a place in one log: of another log, or of no named log, it is refused (HTTP 409).
    for other in ({**position[0], "log": "0" * 16}, {"topic": TOPIC, "partition": 0, "offset": 41}):
        with pytest.raises(PositionInOtherLog, match=f"serves log {log.log_id}"):
            resume_offset(log, json.dumps([other]), None)
    wikimedia_style = json.dumps(
        [{"topic": TOPIC, "partition": 0, "timestamp": 1520439377000}, {"topic": "codfw.x", "partition": 0}]
    )
    assert resume_offset(log, wikimedia_style, None) == 0
    assert resume_offset(log, None, "2100-01-01T00:00:00") == len(WIKIDATA)
    with pytest.raises(BadRequest):
        resume_offset(log, "[1, 2]", None)


def test_health_stats_and_unknown_path(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE))
    health = requests.get(server.url("/healthz"), timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert requests.get(server.url("/v2/stream/nothing"), timeout=5).status_code == 404
    stats = requests.get(server.url("/stats"), timeout=5).json()[STREAM_PATH]
    assert stats["log"]["real_events"] == 3818
    assert stats["connections"] == 0
    log_id = build_log(WIKIDATA_FILE).log_id
    assert health.json()["logs"] == {STREAM_PATH: log_id}
    assert stats["log_id"] == log_id


# ---- positions bound to their log -----------------------------------------------------------------


def test_log_identity_follows_the_content(tmp_path: Path) -> None:
    base = build_log(WIKIDATA_FILE)
    assert re.fullmatch(r"[0-9a-f]{16}", base.log_id)
    assert build_log(WIKIDATA_FILE).log_id == base.log_id  # the same content: the same log, after a restart too
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(WIKIDATA_FILE.read_bytes())
    assert build_log(copy).log_id == base.log_id  # the bytes count, not the path
    copy.write_bytes(WIKIDATA_FILE.read_bytes() + MODERN_FILE.read_bytes())
    others = {
        build_log(copy).log_id,
        build_log(WIKIDATA_FILE, topic="other.topic").log_id,
        build_log(WIKIDATA_FILE, duplicate_every=300).log_id,
        build_log(WIKIDATA_FILE, duplicate_every=301).log_id,
        build_log(WIKIDATA_FILE, loop=True, start_time=1e9).log_id,
        build_log(WIKIDATA_FILE, loop=True, start_time=1e9 + 1).log_id,
        build_log(WIKIDATA_FILE, loop=True, start_time=1e9, events_per_second=300).log_id,
    }
    assert len(others) == 7 and base.log_id not in others
    assert build_log(WIKIDATA_FILE, loop=True, start_time=1e9).log_id in others  # a given start: reproducible


def test_restart_over_the_same_log_resumes_exactly_and_over_another_answers_409(serve) -> None:
    first = serve(build_log(WIKIDATA_FILE))
    head = take(client(first.url(STREAM_PATH)), 300)
    first.stop()
    # The same recording served again is the same log: the old position is valid and resumes right after it.
    again = serve(build_log(WIKIDATA_FILE))
    (following,) = take(client(again.url(STREAM_PATH), last_event_id=head[-1].id), 1)
    assert offset_of(following) == 300
    assert json.loads(following.data) == WIKIDATA[300]
    # Another log (faults inserted: other offsets) refuses it with 409 and names the log it serves.
    other_log = build_log(WIKIDATA_FILE, duplicate_every=7)
    other = serve(other_log)
    answer = requests.get(other.url(STREAM_PATH), headers={"Last-Event-ID": head[-1].id}, timeout=5)
    assert answer.status_code == 409
    assert answer.json()["log"] == other_log.log_id
    assert "is a position in log" in answer.json()["error"]
    with pytest.raises(PositionNotInLog) as caught:
        take(client(other.url(STREAM_PATH), last_event_id=head[-1].id), 1)
    assert caught.value.served_log == other_log.log_id
    # Timestamps (the Wikimedia form) and ?since= still resume by time.
    at = int(WIKIDATA_TIMES[300] * 1000)
    by_time = json.dumps([{"topic": TOPIC, "partition": 0, "timestamp": at}])
    (resumed,) = take(client(other.url(STREAM_PATH), last_event_id=by_time), 1)
    assert offset_of(resumed) == other_log.offset_for_time(at / 1000)
    (since,) = take(client(other.url(STREAM_PATH), params={"since": str(at)}), 1)
    assert since.id == resumed.id


def test_loop_at_a_rate_keeps_event_times_at_the_wall_clock(serve) -> None:
    rate = 300.0
    log = build_log(loop=True, events_per_second=rate)
    n = len(log.base) if isinstance(log, FaultyLog) else len(log)
    # The timeline's mean rate is the serving rate: over several passes it never runs ahead of a client
    # served at that rate from the start, and lags it by at most a few seconds.
    drift = [log.time_at(o) - (log.started_at + o / rate) for o in range(0, 3 * n, 7)]
    assert max(drift) < 0.5 and min(drift) > -4.0
    server = serve(log, pacing=Pacing(rate=rate))
    events = take(client(server.url(STREAM_PATH)), 600)  # two seconds at the rate
    lags = [e.received_at - event_time(json.loads(e.data)) for e in events]
    assert min(lags) > -1.0, min(lags)  # never ahead of the wall clock
    assert max(lags) < 5.0, max(lags)
    # The recorded pace (--speedup, --max) is kept without a rate.
    recorded = build_log(loop=True, start_time=log.started_at)
    assert recorded.time_at(n) - recorded.time_at(0) > 2 * (log.time_at(n) - log.time_at(0))


def test_rate_pacing_is_roughly_honoured(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE), pacing=Pacing(rate=200))
    stream = client(server.url(STREAM_PATH))
    count, started = 0, None
    for _ in stream:
        now = time.monotonic()
        started = started or now
        if now - started >= 1.0:
            break
        count += 1
    stream.close()
    assert 100 <= count <= 400


def test_speedup_follows_event_times(serve) -> None:
    # The first 100 events span about 8 recorded seconds; sped up 20 times that is about 0.4 s.
    times = [event_time(e) for e in WIKIDATA[:100]]
    span = max(times) - min(times)
    assert span >= 4
    server = serve(build_log(WIKIDATA_FILE), pacing=Pacing(speedup=20))
    started = time.monotonic()
    take(client(server.url(STREAM_PATH)), 100)
    elapsed = time.monotonic() - started
    assert span / 20 * 0.5 <= elapsed <= span / 20 * 3 + 0.5


def test_loop_mode_gives_fresh_ids_and_increasing_times(serve) -> None:
    started = time.time()
    log = build_log(WIKIDATA_FILE, loop=True)
    server = serve(log)
    n = len(WIKIDATA)
    events = [json.loads(e.data) for e in take(client(server.url(STREAM_PATH)), 2 * n + 50)]
    ids = [e["meta"]["id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & {e["meta"]["id"] for e in WIKIDATA}
    assert [e["meta"]["offset"] for e in events] == list(range(2 * n + 50))
    times = [event_time(e) for e in events]
    assert abs(times[0] - started) < 5  # the first pass is rebased to the wall clock
    for k in (0, 1):  # every event of a pass is later than every event of the previous one
        assert min(times[(k + 1) * n : (k + 2) * n]) > max(times[k * n : (k + 1) * n])
    for event, original in zip(events[n : 2 * n], WIKIDATA, strict=True):
        assert event["timestamp"] == int(event_time(event))
        assert event["title"] == original["title"] and event["meta"]["uri"] == original["meta"]["uri"]
    # Deterministic within a log identity: the same start, loop number and original id give the same fresh id;
    # a loop started at another time is another log, whose ids are all new.
    again = build_log(WIKIDATA_FILE, loop=True, start_time=log.started_at)
    assert again.log_id == log.log_id
    assert json.loads(next(iter(again.read(n + 5, threading.Event())))[2])["meta"]["id"] == ids[n + 5]
    later = build_log(WIKIDATA_FILE, loop=True, start_time=log.started_at + 60)
    assert later.log_id != log.log_id
    later_ids = [
        json.loads(data)["meta"]["id"] for _, _, data in itertools.islice(later.read(0, threading.Event()), 2 * n)
    ]
    assert not set(later_ids) & set(ids)


def test_loop_mode_since_and_resume(serve) -> None:
    log = build_log(WIKIDATA_FILE, loop=True)
    n = len(WIKIDATA)
    target = log.time_at(n + 123)
    offset = log.offset_for_time(target)
    assert log.time_at(offset) >= target and offset <= n + 123 and log.time_at(offset - 1) < target
    server = serve(log)
    position = json.dumps([{"topic": TOPIC, "offset": n, "log": log.log_id}])
    (resumed,) = take(client(server.url(STREAM_PATH), last_event_id=position), 1)
    assert offset_of(resumed) == n + 1


FAULTS = {"malformed_every": 100, "incomplete_every": 250, "duplicate_every": 300}


def test_fault_counts_are_deterministic_and_reported(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE, **FAULTS))
    stats = requests.get(server.url("/stats"), timeout=5).json()[STREAM_PATH]["log"]
    assert stats["real_events"] == 3818
    assert stats["faults_injected"] == {"malformed": 38, "incomplete": 15, "duplicate": 12}
    assert stats["total_events"] == 3818 + 38 + 15 + 12

    events = take(client(server.url(STREAM_PATH)), stats["total_events"])
    assert [offset_of(e) for e in events] == list(range(stats["total_events"]))
    kinds: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    real: list[str] = []
    for event in events:
        try:
            obj = json.loads(event.data)
        except ValueError:
            kinds["malformed"] += 1
            continue
        ids[obj["meta"]["id"]] += 1
        if "dt" not in obj["meta"]:
            assert "wiki" not in obj
            kinds["incomplete"] += 1
        else:
            real.append(obj["meta"]["id"])
    assert kinds == {"malformed": 38, "incomplete": 15}
    assert sum(c - 1 for c in ids.values()) == 12  # the duplicates repeat a meta.id
    assert len(ids) == 3818 + 15
    # The real events are still all there, in file order.
    assert len(real) == 3818 + 12
    assert list(dict.fromkeys(real)) == [e["meta"]["id"] for e in WIKIDATA]
    # Faults sit right after the real event they copy: offset 99 is real event 99, then the malformed copy.
    assert events[100].data == events[99].data[: len(events[99].data) // 2]


def test_fault_offsets_resume_exactly_at_every_kind_of_event(serve) -> None:
    log = build_log(WIKIDATA_FILE, **FAULTS)
    assert isinstance(log, FaultyLog)
    server = serve(log)
    url = server.url(STREAM_PATH)
    full = take(client(url), 900)
    for cut in (98, 99, 100, 251, 252, 301, 302, 303, 600, 601, 602, 603, 604):
        (following,) = take(client(url, last_event_id=full[cut].id), 1)
        assert offset_of(following) == cut + 1
        assert following.data == full[cut + 1].data, cut


def test_heartbeats_when_the_log_is_idle(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse_server, "HEARTBEAT_SECONDS", 0.2)

    class LiveLog:
        topic = "test.topic"

        def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
            yield 0, None, '{"n": 0}'
            stop.wait(15)  # a live log with nothing new

        def offset_for_time(self, epoch_seconds: float) -> int:
            return 0

    server = serve(LiveLog())
    received = b""
    with requests.get(server.url(STREAM_PATH), stream=True, timeout=5) as response:
        deadline = time.monotonic() + 3
        while received.count(b":\n\n") < 2 and time.monotonic() < deadline:
            received += response.raw.read1(1024)
    assert b'data: {"n": 0}\n\n' in received  # the partial batch was flushed while the log waited
    assert received.count(b":\n\n") >= 2


def test_stop_ends_open_streams_promptly(serve) -> None:
    server = serve(build_log(WIKIDATA_FILE), pacing=Pacing(rate=5))
    stream = client(server.url(STREAM_PATH))
    done = threading.Event()
    got: list[SseEvent] = []

    def consume() -> None:
        try:
            for event in stream:
                got.append(event)
        except SseError:
            pass
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.5)
    started = time.monotonic()
    server.stop()
    stream.close()
    assert done.wait(3)
    assert time.monotonic() - started < 3
    assert 1 <= len(got) <= 10


def test_sources_files_directories_and_schemas(tmp_path: Path) -> None:
    assert resolve_sources(None) == sorted(DEFAULT_SOURCE_DIR.glob("*.jsonl"))
    assert DEFAULT_SOURCE_DIR == WIKIMEDIA
    default = RecordedLog()
    assert len(default) == 3818 + 82 + 2
    assert resolve_sources([WIKIMEDIA, MODERN_FILE])[-1] == MODERN_FILE
    with pytest.raises(SourceError, match="does not exist"):
        resolve_sources([tmp_path / "missing.jsonl"])
    with pytest.raises(SourceError, match="no .jsonl"):
        resolve_sources(tmp_path)
    # The 2026 samples keep their file order, even though the second event is older.
    modern = RecordedLog(MODERN_FILE)
    stop = threading.Event()
    served = list(modern.read(0, stop))
    assert [json.loads(d)["wiki"] for _, _, d in served] == ["enwiki", "commonswiki"]
    assert served[0][1] == datetime(2026, 9, 8, 0, 24, 20, 990000, tzinfo=UTC).timestamp()
    assert served[1][1] is not None and served[1][1] < served[0][1]
    assert modern.offset_for_time(served[1][1]) == 0  # the first event at or after that time
    # Both schema variants survive a loop rewrite with their own date style.
    log = RecordedLog([WIKIDATA_FILE, MODERN_FILE], loop=True)
    reader = log.read(3817, stop)
    legacy, modern_dt = json.loads(next(reader)[2]), json.loads(next(reader)[2])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", legacy["meta"]["dt"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", modern_dt["meta"]["dt"])
    assert modern_dt["$schema"] == "/mediawiki/recentchange/1.0.0"
    # The 8-year jump between the recordings is not kept in loop mode.
    assert 0 <= event_time(modern_dt) - event_time(legacy) < 60


def test_cli_serves_as_a_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "airlake", "firehose", "serve", "--port", "0", "--max",
         "--source", str(WIKIDATA_FILE), "--malformed-every", "100"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v2/stream/recentchange)", line)
        assert match, line
        events = take(client(match.group(1)), 500)
        assert len(events) == 500
        stats = requests.get(match.group(1).replace(STREAM_PATH, "/stats"), timeout=5).json()
        assert stats[STREAM_PATH]["log"]["faults_injected"]["malformed"] == 38
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "firehose stopped" in out


def test_cli_reports_a_missing_source(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airlake", "firehose", "serve", "--port", "0", "--source", str(tmp_path / "x.jsonl")],
        cwd=tmp_path, capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert result.returncode == 2
    assert "does not exist" in result.stdout + result.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "airlake", "firehose", "serve", "--help"],
        cwd=tmp_path, capture_output=True, text=True, timeout=15,
    ).stdout  # fmt: skip
    assert "--max" in help_text and "--drop-every" in help_text
