"""``airlake maintain`` while the speed pipeline commits (``local`` profile), then a restart of the pipeline.

The replay firehose serves the 2018 recording (3,818 events) at 40 events/s; ``airlake ingest`` commits every
second while ``airlake maintain --every 5`` compacts, expires and removes orphans on every table. Then: every event
of the source is in ``raw.recentchange`` exactly once, the data files were compacted, and an ingest restarted after
a last maintenance (so the newest snapshot is compaction's, not the writer's) goes on from its committed position,
reads nothing twice and rebuilds its per-minute state (the latest firing of each minute counts every raw event).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from airlake.catalog import load_catalog
from airlake.catalog.trino import query
from airlake.lake.schemas import ALL_TABLES
from tests.conftest import RECORDING_2018
from tests.procs import Firehose, Process
from tests.stack.conftest import AIRLAKE

pytestmark = pytest.mark.stack

RATE = 40
STOP_AT = 0.7
"""The first ingest is stopped when this share of the source is committed (about a minute of maintenance)."""


def recorded_ids() -> list[str]:
    return [json.loads(line)["meta"]["id"] for line in RECORDING_2018.read_text().splitlines()]


def ingest(stack, fh: Firehose, log) -> Process:
    command = [
        *(sys.executable, "-m", "airlake", "--profile", "local", "ingest", "--sources", "recentchange"),
        *("--recentchange-url", fh.url, "--commit-interval", "1", "--stop-after-idle", "10"),
    ]
    return Process(command, log, cwd=stack.cwd, env=stack.env)


def rows(stack) -> int:
    return query(stack.settings, "SELECT count(*) FROM iceberg.raw.recentchange")[0][0]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(1)


def newest_operation(stack, table: str) -> str:
    namespace, name = table.split(".")
    return query(
        stack.settings,
        f'SELECT operation FROM iceberg.{namespace}."{name}$snapshots" ORDER BY committed_at DESC LIMIT 1',
    )[0][0]


def test_maintenance_while_ingesting_loses_nothing_compacts_and_the_restart_goes_on(stack, tmp_path):
    catalog = load_catalog(stack.settings, "local")
    for table in ALL_TABLES:  # the stack is shared by the session's tests: start from empty tables
        if catalog.table_exists(table.identifier):
            catalog.purge_table(table.identifier)
    expected = recorded_ids()
    fh = Firehose(
        tmp_path / "firehose", "serve", "--rate", str(RATE), "--source", str(RECORDING_2018), log=tmp_path / "fh.log"
    )
    first = ingest(stack, fh, tmp_path / "ingest-1.log")
    maintain = None
    try:
        wait_for(lambda: catalog.table_exists("raw.recentchange") and rows(stack) > 0, 120, "nothing was committed")
        maintain = Process(
            [sys.executable, "-m", "airlake", "--profile", "local", "maintain", "--every", "5", "--json"],
            tmp_path / "maintain.log",
            cwd=stack.cwd,
            env=stack.env,
        )
        wait_for(lambda: rows(stack) > len(expected) * STOP_AT, 180, "ingestion is too slow")
        # maintenance stops first, so that the pipeline's last commits leave small files for the last maintenance
        maintain.proc.send_signal(signal.SIGTERM)
        assert maintain.wait(300) == 0, maintain.output()[-3000:]
        time.sleep(4)
        assert first.proc.poll() is None, "the source must outlast the first run:\n" + first.output()[-3000:]
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait(120) == 0, first.output()[-3000:]
    finally:
        first.kill()
        if maintain is not None:
            maintain.kill()

    runs = [json.loads(line) for line in maintain.output().splitlines() if line.startswith("{")]
    assert len(runs) >= 2, maintain.output()[-3000:]
    reports = [t for run in runs for t in run["tables"]]
    assert {"raw.recentchange", "speed.demand_minute"} <= {t["table"] for t in reports}
    assert [t for t in reports if t["error"]] == [], "a maintenance step failed while ingesting"
    raw = [t for t in reports if t["table"] == "raw.recentchange"]
    assert any(t["after"]["data_files"] < t["before"]["data_files"] for t in raw), raw
    committed = rows(stack)
    assert 0 < committed < len(expected)

    last = stack.run("--profile", "local", "maintain")  # ingestion stopped: the newest snapshot becomes compaction's
    line = re.search(r"raw\.recentchange\s+(\d+) -> (\d+)", last.stdout)
    assert line is not None and int(line.group(2)) < int(line.group(1)), last.stdout
    assert newest_operation(stack, "raw.recentchange") == "replace"
    assert rows(stack) == committed

    second = ingest(stack, fh, tmp_path / "ingest-2.log")
    try:
        assert second.wait(300) == 0, second.output()[-3000:]
    finally:
        second.kill()
        fh.kill()
    out = second.output()
    assert re.search(r"resuming after batch \d+ from", out), out[-3000:]
    assert "rebuilt aggregate state" in out, out[-3000:]
    done = re.findall(r"done: .* read recentchange=(\d+) .* duplicates (\d+)", out)
    assert done and int(done[-1][0]) == len(expected) - committed and int(done[-1][1]) == 0, out[-3000:]

    total, distinct = query(stack.settings, "SELECT count(*), count(DISTINCT event_id) FROM iceberg.raw.recentchange")[
        0
    ]
    assert total == distinct == len(expected)
    ids = catalog.load_table("raw.recentchange").scan(selected_fields=("event_id",)).to_arrow()
    assert sorted(ids.column("event_id").to_pylist()) == sorted(expected)
    # the latest firing of each minute and wiki counts every raw event of it, across the restart
    mismatched = query(
        stack.settings,
        """
        WITH latest AS (
            SELECT window_start, wiki, events,
                   row_number() OVER (PARTITION BY window_start, wiki ORDER BY batch DESC, fired_at DESC) AS rn
            FROM iceberg.speed.demand_minute
        ), raw AS (
            SELECT date_trunc('minute', event_time) AS minute, wiki, count(*) AS n
            FROM iceberg.raw.recentchange GROUP BY 1, 2
        )
        SELECT r.minute, r.wiki, r.n, l.events
        FROM raw r LEFT JOIN latest l ON l.window_start = r.minute AND l.wiki = r.wiki AND l.rn = 1
        WHERE l.events IS NULL OR l.events <> r.n
        """,
    )
    assert mismatched == []


@pytest.mark.parametrize(
    ("setting", "catalog_property"),
    [
        ("AIRLAKE__MAINTENANCE__SNAPSHOT_RETENTION_SECONDS", "iceberg.expire-snapshots.min-retention"),
        ("AIRLAKE__MAINTENANCE__ORPHAN_RETENTION_SECONDS", "iceberg.remove-orphan-files.min-retention"),
    ],
)
def test_a_retention_below_trinos_floor_is_refused_with_trinos_message(stack, setting, catalog_property):
    stack.run("--profile", "local", "lake", "init")
    env = stack.env | {setting: "60"}
    proc = subprocess.run(
        [*AIRLAKE, "--profile", "local", "maintain", "--table", "raw.recentchange"],
        cwd=stack.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "raw.recentchange: failed:" in proc.stderr and catalog_property in proc.stderr, proc.stderr
