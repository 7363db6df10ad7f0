"""Ingestion benchmark: airlake's speed pipeline against a plain pyiceberg loop and dlt, on the same events.

``python -m airlake.bench.ingest`` (``make bench``) runs each contender in its own subprocess, one after the other, each
reading from a fresh local firehose (``airlake firehose serve --loop``: the recordings in shared/data/wikimedia/
replayed with fresh ids, from offset 0) into a fresh embedded lake (SQLite catalog, ``file://`` warehouse):

- **airlake**: ``airlake ingest --sources recentchange`` (Beam micro-batches, exactly-once commits, dead letters,
  per-minute aggregates);
- **plain**: the loop a user would write: ``SseStream`` -> ``json.loads`` -> ``recentchange_row`` -> one
  ``table.append`` per 1,000 events or 2 s, default table properties, no positions, no dedupe, no dead letters;
- **plain-tuned**: the same loop with airlake's cadence and table settings (one append per 20,000 events or 2 s,
  the streaming table properties of ``lake.tables``, snapshots expired as airlake does), so that the ratio to
  airlake measures the pipeline rather than the batch size;
- **dlt**: dlt's filesystem destination with ``table_format="iceberg"`` (one ``pipeline.run()`` per 2 s of
  events), in its own virtual environment (bench/requirements-dlt.txt) because airlake's does not carry dlt.

Two scenarios per contender: ``max`` (the firehose sends as fast as it can; throughput and commit latency) and
``rate`` (1,000 events/s, 2 s commit interval; end-to-end lag). Every figure that can be is read back from the
lake with pyiceberg rather than taken from the process: rows, distinct ids, offset gaps, throughput (rows over
first receipt to last snapshot) and lag (snapshot time minus the time the firehose's schedule emitted the event:
``t0 + offset / rate``). Peak RSS is the contender's process tree (its own ``VmHWM``, or the sum of the ``VmRSS``
of it and its children if higher), sampled every 0.2 s while it runs. The processes' own figures (commit times,
their received-to-committed lag) are kept beside them.

The contenders' worker code lives here too (``--worker plain|dlt``) so that the dlt environment, which has
only this checkout on its ``PYTHONPATH``, runs the same reading and normalizing code as the plain loop.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airlake.settings.models import PipelineSettings

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DLT_REQUIREMENTS = REPO / "bench" / "requirements-dlt.txt"
CONSTRAINTS = REPO / "constraints.txt"
DLT_VENV_ENV = "AIRLAKE_BENCH_DLT_VENV"
DEFAULT_DLT_VENV = Path("~/.cache/airlake/bench-dlt-venv")

CONTENDERS = ("airlake", "plain", "plain-tuned", "dlt")
SCENARIOS = ("max", "rate")
LAG_RATE = 1000.0
COMMIT_INTERVAL = 2.0
PLAIN_BATCH_EVENTS = 1000
MAX_BATCH_EVENTS = PipelineSettings().max_batch_events  # dlt's and plain-tuned's batches: airlake's size
EXPIRE_EVERY = PipelineSettings().expire_snapshots_every
KEEP_SNAPSHOTS = PipelineSettings().keep_snapshots
TARGET_LEASE_SHARE = 0.05
TIMELINE_PACE = 50_000.0
"""Events per second of the looped replay's timeline at full speed: faster than any contender reads, so no event is
dated ahead of its receive time (airlake dead-letters events dated more than 5 minutes ahead)."""
DEFAULT_SECONDS = 30.0
QUICK_SECONDS = 6.0
PROGRESS_EVERY = 5.0
START_GRACE = 120.0
"""Seconds a child may take beyond its run time (imports, table creation, the last commit) before it is killed."""

TARGET_EVENTS_PER_S = 10_000.0
TARGET_LAG_P95_S = 5.0
TARGET_RSS_MB = 1024.0

USER_AGENT = "airlake-bench/0.1 (Here Comes The Airplane data platform; data-platform@herecomestheairplane.example)"
STREAM_PATH = "/v2/stream/recentchange"
RECENTCHANGE_ID = "raw.recentchange"

CATALOG_NAMES = {"airlake": "airlake", "plain": "bench", "plain-tuned": "bench", "dlt": "default"}
"""The SQLite catalog's ``catalog_name`` each contender writes under (the read-back must use the same)."""

CLAIMS = {
    "airlake": ("yes: stream position in the commit, dedupe by id", "yes: raw.dead_letters"),
    "plain": ("no: no position, no dedupe", "no: bad events skipped"),
    "plain-tuned": ("no: no position, no dedupe", "no: bad events skipped"),
    "dlt": ("no: no stream position in the load", "no"),
}


# ----- statistics -------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank, like ``Progress.summary()``), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
    return {"p50_s": None if p50 is None else round(p50, 4), "p95_s": None if p95 is None else round(p95, 4)}


# ----- the contenders' workers (run in their own processes) ---------------------------------------------------
def stream_batches(url: str, *, max_seconds: float, batch_events: int, batch_seconds: float) -> Iterator[list[Any]]:
    """Events of the firehose in batches of ``batch_events`` or ``batch_seconds``, until ``max_seconds``.

    Single-threaded, as a plain script reads: while the caller commits a batch, nothing is read (the socket
    buffers and the firehose waits). A finite stream ends the iteration when the firehose closes it.
    """
    from airlake.sources.recentchange import is_canary
    from airlake.sources.sse import SseError, SseStream

    stream = SseStream(url, user_agent=USER_AGENT, read_timeout=10.0, max_retries=0, drop=is_canary)
    deadline = time.monotonic() + max_seconds
    batch: list[Any] = []
    opened = time.monotonic()
    try:
        for event in stream:
            batch.append(event)
            now = time.monotonic()
            if len(batch) >= batch_events or now - opened >= batch_seconds:
                yield batch
                batch, opened = [], time.monotonic()
            if now >= deadline:
                break
    except SseError:
        pass  # the firehose ended the stream (a finite log) or went away: commit what was read
    finally:
        stream.close()
    if batch:
        yield batch


def normalize(batch: Sequence[Any]) -> tuple[list[dict[str, Any]], int]:
    """The ``raw.recentchange`` rows of a batch of SSE events, and how many could not be normalized."""
    from airlake.sources.normalize import InvalidEvent, parse_json_object, recentchange_row

    rows, bad = [], 0
    for event in batch:
        try:
            obj = parse_json_object(event.data)
            received = datetime.fromtimestamp(event.received_at, UTC)
            rows.append(recentchange_row(obj, raw=event.data, sse_id=event.id, ingested_at=received))
        except InvalidEvent:
            bad += 1
    return rows, bad


def write_worker_metrics(
    path: Path, started: float, rows: int, bad: int, commits: list[float], lags: list[float]
) -> None:
    """A worker's own figures, named like airlake's ``--metrics-file`` (``Progress.summary()``)."""
    elapsed = time.time() - started
    commit, lag = summary(commits), summary(lags)
    path.write_text(
        json.dumps(
            {
                "elapsed_s": round(elapsed, 2),
                "committed_rows": rows,
                "events_per_s": round(rows / elapsed, 1) if elapsed > 0 else 0.0,
                "commits": len(commits),
                "skipped_invalid": bad,
                "commit_p50_s": commit["p50_s"],
                "commit_p95_s": commit["p95_s"],
                "lag_p50_s": lag["p50_s"],
                "lag_p95_s": lag["p95_s"],
            },
            indent=2,
        )
    )


def plain_worker(url: str, state: Path, max_seconds: float, metrics: Path, *, tuned: bool = False) -> int:
    """The plain pyiceberg loop: normalize, append every 1,000 events or 2 s; nothing else.

    ``tuned`` gives it airlake's cadence and table settings: appends of up to ``pipeline.max_batch_events`` events
    or 2 s, the streaming table properties, and snapshot expiry every ``expire_snapshots_every`` commits.
    """
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.transforms import DayTransform

    from airlake.lake.commit import expire_snapshots
    from airlake.lake.schemas import RECENTCHANGE
    from airlake.lake.tables import STREAMING_PROPERTIES

    started = time.time()
    state.mkdir(parents=True, exist_ok=True)
    (state / "warehouse").mkdir(exist_ok=True)
    catalog = SqlCatalog(
        CATALOG_NAMES["plain"], uri=f"sqlite:///{state}/catalog.db", warehouse=(state / "warehouse").as_uri()
    )
    catalog.create_namespace("raw")
    table = catalog.create_table(
        RECENTCHANGE_ID, schema=RECENTCHANGE.schema, properties=STREAMING_PROPERTIES if tuned else {}
    )
    with table.update_spec() as spec:
        spec.add_field("event_time", DayTransform(), "event_time_day")
    batch_events = MAX_BATCH_EVENTS if tuned else PLAIN_BATCH_EVENTS
    rows_total, bad_total, commits, lags = 0, 0, [], []
    for batch in stream_batches(url, max_seconds=max_seconds, batch_events=batch_events, batch_seconds=COMMIT_INTERVAL):
        rows, bad = normalize(batch)
        bad_total += bad
        if rows:
            began = time.perf_counter()
            table.append(pa.Table.from_pylist(rows, schema=RECENTCHANGE.schema))
            commits.append(time.perf_counter() - began)
            rows_total += len(rows)
            if tuned and len(commits) % EXPIRE_EVERY == 0:
                expire_snapshots(table, KEEP_SNAPSHOTS)
        done = time.time()
        lags.extend(done - e.received_at for e in batch)
    write_worker_metrics(metrics, started, rows_total, bad_total, commits, lags)
    return 0


def plain_tuned_worker(url: str, state: Path, max_seconds: float, metrics: Path) -> int:
    return plain_worker(url, state, max_seconds, metrics, tuned=True)


def dlt_worker(url: str, state: Path, max_seconds: float, metrics: Path) -> int:
    """dlt's filesystem destination with ``table_format="iceberg"``: one ``pipeline.run()`` per 2 s of events."""
    started = time.time()
    state.mkdir(parents=True, exist_ok=True)
    (state / "warehouse").mkdir(exist_ok=True)
    catalog = {"type": "sql", "uri": f"sqlite:///{state}/catalog.db", "warehouse": (state / "warehouse").as_uri()}
    os.environ["ICEBERG_CATALOG__ICEBERG_CATALOG_TYPE"] = "sql"
    os.environ["ICEBERG_CATALOG__ICEBERG_CATALOG_CONFIG"] = json.dumps(catalog)

    import dlt
    from dlt.destinations import filesystem
    from dlt.destinations.adapters import iceberg_adapter, iceberg_partition

    pipeline = dlt.pipeline(
        pipeline_name="bench_recentchange",
        pipelines_dir=str(state / "pipelines"),
        destination=filesystem(bucket_url=(state / "bucket").as_uri()),
        dataset_name="raw",
    )
    rows_total, bad_total, runs, lags = 0, 0, [], []
    for batch in stream_batches(url, max_seconds=max_seconds, batch_events=MAX_BATCH_EVENTS, batch_seconds=2.0):
        rows, bad = normalize(batch)
        bad_total += bad
        if rows:
            resource = dlt.resource(rows, name="recentchange", write_disposition="append", table_format="iceberg")
            resource = iceberg_adapter(resource, partition=iceberg_partition.day("event_time"))
            began = time.perf_counter()
            pipeline.run(resource)
            runs.append(time.perf_counter() - began)
            rows_total += len(rows)
        done = time.time()
        lags.extend(done - e.received_at for e in batch)
    write_worker_metrics(metrics, started, rows_total, bad_total, runs, lags)
    return 0


WORKERS: dict[str, Callable[[str, Path, float, Path], int]] = {
    "plain": plain_worker,
    "plain-tuned": plain_tuned_worker,
    "dlt": dlt_worker,
}


# ----- the harness --------------------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    from airlake.processes import clean_env

    return clean_env(**extra)


class Firehose:
    """A fresh ``airlake firehose serve`` on a free loopback port (so every contender reads from offset 0)."""

    def __init__(self, workdir: Path, *, rate: float | None, source: Path | None):
        from airlake.processes import free_port, wait_healthy

        self.port = free_port()
        args = ["--rate", f"{rate:g}"] if rate else ["--max"]
        args += ["--source", str(source)] if source else ["--loop", "--pace", f"{rate or TIMELINE_PACE:g}"]
        cmd = [sys.executable, "-m", "airlake", "--state-dir", str(workdir / "firehose")]
        cmd += ["firehose", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        self.log = (workdir / "firehose.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, env=child_env())
        try:
            wait_healthy(self.base + "/healthz", self.proc, workdir / "firehose.log")
        except RuntimeError:
            self.stop()
            raise

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + STREAM_PATH

    def events_sent(self) -> int | None:
        try:
            with urllib.request.urlopen(self.base + "/stats", timeout=5) as r:
                return int(json.load(r)[STREAM_PATH]["events_sent"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()


def _status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``), 0 when it can't be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (airlake's reader processes, for one)."""
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                queue.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return tree


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its descendants now, or the process's own peak if that is higher.

    ``ru_maxrss`` from ``wait4`` is not used: Linux carries the parent's resident size at ``fork`` into the
    child's figure across ``exec``, so a child of a benchmark that has grown reports at least the benchmark's size.
    """
    return max(sum(_status_kb(p, "VmRSS") for p in process_tree(pid)), _status_kb(pid, "VmHWM"))


@dataclass
class ChildRun:
    returncode: int
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    load_average_after: float
    log: str


def run_child(cmd: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path, label: str, seconds: float) -> ChildRun:
    """Runs a contender to its end, printing progress; its peak RSS is sampled from ``/proc`` (:func:`tree_rss_kb`)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    began = time.monotonic()
    next_report = began + PROGRESS_EVERY
    hwm = 0
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        hwm = max(hwm, tree_rss_kb(proc.pid))
        now = time.monotonic()
        if now >= next_report:
            print(f"  [{label}] {now - began:4.0f} s of ~{seconds:.0f} s, peak RSS {hwm / 1024:.0f} MB", flush=True)
            next_report += PROGRESS_EVERY
        if not killed and now - began > seconds + START_GRACE:
            print(f"  [{label}] still running after {now - began:.0f} s: killing it", flush=True)
            proc.kill()
            killed = True
        time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        returncode=proc.returncode,
        wall_s=round(time.monotonic() - began, 2),
        peak_rss_mb=round(hwm / 1024, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
        load_average_after=round(os.getloadavg()[0], 2),
        log=str(log),
    )


def dlt_python() -> Path:
    """The dlt environment's interpreter, created and installed on first use (and when the pins change)."""
    venv = Path(os.environ.get(DLT_VENV_ENV) or DEFAULT_DLT_VENV).expanduser()
    python = venv / "bin" / "python"
    digest = hashlib.sha256(DLT_REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()
    stamp = venv / ".airlake-bench-installed"
    if python.exists() and stamp.is_file() and stamp.read_text().strip() == digest:
        return python
    print(f"setting up the dlt environment in {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-c", str(CONSTRAINTS), "-r", str(DLT_REQUIREMENTS)], check=True)
    stamp.write_text(digest + "\n")
    return python


def versions(python: str | Path, packages: Sequence[str]) -> dict[str, str]:
    """The installed versions of ``packages`` in the environment of interpreter ``python``."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    try:
        out = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ----- reading the results back from the lake ----------------------------------------------------------------
def read_back(contender: str, state: Path, rate: float | None) -> dict[str, Any]:
    """What the contender's ``raw.recentchange`` holds, measured from the table and its snapshots.

    ``lag`` (with a ``rate``) is, per row, the time of the snapshot that added it minus the time the firehose's
    schedule emitted it: ``t0 + offset / rate``, where ``t0`` is the earliest ``received - offset / rate`` (an
    event can't be received before it is sent). Throughput is rows over first receipt to last snapshot.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        CATALOG_NAMES[contender], uri=f"sqlite:///{state}/catalog.db", warehouse=(state / "warehouse").as_uri()
    )
    table = catalog.load_table(RECENTCHANGE_ID)
    rows = table.scan(selected_fields=("event_id", "sse_id", "ingested_at")).to_arrow()
    snapshots = table.snapshots()
    result: dict[str, Any] = {"rows": rows.num_rows, "snapshots": len(snapshots)}
    if not rows.num_rows:
        return result
    offsets = [json.loads(s)[0]["offset"] for s in rows.column("sse_id").to_pylist()]
    received = [us / 1e6 for us in pc.cast(rows.column("ingested_at"), pa.int64()).to_pylist()]
    distinct = len(set(offsets))
    first_received = min(received)
    last_commit = max(s.timestamp_ms for s in snapshots) / 1000
    result |= {
        "distinct_ids": pc.count_distinct(rows.column("event_id")).as_py(),
        "duplicates": rows.num_rows - distinct,
        "offset_gaps": max(offsets) + 1 - distinct,
        "seconds_first_receipt_to_last_commit": round(last_commit - first_received, 2),
        "events_per_s": round(rows.num_rows / (last_commit - first_received), 1),
    }
    if rate:
        t0 = min(r - o / rate for r, o in zip(received, offsets, strict=True))
        lags: list[float] = []
        for snap in snapshots:
            added = table.incremental_append_scan(
                from_snapshot_id_exclusive=snap.parent_snapshot_id,
                to_snapshot_id_inclusive=snap.snapshot_id,
                selected_fields=("sse_id",),
            ).to_arrow()
            committed = snap.timestamp_ms / 1000
            lags.extend(
                committed - (t0 + json.loads(s)[0]["offset"] / rate) for s in added.column("sse_id").to_pylist()
            )
        lag = summary(lags)
        result |= {"lag_p50_s": lag["p50_s"], "lag_p95_s": lag["p95_s"], "lag_max_s": round(max(lags), 3)}
    return result


def read_back_dead_letters(state: Path) -> int | None:
    """Rows in airlake's ``raw.dead_letters`` (None when the table is missing)."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NoSuchTableError

    catalog = SqlCatalog("airlake", uri=f"sqlite:///{state}/catalog.db", warehouse=(state / "warehouse").as_uri())
    try:
        table = catalog.load_table("raw.dead_letters")
    except NoSuchTableError:
        return None
    return table.scan(selected_fields=("dead_letter_id",)).to_arrow().num_rows


# ----- one run of one contender ------------------------------------------------------------------------------
@dataclass
class Outcome:
    contender: str
    scenario: str
    ok: bool
    error: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    process: dict[str, Any] = field(default_factory=dict)
    lake: dict[str, Any] = field(default_factory=dict)
    firehose_events_sent: int | None = None


def write_events_file(path: Path, count: int) -> None:
    """The first ``count`` events of the looped firehose log, as a finite recording (for ``--events``)."""
    import threading

    from airlake.sources.firehose import build_log

    log = build_log(loop=True, events_per_second=TIMELINE_PACE)
    with path.open("w", encoding="utf-8") as out:
        for offset, _, data in log.read(0, threading.Event()):
            if offset >= count:
                break
            out.write(data + "\n")


def run_one(
    contender: str, scenario: str, workdir: Path, *, seconds: float, events_file: Path | None, dlt_py: Path | None
) -> Outcome:
    rate = LAG_RATE if scenario == "rate" else None
    label = f"{contender} · {'1,000 ev/s' if rate else 'max'}"
    outcome = Outcome(contender, scenario, ok=False)
    run_dir = workdir / f"{contender}-{scenario}"
    run_dir.mkdir(parents=True)
    state = run_dir / "state"
    metrics = run_dir / "metrics.json"
    firehose = Firehose(run_dir, rate=rate, source=events_file)
    try:
        stop = ["--max-seconds", f"{seconds + (30 if events_file else 0):g}"]
        if contender == "airlake":
            cmd = [sys.executable, "-m", "airlake", "--state-dir", str(state), "ingest", "--sources", "recentchange"]
            cmd += ["--recentchange-url", firehose.url, "--commit-interval", f"{COMMIT_INTERVAL:g}"]
            cmd += [*stop, "--metrics-file", str(metrics)]
            if events_file:
                cmd += ["--stop-after-idle", "3"]
            env = child_env()
        else:
            python = dlt_py if contender == "dlt" else Path(sys.executable)
            cmd = [str(python), "-m", "airlake.bench.ingest", "--worker", contender, "--url", firehose.url]
            cmd += ["--state", str(state), "--metrics-file", str(metrics), *stop]
            env = child_env(PYTHONPATH=str(REPO))
            if contender == "dlt":
                env |= {"RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": str(run_dir / "dlt-data")}
        print(f"- {label}: running for {seconds:.0f} s", flush=True)
        child = run_child(
            cmd,
            env=env,
            cwd=REPO if contender != "dlt" else run_dir,
            log=run_dir / "run.log",
            label=label,
            seconds=seconds,
        )
        outcome.firehose_events_sent = firehose.events_sent()
    finally:
        firehose.stop()
    outcome.run = asdict(child)
    if child.returncode != 0:
        outcome.error = f"exit status {child.returncode}; see {child.log}"
        print(f"  [{label}] FAILED: {outcome.error}", flush=True)
        return outcome
    with contextlib.suppress(OSError, ValueError):
        outcome.process = json.loads(metrics.read_text())
    try:
        outcome.lake = read_back(contender, state, rate)
        if contender == "airlake":
            outcome.lake["dead_letters"] = read_back_dead_letters(state)
    except Exception as exc:  # a failed read-back is reported in the table; the other runs go on
        outcome.error = f"read-back failed: {type(exc).__name__}: {exc}"
        print(f"  [{label}] {outcome.error}", flush=True)
        return outcome
    outcome.ok = True
    lake = outcome.lake
    line = f"  [{label}] {lake['rows']} rows in {lake['snapshots']} snapshots, {lake.get('events_per_s', 0):.0f} ev/s"
    if rate:
        line += f", lag p50 {lake.get('lag_p50_s')} s p95 {lake.get('lag_p95_s')} s"
    print(line + f", peak RSS {child.peak_rss_mb:.0f} MB", flush=True)
    return outcome


# ----- the report ---------------------------------------------------------------------------------------------
def fmt(value: Any, spec: str = "", unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{unit}"


def commit_figures(outcome: Outcome | None) -> tuple[float | None, float | None]:
    if outcome is None or not outcome.ok:
        return None, None
    return outcome.process.get("commit_p50_s"), outcome.process.get("commit_p95_s")


def table_lines(results: dict[tuple[str, str], Outcome], contenders: Sequence[str]) -> list[str]:
    header = [
        "contender",
        "events/s (max)",
        "commit p50 / p95 (max)",
        "lag p50 / p95 at 1,000 ev/s",
        "peak RSS",
        "exactly-once?",
        "dead letters?",
    ]
    body = []
    for c in contenders:
        fast, paced = results.get((c, "max")), results.get((c, "rate"))
        eps = fast.lake.get("events_per_s") if fast and fast.ok else None
        p50, p95 = commit_figures(fast)
        lag = (paced.lake.get("lag_p50_s"), paced.lake.get("lag_p95_s")) if paced and paced.ok else (None, None)
        rss = [o.run.get("peak_rss_mb") for o in (fast, paced) if o and o.run]
        body.append(
            [
                c,
                fmt(eps, ",.0f") if fast and fast.ok else "failed" if fast else "-",
                f"{fmt(p50, '.3f')} / {fmt(p95, '.3f')} s",
                f"{fmt(lag[0], '.2f')} / {fmt(lag[1], '.2f')} s" if paced and paced.ok else "failed" if paced else "-",
                fmt(max(rss) if rss else None, ",.0f", " MB"),
                *CLAIMS[c],
            ]
        )
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *[line(r) for r in body]]


def detail_lines(results: dict[tuple[str, str], Outcome]) -> list[str]:
    lines = []
    for (c, s), o in results.items():
        if not o.ok:
            lines.append(f"{c:8} {s:5} FAILED: {o.error}")
            continue
        lake, proc = o.lake, o.process
        lines.append(
            f"{c:8} {s:5} sent {fmt(o.firehose_events_sent, ',')} | lake: {lake['rows']:,} rows, "
            f"{lake['snapshots']} snapshots, duplicates {lake.get('duplicates')}, offset gaps {lake.get('offset_gaps')}"
            + (f", dead letters {lake['dead_letters']}" if "dead_letters" in lake else "")
            + f" | process: {fmt(proc.get('events_per_s'), ',.0f')} ev/s read, commit p50/p95 "
            f"{fmt(proc.get('commit_p50_s'), '.3f')}/{fmt(proc.get('commit_p95_s'), '.3f')} s, "
            f"received->committed lag p50/p95 {fmt(proc.get('lag_p50_s'), '.2f')}/{fmt(proc.get('lag_p95_s'), '.2f')} s"
            + (f", beam p50 {proc['beam_p50_s']:.2f} s" if proc.get("beam_p50_s") is not None else "")
            + (
                f", lease fencing {proc['fence_checks']:,} checks in {proc['fence_seconds']:.3f} s"
                f" ({100 * lease_share(proc):.2f} % of the run)"
                if proc.get("fence_checks") is not None
                else ""
            )
            + f" | RSS {o.run['peak_rss_mb']:,.0f} MB, CPU {o.run['cpu_s']:.0f} s"
            f" ({1000 * o.run['cpu_s'] / max(1, lake['rows']):.2f} s per 1k rows), wall {o.run['wall_s']:.0f} s,"
            f" load {o.run['load_average_after']:.1f}"
        )
    return lines


def lease_share(process: dict[str, Any]) -> float | None:
    """The share of a run's time that the writer lease's fencing took (it runs inside every catalog commit)."""
    seconds, elapsed = process.get("fence_seconds"), process.get("elapsed_s")
    if seconds is None or not elapsed:
        return None
    return seconds / elapsed


def target_lines(results: dict[tuple[str, str], Outcome]) -> list[str]:
    fast, paced = results.get(("airlake", "max")), results.get(("airlake", "rate"))
    if fast is None and paced is None:
        return []

    def verdict(value: float | None, ok: Callable[[float], bool]) -> str:
        return "n/a " if value is None else "PASS" if ok(value) else "MISS"

    eps = fast.lake.get("events_per_s") if fast and fast.ok else None
    lag = paced.lake.get("lag_p95_s") if paced and paced.ok else None
    rss_values = [o.run["peak_rss_mb"] for o in (fast, paced) if o and o.run]
    rss = max(rss_values) if rss_values else None
    share = lease_share(fast.process) if fast and fast.ok else None
    return [
        f"target {verdict(eps, lambda v: v >= TARGET_EVENTS_PER_S)}  airlake throughput >= "
        f"{TARGET_EVENTS_PER_S:,.0f} events/s sustained: {fmt(eps, ',.0f')} events/s",
        f"target {verdict(lag, lambda v: v <= TARGET_LAG_P95_S)}  airlake lag p95 <= {TARGET_LAG_P95_S:g} s at "
        f"{LAG_RATE:,.0f} events/s, {COMMIT_INTERVAL:g} s commit interval: {fmt(lag, '.2f', ' s')}",
        f"target {verdict(rss, lambda v: v <= TARGET_RSS_MB)}  airlake peak RSS <= 1 GB: {fmt(rss, ',.0f', ' MB')}",
        f"target {verdict(share, lambda v: v <= TARGET_LEASE_SHARE)}  writer lease and fencing <= "
        f"{100 * TARGET_LEASE_SHARE:g} % of the run at full speed: {fmt(None if share is None else 100 * share, '.2f', ' %')}",
    ]


NOTES = (
    "events/s: rows read back from raw.recentchange over first receipt to last snapshot, firehose at full speed.",
    "commit: one table append (airlake: each append of a batch, raw and speed tables; plain: table.append of",
    "  <= 1,000 rows; dlt: one pipeline.run(), extract + normalize + load). lag: snapshot time minus the firehose's",
    f"  emit schedule (t0 + offset / {LAG_RATE:g}), per row, read back. peak RSS: the contender's process tree (/proc).",
)


# ----- entry points -------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m airlake.bench.ingest",
        description="Ingestion benchmark: airlake vs a plain pyiceberg loop vs dlt, on the same firehose events.",
    )
    p.add_argument(
        "--seconds", type=float, help=f"run time of each contender and scenario (default {DEFAULT_SECONDS:g})"
    )
    p.add_argument(
        "--events",
        type=int,
        help="serve exactly this many events (the looped log's first N) instead of an endless loop; each run "
        "then ends when its stream ends (or after --seconds + 30 s)",
    )
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per run (a smoke run)")
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of %(default)s",
    )
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of %(default)s")
    p.add_argument("--out", type=Path, help="JSON results file (default: bench/results/ingest-<timestamp>.json)")
    p.add_argument("--keep", action="store_true", help="keep the runs' state directories and logs")
    # The contenders' own processes.
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--metrics-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def benchmark(args: argparse.Namespace) -> int:
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(contenders) - set(CONTENDERS)) + sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown contender or scenario: {', '.join(unknown)}")
    started = datetime.now(UTC)
    info = machine()
    print(
        f"bench.ingest: {', '.join(contenders)} x {', '.join(scenarios)}, {seconds:g} s each "
        f"({info['nproc']} cores, load {info['load_average_at_start']})",
        flush=True,
    )
    dlt_py: Path | None = None
    dlt_error: str | None = None
    if "dlt" in contenders:
        try:
            dlt_py = dlt_python()
        except (OSError, subprocess.CalledProcessError) as exc:
            dlt_error = f"the dlt environment could not be set up: {exc}"
            print(dlt_error, flush=True)
    packages = versions(sys.executable, ["apache-beam", "pyiceberg", "pyiceberg-core", "pyarrow"])
    if dlt_py is not None:
        packages |= {f"dlt-env {k}": v for k, v in versions(dlt_py, ["dlt", "pyiceberg", "pyarrow"]).items()}
    results: dict[tuple[str, str], Outcome] = {}
    workdir = Path(tempfile.mkdtemp(prefix="airlake-bench-"))
    try:
        events_file = None
        if args.events:
            events_file = workdir / f"events-{args.events}.jsonl"
            write_events_file(events_file, args.events)
        for scenario in scenarios:
            for contender in contenders:
                if contender == "dlt" and dlt_py is None:
                    results[(contender, scenario)] = Outcome(contender, scenario, ok=False, error=dlt_error)
                    continue
                try:
                    results[(contender, scenario)] = run_one(
                        contender, scenario, workdir, seconds=seconds, events_file=events_file, dlt_py=dlt_py
                    )
                except (OSError, RuntimeError) as exc:
                    results[(contender, scenario)] = Outcome(contender, scenario, ok=False, error=str(exc))
                    print(f"  [{contender} · {scenario}] FAILED: {exc}", flush=True)
    finally:
        if args.keep:
            print(f"state and logs kept in {workdir}")
        else:
            import shutil

            failed = [o for o in results.values() if not o.ok]
            if failed:
                print(f"some runs failed: state and logs kept in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    ordered = {k: results[k] for c in contenders for s in scenarios if (k := (c, s)) in results}
    lines = [
        "",
        f"ingestion benchmark, {started:%Y-%m-%d %H:%M} UTC, {seconds:g} s per run"
        + (f", {args.events:,} events" if args.events else "")
        + f", {info['nproc']} cores, Python {info['python']}",
        *table_lines(ordered, contenders),
        *NOTES,
        "",
        *detail_lines(ordered),
        "",
        *target_lines(ordered),
    ]
    print("\n".join(lines), flush=True)
    out = args.out or RESULTS_DIR / f"ingest-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "seconds_per_run": seconds,
                "events": args.events,
                "lag_rate": LAG_RATE,
                "commit_interval_s": COMMIT_INTERVAL,
                "machine": info,
                "packages": packages,
                "results": [asdict(o) for o in ordered.values()],
                "table": lines,
            },
            indent=2,
        )
    )
    print(f"\nresults: {out}", flush=True)
    return 0 if all(o.ok for o in ordered.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        if not (args.url and args.state and args.metrics_file and args.max_seconds):
            raise SystemExit("--worker needs --url, --state, --metrics-file and --max-seconds")
        return WORKERS[args.worker](args.url, args.state, args.max_seconds, args.metrics_file)
    return benchmark(args)


if __name__ == "__main__":
    raise SystemExit(main())
