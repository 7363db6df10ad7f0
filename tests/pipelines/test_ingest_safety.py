"""What an operator does by mistake: two writers at once, a paused writer, a killed one, a table dropped underneath."""

from __future__ import annotations

import os
import signal
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airlake.processes import clean_env
from tests.conftest import RECORDING_2018
from tests.pipelines.test_ingest import RECORDED, catalog_of
from tests.procs import Firehose, Process, airlake_command, lake_stats

pytestmark = pytest.mark.integration

TTL = "4"  # seconds: the writer lease expires this long after its holder's last heartbeat


def ingest(state: Path, log: Path, url: str, *args: str, ttl: str = TTL) -> Process:
    env = clean_env(AIRLAKE__PIPELINE__LEASE_TTL_SECONDS=ttl)
    command = airlake_command(state, "ingest", "--sources", "recentchange", "--recentchange-url", url, *args)
    return Process(command, log, env=env)


def committed_rows(state: Path) -> int:
    try:
        snapshot = catalog_of(state).load_table("raw.recentchange").current_snapshot()
    except Exception:  # noqa: BLE001 - the table appears with the first writer
        return 0
    return int(snapshot.summary["total-records"]) if snapshot is not None else 0


def wait_for_rows(state: Path, process: Process, at_least: int = 1, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = committed_rows(state)
        if rows >= at_least:
            return rows
        assert process.proc.poll() is None, process.output()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"no commit within {timeout} s:\n{process.output()[-3000:]}")


def assert_exactly_once(state: Path) -> None:
    stats = lake_stats(state)
    assert stats["raw.recentchange"]["rows"] == RECORDED, stats["raw.recentchange"]
    assert stats["raw.recentchange"]["distinct_ids"] == RECORDED, stats["raw.recentchange"]


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_two_ingests_started_at_once_write_every_event_once(tmp_path: Path, attempt: int):
    state = tmp_path / "state"
    fh = Firehose(state, "serve", "--rate", "500", "--source", str(RECORDING_2018), log=tmp_path / "firehose.log")
    try:
        first = ingest(state, tmp_path / "a.log", fh.url, "--stop-after-idle", "4", "--commit-interval", "1")
        second = ingest(state, tmp_path / "b.log", fh.url, "--stop-after-idle", "4", "--commit-interval", "1")
        codes = (first.wait(300), second.wait(300))
    finally:
        fh.kill()
    assert sorted(codes) == [0, 1], (codes, first.output()[-2000:], second.output()[-2000:])
    loser = first if codes[0] else second
    assert "writer lease is held by pid" in loser.output(), loser.output()[-2000:]
    assert "Traceback" not in loser.output()
    assert_exactly_once(state)


def test_a_paused_writer_is_taken_over_and_its_next_commit_is_refused(tmp_path: Path):
    state = tmp_path / "state"
    fh = Firehose(state, "serve", "--rate", "150", "--source", str(RECORDING_2018), log=tmp_path / "firehose.log")
    # A TTL long enough that the successor, even started slowly on a loaded machine, finds the lease still held.
    paused = ingest(state, tmp_path / "paused.log", fh.url, "--commit-interval", "2", ttl="12")
    successor: Process | None = None
    try:
        wait_for_rows(state, paused)
        os.kill(paused.proc.pid, signal.SIGSTOP)  # a long GC pause, a frozen VM
        successor = ingest(state, tmp_path / "successor.log", fh.url, "--wait", "--stop-after-idle", "5", ttl="12")
        before = committed_rows(state)
        for _ in range(3):
            try:
                wait_for_rows(state, successor, at_least=before + 1, timeout=40)  # it took over after the expiry
                break
            except AssertionError:
                assert successor.proc.poll() is None, successor.output()[-3000:]
                # Stopped inside a SQLite write, the paused process holds the database's write lock, which no
                # lease can take away: let it finish that write (a moment's SIGCONT) and pause it again.
                os.kill(paused.proc.pid, signal.SIGCONT)
                time.sleep(0.3)
                os.kill(paused.proc.pid, signal.SIGSTOP)
        else:
            raise AssertionError(f"no takeover:\n{successor.output()[-3000:]}")
        assert successor.wait(300) == 0, successor.output()[-3000:]
        os.kill(paused.proc.pid, signal.SIGCONT)
        assert paused.wait(60) == 1, paused.output()[-3000:]
    finally:
        if paused.proc.poll() is None:
            os.kill(paused.proc.pid, signal.SIGCONT)
        paused.kill()
        if successor is not None:
            successor.kill()
        fh.kill()
    assert "lease" in paused.output() and "was lost" in paused.output(), paused.output()[-3000:]
    assert "waiting for the 'speed' writer lease" in successor.output()
    assert_exactly_once(state)


def test_a_killed_writers_lease_is_taken_over_and_nothing_is_lost(tmp_path: Path):
    state = tmp_path / "state"
    fh = Firehose(state, "serve", "--rate", "300", "--source", str(RECORDING_2018), log=tmp_path / "firehose.log")
    killed = ingest(state, tmp_path / "killed.log", fh.url, "--commit-interval", "1", ttl="30")
    try:
        wait_for_rows(state, killed)
        killed.kill()  # SIGKILL: no release
        started = time.monotonic()
        successor = ingest(state, tmp_path / "successor.log", fh.url, "--stop-after-idle", "5", ttl="30")
        assert successor.wait(300) == 0, successor.output()[-3000:]
    finally:
        killed.kill()
        fh.kill()
    assert time.monotonic() - started < 300
    assert "which is gone: taking it over" in successor.output()
    assert_exactly_once(state)


def test_a_permanent_commit_error_ends_ingestion_and_names_the_table(tmp_path: Path):
    state = tmp_path / "state"
    fh = Firehose(state, "serve", "--rate", "100", "--source", str(RECORDING_2018), log=tmp_path / "firehose.log")
    run = ingest(state, tmp_path / "ingest.log", fh.url, "--commit-interval", "1")
    try:
        wait_for_rows(state, run)
        catalog_of(state).drop_table("raw.recentchange")  # an operator's mistake
        dropped = time.monotonic()
        code = run.wait(90)
        took = time.monotonic() - dropped
    finally:
        run.kill()
        fh.kill()
    assert code == 1, run.output()[-3000:]
    assert took < 60
    assert "cannot commit to raw.recentchange" in run.output(), run.output()[-3000:]
    assert "does not exist" in run.output()


class _OversizedGzipFirehose(BaseHTTPRequestHandler):
    """A gzip-encoded SSE stream of recorded events with one 10 MB line in the middle (ids 0, 1, 2, ...)."""

    events: list[bytes] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        after = self.headers.get("Last-Event-ID")
        start = int(after) + 1 if after is not None else 0
        packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Connection", "close")
        self.end_headers()
        for number, data in enumerate(self.events[start:], start=start):
            self.wfile.write(packer.compress(b"id: %d\ndata: %s\n\n" % (number, data)))
        self.wfile.write(packer.flush())


def test_a_10_mb_line_in_a_gzip_stream_is_a_dead_letter_and_the_stream_goes_on(tmp_path: Path):
    recorded = [line.encode() for line in RECORDING_2018.read_text().splitlines()[:200]]
    _OversizedGzipFirehose.events = [*recorded[:100], b"x" * (10 * 1024 * 1024), *recorded[100:]]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OversizedGzipFirehose)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = tmp_path / "state"
    url = f"http://127.0.0.1:{server.server_address[1]}/v2/stream/recentchange"
    try:
        run = ingest(state, tmp_path / "ingest.log", url, "--stop-after-idle", "4")
        assert run.wait(180) == 0, run.output()[-3000:]
    finally:
        server.shutdown()
    stats = lake_stats(state)
    assert stats["raw.recentchange"]["rows"] == stats["raw.recentchange"]["distinct_ids"] == 200
    letters = catalog_of(state).load_table("raw.dead_letters").scan().to_arrow().to_pylist()
    assert len(letters) == 1 and letters[0]["sse_id"] == "100"
    assert "exceeds max_line_bytes=1,048,576" in letters[0]["error"]
    assert len(letters[0]["payload"]) <= 1024
