"""``airlake backfill`` on the local stack: the PostgreSQL catalog and S3, read back through Trino."""

from __future__ import annotations

import json

import pytest

from airlake.catalog.trino import query

pytestmark = pytest.mark.stack


def summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{") :])


def test_a_backfilled_day_reads_back_through_trino_and_a_rerun_adds_nothing(stack):
    args = ("--profile", "local", "backfill", "--days", "1", "--orders-per-day", "2000", "--seed", "11", "--json")
    first = stack.run(*args, timeout=600)
    done = summary(first.stdout)
    assert done["days_done"] == 1 and "backfill: 1/1 days" in first.stdout and "events/s" in first.stdout
    rows = done["rows"]
    assert rows["raw.orders"] > 5_000 and rows["raw.recentchange"] > 10_000

    # Only the backfill writes rows that never crossed a stream (sse_id null) and orders whose id ends in -bf.
    settings = stack.settings
    orders_sql = (
        "SELECT count(*), count(DISTINCT event_id), count(DISTINCT market), count_if(event_type = 'placed')"
        " FROM iceberg.raw.orders WHERE order_id LIKE '%-bf'"
    )
    demand_sql = "SELECT count(*), count(DISTINCT event_id) FROM iceberg.raw.recentchange WHERE sse_id IS NULL"
    orders = query(settings, orders_sql, timeout=120)[0]
    assert orders[0] == orders[1] == rows["raw.orders"]
    assert orders[2] == len(set(settings.get("markets.wikis").values()))  # every market of the mapping
    assert 1_000 < orders[3] < 3_000
    assert query(settings, demand_sql, timeout=120)[0] == [rows["raw.recentchange"]] * 2

    again = summary(stack.run(*args, timeout=600).stdout)
    assert (again["days_done"], again["days_skipped"], again["events"]) == (0, 1, 0)
    assert query(settings, orders_sql, timeout=120)[0] == orders

    other = stack.run(*args[:-2], "12", "--json", check=False, timeout=600)
    assert other.returncode == 1 and "already holds a backfill of seed 11" in other.stderr


def test_dbt_build_passes_every_schema_test_on_a_backfilled_lake(stack):
    """``airlake sql apply`` (``dbt build``: every model and its tests) on the lake a backfill filled."""
    # The arguments of the test above, one day further back: alone it fills both days, after it the older one.
    args = ("--profile", "local", "backfill", "--days", "2", "--orders-per-day", "2000", "--seed", "11", "--json")
    assert summary(stack.run(*args, timeout=900).stdout)["days_done"] >= 1
    built = stack.run("--profile", "local", "sql", "apply", timeout=1800, check=False)
    tail = built.stdout[-3000:]
    assert built.returncode == 0, tail + built.stderr[-2000:]
    assert "ERROR=0" in built.stdout and "SKIP=0" in built.stdout, tail
    settings = stack.settings
    backfilled_markets = "SELECT count(DISTINCT market) FROM iceberg.marts.orders WHERE order_id LIKE '%-bf'"
    markets = query(settings, backfilled_markets, timeout=300)[0][0]
    assert markets == len(set(settings.get("markets.wikis").values()))
    [[orders, placed]] = query(
        settings,
        "SELECT (SELECT count(*) FROM iceberg.marts.orders WHERE order_id LIKE '%-bf'),"
        " (SELECT count(DISTINCT order_id) FROM iceberg.raw.orders WHERE order_id LIKE '%-bf')",
        timeout=300,
    )
    assert orders == placed  # one row per order in the mart
