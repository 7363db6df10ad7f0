"""Exactly-once commits and recovery on a real (SQLite + file) Iceberg catalog."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from airlake.catalog import load_catalog
from airlake.lake.commit import Backoff, BatchMark, append_batch, expire_snapshots, latest_mark, recent_ids, recover
from airlake.lake.schemas import DEAD_LETTERS, RECENTCHANGE
from airlake.lake.tables import STREAMING_PROPERTIES, ensure_tables

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def letters(*ids: str) -> pa.Table:
    rows = [
        {"dead_letter_id": i, "source": "s", "received_at": NOW, "error": "e", "payload": "p", "sse_id": None}
        for i in ids
    ]
    return pa.Table.from_pylist(rows, schema=DEAD_LETTERS.schema)


@pytest.fixture
def tables(settings):
    return ensure_tables(load_catalog(settings))


def test_tables_are_partitioned_by_day_and_tuned_for_streaming(tables):
    rc = tables[RECENTCHANGE.identifier]
    assert [(f.name, str(f.transform)) for f in rc.spec().fields] == [("event_time_day", "day")]
    for key, value in STREAMING_PROPERTIES.items():
        assert rc.properties[key] == value
    assert rc.schema().find_field("event_id").required


def test_mark_round_trips_through_a_fresh_catalog(settings, tables):
    mark = BatchMark("speed", 7, ("raw.dead_letters",), {"src": '[{"offset":1}]'}, {"src": '[{"offset":9}]'})
    assert append_batch(tables["raw.dead_letters"], letters("a"), mark)
    fresh = load_catalog(settings).load_table("raw.dead_letters")
    assert latest_mark(fresh, "speed") == mark
    assert latest_mark(fresh, "batch-layer") is None


def test_recover_resumes_after_a_complete_batch_and_replays_a_partial_one(tables):
    names = ("raw.dead_letters", "raw.orders")
    first = BatchMark("speed", 1, names, {}, {"src": "p1"})
    append_batch(tables["raw.dead_letters"], letters("a"), first)
    assert recover(tables, "speed").partial  # raw.orders has not got batch 1
    append_batch(tables["raw.orders"], tables["raw.orders"].schema().as_arrow().empty_table(), first)
    done = recover(tables, "speed")
    assert (done.batch, done.positions, done.partial) == (1, {"src": "p1"}, False)

    second = BatchMark("speed", 2, names, {"src": "p1"}, {"src": "p2"})
    append_batch(tables["raw.dead_letters"], letters("b"), second)  # the crash comes before raw.orders
    partial = recover(tables, "speed")
    assert (partial.batch, partial.positions, partial.partial, partial.missing) == (
        2,
        {"src": "p1"},
        True,
        ("raw.orders",),
    )


def test_recover_with_nothing_committed_starts_from_the_beginning(tables):
    assert recover(tables, "speed").positions == {}


class FailsAfterCommit:
    """The one fault a real store cannot be made to produce on demand: the commit lands, then the call fails."""

    def __init__(self, table):
        self.table, self.failed = table, False

    def append(self, rows, snapshot_properties):
        self.table.append(rows, snapshot_properties=snapshot_properties)
        if not self.failed:
            self.failed = True
            raise OSError("connection reset after the commit")

    def __getattr__(self, name):
        return getattr(self.table, name)


def test_a_retry_after_a_commit_that_landed_appends_nothing_more(tables):
    table = tables["raw.dead_letters"]
    flaky = FailsAfterCommit(table)
    mark = BatchMark("speed", 3, ("raw.dead_letters",), {}, {"src": "p3"})
    assert append_batch(flaky, letters("x", "y"), mark, backoff=Backoff(initial=0.01))
    table.refresh()
    assert table.scan().to_arrow().num_rows == 2


def test_a_transient_failure_is_retried_until_stopped(settings, tables):
    table = tables["raw.dead_letters"]
    database = settings.state_dir / "catalog.db"
    database.rename(database.with_suffix(".away"))
    database.mkdir()  # the catalog's database can't be opened: a transient failure
    table.catalog.engine.dispose()
    stop = threading.Event()
    stop.set()
    try:
        assert not append_batch(table, letters("a"), BatchMark("speed", 1, ()), backoff=Backoff(stop=stop))
    finally:
        database.rmdir()
        database.with_suffix(".away").rename(database)
    table.catalog.engine.dispose()
    assert append_batch(table, letters("a"), BatchMark("speed", 1, ("raw.dead_letters",)))


def test_recent_ids_reads_the_newest_snapshots_only(tables):
    table = tables["raw.dead_letters"]
    for batch, ids in enumerate([("a", "b"), ("c",), ("d", "e")], start=1):
        append_batch(table, letters(*ids), BatchMark("speed", batch, ("raw.dead_letters",)))
    assert sorted(recent_ids(table, "dead_letter_id", 2).to_pylist()) == ["c", "d", "e"]
    assert sorted(recent_ids(table, "dead_letter_id", 10).to_pylist()) == ["a", "b", "c", "d", "e"]


def test_expire_snapshots_keeps_the_newest_and_the_data(tables):
    table = tables["raw.dead_letters"]
    for batch in range(1, 8):
        append_batch(table, letters(f"id{batch}"), BatchMark("speed", batch, ("raw.dead_letters",)))
    assert expire_snapshots(table, keep=3) == 4
    table.refresh()
    assert len(table.snapshots()) == 3
    assert table.scan().to_arrow().num_rows == 7
    assert latest_mark(table, "speed").batch == 7
