"""The days a batch run recomputes: data files added after a recorded sequence number, on a real Iceberg catalog."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from airlake.catalog import load_catalog
from airlake.lake.changes import TableState, changed_days, chunk_days, day_ranges, table_state
from airlake.lake.commit import expire_snapshots
from airlake.lake.schemas import DEAD_LETTERS
from airlake.lake.tables import ensure_tables

DAY = date(2026, 11, 20)


def letters(day: date, count: int, tag: str) -> pa.Table:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    rows = [
        {"dead_letter_id": f"{tag}-{i}", "source": "s", "received_at": at, "error": "e", "payload": "p", "sse_id": None}
        for i in range(count)
    ]
    return pa.Table.from_pylist(rows, schema=DEAD_LETTERS.schema)


@pytest.fixture
def table(settings):
    return ensure_tables(load_catalog(settings))[DEAD_LETTERS.identifier]


def test_an_empty_table_has_no_changed_day(table):
    changes = changed_days(table, None)
    assert (changes.days, changes.snapshot_id, changes.everything) == ([], None, True)


def test_first_run_sees_every_day_then_only_the_days_written_since(table):
    for offset, count in enumerate([3, 5, 2]):
        table.append(letters(DAY + timedelta(days=offset), count, f"d{offset}"))
    first = changed_days(table, None)
    assert first.days == [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    assert first.day_events == {DAY: 3, DAY + timedelta(days=1): 5, DAY + timedelta(days=2): 2}
    assert first.everything and first.state == table_state(table)

    assert changed_days(table, first.state).days == []  # nothing written since: nothing to recompute

    table.append(letters(DAY + timedelta(days=1), 4, "late"))  # late events for the middle day
    table.append(letters(DAY + timedelta(days=5), 1, "new"))
    second = changed_days(table, first.state)
    assert second.days == [DAY + timedelta(days=1), DAY + timedelta(days=5)]
    # a changed day's count is all of its rows (what recomputing it reads), not only the new ones
    assert second.day_events == {DAY + timedelta(days=1): 9, DAY + timedelta(days=5): 1}
    assert not second.everything and second.state.sequence_number > first.state.sequence_number


def test_expired_snapshots_do_not_hide_a_change(table):
    table.append(letters(DAY, 1, "a"))
    recorded = table_state(table)
    for n in range(4):
        table.append(letters(DAY + timedelta(days=2), 1, f"b{n}"))
    assert expire_snapshots(table, keep=1) == 4
    table.refresh()
    assert changed_days(table, recorded).days == [DAY + timedelta(days=2)]


def test_another_table_or_a_state_ahead_of_the_table_recomputes_everything(table):
    table.append(letters(DAY, 2, "a"))
    table.append(letters(DAY + timedelta(days=1), 2, "b"))
    now = table_state(table)
    for recorded in (
        TableState("another-uuid", now.sequence_number),
        TableState(now.table_uuid, now.sequence_number + 5),
    ):
        changes = changed_days(table, recorded)
        assert changes.everything and changes.days == [DAY, DAY + timedelta(days=1)]


def test_days_are_cut_into_steps_within_the_budget_and_merged_into_ranges():
    sizes = {DAY + timedelta(days=i): n for i, n in enumerate([400, 500, 300, 2_000, 100, 100])}
    assert chunk_days(sizes, 1_000) == [
        [DAY, DAY + timedelta(days=1)],
        [DAY + timedelta(days=2)],
        [DAY + timedelta(days=3)],  # a day above the budget is a step of its own
        [DAY + timedelta(days=4), DAY + timedelta(days=5)],
    ]
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=3)]
    assert day_ranges(days) == [(DAY, DAY + timedelta(days=2)), (DAY + timedelta(days=3), DAY + timedelta(days=4))]
