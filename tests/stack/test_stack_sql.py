"""``airlake sql`` against the session's stack: a table, JSON and CSV, Trino's errors, and Trino's own CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from airlake.catalog import load_catalog
from airlake.processes import free_port
from airlake.sql import trino_cli_command
from tests.stack.conftest import AIRLAKE

pytestmark = pytest.mark.stack

MARKETS = ("berlin", "london", "paris")


@pytest.fixture(scope="module")
def orders(stack) -> Iterator[list[str]]:
    """Three rows inserted into raw.orders through ``airlake sql`` itself (other tests may have added more)."""
    stack.run("--profile", "local", "lake", "init")
    ids = [f"sqltest-{uuid.uuid4()}" for _ in MARKETS]
    values = ", ".join(
        f"('{event_id}', TIMESTAMP '2026-01-05 12:0{i}:00 UTC', 'placed', 'order-{i}', '{market}', "
        f"TIMESTAMP '2026-01-05 12:0{i}:01 UTC', '{{}}')"
        for i, (event_id, market) in enumerate(zip(ids, MARKETS, strict=True))
    )
    proc = stack.run(
        "--profile",
        "local",
        "sql",
        "INSERT INTO iceberg.raw.orders (event_id, event_time, event_type, order_id, market, ingested_at, raw_json) "
        f"VALUES {values};",
    )
    assert proc.stdout.split()[-1] == "3", proc.stdout
    yield ids
    # the lake is shared by the session's tests: leave raw.orders as it was
    stack.run("--profile", "local", "sql", "DELETE FROM iceberg.raw.orders WHERE event_id LIKE 'sqltest-%'")


def test_a_count_prints_as_a_table_equal_to_pyiceberg(stack, orders):
    proc = stack.run("--profile", "local", "sql", "select count(*) as orders from iceberg.raw.orders")
    header, rule, value = proc.stdout.splitlines()
    assert header.strip() == "orders" and set(rule) == {"-"}
    rows = load_catalog(stack.settings, "local").load_table("raw.orders").scan(selected_fields=("event_id",))
    expected = rows.to_arrow().num_rows
    assert int(value) == expected >= len(orders)
    assert proc.stderr.strip().splitlines()[-1] == "(1 row)"


def test_json_and_csv_parse_and_hold_the_rows(stack, orders):
    query = (
        "select event_id, market, event_time from iceberg.raw.orders "
        f"where event_id in ({', '.join(repr(i) for i in orders)}) order by event_time"
    )
    as_json = json.loads(stack.run("--profile", "local", "sql", "--json", query).stdout)
    assert [row["event_id"] for row in as_json] == orders
    assert [row["market"] for row in as_json] == list(MARKETS)
    assert as_json[0]["event_time"] == "2026-01-05T12:00:00+00:00"
    as_csv = list(csv.DictReader(io.StringIO(stack.run("--profile", "local", "sql", "--csv", query).stdout)))
    assert [(row["event_id"], row["market"]) for row in as_csv] == [(r["event_id"], r["market"]) for r in as_json]


def test_a_large_result_streams_page_by_page(stack):
    proc = stack.run("--profile", "local", "sql", "select x from unnest(sequence(1, 5000)) as t(x)")
    lines = proc.stdout.splitlines()
    assert [int(v) for v in lines[2:]] == list(range(1, 5001))
    assert proc.stderr.strip().splitlines()[-1] == "(5000 rows)"


def test_a_sql_error_prints_trinos_message_and_exits_1(stack):
    proc = stack.run("--profile", "local", "sql", "select * from iceberg.raw.nope", check=False)
    assert proc.returncode == 1
    assert "line 1:15: Table 'iceberg.raw.nope' does not exist" in proc.stderr
    assert proc.stdout == ""


def test_trino_not_running_names_the_command_that_starts_it(stack):
    env = stack.env | {"AIRLAKE__STACK__TRINO__PORT": str(free_port())}
    for args in (("sql", "select 1"), ("sql",), ("maintain",)):
        proc = subprocess.run(
            [*AIRLAKE, "--profile", "local", *args],
            cwd=stack.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert "Trino is not running" in proc.stderr and "`airlake stack up`" in proc.stderr, (args, proc.stderr)


def test_the_trino_cli_runs_a_query_through_the_same_launcher(stack, orders):
    command = trino_cli_command(stack.settings, "--execute", "select count(*) from raw.orders")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, env=stack.env)
    assert proc.returncode == 0, proc.stderr
    rows = load_catalog(stack.settings, "local").load_table("raw.orders").scan(selected_fields=("event_id",))
    assert proc.stdout.strip() == f'"{rows.to_arrow().num_rows}"'
    assert "restricted method" not in proc.stderr, proc.stderr


def test_help_explains_the_four_forms(stack):
    out = stack.run("sql", "--help").stdout
    for form in ('airlake sql "QUERY"', "airlake sql  ", "airlake sql apply", "airlake sql docs", "--json", "--csv"):
        assert form in out, form
