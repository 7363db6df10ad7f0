"""The main job: ``airlake --profile local demo`` (what ``make demo`` runs) against the test session's stack."""

from __future__ import annotations

import re
import sys

import pytest

from airlake.catalog import load_catalog
from airlake.lake.stats import lake_stats
from airlake.processes import free_port
from tests.procs import Process

pytestmark = pytest.mark.stack


def test_demo_ingests_both_firehoses_shows_trino_counts_and_prints_the_superset_login(stack, tmp_path):
    settings = stack.settings
    env = stack.env | {
        "AIRLAKE__FIREHOSE__RECENTCHANGE_PORT": str(free_port()),
        "AIRLAKE__FIREHOSE__ORDERS_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    before = lake_stats(load_catalog(settings, "local"))  # other stack tests may have ingested already
    run = Process(
        [sys.executable, "-m", "airlake", "--profile", "local", "demo", "--seconds", "15", "--rate", "200"],
        tmp_path / "demo.log",
        cwd=stack.cwd,
        env=env,
    )
    assert run.wait(600) == 0, run.output()[-4000:]
    out = run.output()
    # stack install and up are idempotent: the running stack is reused.
    assert "All services healthy" in out
    counts = [tuple(map(int, m)) for m in re.findall(r"trino:  raw.recentchange=(\d+) raw.orders=(\d+)", out)]
    assert counts and counts[-1][0] > 0 and counts[-1][1] > 0, out[-4000:]
    login = re.search(r"Superset: (http://\S+)\s+login (\S+) / (\S+)", out)
    assert login is not None, out[-2000:]
    assert login.group(1) == f"http://127.0.0.1:{settings.require('stack.superset.port')}"
    assert login.group(3) == settings.require("stack.superset.admin_password")

    after = lake_stats(load_catalog(settings, "local"))
    for table in ("raw.recentchange", "raw.orders"):
        added = after[table]["rows"] - before[table].get("rows", 0)
        assert added > 0, table
        # The demo adds no duplicate (the batch-layer test leaves a few older than the dedupe cache on purpose).
        new_ids = after[table]["distinct_ids"] - before[table].get("distinct_ids", 0)
        assert added == new_ids, table
    assert after["raw.dead_letters"]["rows"] == before["raw.dead_letters"].get("rows", 0)
