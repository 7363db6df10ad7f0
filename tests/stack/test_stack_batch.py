"""The batch layer and the serving views on a lake filled by the speed pipeline from a replay with faults.

The replay (built here from the 2018 recording, spread over seven wikis of six markets) holds out-of-order events
(within the allowed lateness), events older than the allowed lateness, and duplicates older than the dedupe cache;
the speed pipeline runs with a small lateness and cache so that both faults happen in a few thousand events. One
lake serves the module's tests: before the batch has run, the serving views differ from a full recomputation over
the raw tables by exactly what docs/streaming.md says the speed layer misses (late events) or doubles (duplicates
the cache forgot); after a batch run, and after a second, they equal it on both sides of the boundary; a second
run changes nothing; and ``dbt build`` passes every schema test on that lake.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airlake.catalog import load_catalog
from airlake.catalog.trino import TrinoError, query
from airlake.lake.schemas import ALL_TABLES
from airlake.settings import Settings
from airlake.stack import dbt
from tests.conftest import RECORDING_2018
from tests.procs import Firehose, Process

pytestmark = pytest.mark.stack

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
"""Where the replay's timeline starts (one event per second of event time)."""
EVENTS = 1200
LATENESS_MINUTES = 20
DEDUPE_CACHE = 30
DUPLICATE_GAP = 80
"""A duplicate comes this many events after its original: more than the cache holds, well within the lateness."""
DUPLICATES_OF = (300, 700)
OUT_OF_ORDER_EVERY = 50
OUT_OF_ORDER_BACK = timedelta(seconds=40)
LATE = 6
LATE_BACK = timedelta(hours=3)
WIKIS = ("enwiki", "dewiki", "frwiki", "wikidatawiki", "eswiki", "jawiki", "itwiki")
BATCH_TABLES = ("demand_minute", "orders_minute", "boundary", "sources_seen")

DEMAND_VALUES = "events, edits, new_pages, bot_events, bytes_delta"
ORDER_VALUES = "placed, accepted, picked_up, delivered, cancelled, gmv_placed, gmv_delivered, delivery_minutes_sum"


def _at(event: dict[str, Any], when: datetime) -> None:
    event["meta"]["dt"] = when.isoformat()
    event["timestamp"] = int(when.timestamp())


def build_replay(path: Path) -> list[dict[str, Any]]:
    """Writes the replay (JSONL, in serving order) and returns its events."""
    base = [json.loads(line) for line in RECORDING_2018.read_text().splitlines()[:EVENTS]]
    timeline: list[dict[str, Any]] = []
    for i, event in enumerate(base):
        when = T0 + timedelta(seconds=i)
        if i % OUT_OF_ORDER_EVERY == OUT_OF_ORDER_EVERY // 2:
            when -= OUT_OF_ORDER_BACK  # out of order, within the lateness
        _at(event, when)
        event["wiki"] = WIKIS[i % len(WIKIS)]
        timeline.append(event)
    served: list[dict[str, Any]] = []
    for i, event in enumerate(timeline):
        served.append(event)
        if i - DUPLICATE_GAP in DUPLICATES_OF:
            served.append(copy.deepcopy(timeline[i - DUPLICATE_GAP]))  # same id: a duplicate the cache forgot
    for j in range(LATE):
        late = copy.deepcopy(base[j])
        late["meta"]["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"airlake-test-late-{j}"))
        _at(late, T0 - LATE_BACK + timedelta(minutes=j))
        served.append(late)
    path.write_text("".join(json.dumps(e) + "\n" for e in served), encoding="utf-8")
    return served


@dataclass
class SpeedFaults:
    """What the speed layer is documented to miss (late events) and double (duplicates the cache forgot)."""

    late: set[str]
    doubled: set[str]


def predict_speed_faults(events: list[dict[str, Any]]) -> SpeedFaults:
    """Applies docs/streaming.md's rules to the replay in serving order.

    A bounded cache of the newest ``pipeline.dedupe_cache_size`` ids drops repeats it still holds; an event whose
    minute is before the horizon (the newest minute seen minus the allowed lateness, floored) is late.
    """
    seen: set[str] = set()
    order: deque[str] = deque()
    counted: set[str] = set()
    late: set[str] = set()
    doubled: set[str] = set()
    watermark: datetime | None = None
    for event in events:
        event_id = event["meta"]["id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        order.append(event_id)
        if len(order) > DEDUPE_CACHE:
            seen.discard(order.popleft())
        minute = datetime.fromisoformat(event["meta"]["dt"]).replace(second=0, microsecond=0)
        watermark = minute if watermark is None else max(watermark, minute)
        horizon = (watermark - timedelta(minutes=LATENESS_MINUTES)).replace(second=0, microsecond=0)
        if minute < horizon:
            late.add(event_id)
        elif event_id in counted:
            doubled.add(event_id)
        else:
            counted.add(event_id)
    return SpeedFaults(late, doubled)


def _market(settings: Settings, wiki: str) -> str:
    return str(dict(settings.require("markets.wikis")).get(wiki, settings.require("markets.default")))


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Decimal):
        return value.quantize(Decimal("0.01"))
    return value


def _keyed(rows: list[list[Any]], keys: int) -> dict[tuple, tuple]:
    return {tuple(row[:keys]): tuple(_norm(v) for v in row[keys:]) for row in rows}


def demand_from_raw(settings: Settings, *, dedupe: bool, exclude: set[str] = frozenset()) -> dict[tuple, tuple]:
    """Per (minute, market, wiki), the demand values over raw.recentchange (deduplicated by id or not)."""
    excluded = ", ".join(f"'{i}'" for i in sorted(exclude)) or "''"
    rows = query(
        settings,
        f"""
        select date_trunc('minute', event_time), wiki, count(*), count_if(type = 'edit'), count_if(type = 'new'),
               count_if(coalesce(bot, false)),
               sum(case when length_new is not null and length_old is not null then length_new - length_old
                        when length_new is not null then length_new else 0 end)
        from (select *, row_number() over (partition by event_id order by ingested_at) as copy
              from iceberg.raw.recentchange)
        where {"copy = 1" if dedupe else "true"} and event_id not in ({excluded})
        group by 1, 2
        """,
        timeout=120,
    )
    return _keyed([[r[0], _market(settings, r[1]), r[1], *r[2:]] for r in rows], 3)


def orders_from_raw(settings: Settings) -> dict[tuple, tuple]:
    """Per (minute, market), the order values over raw.orders deduplicated by event id."""
    rows = query(
        settings,
        """
        select date_trunc('minute', event_time), market,
               count_if(event_type = 'placed'), count_if(event_type = 'accepted'),
               count_if(event_type = 'picked_up'), count_if(event_type = 'delivered'),
               count_if(event_type = 'cancelled'),
               coalesce(sum(order_total) filter (where event_type = 'placed'), 0),
               coalesce(sum(order_total) filter (where event_type = 'delivered'), 0),
               coalesce(sum(coalesce(delivery_minutes, 0)) filter (where event_type = 'delivered'), 0)
        from (select *, row_number() over (partition by event_id order by ingested_at) as copy
              from iceberg.raw.orders)
        where copy = 1
        group by 1, 2
        """,
        timeout=120,
    )
    return _keyed(rows, 2)


def serving(settings: Settings, view: str) -> dict[tuple, tuple]:
    if view == "demand_minute":
        rows = query(settings, f"select window_start, market, wiki, {DEMAND_VALUES} from iceberg.serving.{view}")
        return _keyed(rows, 3)
    rows = query(settings, f"select window_start, market, {ORDER_VALUES} from iceberg.serving.{view}")
    return _keyed(rows, 2)


def layers(settings: Settings, view: str) -> dict[str, int]:
    return dict(query(settings, f"select layer, count(*) from iceberg.serving.{view} group by layer"))


def boundary(settings: Settings) -> datetime | None:
    rows = query(settings, "select max(boundary) from iceberg.batch.boundary")
    return rows[0][0] if rows else None


def batch_tables(settings: Settings) -> dict[str, list[list[Any]]]:
    return {
        name: sorted(query(settings, f"select * from iceberg.batch.{name} order by 1, 2, 3"), key=repr)
        for name in ("demand_minute", "orders_minute")
    } | {"boundary": query(settings, "select layer, boundary, seen_at, advanced_at from iceberg.batch.boundary")}


def snapshots(settings: Settings) -> dict[str, int]:
    """Snapshots of each batch table (a MERGE that changes rows commits one)."""
    return {
        name: query(settings, f'select count(*) from iceberg.batch."{name}$snapshots"')[0][0]
        for name in ("demand_minute", "orders_minute")
    }


def diff(left: dict[tuple, tuple], right: dict[tuple, tuple]) -> dict[tuple, tuple]:
    return {k: (left.get(k), right.get(k)) for k in left.keys() | right.keys() if left.get(k) != right.get(k)}


@dataclass
class ReplayedLake:
    settings: Settings
    events: list[dict[str, Any]]
    faults: SpeedFaults


def _dbt(settings: Settings, *verb: str) -> None:
    lines: list[str] = []
    status = dbt.run(settings, list(verb), out=lines.append)
    assert status == 0, "\n".join(lines[-40:])


@pytest.fixture(scope="module")
def lake(stack, tmp_path_factory) -> Iterator[ReplayedLake]:
    settings = stack.settings
    tmp = tmp_path_factory.mktemp("batch")
    catalog = load_catalog(settings, "local")
    for table in ALL_TABLES:  # the stack is shared by the session's tests: start from empty tables
        if catalog.table_exists(table.identifier):
            catalog.purge_table(table.identifier)
    for name in BATCH_TABLES:
        try:
            query(settings, f"drop table if exists iceberg.batch.{name}")
        except TrinoError as exc:  # the batch schema does not exist before the first dbt run
            assert "does not exist" in str(exc), exc
    replay = tmp / "replay.jsonl"
    events = build_replay(replay)
    recentchange = Firehose(
        tmp / "rc", "serve", "--rate", "150", "--source", str(replay), log=tmp / "firehose-recentchange.log"
    )
    orders = Firehose(
        tmp / "orders", "orders", "--speedup", "150", "--demand-file", str(replay), log=tmp / "firehose-orders.log"
    )
    env = stack.env | {
        "AIRLAKE__PIPELINE__ALLOWED_LATENESS_MINUTES": str(LATENESS_MINUTES),
        "AIRLAKE__PIPELINE__DEDUPE_CACHE_SIZE": str(DEDUPE_CACHE),
    }
    command = [
        sys.executable,
        *("-m", "airlake", "--profile", "local", "ingest"),
        *("--recentchange-url", recentchange.url, "--orders-url", orders.url),
        *("--commit-interval", "1", "--stop-after-idle", "10"),
    ]
    run = Process(command, tmp / "ingest.log", cwd=stack.cwd, env=env)
    try:
        assert run.wait(600) == 0, run.output()[-3000:]
    finally:
        run.kill()
        recentchange.kill()
        orders.kill()
    # The project's views before the batch has run: staging, the batch tables created empty, serving.
    _dbt(settings, "run", "--select", "path:models/staging")
    _dbt(settings, "run", "--select", "path:models/batch", "--empty")
    _dbt(settings, "run", "--select", "path:models/serving")
    yield ReplayedLake(settings, events, predict_speed_faults(events))


def test_before_the_batch_serving_differs_from_a_recomputation_by_what_the_speed_layer_misses_or_doubles(lake):
    settings, faults = lake.settings, lake.faults
    assert faults.late and faults.doubled, "the replay must exercise both faults"
    assert boundary(settings) is None
    assert set(layers(settings, "demand_minute")) == {"speed"}

    raw_copies = dict(query(settings, "select event_id, count(*) from iceberg.raw.recentchange group by 1"))
    assert {i for i, n in raw_copies.items() if n > 1} == faults.doubled, "raw holds the duplicates the cache forgot"
    assert faults.late <= set(raw_copies), "late events are in raw, only the speed aggregates miss them"

    truth = demand_from_raw(settings, dedupe=True)
    speed_documented = demand_from_raw(settings, dedupe=False, exclude=faults.late)
    served = serving(settings, "demand_minute")
    assert diff(served, speed_documented) == {}, "serving = raw without the late events, duplicates counted twice"
    differing = diff(served, truth)
    late_minutes = {
        datetime.fromisoformat(e["meta"]["dt"]).replace(second=0) for e in lake.events if e["meta"]["id"] in faults.late
    }
    doubled_minutes = {
        datetime.fromisoformat(e["meta"]["dt"]).replace(second=0)
        for e in lake.events
        if e["meta"]["id"] in faults.doubled
    }
    assert {k[0] for k in differing} == late_minutes | doubled_minutes, "nothing else differs"
    late_events = sum(truth[k][0] for k in truth if k[0] in late_minutes)
    assert late_events == LATE and all(k not in served for k in truth if k[0] in late_minutes)
    assert sum(served[k][0] - truth[k][0] for k in served if k[0] in doubled_minutes) == len(faults.doubled)

    # The orders follow the demand in time order (late demand is moved to the generator's watermark), paced as
    # the demand is (150 times real time): the speed layer misses and doubles nothing there.
    assert diff(serving(settings, "orders_minute"), orders_from_raw(settings)) == {}
    assert len({k[1] for k in served}) >= 6, "several markets"


def _batch(stack, *options: str) -> tuple[str, dict[str, int], dict[str, int]]:
    """One ``airlake batch``: the boundary it prints, the rows each MERGE changed, the days recomputed per source."""
    out = stack.run("--profile", "local", "batch", "--quiet", *options, timeout=600).stdout
    print(out)  # the run's duration, days, rows changed and boundary, for the log
    match = re.search(
        r"batch run ok in [\d.]+ s: days recomputed (.*) in \d+ step\(s\); rows changed (.*); boundary (\S+)", out
    )
    assert match is not None, out
    days = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", match.group(1))}
    changed = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return match.group(3), changed, days


def test_after_a_batch_run_and_a_second_serving_equals_a_full_recomputation_and_the_run_is_idempotent(stack, lake):
    settings = lake.settings
    before = snapshots(settings)
    printed, changed, days = _batch(stack)
    assert days == {"recentchange": 1, "orders": 1}, "the first run recomputes every day (the replay's one)"
    assert snapshots(settings) == {t: n + 1 for t, n in before.items()}, "each table replaced by one snapshot"
    assert changed["demand_minute"] > 0 and changed["orders_minute"] > 0
    first_boundary = boundary(settings)
    assert first_boundary is not None and printed == first_boundary.isoformat()
    newest = query(
        settings,
        "select least((select max(event_time) from iceberg.raw.recentchange),"
        " (select max(event_time) from iceberg.raw.orders))",
    )[0][0]
    assert first_boundary == newest.replace(second=0, microsecond=0), "the boundary rule of docs/serving.md"
    tables = batch_tables(settings)

    for run in ("first", "second"):
        if run == "second":
            before = snapshots(settings)
            printed, changed, days = _batch(stack)
            assert days == {"recentchange": 0, "orders": 0}, "nothing was written since: no day to recompute"
            assert changed == {"demand_minute": 0, "orders_minute": 0}, "a rerun changes no row"
            assert snapshots(settings) == before, "a rerun commits nothing"
            assert boundary(settings) == first_boundary and printed == first_boundary.isoformat()
            assert batch_tables(settings) == tables, "a rerun gives the same tables"
        for view, truth in (
            ("demand_minute", demand_from_raw(settings, dedupe=True)),
            ("orders_minute", orders_from_raw(settings)),
        ):
            assert diff(serving(settings, view), truth) == {}, f"{run} run: serving.{view} vs raw"
            assert set(layers(settings, view)) == {"batch", "speed"}, "both sides of the boundary are served"


def test_a_run_recomputes_only_the_days_written_since_the_last_one(stack, lake):
    """Late rows for a day three days back and a copy of an event already counted: the next run recomputes those
    two days of raw.recentchange and nothing of raw.orders, the old day lands below the boundary, the copy counts
    once, and the boundary stays."""
    import pyarrow as pa
    import pyarrow.compute as pc

    settings = lake.settings
    table = load_catalog(settings, "local").load_table("raw.recentchange")
    sample = table.scan(limit=4).to_arrow()
    late = sample.slice(0, 3)
    shifted = pc.subtract(late["event_time"], pa.scalar(timedelta(days=3), pa.duration("us")))
    at, ids = late.schema.get_field_index("event_time"), late.schema.get_field_index("event_id")
    late = late.set_column(at, late.schema.field(at), shifted.cast(late.schema.field(at).type))
    new_ids = pa.array([str(uuid.uuid4()) for _ in range(late.num_rows)], late.schema.field(ids).type)
    late = late.set_column(ids, late.schema.field(ids), new_ids)
    copy_of_counted = sample.slice(3, 1)  # same id and time as a row already in the batch tables
    table.append(pa.concat_tables([late, copy_of_counted]))
    first_boundary = boundary(settings)

    printed, changed, days = _batch(stack)
    assert days == {"recentchange": 2, "orders": 0}, "the late day and the copy's day, nothing else"
    assert 1 <= changed["demand_minute"] <= 3 and changed["orders_minute"] == 0, changed
    assert boundary(settings) == first_boundary and printed == first_boundary.isoformat(), "older rows stay below"
    assert diff(serving(settings, "demand_minute"), demand_from_raw(settings, dedupe=True)) == {}
    earliest = min(shifted.to_pylist()).replace(second=0, microsecond=0)
    served = query(
        settings,
        "select layer, sum(events) from iceberg.serving.demand_minute"
        f" where window_start < timestamp '{earliest + timedelta(days=1):%Y-%m-%d %H:%M:%S} UTC' group by 1",
    )
    assert served == [["batch", 3]], "the late day is served from the batch layer, each late row once"


def test_dbt_build_passes_every_schema_test_on_the_replayed_lake(lake):
    lines: list[str] = []
    status = dbt.run(lake.settings, ["build"], out=lines.append)
    assert status == 0, "\n".join(lines[-60:])
    summary = next(line for line in reversed(lines) if "Done. PASS=" in line)
    passed = int(re.search(r"PASS=(\d+)", summary).group(1))
    assert passed >= 100 and "ERROR=0" in summary and "SKIP=0" in summary, summary


def test_dbt_docs_writes_the_site_with_the_lineage_graph(lake, tmp_path):
    site = dbt.docs(lake.settings, tmp_path / "site")
    assert (site / "index.html").is_file() and (site / "catalog.json").is_file()
    manifest = json.loads((site / "manifest.json").read_text(encoding="utf-8"))
    parents = manifest["parent_map"]["model.airlake.orders_minute"]
    assert set(parents) == {
        "model.airlake.batch_boundary",
        "model.airlake.batch_orders_minute",
        "source.airlake.speed.orders_minute",
    }
    catalog = json.loads((site / "catalog.json").read_text(encoding="utf-8"))
    assert catalog["nodes"]["model.airlake.orders_minute"]["metadata"]["schema"] == "serving"
