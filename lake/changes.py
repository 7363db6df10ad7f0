"""Which days of a raw table changed since a sequence number: what the batch layer recomputes.

Every commit to an Iceberg v2 table gets the next *sequence number*, and every data file carries the sequence number
of the commit that added it (its data sequence number), whether or not the snapshot that added it still exists. So
"the data files added after sequence number N" is read from the current snapshot's manifests alone, which survives
``expire_snapshots``; a manifest whose own sequence number is at most N holds no such file and is not even opened.
The raw tables are partitioned by the day of their time column, so each file names its day.

Files rewritten by ``optimize`` (a ``replace`` snapshot) hold no new events: they are skipped when the snapshot that
added them is still in the metadata, and otherwise counted as changed (recomputing a day is always correct, only
slower).

A :class:`TableState` (the table's UUID and last sequence number) is what the batch layer records after a run; a
table dropped and created again (another UUID) or rolled back (a lower sequence number) makes every day changed.

Imports pyiceberg only (the lake layer).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

EPOCH = date(1970, 1, 1)
MANIFEST_READERS = 8
"""Manifests read in parallel (each is one GET from the object store)."""


@dataclass(frozen=True)
class TableState:
    """Where a table stood when the batch layer read it."""

    table_uuid: str
    sequence_number: int
    """The table's last sequence number (0 before its first commit)."""


@dataclass(frozen=True)
class Changes:
    """The days of a table with events added after a recorded state, and how many events each day holds."""

    state: TableState
    """The table's state now: record it once the changed days are recomputed."""
    snapshot_id: int | None
    """The snapshot the state belongs to (None for a table without one)."""
    days: list[date]
    """The changed days, oldest first."""
    day_events: dict[date, int]
    """Events per changed day (all of the day's live rows, not only the new ones): what recomputing it reads."""
    everything: bool
    """True when every day counts as changed (no state recorded, another table, or a rollback)."""


def table_state(table: Any) -> TableState:
    return TableState(str(table.metadata.table_uuid), int(table.metadata.last_sequence_number or 0))


def _day_position(table: Any, spec_id: int) -> int:
    spec = table.specs()[spec_id]
    for position, field in enumerate(spec.fields):
        if type(field.transform).__name__ == "DayTransform":
            return position
    raise ValueError(f"{table.name()} is not partitioned by day (spec {spec_id}: {spec}); the batch layer needs it")


def changed_days(table: Any, since: TableState | None) -> Changes:
    """The days of ``table`` holding data files added after ``since`` (every day when ``since`` is None, belongs to
    another table, or is ahead of the table), with each changed day's event count.

    Args:
        table: a pyiceberg table partitioned by a day transform.
        since: the state recorded by the previous batch run, or None.
    """
    now = table_state(table)
    everything = since is None or since.table_uuid != now.table_uuid or since.sequence_number > now.sequence_number
    after = 0 if everything or since is None else since.sequence_number
    snapshot = table.current_snapshot()
    if snapshot is None:
        return Changes(now, None, [], {}, everything)
    replaced = {s.snapshot_id for s in table.snapshots() if s.summary and s.summary.operation.value == "replace"}
    manifests = [m for m in snapshot.manifests(table.io) if m.content.value == 0]  # data, not delete files

    def read(manifest: Any) -> tuple[set[date], Counter[date]]:
        position = _day_position(table, manifest.partition_spec_id)
        new: set[date] = set()
        events: Counter[date] = Counter()
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            day = EPOCH + timedelta(days=int(entry.data_file.partition[position]))
            events[day] += int(entry.data_file.record_count)
            if everything or ((entry.sequence_number or 0) > after and entry.snapshot_id not in replaced):
                new.add(day)
        return new, events

    # Counting a changed day's events needs every manifest that holds the day; finding the day needs only the new
    # ones. Read the new ones first, then the others only if they can hold a changed day (their partition bounds).
    fresh = [m for m in manifests if (m.sequence_number or 0) > after]
    rest = [m for m in manifests if (m.sequence_number or 0) <= after]
    days: set[date] = set()
    events: Counter[date] = Counter()
    with ThreadPoolExecutor(MANIFEST_READERS) as pool:
        for new, counted in pool.map(read, fresh):
            days |= new
            events.update(counted)
        if days and rest:
            low, high = min(days), max(days)
            wanted = [m for m in rest if _may_hold(table, m, low, high)]
            for _, counted in pool.map(read, wanted):
                events.update(counted)
    ordered = sorted(days)
    return Changes(now, snapshot.snapshot_id, ordered, {day: events[day] for day in ordered}, everything)


def _may_hold(table: Any, manifest: Any, low: date, high: date) -> bool:
    """Whether a manifest's partition bounds overlap [low, high] (True when it carries no bounds)."""
    summaries = manifest.partitions or []
    position = _day_position(table, manifest.partition_spec_id)
    if position >= len(summaries):
        return True
    summary = summaries[position]
    if summary.lower_bound is None or summary.upper_bound is None:
        return True
    lower = EPOCH + timedelta(days=int.from_bytes(summary.lower_bound, "little", signed=True))
    upper = EPOCH + timedelta(days=int.from_bytes(summary.upper_bound, "little", signed=True))
    return not (upper < low or lower > high)


def day_ranges(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days merged into half-open ranges [first, last + 1 day)."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(days):
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + timedelta(days=1))
        else:
            ranges.append((day, day + timedelta(days=1)))
    return ranges


def chunk_days(day_events: dict[date, int], budget: int) -> list[list[date]]:
    """Days, oldest first, cut into steps of at most ``budget`` events each (a larger day is a step of its own)."""
    steps: list[list[date]] = []
    total = 0
    for day in sorted(day_events):
        if steps and total + day_events[day] <= budget:
            steps[-1].append(day)
            total += day_events[day]
        else:
            steps.append([day])
            total = day_events[day]
    return steps
