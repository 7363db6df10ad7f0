"""Exactly-once appends: the stream position travels in the Iceberg commit that adds the rows.

A writer (the speed pipeline) works in numbered batches. Each append of a batch carries, in its snapshot summary,
a :class:`BatchMark`: the writer's name, the batch number, the tables the batch writes to, and for every source
the stream position (SSE ``Last-Event-ID``) at the start and at the end of the batch. This is how the Iceberg Flink
sink (``flink.max-committed-checkpoint-id``) and the Kafka Connect sink (``kafka.connect.offsets.*``) do it.

Iceberg has no multi-table transactions, so a crash can leave a batch committed to some of its tables only.
:func:`recover` finds the newest batch: when every table it names holds it, the writer resumes from its end
positions; otherwise from its start positions, and the events replayed into the tables that already hold the
batch are dropped by id (:func:`recent_ids` warms the writer's dedupe cache from the newest snapshots).

Several writers share the tables (the speed pipeline, ``airlake backfill``), each under its own name: a writer reads
back only its own commits (:func:`latest_mark`, and ``writer=`` of :func:`recent_ids`, :func:`newest_commit_max` and
:func:`expire_snapshots`), so another writer's rows never move its positions, its watermark or its dedupe cache.

Imports :mod:`sources.retry` (the backoff between commit attempts; it imports nothing of airlake's) and the lease.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from airlake.lake.tables import MANIFEST_MERGE_ENABLED
from airlake.sources.retry import Backoff

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

log = logging.getLogger(__name__)

SPEED_WRITER = "speed"
"""The writer name of the speed pipeline: its lease, its batch marks and its spool and stage folders."""

# Snapshot summary keys. A position key is followed by the source name.
WRITER = "airlake.writer"
BATCH = "airlake.batch"
BATCH_TABLES = "airlake.batch.tables"
EPOCH = "airlake.lease-epoch"
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
    epoch: int = 0  # the writer lease's epoch (0: written without a lease, before leases existed)

    def to_properties(self) -> dict[str, str]:
        props = {WRITER: self.writer, BATCH: str(self.batch), BATCH_TABLES: ",".join(self.tables)}
        if self.epoch:
            props[EPOCH] = str(self.epoch)
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
        return cls(summary[WRITER], int(summary[BATCH]), tables, start, end, int(summary.get(EPOCH, 0) or 0))


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


def _writer(snapshot: Snapshot) -> str | None:
    """The writer named in a snapshot's batch mark (None for a commit without one)."""
    mark = BatchMark.from_summary(_summary(snapshot))
    return mark.writer if mark is not None else None


def recent_ids(table: Table, column: str, snapshots: int | None = None, writer: str | None = None) -> pa.Array:
    """The values of ``column`` in the rows appended by the newest ``snapshots`` snapshots of ``table``.

    ``None`` reads every snapshot still in the table's lineage (what snapshot expiry kept). With ``writer``, only the
    rows of that writer's commits among them are read (another writer's, such as a backfill's millions, are not).
    """
    import pyarrow as pa

    lineage = list(_newest_first(table))
    if not lineage:
        return pa.array([], pa.string())
    window = lineage if snapshots is None else lineage[:snapshots]
    # Runs of consecutive snapshots to read, newest first, as (index of the newest, index of the oldest).
    runs: list[tuple[int, int]] = []
    if writer is None:
        runs.append((0, len(window) - 1))
    else:
        for i, snapshot in enumerate(window):
            if _writer(snapshot) != writer:
                continue
            if runs and runs[-1][1] == i - 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
    parts = []
    for newest, oldest in runs:
        older = lineage[oldest + 1] if oldest + 1 < len(lineage) else None
        scan = table.incremental_append_scan(
            from_snapshot_id_exclusive=older.snapshot_id if older is not None else None,
            to_snapshot_id_inclusive=lineage[newest].snapshot_id,
            selected_fields=(column,),
        )
        parts.append(scan.to_arrow().column(column))
    if not parts:
        return pa.array([], pa.string())
    return pa.chunked_array([c for part in parts for c in part.chunks], type=parts[0].type).combine_chunks()


def newest_append(table: Table) -> Snapshot | None:
    """The newest ``append`` snapshot of the current branch (compaction's ``replace`` snapshots add no rows)."""
    from pyiceberg.table.snapshots import Operation

    for snapshot in _newest_first(table):
        if snapshot.summary is not None and snapshot.summary.operation == Operation.APPEND:
            return snapshot
    return None


def newest_commit_max(table: Table, *columns: str, writer: str | None = None) -> dict[str, Any] | None:
    """The largest value of each of ``columns`` among the rows the newest append of ``table`` added.

    The newest append, not the newest snapshot: after ``airlake maintain`` compacted the table the newest snapshot
    is a ``replace`` that adds no rows of its own.

    Args:
        table: the table.
        columns: the columns.
        writer: read the newest snapshot *of this writer* instead (another writer's newer commits are passed over).

    Returns:
        column -> its largest value; None when the table has no such snapshot or it appended no rows.
    """
    import pyarrow.compute as pc

    if writer is None:
        snapshot = newest_append(table)
    else:
        snapshot = next((s for s in _newest_first(table) if _writer(s) == writer), None)
    if snapshot is None:
        return None
    parent = snapshot.parent_snapshot_id
    if parent is not None and table.snapshot_by_id(parent) is None:
        parent = None  # expired: the snapshot is the oldest one kept
    rows = table.incremental_append_scan(
        from_snapshot_id_exclusive=parent,
        to_snapshot_id_inclusive=snapshot.snapshot_id,
        selected_fields=columns,
    ).to_arrow()
    if rows.num_rows == 0:
        return None
    return {column: pc.max(rows.column(column)).as_py() for column in columns}


class CommitError(RuntimeError):
    """A commit failed for a reason that retrying cannot fix; ``str(exc)`` names the table and the cause."""

    def __init__(self, table: str, cause: BaseException):
        self.table, self.cause = table, cause
        super().__init__(f"cannot commit to {table}: {_describe(cause)}")


_ACCESS_DENIED = (
    "accessdenied",
    "access_denied",
    "access denied",
    "invalidaccesskeyid",
    "signaturedoesnotmatch",
    "password authentication failed",
    "permission denied",
    "403 forbidden",
    "http 403",
)


def _describe(exc: BaseException) -> str:
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    if isinstance(exc, NoSuchTableError):
        return f"the table does not exist (was it dropped?): {first}"
    if isinstance(exc, NoSuchNamespaceError):
        return f"the namespace does not exist: {first}"
    if isinstance(exc, ValueError | TypeError) and ("schema" in str(exc).lower() or "mismatch" in str(exc).lower()):
        return f"the rows do not match the table's schema (was it altered?): {first}"
    if any(word in str(exc).lower() for word in _ACCESS_DENIED):
        return f"access denied: {first}"
    return f"{type(exc).__name__}: {first}"


def is_permanent(exc: BaseException) -> bool:
    """Whether a failed commit would fail again however often it is retried.

    Permanent: a missing table or namespace, rows that do not fit the table's schema, access denied (S3 or the
    catalog's database), a lost writer lease. Everything else (connections refused or reset, 5xx answers, commit
    conflicts, a database that is restarting) is transient.
    """
    from pyiceberg.exceptions import (
        ForbiddenError,
        NoSuchNamespaceError,
        NoSuchTableError,
        UnauthorizedError,
        ValidationError,
    )

    from airlake.lake.lease import LeaseLost

    if isinstance(
        exc,
        NoSuchTableError | NoSuchNamespaceError | ValidationError | ForbiddenError | UnauthorizedError | LeaseLost,
    ):
        return True
    if isinstance(exc, PermissionError | ValueError | TypeError | NotImplementedError):
        return True  # includes pyarrow's ArrowInvalid and ArrowTypeError, and pyiceberg's schema checks
    from sqlalchemy.exc import ProgrammingError

    if isinstance(exc, ProgrammingError):
        return True  # a relation missing, a permission denied
    text = str(exc).lower()
    return any(word in text for word in _ACCESS_DENIED)


def _write_data_files(table: Table, rows: pa.Table) -> list[Any]:
    """Writes ``rows`` as Parquet data files of ``table`` (not yet committed); checks the schema first."""
    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, _dataframe_to_data_files

    metadata = table.metadata
    _check_pyarrow_schema_compatible(
        metadata.schema(), provided_schema=rows.schema, format_version=metadata.format_version
    )
    if rows.num_rows == 0:
        return []
    return list(_dataframe_to_data_files(table_metadata=metadata, write_uuid=uuid.uuid4(), df=rows, io=table.io))


def _commit_data_files(
    table: Table, files: list[Any], mark: BatchMark, properties: Mapping[str, str] | None = None
) -> None:
    """One snapshot adding ``files`` with ``mark`` in its summary (merge-append when the table asks for it), and
    ``properties`` set on the table in the same commit."""
    from pyiceberg.utils.properties import property_as_bool

    merge = property_as_bool(table.properties, MANIFEST_MERGE_ENABLED, False)
    with table.transaction() as txn:
        if properties:
            txn.set_properties(dict(properties))
        update = txn.update_snapshot(snapshot_properties=mark.to_properties())
        with update.merge_append() if merge else update.fast_append() as append:
            for data_file in files:
                append.append_data_file(data_file)


def _delete_files(table: Table, files: list[Any]) -> None:
    for data_file in files:
        try:
            table.io.delete(data_file.file_path)
        except Exception as exc:  # noqa: BLE001 - left to Trino's remove_orphan_files
            log.warning("could not delete the uncommitted data file %s (%s)", data_file.file_path, exc)


def _landed(table: Table, mark: BatchMark) -> bool:
    done = latest_mark(table, mark.writer)
    return done is not None and done.epoch == mark.epoch and done.batch >= mark.batch


def append_batch(
    table: Table,
    rows: pa.Table,
    mark: BatchMark,
    *,
    backoff: Backoff | None = None,
    properties: Mapping[str, str] | None = None,
) -> bool:
    """Appends ``rows`` with ``mark`` in the snapshot summary, retrying transient failures until it is committed once.

    ``properties`` are table properties set by the same commit (a writer's progress record that, unlike a snapshot
    summary, survives snapshot expiry: ``airlake backfill`` keeps its filled days there).

    The data files are written once; only the catalog commit is retried. Before each retry the table is reloaded
    and, if the batch turns out to be committed already (the failure came after the commit), nothing is appended
    again. A permanent failure (:func:`is_permanent`) deletes the batch's uncommitted data files and raises.

    Returns:
        True when committed, False when the backoff's stop event was set before it could be.

    Raises:
        CommitError: a permanent failure, naming the table and the cause (a lost lease is a :class:`LeaseLost`).
    """
    from airlake.lake.lease import LeaseLost

    backoff = backoff or Backoff()
    files: list[Any] | None = None
    name = table.name()
    label = ".".join(name) if isinstance(name, tuple) else str(name)

    def give_up(exc: Exception) -> NoReturn:
        if files and not _safe_landed(table, mark):
            _delete_files(table, files)
        if isinstance(exc, LeaseLost):
            raise exc
        raise CommitError(label, exc) from exc

    while True:
        try:
            if files is None:
                files = _write_data_files(table, rows)
            _commit_data_files(table, files, mark, properties)
            return True
        except Exception as exc:  # noqa: BLE001 - classified below
            if is_permanent(exc):
                give_up(exc)
            log.warning(
                "commit of batch %d to %s failed (%s: %s); retrying", mark.batch, label, type(exc).__name__, exc
            )
        if not backoff.wait():
            return False
        try:
            table.refresh()
        except Exception as exc:  # noqa: BLE001
            if is_permanent(exc):
                give_up(exc)
            log.warning("reloading %s failed (%s); retrying", label, exc)
            continue
        if _landed(table, mark):
            log.info("batch %d is already in %s", mark.batch, label)
            return True


def _safe_landed(table: Table, mark: BatchMark) -> bool:
    """Whether the batch is in the table after all (False when that cannot be told: the table is gone)."""
    try:
        table.refresh()
        return _landed(table, mark)
    except Exception:  # noqa: BLE001
        return False


EXPIRE_ATTEMPTS = 3


def expire_snapshots(table: Table, keep: int, writer: str | None = None) -> int:
    """Expires all but the newest ``keep`` snapshots (files are removed by Trino's maintenance); returns how many.

    With ``writer``, the newest ``keep`` snapshots *of that writer* are kept too, and every snapshot above them (the
    lineage must stay unbroken for :func:`latest_mark` to walk it): another writer's many commits (a backfill) never
    push a writer's own newest marks and rows out of the lineage.

    A commit that meets a concurrent one (``airlake maintain`` compacting the table through Trino, a backfill) is
    retried on the reloaded table; after :data:`EXPIRE_ATTEMPTS` it gives up with a warning and returns 0 (the next
    expiry will do it): expiry is housekeeping and must not stop the writer.
    """
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(1, EXPIRE_ATTEMPTS + 1):
        lineage = list(_newest_first(table))
        kept = keep
        if writer is not None:
            own = [i for i, s in enumerate(lineage) if _writer(s) == writer]
            if own and keep > 0:
                kept = max(keep, own[min(keep, len(own)) - 1] + 1)
        retained = {x.snapshot_id for x in lineage[:kept]}
        old = [s.snapshot_id for s in table.snapshots() if s.snapshot_id not in retained]
        if not old:
            return 0
        try:
            table.maintenance.expire_snapshots().by_ids(old).commit()
            return len(old)
        except CommitFailedException as exc:
            log.info("snapshot expiry met a concurrent commit (%s); attempt %d of %d", exc, attempt, EXPIRE_ATTEMPTS)
            table.refresh()
    log.warning("snapshot expiry gave up after %d concurrent commits; the next expiry will do it", EXPIRE_ATTEMPTS)
    return 0
