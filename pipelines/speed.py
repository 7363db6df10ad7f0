"""The speed pipeline (``airlake ingest``): both firehoses into Iceberg, exactly once, continuously.

Beam 2.77's Python DirectRunner runs an unbounded source through its batch engine, which fires windows only when
the source ends, so the local runner streams in micro-batches, as Spark's micro-batch streaming does
(docs/streaming.md has the measurements):

1. one reader process per firehose (:mod:`pipelines.readers`) keeps its SSE connection open, resumes with
   ``Last-Event-ID``, and finds each event's id;
2. every commit interval the driver takes what was read, drops events already seen (by event id), and spools
   the rest to a segment file;
3. a bounded Beam pipeline of the runner-agnostic composites in :mod:`pipelines.transforms` normalizes the
   segment, routes bad events to dead letters, and computes per-minute aggregates;
4. the driver appends the raw rows to Iceberg with the batch's stream positions in the same commit
   (:mod:`lake.commit`), then merges the batch's aggregates into its minute state and appends the new firings.

On (re)start the driver resumes from the positions of the newest complete batch, warms its dedupe cache from the
newest snapshots, and rebuilds the open minutes of its aggregate state from the raw tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from airlake.lake.commit import (
    SPEED_WRITER,
    Backoff,
    BatchMark,
    CommitError,
    Recovery,
    append_batch,
    expire_snapshots,
    newest_commit_max,
    recent_ids,
    recover,
)
from airlake.lake.lease import DEFAULT_TTL_SECONDS, Lease, LeaseError, clock_offset
from airlake.lake.schemas import (
    DEAD_LETTERS,
    DEMAND_MINUTE,
    IMAGE_OWNERS,
    IMAGES,
    ORDERS,
    ORDERS_MINUTE,
    RAW_TABLES,
    RECENTCHANGE,
    TableDef,
)
from airlake.pipelines.images import KILL_BEFORE_IMAGES_COMMIT, owner_key, refs_from_catalog, refs_from_orders
from airlake.pipelines.readers import ReaderProcess, SourceSpec, ready
from airlake.pipelines.transforms import (
    DEFAULT_MAX_AHEAD_SECONDS,
    envelope,
    read_staged,
    row_key,
    staged_schema,
)
from airlake.sources.events import ORDERS_SOURCE, RECENTCHANGE_SOURCE, SOURCES

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from airlake.pipelines.images import ImageConfig
    from airlake.settings import Settings

log = logging.getLogger(__name__)

SOURCE_TABLES: dict[str, TableDef] = {RECENTCHANGE_SOURCE: RECENTCHANGE, ORDERS_SOURCE: ORDERS}
AGGREGATES: dict[str, TableDef] = {RECENTCHANGE_SOURCE: DEMAND_MINUTE, ORDERS_SOURCE: ORDERS_MINUTE}
AGGREGATE_KEYS = {
    DEMAND_MINUTE.identifier: ("window_start", "market", "wiki"),
    ORDERS_MINUTE.identifier: ("window_start", "market"),
}
CHUNK_SIZE = 1_000  # envelopes per Beam element in the micro-batch graph
CLOCK_WARNING_SECONDS = 60.0  # a host clock this far off the catalog database's is reported at start
IMAGES_THROUGH = "airlake.images.refs-through"
"""A property of ``raw.images``, set in the commit that adds an image batch's rows: every photo referenced by an
order received (``ingested_at``) up to this time is in the lake, as an image row or a dead letter. A restart fetches
the photos of the delivered orders received since then again (see docs/images.md)."""
IMAGE_RETRY_SECONDS = 5.0  # the wait before an image batch that failed (the side store down) runs again


class SeenKeys:
    """A bounded set of event keys (64-bit hashes, oldest forgotten first)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._set: set[int] = set()
        self._order: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._set)

    def __contains__(self, key: str) -> bool:
        return hash(key) in self._set

    def add(self, key: str) -> bool:
        """Adds ``key``; returns False when it was there already."""
        h = hash(key)
        if h in self._set:
            return False
        self._set.add(h)
        self._order.append(h)
        if len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())
        return True


@dataclass
class Progress:
    """Counters of a run, printed as it goes and returned at the end."""

    started: float = field(default_factory=time.time)
    batches: int = 0
    read: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SOURCES})
    committed: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    dead_letters: int = 0
    late_dropped: int = 0
    lags: deque = field(default_factory=lambda: deque(maxlen=200_000))
    commit_seconds: deque = field(default_factory=lambda: deque(maxlen=10_000))
    beam_seconds: deque = field(default_factory=lambda: deque(maxlen=10_000))
    images_stored: int = 0
    image_dead_letters: int = 0
    image_batches: int = 0
    image_seconds: deque = field(default_factory=lambda: deque(maxlen=10_000))

    def summary(self) -> dict[str, Any]:
        def pct(values, q):
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

        elapsed = time.time() - self.started
        total = sum(self.read.values())
        return {
            "elapsed_s": round(elapsed, 2),
            "batches": self.batches,
            "read": dict(self.read),
            "committed_rows": dict(self.committed),
            "events_per_s": round(total / elapsed, 1) if elapsed > 0 else 0.0,
            "duplicates_dropped": self.duplicates,
            "dead_letters": self.dead_letters,
            "late_dropped": self.late_dropped,
            "lag_p50_s": pct(self.lags, 0.5),
            "lag_p95_s": pct(self.lags, 0.95),
            "commit_p50_s": pct(self.commit_seconds, 0.5),
            "commit_p95_s": pct(self.commit_seconds, 0.95),
            "beam_p50_s": pct(self.beam_seconds, 0.5),
            "images_stored": self.images_stored,
            "image_dead_letters": self.image_dead_letters,
            "image_batches": self.image_batches,
            "image_batch_p50_s": pct(self.image_seconds, 0.5),
        }


def floor_minute(when: datetime) -> datetime:
    """The start of the minute ``when`` falls in."""
    return when.replace(second=0, microsecond=0)


class MinuteState:
    """The accumulated value of every open minute of one aggregate table, and the firings it produces.

    The watermark is the newest minute seen, but never past the newest receive time plus ``max_ahead``: one event
    dated in the future (a broken clock) must not close every open minute. Minutes before the horizon, the
    watermark minus the allowed lateness floored to a minute, are closed: a partial for one of them is late.
    """

    def __init__(self, table: TableDef, lateness: timedelta, max_ahead: timedelta = timedelta(minutes=5)):
        self.table = table
        self.keys = AGGREGATE_KEYS[table.identifier]
        self.values_columns = [
            f.name for f in table.schema if f.name not in self.keys and f.name not in ("fired_at", "batch")
        ]
        self.lateness = lateness
        self.max_ahead = max_ahead
        self.state: dict[tuple, dict[str, Any]] = {}
        self.watermark: datetime | None = None

    @property
    def horizon(self) -> datetime | None:
        """The first minute still open (None before any data)."""
        return None if self.watermark is None else floor_minute(self.watermark - self.lateness)

    def advance(self, newest: datetime, received: datetime | None) -> None:
        """Moves the watermark to ``newest``, bounded by ``received + max_ahead``; it never moves back."""
        if received is not None:
            newest = min(newest, floor_minute(received + self.max_ahead))
        self.watermark = newest if self.watermark is None else max(self.watermark, newest)

    def merge(self, partials: pa.Table, received: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
        """Adds a batch's partial aggregates; returns the firings (full values of touched keys) and late drops.

        Args:
            partials: rows of the aggregate table (without ``fired_at`` and ``batch``).
            received: the newest receive time of the batch's events (bounds the watermark); None: unbounded.
        """
        touched: dict[tuple, dict[str, Any]] = {}
        late = 0
        rows = partials.to_pylist()
        if rows:
            self.advance(max(r["window_start"] for r in rows), received)
        horizon = self.horizon
        for row in rows:
            if horizon is not None and row["window_start"] < horizon:
                late += 1
                continue
            key = tuple(row[k] for k in self.keys)
            current = self.state.get(key)
            if current is None:
                current = self.state[key] = dict(row)
            else:
                for col in self.values_columns:
                    current[col] += row[col]
            touched[key] = current
        if horizon is not None:
            for key in [k for k in self.state if k[0] < horizon]:
                del self.state[key]
        return list(touched.values()), late

    def all_values(self) -> list[dict[str, Any]]:
        return list(self.state.values())


def firing_table(table: TableDef, values: list[dict[str, Any]], fired_at: datetime, batch: int) -> pa.Table:
    return pa.Table.from_pylist([{**v, "fired_at": fired_at, "batch": batch} for v in values], schema=table.schema)


@dataclass
class StagedBatch:
    raw: dict[str, pa.Table]
    aggregates: dict[str, pa.Table]


class SpeedPipeline:
    """The micro-batch driver. ``run()`` returns the run's :class:`Progress` summary.

    Raises (from ``run()``):
        LeaseHeld: another process holds the lake's ``speed`` writer lease (and ``wait_for_lease`` is off).
        LeaseLost: the lease was taken over while running; nothing of this process is committed after that.
        CommitError: a permanent commit failure (a table dropped or altered, access denied), naming the table.
    """

    def __init__(
        self,
        catalog: Catalog,
        sources: Sequence[SourceSpec],
        *,
        state_dir: Path,
        markets: Mapping[str, str],
        default_market: str,
        beam_args: Sequence[str] = (),
        commit_interval: float = 2.0,
        max_batch_events: int = 20_000,
        stop_after_idle: float | None = None,
        max_seconds: float | None = None,
        dedupe_cache_size: int = 2_000_000,
        allowed_lateness_minutes: float = 60,
        max_event_ahead_seconds: float = DEFAULT_MAX_AHEAD_SECONDS,
        expire_every: int = 50,
        keep_snapshots: int = 20,
        lease_ttl: float = DEFAULT_TTL_SECONDS,
        wait_for_lease: bool = False,
        progress_every: float = 5.0,
        metrics_file: Path | None = None,
        images: ImageConfig | None = None,
    ):
        self.catalog = catalog
        self.sources = list(sources)
        self.state_dir = state_dir
        self.markets, self.default_market = dict(markets), default_market
        self.beam_args = list(beam_args)
        self.commit_interval = commit_interval
        self.max_batch_events = max_batch_events
        self.stop_after_idle = stop_after_idle
        self.max_seconds = max_seconds
        self.seen = SeenKeys(dedupe_cache_size)
        self.lateness = timedelta(minutes=allowed_lateness_minutes)
        self.max_ahead = max_event_ahead_seconds
        self.expire_every = expire_every
        self.keep_snapshots = keep_snapshots
        self.lease_ttl = lease_ttl
        self.wait_for_lease = wait_for_lease
        self.lease: Lease | None = None
        self.progress_every = progress_every
        self.metrics_file = metrics_file
        self.stop = threading.Event()
        self.readers: list[ReaderProcess] = []
        self.progress = Progress()
        self.tables: dict[str, Table] = {}
        ahead = timedelta(seconds=max_event_ahead_seconds)
        self.states = {t.identifier: MinuteState(t, self.lateness, ahead) for t in AGGREGATES.values()}
        self.positions: dict[str, str] = {}
        self.resume_times: dict[str, datetime] = {}
        self.batch = 0
        self.spool = state_dir / "spool" / SPEED_WRITER
        self.stage = state_dir / "stage" / SPEED_WRITER
        # The image step (None: off): photo references wait here until the worker process takes them.
        self.images = images
        self.orders_url = next((s.url for s in self.sources if s.name == ORDERS_SOURCE), "")
        self.image_worker: Any = None
        self.pending_refs: list[dict[str, Any]] = []
        self.pending_through: datetime | None = None
        self.image_job: dict[str, Any] | None = None
        self.image_ready: dict[str, Any] | None = None
        self.image_jobs = 0
        self.image_retry_at = 0.0
        self.image_ids = SeenKeys(dedupe_cache_size)
        self.owner_keys = SeenKeys(dedupe_cache_size)

    # ----- start-up -----------------------------------------------------------------------------------------
    def take_lease(self) -> Lease:
        """Takes the lake's writer lease; spool and stage files then live in folders of this lease's epoch."""
        lease = Lease(self.catalog, SPEED_WRITER, ttl=self.lease_ttl)
        lease.acquire(wait=self.wait_for_lease)
        self.lease = lease
        offset = clock_offset(lease.engine)
        if abs(offset) > CLOCK_WARNING_SECONDS:
            log.warning(
                "this host's clock is %.0f s %s the catalog database's: receive times, and so the dead letters for"
                " events dated more than %.0f s after them, follow this host's clock",
                abs(offset),
                "behind" if offset > 0 else "ahead of",
                self.max_ahead,
            )
        writer_dir = f"{SPEED_WRITER}-epoch-{lease.epoch}"
        for folder in ("spool", "stage"):
            root = self.state_dir / folder
            if root.is_dir():  # what writers of older epochs left behind (they can no longer commit)
                for old in root.glob(f"{SPEED_WRITER}-epoch-*"):
                    shutil.rmtree(old, ignore_errors=True)
        self.spool = self.state_dir / "spool" / writer_dir
        self.stage = self.state_dir / "stage" / writer_dir
        return lease

    def mark(self, tables: Sequence[str], start: Mapping[str, str], end: Mapping[str, str]) -> BatchMark:
        epoch = self.lease.epoch if self.lease is not None and self.lease.epoch is not None else 0
        return BatchMark(SPEED_WRITER, self.batch, tuple(tables), dict(start), dict(end), epoch)

    def open_tables(self) -> None:
        from airlake.lake.tables import ensure_tables

        self.tables = ensure_tables(self.catalog)

    def recover(self) -> Recovery:
        recovery = recover(self.tables, SPEED_WRITER)
        self.batch, self.positions = recovery.batch, dict(recovery.positions)
        watermark = self.warm_seen()
        if recovery.batch:
            log.info(
                "resuming after batch %d%s from %s",
                recovery.batch,
                " (partial: replaying it)" if recovery.partial else "",
                recovery.positions or "the start",
            )
        if watermark is not None:
            self.rebuild_state(floor_minute(watermark - self.lateness), refire=recovery.partial)
        return recovery

    def warm_seen(self) -> datetime | None:
        """Loads the keys of every row in the retained snapshots into the dedupe cache; returns the watermark.

        The watermark is the newest event time of each source's newest commit, bounded by its newest receive time
        plus the allowed margin (rows written before that bound existed may hold impossible times). Only this
        writer's commits count: another writer's (``airlake backfill``, old event times, millions of ids) are passed
        over.
        """
        newest: datetime | None = None
        for source, table in [*SOURCE_TABLES.items(), ("", DEAD_LETTERS)]:
            # Only the speed writer's own commits: a backfill's rows are neither in the stream nor recent.
            ids = recent_ids(self.tables[table.identifier], table.id_column, writer=SPEED_WRITER)
            for value in ids.to_pylist():
                self.seen.add(value if not source else row_key(source, value))
            if source:
                times = self._recent_times(table)
                if times is not None:
                    self.resume_times[source] = times
                    newest = times if newest is None else max(newest, times)
        log.info("dedupe cache warmed with %d keys", len(self.seen))
        return newest

    def _recent_times(self, table: TableDef) -> datetime | None:
        newest = newest_commit_max(
            self.tables[table.identifier], table.partition_column, "ingested_at", writer=SPEED_WRITER
        )
        if newest is None:
            return None
        bound = newest["ingested_at"] + timedelta(seconds=self.max_ahead)
        return min(newest[table.partition_column], bound)

    def rebuild_state(self, since: datetime, *, refire: bool) -> None:
        """Recomputes the open minutes (from the minute ``since`` on) from the raw tables, through the same graph.

        The ids read are added to the dedupe cache too: after a restart it knows every event of the open minutes.
        """
        from pyiceberg.expressions import GreaterThanOrEqual

        segment = self.spool / "recovery.jsonl"
        segment.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        newest_received: datetime | None = None
        with segment.open("w", encoding="utf-8") as out:
            for source, table in SOURCE_TABLES.items():
                rows = (
                    self.tables[table.identifier]
                    .scan(
                        row_filter=GreaterThanOrEqual("event_time", since.isoformat()),
                        selected_fields=("event_id", "sse_id", "ingested_at", "raw_json"),
                    )
                    .to_arrow()
                )
                for event_id, sse_id, ingested, raw in zip(
                    rows.column("event_id").to_pylist(),
                    rows.column("sse_id").to_pylist(),
                    rows.column("ingested_at").to_pylist(),
                    rows.column("raw_json").to_pylist(),
                    strict=True,
                ):
                    self.seen.add(row_key(source, event_id))
                    out.write(envelope(source, sse_id, ingested.timestamp(), raw) + "\n")
                    newest_received = ingested if newest_received is None else max(newest_received, ingested)
                    count += 1
        if not count:
            return
        staged = self.run_beam(segment, self.stage / "recovery")
        fired_at = datetime.now(UTC)
        for name, partials in staged.aggregates.items():
            state = self.states[name]
            state.state.clear()
            state.merge(partials, newest_received)
            if refire and state.state:
                table = self.tables[name]
                rows = firing_table(state.table, state.all_values(), fired_at, self.batch)
                append_batch(table, rows, self.mark((name,), self.positions, self.positions), backoff=self.backoff())
        log.info("rebuilt aggregate state from %d raw events since %s", count, since.isoformat())

    def backoff(self) -> Backoff:
        return Backoff(stop=self.stop)

    # ----- one batch ----------------------------------------------------------------------------------------
    def run_beam(self, segment: Path, stage_dir: Path) -> StagedBatch:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions

        from airlake.pipelines.transforms import ReadEnvelopes, SpeedLayer

        shutil.rmtree(stage_dir, ignore_errors=True)
        stage_dir.mkdir(parents=True)
        started = time.perf_counter()
        with beam.Pipeline(runner=self._runner(), options=PipelineOptions(self.beam_args)) as p:
            _ = (
                p
                | "Segments" >> beam.Create([str(segment)])
                | "ReadSegment" >> ReadEnvelopes(chunk_size=CHUNK_SIZE)
                | "SpeedLayer"
                >> SpeedLayer(str(stage_dir), self.markets, self.default_market, chunked=True, max_ahead=self.max_ahead)
            )
        self.progress.beam_seconds.append(time.perf_counter() - started)
        staged = StagedBatch(
            raw={t.identifier: read_staged(str(stage_dir), t) for t in RAW_TABLES},
            aggregates={t.identifier: read_staged(str(stage_dir), t) for t in AGGREGATES.values()},
        )
        shutil.rmtree(stage_dir, ignore_errors=True)
        return staged

    def _runner(self) -> Any:
        """The runner of the micro-batches: ``--runner`` when given, else the DirectRunner's in-process engine.

        Beam 2.77's DirectRunner first tries to download the Prism runner on every pipeline it runs (and falls
        back when it can't); the FnApiRunner it falls back to is used directly so that no batch waits on that.
        """
        if any(a.startswith("--runner") for a in self.beam_args):
            return None
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()

    def take(self, deadline: float) -> tuple[list[tuple], dict[str, str]]:
        """Receives from the readers until ``deadline`` or a full batch; returns the events and positions reached."""
        events: list[tuple] = []
        positions = dict(self.positions)
        while len(events) < self.max_batch_events and not self.stop.is_set():
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            for reader in ready(self.readers, min(timeout, 0.2)):
                received = reader.receive()
                events.extend(received)
                for item in reversed(received):
                    if item[1] is not None:
                        positions[item[0]] = item[1]
                        break
        return events, positions

    def spool_batch(self, events: list[tuple], segment: Path) -> tuple[int, list[float]]:
        """Writes the new events of a batch to ``segment``; returns how many and their receive times.

        An event is a ``(source, sse_id, received_at, data, key, error)`` tuple from a reader; ``error`` is the
        reason the reader rejected it (too large), which makes it a dead letter.
        """
        kept = 0
        received: list[float] = []
        read = self.progress.read
        with segment.open("w", encoding="utf-8") as out:
            for source, sse_id, received_at, data, key, error in events:
                read[source] = read.get(source, 0) + 1
                if not self.seen.add(key):
                    self.progress.duplicates += 1
                    continue
                out.write(envelope(source, sse_id, received_at, data, error) + "\n")
                kept += 1
                received.append(received_at)
        return kept, received

    def commit(
        self, staged: StagedBatch, start: dict[str, str], end: dict[str, str], received: datetime | None
    ) -> bool:
        """Appends the batch to every table it touches, raw tables first; returns False when stopped.

        A finished image batch (:meth:`poll_images`) rides along: its dead letters join the batch's, its rows go to
        ``raw.images`` and ``raw.image_owners`` after the raw tables (their documents were written before).
        """
        fired_at = datetime.now(UTC)
        firings: dict[str, pa.Table] = {}
        for name, partials in staged.aggregates.items():
            values, late = self.states[name].merge(partials, received)
            self.progress.late_dropped += late
            if values:
                firings[name] = firing_table(self.states[name].table, values, fired_at, self.batch)
        raw = dict(staged.raw)
        images, properties = self.image_ready, {}
        self.image_ready = None
        if images is not None:
            raw[DEAD_LETTERS.identifier] = pa.concat_tables([raw[DEAD_LETTERS.identifier], images["dead_letters"]])
        writes = {name: rows for name, rows in raw.items() if rows.num_rows}
        if images is not None:
            for table in (IMAGES, IMAGE_OWNERS):
                if images[table.identifier].num_rows:
                    writes[table.identifier] = images[table.identifier]
            if images["through"] is not None:
                # Committed even without rows: the property says how far the photos of the orders are in the lake.
                writes.setdefault(IMAGES.identifier, images[IMAGES.identifier])
                properties[IMAGES.identifier] = {IMAGES_THROUGH: images["through"].isoformat()}
        writes |= firings
        if not writes:
            # Nothing new (only duplicates): carry the positions in the next commit.
            return True
        if images is not None and os.environ.get(KILL_BEFORE_IMAGES_COMMIT):
            os.kill(os.getpid(), signal.SIGKILL)  # a test hook: the documents are written, nothing is committed
        mark = self.mark(tuple(writes), start, end)
        for name, rows in writes.items():
            started = time.perf_counter()
            if not append_batch(self.tables[name], rows, mark, backoff=self.backoff(), properties=properties.get(name)):
                return False
            self.progress.commit_seconds.append(time.perf_counter() - started)
            self.progress.committed[name] = self.progress.committed.get(name, 0) + rows.num_rows
        self.progress.dead_letters += raw[DEAD_LETTERS.identifier].num_rows
        if images is not None:
            self.progress.image_batches += 1
        return True

    def run_batch(self, events: list[tuple], positions: dict[str, str]) -> bool:
        self.batch += 1
        self.spool.mkdir(parents=True, exist_ok=True)
        segment = self.spool / f"batch-{self.batch:08d}.jsonl"
        kept, received = self.spool_batch(events, segment)
        if kept:
            staged = self.run_beam(segment, self.stage / f"batch-{self.batch:08d}")
            newest = datetime.fromtimestamp(max(received), UTC)
            self.poll_images()
            if not self.commit(staged, dict(self.positions), positions, newest):
                return False
            done = time.time()
            self.progress.lags.extend(done - r for r in received)
            if self.images is not None:
                self.pending_refs.extend(refs_from_orders(staged.raw[ORDERS.identifier], self.orders_url))
                self.pending_through = newest
        else:
            self.batch -= 1  # nothing committed under this number
        segment.unlink(missing_ok=True)
        self.positions = positions
        self.progress.batches += 1
        if self.expire_every and self.batch % self.expire_every == 0:
            self.expire()
        return True

    # ----- images -------------------------------------------------------------------------------------------
    def start_images(self) -> None:
        """Starts the image worker; queues the photos of orders received since the last image commit, and the
        menu photos of the restaurant catalog."""
        from airlake.pipelines.images import ImageWorker

        assert self.images is not None
        for table, column, keys in ((IMAGES, "image_id", self.image_ids), (IMAGE_OWNERS, "owner_key", self.owner_keys)):
            for value in (
                self.tables[table.identifier].scan(selected_fields=(column,)).to_arrow().column(column).to_pylist()
            ):
                keys.add(value)
        self.pending_refs.extend(self.unfetched_refs())
        if self.images.menus and self.orders_url:
            import requests

            try:
                self.pending_refs.extend(
                    refs_from_catalog(self.orders_url, self.images.timeout, self.images.menu_markets)
                )
            except (requests.RequestException, ValueError) as exc:
                log.warning("the restaurant catalog could not be read (%s): no menu photos this run", exc)
        self.image_worker = ImageWorker(self.images)
        log.info("image step on: %d photo references to fetch", len(self.pending_refs))

    def unfetched_refs(self) -> list[dict[str, Any]]:
        """The photo references of the delivered orders received since :data:`IMAGES_THROUGH` (set to now when the
        image step first runs on a lake: older orders' photos are not fetched)."""
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual

        table = self.tables[IMAGES.identifier]
        through = table.properties.get(IMAGES_THROUGH)
        if through is None:
            with table.transaction() as txn:
                txn.set_properties({IMAGES_THROUGH: datetime.now(UTC).isoformat()})
            self.tables[IMAGES.identifier] = self.catalog.load_table(IMAGES.identifier)
            return []
        rows = (
            self.tables[ORDERS.identifier]
            .scan(
                row_filter=And(EqualTo("event_type", "delivered"), GreaterThanOrEqual("ingested_at", through)),
                selected_fields=("event_type", "raw_json"),
            )
            .to_arrow()
        )
        found = refs_from_orders(rows, self.orders_url)
        if found:
            log.info("%d photos of orders received since %s are fetched again", len(found), through)
        return found

    def images_busy(self) -> bool:
        """Whether photo references wait, an image batch runs, or its rows wait for a commit."""
        return self.images is not None and bool(self.pending_refs or self.image_job or self.image_ready)

    def submit_images(self) -> None:
        """Hands the waiting references (up to ``max_batch_photos`` photos) to the worker when it is free."""
        if self.image_worker is None or self.image_job is not None or self.image_ready is not None:
            return
        if not self.pending_refs or time.monotonic() < self.image_retry_at:
            return
        assert self.images is not None
        taken: list[dict[str, Any]] = []
        photos: set[str] = set()
        rest: list[dict[str, Any]] = []
        for item in self.pending_refs:
            if owner_key(item["photo_id"], item["owner"]) in self.owner_keys:
                continue  # in the lake already
            if item["photo_id"] in photos or len(photos) < self.images.max_batch_photos:
                photos.add(item["photo_id"])
                taken.append(item)
            else:
                rest.append(item)
        through = self.pending_through if not rest else None
        self.pending_refs = rest
        if not taken:
            if through is not None:  # nothing to fetch, but the positions of the photos move on
                self.image_ready = self._image_result(None, through)
            return
        self.image_jobs += 1
        folder = self.stage / f"images-{self.image_jobs:08d}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        segment = folder / "refs.jsonl"
        segment.write_text("".join(json.dumps(item) + "\n" for item in taken), encoding="utf-8")
        self.image_job = {"refs": taken, "through": through, "stage": folder / "rows", "started": time.monotonic()}
        self.image_worker.submit(str(segment), str(folder / "rows"))

    def poll_images(self) -> None:
        """Takes a finished image batch's staged rows (new images, owners and dead letters only)."""
        if self.image_worker is None or self.image_job is None or self.image_ready is not None:
            return
        result = self.image_worker.poll()
        if result is None:
            return
        job, self.image_job = self.image_job, None
        status, _, error = result
        if status != "done":
            log.warning(
                "image batch failed (%s): its %d references wait %.0f s", error, len(job["refs"]), IMAGE_RETRY_SECONDS
            )
            self.pending_refs[:0] = job["refs"]
            self.image_retry_at = time.monotonic() + IMAGE_RETRY_SECONDS
            if not self.image_worker.process.is_alive():
                from airlake.pipelines.images import ImageWorker

                self.image_worker.close()
                self.image_worker = ImageWorker(self.images)
            return
        self.image_ready = self._image_result(job["stage"], job["through"])
        self.progress.image_seconds.append(time.monotonic() - job["started"])
        shutil.rmtree(job["stage"].parent, ignore_errors=True)

    def _image_result(self, stage: Path | None, through: datetime | None) -> dict[str, Any]:
        def fresh(table: TableDef, keys: SeenKeys, column: str) -> pa.Table:
            rows = read_staged(str(stage), table) if stage is not None else staged_schema(table).empty_table()
            keep = [keys.add(value) for value in rows.column(column).to_pylist()]
            return rows.filter(pa.array(keep, pa.bool_())) if rows.num_rows else rows

        images = fresh(IMAGES, self.image_ids, "image_id")
        owners = fresh(IMAGE_OWNERS, self.owner_keys, "owner_key")
        dead = fresh(DEAD_LETTERS, self.seen, "dead_letter_id")
        self.progress.images_stored += images.num_rows
        self.progress.image_dead_letters += dead.num_rows
        return {IMAGES.identifier: images, IMAGE_OWNERS.identifier: owners, "dead_letters": dead, "through": through}

    def commit_images(self) -> bool:
        """Commits a finished image batch on its own (no events arrived to carry it); returns False when stopped."""
        ready = self.image_ready
        if ready is None:
            return True
        if ready["through"] is None and not any(
            ready[name].num_rows for name in (IMAGES.identifier, IMAGE_OWNERS.identifier, "dead_letters")
        ):
            self.image_ready = None  # only photos the lake holds already (or their dead letters)
            return True
        self.batch += 1
        empty = StagedBatch(raw={t.identifier: staged_schema(t).empty_table() for t in RAW_TABLES}, aggregates={})
        return self.commit(empty, dict(self.positions), dict(self.positions), None)

    def expire(self) -> None:
        """Expires old snapshots, keeping this writer's newest ones whatever other writers committed on top.

        Another writer (``airlake backfill``, ``airlake maintain``) may commit to the same table in between:
        :func:`expire_snapshots` retries on the reloaded table and leaves the expiry to the next time if it keeps
        meeting one.
        """
        for table in self.tables.values():
            expire_snapshots(table, self.keep_snapshots, writer=SPEED_WRITER)

    # ----- the loop -----------------------------------------------------------------------------------------
    def report(self, final: bool = False) -> None:
        s = self.progress.summary()
        if self.lease is not None:
            s["lease_epoch"] = self.lease.epoch
            s["fence_checks"] = self.lease.fences
            s["fence_seconds"] = round(self.lease.fence_seconds, 4)
        line = (
            f"{'done' if final else 'ingest'}: batch {self.batch} | read "
            + " ".join(f"{k}={v}" for k, v in s["read"].items())
            + f" | {s['events_per_s']:.0f} ev/s | dead letters {s['dead_letters']} | duplicates"
            f" {s['duplicates_dropped']} | lag p50 {s['lag_p50_s']} s p95 {s['lag_p95_s']} s"
            f" | beam p50 {s['beam_p50_s']} s | commit p50 {s['commit_p50_s']} s"
        )
        print(line, flush=True)
        if self.metrics_file is not None:
            self.metrics_file.write_text(json.dumps(s, indent=2))

    def run(self) -> dict[str, Any]:
        lease = self.take_lease()
        try:
            self.open_tables()
            self.recover()
            if self.images is not None:
                self.start_images()
            self.readers = [
                ReaderProcess(s, self.positions.get(s.name), self.resume_times.get(s.name)) for s in self.sources
            ]
            self.loop(lease)
        finally:
            self.stop.set()
            for reader in self.readers:
                reader.close()
            if self.image_worker is not None:
                self.image_worker.close()
            shutil.rmtree(self.spool, ignore_errors=True)
            shutil.rmtree(self.stage, ignore_errors=True)
            lease.release()
            self.report(final=True)
        return self.progress.summary()

    def loop(self, lease: Lease) -> None:
        started = last_event = last_report = batch_started = time.monotonic()
        while not self.stop.is_set():
            # The interval runs from one batch's start to the next: time spent committing counts.
            events, positions = self.take(batch_started + self.commit_interval)
            batch_started = time.monotonic()
            now = time.monotonic()
            lease.check()
            if events:
                if not self.run_batch(events, positions):
                    break
                # Idle time counts from when the driver is free again, not from before a slow batch.
                now = last_event = time.monotonic()
            if self.images is not None:
                self.poll_images()
                if self.image_ready is not None:  # no batch of events took it along
                    if not self.commit_images():
                        break
                    now = last_event = time.monotonic()
                self.submit_images()
            failed = [r for r in self.readers if r.error is not None]
            if failed:
                raise RuntimeError(f"firehose reader {failed[0].spec.name} failed: {failed[0].error}")
            if now - last_report >= self.progress_every:
                self.report()
                last_report = now
            idle = self.stop_after_idle is not None and now - last_event >= self.stop_after_idle
            if idle and not self.images_busy():
                log.info("no events for %.1f s: stopping", self.stop_after_idle)
                break
            if self.max_seconds is not None and now - started >= self.max_seconds:
                break


def source_specs(settings: Settings, names: Sequence[str], urls: Mapping[str, str | None]) -> list[SourceSpec]:
    specs = []
    for name in names:
        source = getattr(settings.sources, name)
        specs.append(
            SourceSpec(
                name=name,
                url=urls.get(name) or source.url,
                user_agent=source.user_agent,
                read_timeout=source.read_timeout,
                connect_timeout=source.connect_timeout,
                backoff_initial=source.backoff_initial,
                backoff_max=source.backoff_max,
                max_line_bytes=source.max_line_bytes,
                max_event_bytes=source.max_event_bytes,
                queue_bytes=settings.pipeline.reader_queue_bytes,
            )
        )
    return specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sources",
        default=",".join(SOURCES),
        help="comma-separated firehoses to read (default: %(default)s)",
    )
    parser.add_argument("--recentchange-url", help="recentchange SSE URL (default: sources.recentchange.url)")
    parser.add_argument("--orders-url", help="orders SSE URL (default: sources.orders.url)")
    parser.add_argument("--commit-interval", type=float, help="seconds between commits (default: 2)")
    parser.add_argument("--stop-after-idle", type=float, help="stop when no event arrived for this many seconds")
    parser.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--metrics-file", type=Path, help="write the run's figures as JSON here")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when another process holds the lake's writer lease, wait for it instead of exiting",
    )
    parser.add_argument(
        "beam_args",
        nargs=argparse.REMAINDER,
        help="after '--': Beam pipeline options, e.g. -- --runner=DirectRunner",
    )


def build(settings: Settings, args: argparse.Namespace) -> SpeedPipeline:
    from airlake.catalog import load_catalog
    from airlake.pipelines.images import ImageConfig, enabled

    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise SystemExit(f"airlake ingest: unknown source(s) {', '.join(unknown)} (known: {', '.join(SOURCES)})")
    p = settings.pipeline
    beam_args = [a for a in (args.beam_args or []) if a != "--"]
    return SpeedPipeline(
        load_catalog(settings),
        source_specs(settings, names, {RECENTCHANGE_SOURCE: args.recentchange_url, ORDERS_SOURCE: args.orders_url}),
        state_dir=settings.state_dir,
        markets=settings.markets.wikis,
        default_market=settings.markets.default,
        beam_args=beam_args,
        commit_interval=args.commit_interval or p.commit_interval,
        max_batch_events=p.max_batch_events,
        stop_after_idle=args.stop_after_idle,
        max_seconds=args.max_seconds,
        dedupe_cache_size=p.dedupe_cache_size,
        allowed_lateness_minutes=p.allowed_lateness_minutes,
        max_event_ahead_seconds=p.max_event_ahead_seconds,
        expire_every=p.expire_snapshots_every,
        keep_snapshots=p.keep_snapshots,
        lease_ttl=p.lease_ttl_seconds,
        wait_for_lease=bool(getattr(args, "wait", False)),
        metrics_file=args.metrics_file,
        images=ImageConfig.from_settings(settings) if enabled(settings, names) else None,
    )


def quiet_beam(verbose: bool = False) -> None:
    """Beam logs every pipeline start at INFO; a micro-batch driver starts one per batch."""
    if not verbose:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)


def main(args: argparse.Namespace, settings: Settings) -> int:
    quiet_beam(args.verbose)
    pipeline = build(settings, args)

    def stop(signum, _frame):
        log.info("signal %d: finishing the current batch, then stopping", signum)
        pipeline.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        pipeline.run()
    except (CommitError, LeaseError, RuntimeError) as exc:
        # A permanent failure ends the run: exit status 1 and what to do, not a retry loop or a traceback.
        print(f"airlake ingest: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
