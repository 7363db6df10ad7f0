"""One writer per lake: the lease in the catalog's database and the fencing of commits, on a real SQLite catalog."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from airlake.catalog import load_catalog
from airlake.lake.commit import Backoff, BatchMark, CommitError, append_batch, latest_mark
from airlake.lake.lease import Lease, LeaseHeld, LeaseLost, read_lease
from airlake.lake.schemas import DEAD_LETTERS
from airlake.lake.tables import ensure_tables

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def letters(*ids: str) -> pa.Table:
    rows = [
        {"dead_letter_id": i, "source": "s", "received_at": NOW, "error": "e", "payload": "p", "sse_id": None}
        for i in ids
    ]
    return pa.Table.from_pylist(rows, schema=DEAD_LETTERS.schema)


def parquet_files(settings) -> set[Path]:
    return set((settings.state_dir / "warehouse").rglob("*.parquet"))


@pytest.fixture
def catalog(settings):
    catalog = load_catalog(settings)
    ensure_tables(catalog)
    return catalog


def test_a_second_writer_is_told_who_holds_the_lease(catalog):
    first = Lease(catalog, "speed", ttl=30).acquire()
    try:
        second = Lease(load_catalog_of(catalog), "speed", ttl=30)
        assert not second.try_acquire()
        with pytest.raises(LeaseHeld) as held:
            second.acquire()
        message = str(held.value)
        assert "pid" in message and str(first.holder) in message and "--wait" in message
        other = Lease(catalog, "backfill", ttl=30).acquire()  # another writer name is another lease
        other.release()
    finally:
        first.release()
    info = read_lease(catalog.engine, "speed")
    assert info is not None and info.holder is None and info.epoch == 1


def load_catalog_of(catalog):
    """A second catalog object on the same database, as a second process would have."""
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(catalog.name, **catalog.properties)


def test_a_released_lease_is_taken_at_once_and_the_epoch_grows(catalog):
    a = Lease(catalog, "speed", ttl=30).acquire()
    a.release()
    b = Lease(catalog, "speed", ttl=30).acquire()
    try:
        assert b.epoch == 2
    finally:
        b.release()


def test_an_expired_lease_is_taken_over_and_the_old_holders_commit_is_refused(settings, catalog):
    table = catalog.load_table("raw.dead_letters")
    zombie = Lease(catalog, "speed", ttl=1.0, heartbeat=3600).acquire()  # it never renews: a paused process
    assert append_batch(table, letters("a"), BatchMark("speed", 1, ("raw.dead_letters",), epoch=zombie.epoch))
    with pytest.raises(LeaseHeld):
        Lease(load_catalog_of(catalog), "speed", ttl=30).acquire()
    time.sleep(1.3)
    successor_catalog = load_catalog_of(catalog)
    successor = Lease(successor_catalog, "speed", ttl=30).acquire(wait=True, timeout=10)
    try:
        assert successor.epoch == zombie.epoch + 1
        files_before = parquet_files(settings)
        with pytest.raises(LeaseLost, match="commit refused"):
            append_batch(table, letters("b"), BatchMark("speed", 2, ("raw.dead_letters",), epoch=zombie.epoch))
        assert zombie.lost.is_set()
        assert parquet_files(settings) == files_before  # the refused batch's data file was deleted
        theirs = successor_catalog.load_table("raw.dead_letters")
        assert append_batch(theirs, letters("c"), BatchMark("speed", 2, ("raw.dead_letters",), epoch=successor.epoch))
        fresh = load_catalog_of(catalog).load_table("raw.dead_letters")
        ids = sorted(fresh.scan().to_arrow().column("dead_letter_id").to_pylist())
        assert ids == ["a", "c"]
        assert latest_mark(fresh, "speed").epoch == successor.epoch
    finally:
        successor.release()
        zombie.release()


def test_the_heartbeat_notices_a_takeover(catalog):
    a = Lease(catalog, "speed", ttl=0.6, heartbeat=5).acquire()
    time.sleep(0.8)
    b = Lease(load_catalog_of(catalog), "speed", ttl=30).acquire()
    try:
        assert not a.renew()
        with pytest.raises(LeaseLost, match="now held by"):
            a.check()
    finally:
        b.release()
        a.release()


def test_a_dropped_table_is_a_permanent_error_that_names_it(settings, catalog):
    table = catalog.load_table("raw.dead_letters")
    catalog.drop_table("raw.dead_letters")
    started = time.monotonic()
    with pytest.raises(CommitError, match=r"raw\.dead_letters.*does not exist"):
        append_batch(table, letters("a"), BatchMark("speed", 1, ("raw.dead_letters",)), backoff=Backoff(initial=5))
    assert time.monotonic() - started < 5  # no retry loop
    assert parquet_files(settings) == set()


def test_rows_that_do_not_fit_the_schema_are_a_permanent_error(settings, catalog):
    table = catalog.load_table("raw.dead_letters")
    wrong = pa.table({"dead_letter_id": ["a"], "unexpected": [1]})
    with pytest.raises(CommitError, match="schema"):
        append_batch(table, wrong, BatchMark("speed", 1, ("raw.dead_letters",)), backoff=Backoff(initial=5))
    assert parquet_files(settings) == set()


def test_the_lease_of_a_killed_process_of_this_host_is_taken_at_once(settings, catalog):
    code = (
        "import sys, time\n"
        "from airlake.settings import load_settings\n"
        "from catalog import load_catalog\n"
        "from lake.lease import Lease\n"
        f"s = load_settings({{'state_dir': {str(settings.state_dir)!r}, 'profile': 'embedded'}}, environ={{}})\n"
        "Lease(load_catalog(s), 'speed', ttl=600).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeld, match=f"pid {holder.pid}"):
            Lease(catalog, "speed").acquire()
    finally:
        holder.kill()
        holder.wait()
    started = time.monotonic()
    lease = Lease(catalog, "speed").acquire()  # no wait for the 600 s expiry
    try:
        assert time.monotonic() - started < 5 and lease.epoch == 2
    finally:
        lease.release()
