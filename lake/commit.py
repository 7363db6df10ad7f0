"""Exactly-once appends: the stream position travels in the Iceberg commit that adds the rows.

A writer (the speed pipeline) works in numbered batches. Each append of a batch carries, in its snapshot summary,
a :class:`BatchMark`: the writer's name, the batch number, the tables the batch writes to, and for every source
the stream position (SSE ``Last-Event-ID``) at the start and at the end of the batch. This is how the Iceberg Flink
sink (``flink.max-committed-checkpoint-id``) and the Kafka Connect sink (``kafka.connect.offsets.*``) do it.

Iceberg has no multi-table transactions, so a crash can leave a batch committed to some of its tables only.
:func:`recover` finds the newest batch: when every table it names holds it, the writer resumes from its end
positions; otherwise from its start positions, and the events replayed into the tables that already hold the
batch are dropped by id (:func:`recent_ids` warms the writer's dedupe cache from the newest snapshots).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

log = logging.getLogger(__name__)

# Snapshot summary keys. A position key is followed by the source name.
WRITER = "airlake.writer"
BATCH = "airlake.batch"
BATCH_TABLES = "airlake.batch.tables"
START_POSITION = "airlake.start-position."
END_POSITION = "airlake.position."


@dataclass(frozen=True)
class BatchMark:
    """What a batch commit records next to its rows."""

    writer: str
    batch: int
    tables: tuple[str, ...]
    start: Mapping[str, str] = field(default_factory=dict)
    end: Mapping[str, str] = field(default_factory=dict)

    def to_properties(self) -> dict[str, str]:
        props = {WRITER: self.writer, BATCH: str(self.batch), BATCH_TABLES: ",".join(self.tables)}
        props.update({START_POSITION + src: pos for src, pos in self.start.items()})
        props.update({END_POSITION + src: pos for src, pos in self.end.items()})
        return props

    @classmethod
    def from_summary(cls, summary: Mapping[str, str]) -> BatchMark | None:
        if BATCH not in summary or WRITER not in summary:
            return None
        tables = tuple(t for t in summary.get(BATCH_TABLES, "").split(",") if t)
        start = {k[len(START_POSITION) :]: v for k, v in summary.items() if k.startswith(START_POSITION)}
        end = {k[len(END_POSITION) :]: v for k, v in summary.items() if k.startswith(END_POSITION)}
        return cls(summary[WRITER], int(summary[BATCH]), tables, start, end)


def _summary(snapshot: Snapshot) -> dict[str, str]:
    return dict(snapshot.summary.additional_properties) if snapshot.summary else {}


def _newest_first(table: Table) -> Iterator[Snapshot]:
    """Snapshots of the current branch, newest first."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        yield snapshot
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None


def latest_mark(table: Table, writer: str) -> BatchMark | None:
    """The mark of the newest commit of ``writer`` on ``table``, or None."""
    for snapshot in _newest_first(table):
        mark = BatchMark.from_summary(_summary(snapshot))
        if mark is not None and mark.writer == writer:
            return mark
    return None


@dataclass(frozen=True)
class Recovery:
    """Where a writer resumes after a (re)start."""

    batch: int  # the newest batch number seen (0 when nothing was committed)
    positions: dict[str, str]  # source -> Last-Event-ID to resume from
    partial: bool  # the newest batch reached only some of its tables
    missing: tuple[str, ...] = ()  # the tables it did not reach


def recover(tables: Mapping[str, Table], writer: str) -> Recovery:
    """Finds the position ``writer`` resumes from (see the module docstring)."""
    marks = {name: latest_mark(t, writer) for name, t in tables.items()}
    present = [m for m in marks.values() if m is not None]
    if not present:
        return Recovery(0, {}, False)
    newest = max(present, key=lambda m: m.batch)
    missing = tuple(name for name in newest.tables if (m := marks.get(name)) is None or m.batch < newest.batch)
    if missing:
        log.warning("batch %d reached %s but not %s: replaying it", newest.batch, newest.tables, missing)
        return Recovery(newest.batch, dict(newest.start), True, missing)
    return Recovery(newest.batch, dict(newest.end), False)


def recent_ids(table: Table, column: str, snapshots: int) -> pa.Array:
    """The values of ``column`` in the rows appended by the newest ``snapshots`` snapshots of ``table``."""
    import pyarrow as pa

    lineage = list(_newest_first(table))
    if not lineage:
        return pa.array([], pa.string())
    older = lineage[snapshots] if len(lineage) > snapshots else None
    scan = table.incremental_append_scan(
        from_snapshot_id_exclusive=older.snapshot_id if older is not None else None,
        to_snapshot_id_inclusive=lineage[0].snapshot_id,
        selected_fields=(column,),
    )
    return scan.to_arrow().column(column).combine_chunks()


class Backoff:
    """Exponential backoff with full jitter, interruptible by an event."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, stop: threading.Event | None = None):
        self.initial, self.maximum, self.stop = initial, maximum, stop or threading.Event()
        self.attempt = 0

    def wait(self) -> bool:
        """Sleeps before the next attempt; returns False when stopped meanwhile."""
        delay = random.uniform(0, min(self.maximum, self.initial * 2**self.attempt))
        self.attempt += 1
        return not self.stop.wait(delay)


def append_batch(
    table: Table,
    rows: pa.Table,
    mark: BatchMark,
    *,
    backoff: Backoff | None = None,
) -> bool:
    """Appends ``rows`` with ``mark`` in the snapshot summary, retrying until it is committed once.

    Any failure (a lost commit race, the object store or the catalog unreachable) is retried with backoff; before
    each retry the table is reloaded and, if the batch turns out to be committed already (the failure came after
    the commit), nothing is appended again.

    Returns:
        True when committed, False when the backoff's stop event was set before it could be.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            table.append(rows, snapshot_properties=mark.to_properties())
            return True
        except Exception as exc:  # noqa: BLE001 - every failure of the store or catalog is retried
            log.warning(
                "commit of batch %d to %s failed (%s: %s); retrying",
                mark.batch,
                table.name(),
                type(exc).__name__,
                exc,
            )
        if not backoff.wait():
            return False
        try:
            table.refresh()
        except Exception as exc:  # noqa: BLE001
            log.warning("reloading %s failed (%s); retrying", table.name(), exc)
            continue
        done = latest_mark(table, mark.writer)
        if done is not None and done.batch >= mark.batch:
            log.info("batch %d is already in %s", mark.batch, table.name())
            return True


def expire_snapshots(table: Table, keep: int) -> int:
    """Expires all but the newest ``keep`` snapshots (files are removed by Trino's maintenance); returns how many."""
    lineage = list(_newest_first(table))
    old = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in {x.snapshot_id for x in lineage[:keep]}]
    if not old:
        return 0
    table.maintenance.expire_snapshots().by_ids(old).commit()
    return len(old)
