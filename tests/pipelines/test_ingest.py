"""The speed pipeline as users run it: real firehose processes, ``airlake ingest``, kill -9, restarts."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from airlake.catalog import load_catalog
from tests.conftest import MODERN_SAMPLES, RECORDING_2018
from tests.procs import Firehose, Process, airlake_command, lake_stats

pytestmark = pytest.mark.integration

RECORDED = 3818


def ingest(state: Path, log: Path, *args: str) -> Process:
    return Process(airlake_command(state, "ingest", *args), log)


def catalog_of(state: Path):
    """The embedded catalog of a test's state directory, as the pipeline sees it."""
    from airlake.settings import load_settings

    return load_catalog(load_settings({"state_dir": str(state), "profile": "embedded"}, environ={}))


def ingest_until_idle(state: Path, log: Path, source: str, url: str, *args: str, idle: float = 4) -> None:
    """Runs ``airlake ingest`` of one source until it has been idle ``idle`` seconds; it must exit 0."""
    run = ingest(state, log, "--sources", source, f"--{source}-url", url, "--stop-after-idle", str(idle), *args)
    assert run.wait(300) == 0, run.output()[-3000:]


def latest_firings(state: Path, table: str, keys: tuple[str, ...]) -> list[dict]:
    """The value of each key of a speed table: its latest firing."""
    rows = catalog_of(state).load_table(table).scan().to_arrow()
    latest: dict[tuple, dict] = {}
    for row in rows.to_pylist():
        key = tuple(row[k] for k in keys)
        if key not in latest or (row["fired_at"], row["batch"]) > (latest[key]["fired_at"], latest[key]["batch"]):
            latest[key] = row
    return list(latest.values())


def recorded_ids(path: Path) -> set[str]:
    return {json.loads(line)["meta"]["id"] for line in path.read_text().splitlines()}


def test_replay_of_the_2018_recording_lands_exactly_once(tmp_path: Path):
    state = tmp_path / "state"
    fh = Firehose(state, "serve", "--max", "--source", str(RECORDING_2018), log=tmp_path / "firehose.log")
    try:
        ingest_until_idle(state, tmp_path / "ingest.log", "recentchange", fh.url, idle=4)
    finally:
        fh.kill()
    stats = lake_stats(state)
    assert stats["raw.recentchange"]["rows"] == RECORDED
    assert stats["raw.recentchange"]["distinct_ids"] == RECORDED
    assert stats["raw.dead_letters"]["rows"] == 0
    assert json.loads(stats["raw.recentchange"]["positions"]["recentchange"])[0]["offset"] == RECORDED - 1
    demand = latest_firings(state, "speed.demand_minute", ("window_start", "market", "wiki"))
    assert sum(r["events"] for r in demand) == RECORDED
    assert {r["market"] for r in demand} == {"london"}  # wikidatawiki is mapped to london by default


def test_modern_samples_parse_into_typed_rows(tmp_path: Path):
    state = tmp_path / "state"
    fh = Firehose(state, "serve", "--max", "--source", str(MODERN_SAMPLES), log=tmp_path / "firehose.log")
    try:
        ingest_until_idle(state, tmp_path / "ingest.log", "recentchange", fh.url, idle=3)
    finally:
        fh.kill()
    table = catalog_of(state).load_table("raw.recentchange")
    rows = {r["wiki"]: r for r in table.scan().to_arrow().to_pylist()}
    assert set(rows) == {"enwiki", "commonswiki"}
    assert rows["enwiki"]["schema_uri"] == "/mediawiki/recentchange/1.0.0"
    assert rows["enwiki"]["event_time"].isoformat() == "2026-09-08T00:24:20.990000+00:00"
    assert rows["enwiki"]["length_new"] == 10972 and rows["enwiki"]["bot"] is True
    assert rows["commonswiki"]["type"] == "categorize" and rows["commonswiki"]["namespace"] == 14
    assert json.loads(rows["commonswiki"]["raw_json"])["meta"]["id"] == rows["commonswiki"]["event_id"]


def test_kill_9_at_random_moments_with_dropped_connections_loses_and_repeats_nothing(tmp_path: Path):
    state = tmp_path / "state"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill schedule seed {seed}")
    fh = Firehose(
        state,
        "serve",
        "--rate",
        "400",
        "--drop-every",
        "300",
        "--source",
        str(RECORDING_2018),
        log=tmp_path / "firehose.log",
    )
    kills = 0
    try:
        for attempt in range(3):
            run = ingest(
                state,
                tmp_path / f"ingest-{attempt}.log",
                "--sources",
                "recentchange",
                "--recentchange-url",
                fh.url,
                "--commit-interval",
                "1",
            )
            time.sleep(rng.uniform(3.0, 7.0))
            assert run.proc.poll() is None, run.output()[-3000:]
            run.kill()  # SIGKILL: no chance to finish the batch
            kills += 1
        ingest_until_idle(
            state, tmp_path / "ingest-final.log", "recentchange", fh.url, "--commit-interval", "1", idle=5
        )
        assert fh.stats()["/v2/stream/recentchange"]["drops"] > 0
    finally:
        fh.kill()
    assert kills == 3
    stats = lake_stats(state)
    assert stats["raw.recentchange"]["rows"] == RECORDED, f"seed {seed}"
    assert stats["raw.recentchange"]["distinct_ids"] == RECORDED, f"seed {seed}"
    table = catalog_of(state).load_table("raw.recentchange")
    assert set(table.scan(selected_fields=("event_id",)).to_arrow().column("event_id").to_pylist()) == recorded_ids(
        RECORDING_2018
    )
    demand = latest_firings(state, "speed.demand_minute", ("window_start", "market", "wiki"))
    assert sum(r["events"] for r in demand) == RECORDED, f"seed {seed}: speed aggregates differ from raw"


def test_malformed_incomplete_and_duplicated_events(tmp_path: Path):
    state = tmp_path / "state"
    fh = Firehose(
        state,
        "serve",
        "--max",
        "--malformed-every",
        "100",
        "--incomplete-every",
        "250",
        "--duplicate-every",
        "50",
        "--drop-every",
        "700",
        "--source",
        str(RECORDING_2018),
        log=tmp_path / "firehose.log",
    )
    try:
        injected = fh.stats()["/v2/stream/recentchange"]["log"]["faults_injected"]
        ingest_until_idle(state, tmp_path / "ingest.log", "recentchange", fh.url, idle=4)
    finally:
        fh.kill()
    assert injected == {"malformed": RECORDED // 100, "incomplete": RECORDED // 250, "duplicate": RECORDED // 50}
    stats = lake_stats(state)
    assert stats["raw.recentchange"]["rows"] == RECORDED  # nothing valid lost, duplicates dropped
    assert stats["raw.recentchange"]["distinct_ids"] == RECORDED
    assert stats["raw.dead_letters"]["rows"] == injected["malformed"] + injected["incomplete"]
    assert stats["raw.dead_letters"]["distinct_ids"] == injected["malformed"] + injected["incomplete"]
    letters = catalog_of(state).load_table("raw.dead_letters")
    reasons = Counter(r.split(":")[0] for r in letters.scan().to_arrow().column("error").to_pylist())
    assert reasons == {"malformed JSON": injected["malformed"], "missing field meta.dt": injected["incomplete"]}


def test_rows_are_readable_while_the_firehose_is_still_open(tmp_path: Path):
    """Genuinely continuous: committed rows show up every commit interval, long before the source ends."""
    state = tmp_path / "state"
    fh = Firehose(state, "serve", "--rate", "100", "--source", str(RECORDING_2018), log=tmp_path / "firehose.log")
    run = ingest(
        state,
        tmp_path / "ingest.log",
        "--sources",
        "recentchange",
        "--recentchange-url",
        fh.url,
        "--commit-interval",
        "1",
    )
    seen: list[int] = []
    try:
        catalog = catalog_of(state)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len([c for c in seen if c > 0]) < 4:
            time.sleep(1.5)
            try:
                snapshot = catalog.load_table("raw.recentchange").current_snapshot()
            except Exception:  # noqa: BLE001 - the table is created by the pipeline once it starts
                continue
            if snapshot is not None:
                seen.append(int(snapshot.summary["total-records"]))
        assert run.proc.poll() is None, run.output()[-3000:]
    finally:
        run.kill()
        fh.kill()
    growing = [c for c in seen if c > 0]
    assert len(growing) >= 4, seen
    assert growing == sorted(growing) and growing[-1] > growing[0], seen
    assert growing[-1] < RECORDED  # the source (38 s at 100 events/s) was still open


def test_order_events_land_exactly_once_with_their_minute_aggregates(tmp_path: Path):
    state = tmp_path / "state"
    fh = Firehose(
        state, "orders", "--demand-file", str(RECORDING_2018), "--drop-every", "1000", log=tmp_path / "orders.log"
    )
    try:
        deadline = time.monotonic() + 120
        while not fh.stats()["/v2/stream/orders"]["log"]["finished"]:
            assert time.monotonic() < deadline, "the order generator did not finish"
            time.sleep(0.5)
        served = fh.stats()["/v2/stream/orders"]["log"]["events"]
        ingest_until_idle(state, tmp_path / "ingest.log", "orders", fh.url, idle=4)
    finally:
        fh.kill()
    assert served > 1000
    stats = lake_stats(state)
    assert stats["raw.orders"]["rows"] == served
    assert stats["raw.orders"]["distinct_ids"] == served
    assert stats["raw.dead_letters"]["rows"] == 0
    orders = catalog_of(state).load_table("raw.orders")
    kinds = Counter(orders.scan(selected_fields=("event_type",)).to_arrow().column("event_type").to_pylist())
    minutes = latest_firings(state, "speed.orders_minute", ("window_start", "market"))
    for kind in ("placed", "accepted", "picked_up", "delivered", "cancelled"):
        assert sum(r[kind] for r in minutes) == kinds[kind], kind
