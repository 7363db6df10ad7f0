"""Faults: the object store stops for 20 s while the speed pipeline writes to it (``local`` profile)."""

from __future__ import annotations

import json
import sys
import time

import pytest

from airlake.catalog import load_catalog
from airlake.lake.schemas import ALL_TABLES
from airlake.stack.health import check_s3
from airlake.stack.supervisor import rpc, start_program
from tests.conftest import RECORDING_2018
from tests.procs import Firehose, Process

pytestmark = pytest.mark.stack

OUTAGE_SECONDS = 20


def recorded_ids() -> list[str]:
    return [json.loads(line)["meta"]["id"] for line in RECORDING_2018.read_text().splitlines()]


def test_ingestion_retries_while_s3_is_down_and_lands_every_event_once(stack, tmp_path):
    settings = stack.settings
    catalog = load_catalog(settings, "local")
    for table in ALL_TABLES:  # the stack is shared by the session's tests: start from empty tables
        if catalog.table_exists(table.identifier):
            catalog.purge_table(table.identifier)
    fh = Firehose(
        tmp_path / "firehose", "serve", "--rate", "250", "--source", str(RECORDING_2018), log=tmp_path / "firehose.log"
    )
    command = [
        sys.executable,
        "-m",
        "airlake",
        "--profile",
        "local",
        "ingest",
        "--sources",
        "recentchange",
        "--recentchange-url",
        fh.url,
        "--commit-interval",
        "1",
        "--stop-after-idle",
        "15",
    ]
    run = Process(command, tmp_path / "ingest.log", cwd=stack.cwd, env=stack.env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                snapshot = catalog.load_table("raw.recentchange").current_snapshot()
            except Exception:  # noqa: BLE001 - created by the pipeline when it starts
                continue
            if snapshot is not None:
                break
        assert run.proc.poll() is None, run.output()[-3000:]
        rows_before_outage = int(catalog.load_table("raw.recentchange").current_snapshot().summary["total-records"])
        assert rows_before_outage < len(recorded_ids()), "the outage must come while events are still arriving"

        rpc(stack.layout).supervisor.stopProcess("seaweedfs", True)
        assert check_s3(stack.layout)[0] is False
        time.sleep(OUTAGE_SECONDS)
        assert run.proc.poll() is None, "ingestion must wait for the store, not die:\n" + run.output()[-3000:]
        start_program(stack.layout, "seaweedfs")
        deadline = time.monotonic() + 60
        while not check_s3(stack.layout)[0]:
            assert time.monotonic() < deadline, "SeaweedFS did not come back"
            time.sleep(0.5)
        assert run.wait(600) == 0, run.output()[-3000:]
    finally:
        run.kill()
        fh.kill()
    assert "retrying" in run.output(), "the outage should have made a commit fail and be retried"
    table = catalog.load_table("raw.recentchange")
    ids = table.scan(selected_fields=("event_id",)).to_arrow().column("event_id").to_pylist()
    expected = recorded_ids()
    assert len(ids) == len(expected) == 3818
    assert sorted(ids) == sorted(expected)
