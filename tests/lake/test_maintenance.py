"""How long ``airlake maintain`` keeps snapshots: never less than asked, and never a writer's newest mark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airlake.lake.maintenance import RETENTION_MARGIN_SECONDS, qualified, retention_needed

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HOUR = 3600


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_young_snapshots_keep_the_configured_retention():
    lineage = [(ago(10), None), (ago(20), "speed"), (ago(30), "speed")]
    assert retention_needed(lineage, NOW, HOUR, keep_snapshots=20) == (HOUR, "")


def test_a_writer_idle_for_longer_than_the_retention_keeps_its_newest_mark():
    # compaction snapshots on top, the speed writer's newest commit three hours ago, an older one before it
    lineage = [(ago(60), None), (ago(120), None), (ago(3 * HOUR), "speed"), (ago(5 * HOUR), "speed")]
    seconds, why = retention_needed(lineage, NOW, HOUR, keep_snapshots=1)
    assert seconds == 3 * HOUR + RETENTION_MARGIN_SECONDS
    assert why.startswith("writer speed")


def test_every_writer_keeps_its_newest_mark_the_oldest_one_decides():
    lineage = [(ago(2 * HOUR), "speed"), (ago(30 * HOUR), "backfill"), (ago(40 * HOUR), "speed")]
    seconds, why = retention_needed(lineage, NOW, HOUR, keep_snapshots=1)
    assert seconds == 30 * HOUR + RETENTION_MARGIN_SECONDS
    assert why.startswith("writer backfill")


def test_the_snapshots_the_speed_pipeline_keeps_are_kept():
    lineage = [(ago(i * HOUR), "speed") for i in range(1, 30)]
    seconds, why = retention_needed(lineage, NOW, HOUR, keep_snapshots=20)
    assert seconds == 20 * HOUR + RETENTION_MARGIN_SECONDS
    assert why.startswith("the newest 20 snapshots")


def test_metadata_tables_are_quoted():
    assert qualified("raw.orders", "$files") == 'iceberg."raw"."orders$files"'
    assert qualified('odd"ns.t') == 'iceberg."odd""ns"."t"'
