"""``airlake stack up`` initializes the lake: Trino (and so Superset) answers on the ``iceberg`` catalog at once."""

from __future__ import annotations

import pytest
import trino

from airlake.lake.schemas import ALL_TABLES

pytestmark = pytest.mark.stack


def _trino(stack):
    settings = stack.settings
    conn = trino.dbapi.connect(
        host=settings.require("stack.host"),
        port=int(settings.require("stack.trino.port")),
        user="airlake",
        catalog="iceberg",
    )
    return conn.cursor()


def test_the_first_up_on_a_fresh_state_creates_the_tables_before_trino_serves(stack):
    # The session's first `up` ran on a fresh state directory, before any test ingested.
    lines = stack.first_up.splitlines()
    ready = next((i for i, line in enumerate(lines) if line.strip().startswith("lake ")), None)
    assert ready is not None, stack.first_up
    assert f"{len(ALL_TABLES)} tables ready" in lines[ready]
    for table in ALL_TABLES:
        assert table.identifier in lines[ready]
    healthy = next(i for i, line in enumerate(lines) if line.startswith("All services healthy"))
    assert ready < healthy


def test_trino_answers_on_the_iceberg_catalog_right_after_up(stack):
    cur = _trino(stack)
    cur.execute("SHOW SCHEMAS FROM iceberg")
    schemas = {row[0] for row in cur.fetchall()}
    assert {"raw", "speed"} <= schemas
    cur.execute("SELECT count(*) FROM iceberg.raw.orders")
    [[count]] = cur.fetchall()
    assert count >= 0  # other stack tests may have ingested already
    cur.execute("SHOW TABLES FROM iceberg.raw")
    assert {"recentchange", "orders", "dead_letters"} <= {row[0] for row in cur.fetchall()}


def test_up_again_keeps_the_lake_and_says_so(stack):
    cur = _trino(stack)
    cur.execute("SELECT count(*) FROM iceberg.raw.recentchange")
    [[before]] = cur.fetchall()
    again = stack.run("stack", "up", timeout=600).stdout
    assert f"{len(ALL_TABLES)} tables ready" in again
    cur = _trino(stack)
    cur.execute("SELECT count(*) FROM iceberg.raw.recentchange")
    [[after]] = cur.fetchall()
    assert after == before  # nothing re-created or lost
