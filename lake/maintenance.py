"""Table maintenance through Trino: compaction, snapshot expiry and orphan file removal on every Iceberg table.

pyiceberg cannot compact, and its snapshot expiry deletes no files (DESIGN.md), so the lake's housekeeping runs on
Trino over the same catalog: for each table, ``ALTER TABLE ... EXECUTE optimize`` (small files rewritten into
large ones, one ``replace`` snapshot; on a table partitioned by day, one statement per day that has more than one
data file, so that a rewrite holds one day's rows in Trino's memory, not the table's), ``expire_snapshots`` (snapshots older than the retention dropped, and the
files only they referenced deleted) and ``remove_orphan_files`` (files under the table's location that no snapshot
references and that are older than the retention).

What must survive, and how it does:

- **Each writer's newest batch mark.** A writer resumes from the mark in its newest commit (``lake.commit.recover``
  walks the current snapshot's ancestors for it). Compaction adds ``replace`` snapshots without a mark, so on a
  table a writer has not written to for longer than the retention the marked snapshot is no longer the current
  one. The retention of each table is therefore stretched to cover the newest snapshot of every writer (the
  ``airlake.writer`` key of the snapshot summaries) and the newest ``pipeline.keep_snapshots`` snapshots, which the
  speed pipeline keeps to warm its dedupe cache after a restart.
- **Files of commits in flight.** A data file exists before the commit that references it; only
  ``remove_orphan_files`` could take it, and only when it is older than ``maintenance.orphan_retention_seconds``
  (a day: a writer whose lease lapsed, 30 s, cannot commit any more, and deletes its own files).
- **Concurrent appends.** Every step is one Iceberg commit with optimistic concurrency: a commit that meets a
  newer snapshot is retried by Iceberg on top of it (``commit.retry.num-retries``), a rewrite keeps every file
  appended meanwhile, and a step that still fails is retried here and then reported, never half-applied.

Imports :mod:`airlake.catalog.trino` (the Trino client) and :mod:`airlake.lake.commit` (the writer key).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from airlake.catalog.trino import TrinoError, run
from airlake.lake.commit import WRITER
from airlake.lake.tables import PARTITION_FIELD_SUFFIX
from airlake.settings import Settings

log = logging.getLogger(__name__)

TRINO_CATALOG = "iceberg"
"""The lake's catalog in Trino."""

STEPS = ("optimize", "expire_snapshots", "remove_orphan_files")
RETENTION_MARGIN_SECONDS = 600
"""Added to a stretched snapshot retention: the time between reading the snapshots and Trino expiring them."""

ATTEMPTS = 3
"""Tries of a step that failed on a commit conflict (Iceberg already retried it inside Trino)."""

CONFLICT_WORDS = ("commit", "conflict", "concurrent", "retry")


@dataclass(frozen=True)
class Counts:
    """Data files of a table's current snapshot, and its snapshots."""

    data_files: int
    snapshots: int


@dataclass
class TableReport:
    """What maintenance did to one table."""

    table: str
    before: Counts
    after: Counts | None = None
    snapshot_retention_seconds: int = 0
    kept_for: str = ""
    """Why the snapshot retention was stretched beyond the configured one (empty when it was not)."""
    seconds: dict[str, float] = field(default_factory=dict)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(table: str, suffix: str = "") -> str:
    """``iceberg."raw"."orders"`` for ``raw.orders`` (``suffix``: a metadata table such as ``$files``)."""
    namespace, _, name = table.rpartition(".")
    return f"{TRINO_CATALOG}.{quote(namespace)}.{quote(name + suffix)}"


def list_tables(settings: Settings, *, timeout: float = 120.0) -> list[str]:
    """Every Iceberg table of the lake as ``namespace.table``, whatever its namespace (views excluded)."""
    rows = run(
        settings,
        f"SELECT table_schema, table_name FROM {TRINO_CATALOG}.information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('information_schema', 'system') ORDER BY 1, 2",
        timeout=timeout,
    ).rows
    return [f"{schema}.{name}" for schema, name in rows]


def counts(settings: Settings, table: str, *, timeout: float = 120.0) -> Counts:
    """Data files (``$files`` rows of content 0) and snapshots (``$snapshots``) of ``table``."""
    rows = run(
        settings,
        f"SELECT (SELECT count(*) FROM {qualified(table, '$files')} WHERE content = 0), "
        f"(SELECT count(*) FROM {qualified(table, '$snapshots')})",
        timeout=timeout,
    ).rows
    return Counts(int(rows[0][0]), int(rows[0][1]))


def snapshot_retention(
    settings: Settings, table: str, configured: int, keep_snapshots: int, *, timeout: float = 120.0
) -> tuple[int, str]:
    """The retention for ``expire_snapshots`` on ``table``, in seconds, and why it was stretched (or "").

    Reads the current snapshot's ancestors (``$history``) with their writers (``$snapshots``' summaries) and the
    time on Trino's clock, and leaves the choice to :func:`retention_needed`.
    """
    rows = run(
        settings,
        f"SELECT s.committed_at, element_at(s.summary, '{WRITER}'), current_timestamp "
        f"FROM {qualified(table, '$snapshots')} s JOIN {qualified(table, '$history')} h "
        "ON s.snapshot_id = h.snapshot_id WHERE h.is_current_ancestor ORDER BY s.committed_at DESC",
        timeout=timeout,
    ).rows
    if not rows:
        return configured, ""
    return retention_needed([(r[0], r[1]) for r in rows], rows[0][2], configured, keep_snapshots)


def retention_needed(
    lineage: list[tuple[datetime, str | None]], now: datetime, configured: int, keep_snapshots: int
) -> tuple[int, str]:
    """The snapshot retention that keeps what must survive, and why it is longer than ``configured`` (or "").

    Args:
        lineage: (commit time, writer or None) of the current snapshot and its ancestors, newest first.
        now: the time the retention counts back from (Trino's clock).
        configured: the retention asked for, in seconds.
        keep_snapshots: this many newest snapshots are kept too (what the speed pipeline keeps itself).

    Returns:
        At least ``configured``; longer when needed to keep the newest snapshot of every writer (its batch mark)
        and the newest ``keep_snapshots`` snapshots, plus :data:`RETENTION_MARGIN_SECONDS`.
    """
    keep: dict[str, datetime] = {}
    if len(lineage) > 1 and keep_snapshots > 0:
        keep[f"the newest {keep_snapshots} snapshots"] = lineage[min(keep_snapshots, len(lineage)) - 1][0]
    for committed_at, writer in lineage:
        if writer and f"writer {writer}" not in keep:
            keep[f"writer {writer}"] = committed_at
    if not keep:
        return configured, ""
    reason, oldest = min(keep.items(), key=lambda item: item[1])
    needed = int((now - oldest).total_seconds()) + RETENTION_MARGIN_SECONDS
    if needed <= configured:
        return configured, ""
    return needed, f"{reason}, committed {oldest:%Y-%m-%d %H:%M:%S}"


def _is_conflict(message: str) -> bool:
    text = message.lower()
    return any(word in text for word in CONFLICT_WORDS) and "retention" not in text


def _execute(settings: Settings, statement: str, *, timeout: float) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            run(settings, statement, timeout=timeout)
            return
        except TrinoError as exc:
            if attempt == ATTEMPTS or not _is_conflict(str(exc)):
                raise
            log.warning("%s failed (%s); retrying (%d of %d)", statement, exc, attempt + 1, ATTEMPTS)
            time.sleep(attempt)


WHOLE_TABLE_ROWS = 1_000_000
"""A table with at most this many rows is optimized in one statement; a larger one a day at a time."""


def optimize_filters(settings: Settings, table: str, *, timeout: float) -> list[str]:
    """The ``WHERE`` clauses of one ``optimize`` per day partition that has more than one data file, oldest first;
    ``[""]`` (the whole table at once) for a table not partitioned by day or of at most :data:`WHOLE_TABLE_ROWS`.

    Trino's 11-million-event ``optimize`` of ``raw.orders`` in one statement exceeded the 768 MB a query gets with
    the default heap (docs/benchmarks.md); a day at a time holds one day's rows.
    """
    result = run(settings, f"select * from {qualified(table, '$partitions')}", timeout=timeout)
    if "partition" not in result.columns:  # not partitioned
        return [""]
    at, count = result.columns.index("partition"), result.columns.index("file_count")
    rows = result.columns.index("record_count")
    if sum(int(row[rows] or 0) for row in result.rows) <= WHOLE_TABLE_ROWS:
        return [""]  # one statement, which also rewrites files that only carry row deletes (a MERGE's)
    days: list[tuple[str, Any]] = []
    for partition, files in ((row[at], row[count]) for row in result.rows):
        names = getattr(partition, "_names", None)
        if not names or len(names) != 1 or not names[0].endswith(PARTITION_FIELD_SUFFIX):
            return [""]
        if partition[0] is not None and int(files) > 1:
            days.append((names[0].removesuffix(PARTITION_FIELD_SUFFIX), partition[0]))
    return [
        f" WHERE {column} >= timestamp '{day:%Y-%m-%d} 00:00:00 UTC'"
        f" AND {column} < timestamp '{day:%Y-%m-%d} 00:00:00 UTC' + interval '1' day"
        for column, day in sorted(days, key=lambda item: item[1])
    ]


def maintain_table(
    settings: Settings,
    table: str,
    *,
    snapshot_retention_seconds: int,
    orphan_retention_seconds: int,
    keep_snapshots: int,
    timeout: float,
) -> TableReport:
    """Compacts ``table``, then expires its old snapshots, then removes its orphan files; counts before and after.

    A step that fails is recorded in the report's ``error`` and ends this table's maintenance (the next run starts
    again from the first step); nothing of a failed step is applied.
    """
    report = TableReport(table, counts(settings, table, timeout=timeout))
    target = qualified(table)
    try:
        started = time.monotonic()
        for where in optimize_filters(settings, table, timeout=timeout):
            _execute(settings, f"ALTER TABLE {target} EXECUTE optimize{where}", timeout=timeout)
        report.seconds["optimize"] = round(time.monotonic() - started, 3)

        started = time.monotonic()
        retention, report.kept_for = snapshot_retention(
            settings, table, snapshot_retention_seconds, keep_snapshots, timeout=timeout
        )
        report.snapshot_retention_seconds = retention
        _execute(
            settings,
            f"ALTER TABLE {target} EXECUTE expire_snapshots(retention_threshold => '{retention}s')",
            timeout=timeout,
        )
        report.seconds["expire_snapshots"] = round(time.monotonic() - started, 3)

        started = time.monotonic()
        _execute(
            settings,
            f"ALTER TABLE {target} EXECUTE remove_orphan_files(retention_threshold => '{orphan_retention_seconds}s')",
            timeout=timeout,
        )
        report.seconds["remove_orphan_files"] = round(time.monotonic() - started, 3)
    except TrinoError as exc:
        report.error = str(exc)
    report.after = counts(settings, table, timeout=timeout)
    return report


def maintain(
    settings: Settings,
    tables: Iterable[str] | None = None,
    *,
    progress: Callable[[TableReport], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[TableReport]:
    """Maintains ``tables`` (default: every table of the lake) with the ``maintenance.*`` settings.

    Args:
        progress: called with each table's report as soon as the table is done.
        stop: checked before each table; maintenance ends early when it returns True.

    Raises:
        TrinoError: Trino could not list the tables (a table's own failure is in its report).
    """
    timeout = settings.maintenance.timeout_seconds
    snapshot_seconds = settings.maintenance.snapshot_retention_seconds
    orphan_seconds = settings.maintenance.orphan_retention_seconds
    keep_snapshots = settings.pipeline.keep_snapshots
    names = list(tables) if tables is not None else list_tables(settings, timeout=timeout)
    reports = []
    for name in names:
        if stop is not None and stop():
            break
        try:
            report = maintain_table(
                settings,
                name,
                snapshot_retention_seconds=snapshot_seconds,
                orphan_retention_seconds=orphan_seconds,
                keep_snapshots=keep_snapshots,
                timeout=timeout,
            )
        except TrinoError as exc:  # counting failed: the table is gone, or Trino is
            report = TableReport(name, Counts(0, 0), error=str(exc))
        reports.append(report)
        if progress is not None:
            progress(report)
    return reports
