"""``airlake backfill`` on the embedded profile (SQLite catalog, file:// warehouse: real pyiceberg backends).

Determinism, idempotent reruns, the different-arguments error, every market, lifecycle consistency, the hourly and
weekly shape, the normalizer's schema, the lease, and the speed pipeline's restart after a backfill.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from airlake import cli
from airlake.catalog import load_catalog
from airlake.lake.commit import SPEED_WRITER, expire_snapshots, latest_mark, recent_ids
from airlake.lake.lease import LeaseHeld
from airlake.lake.schemas import ORDERS, RECENTCHANGE
from airlake.lake.tables import ensure_tables
from airlake.pipelines import backfill as bf
from airlake.pipelines.speed import SpeedPipeline
from airlake.sources.events import ORDERS_SOURCE, RECENTCHANGE_SOURCE, uuid5
from airlake.sources.normalize import event_key, order_row, parse_json_object, recentchange_row

DAYS = bf.days_before(date(2026, 11, 12), 2)  # 2026-11-10 and 11 (a Tuesday and a Wednesday)
WIKIS = {"enwiki": "new-york", "dewiki": "berlin", "frwiki": "paris", "wikidatawiki": "london", "jawiki": "tokyo"}
ORDERS_PER_DAY = 3_000
_GENERATORS: dict[bf.Plan, bf.HistoryGenerator] = {}


def plan(seed: int = 42, orders_per_day: int | None = ORDERS_PER_DAY, wikis: dict | None = None) -> bf.Plan:
    return bf.Plan(seed, orders_per_day, 0.5, dict(wikis or WIKIS))


def generator(p: bf.Plan) -> bf.HistoryGenerator:
    """One generator per plan for the whole module (building the markets' entities takes seconds)."""
    key = bf.Plan(p.seed, p.orders_per_day, p.orders_per_edit, tuple(sorted(p.wikis.items())))  # hashable
    if key not in _GENERATORS:
        _GENERATORS[key] = bf.HistoryGenerator(p)
    return _GENERATORS[key]


def run(settings, p: bf.Plan, days=DAYS, **kwargs) -> dict:
    lines: list[str] = []
    summary = bf.Backfill(load_catalog(settings), p, generator=generator(p), out=lines.append, **kwargs).run(days)
    summary["lines"] = lines
    return summary


def rows(settings, table) -> list[dict]:
    return sorted(
        load_catalog(settings).load_table(table.identifier).scan().to_arrow().to_pylist(), key=lambda r: r["event_id"]
    )


@pytest.fixture
def other_settings(tmp_path):
    from airlake.settings import load_settings

    return load_settings({"state_dir": str(tmp_path / "other"), "profile": "embedded"}, environ={}, cwd=tmp_path)


# ----- determinism and idempotency ----------------------------------------------------------------------------
def test_same_seed_and_arguments_give_the_same_rows_and_another_seed_other_ids(settings, other_settings):
    first = run(settings, plan())
    second = run(other_settings, plan())
    assert first["days_done"] == second["days_done"] == 2
    for table in (RECENTCHANGE, ORDERS):
        a, b = rows(settings, table), rows(other_settings, table)
        assert len(a) > 1000
        assert a == b  # every column, raw_json and ingested_at included
    reseeded = generator(plan(seed=7)).generate(DAYS[0])
    ids = {r["event_id"] for r in rows(settings, ORDERS)}
    assert ids.isdisjoint(reseeded.orders.column("event_id").to_pylist())
    # Progress is printed per day, with events and events/s.
    assert len(first["lines"]) == 3 and "2/2 days" in first["lines"][1] and "events/s" in first["lines"][1]


def test_a_rerun_adds_nothing_and_resumes_a_day_cut_short(settings, monkeypatch):
    p = plan()
    run(settings, p, chunk_rows=5_000)
    catalog = load_catalog(settings)
    before = {t.identifier: catalog.load_table(t.identifier) for t in (RECENTCHANGE, ORDERS)}
    counts = {name: t.scan().to_arrow().num_rows for name, t in before.items()}
    snapshots = {name: len(t.snapshots()) for name, t in before.items()}
    again = run(settings, p, chunk_rows=5_000)
    assert (again["days_done"], again["days_skipped"], again["events"]) == (0, 2, 0)
    for name in before:
        fresh = load_catalog(settings).load_table(name)
        assert fresh.scan().to_arrow().num_rows == counts[name]
        assert len(fresh.snapshots()) == snapshots[name]

    # A crash after the third chunk of a new day (the process dies between two commits) ...
    day = [date(2026, 11, 9)]
    real = bf.append_batch
    calls = []

    def crash_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bf, "append_batch", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        run(settings, p, days=day, chunk_rows=5_000)
    monkeypatch.setattr(bf, "append_batch", real)
    record = bf.day_record(load_catalog(settings).load_table(RECENTCHANGE.identifier), day[0])
    assert record["done"] == 3 < record["chunks"]
    # ... and the rerun writes the rest only: the day equals a clean run's.
    resumed = run(settings, p, days=day, chunk_rows=5_000)
    assert resumed["days_done"] == 1
    expected = generator(p).generate(day[0])
    for table, generated in ((RECENTCHANGE, expected.recentchange), (ORDERS, expected.orders)):
        ids = set(generated.column("event_id").to_pylist())
        stored = rows(settings, table)
        assert sum(r["event_id"] in ids for r in stored) == generated.num_rows == len(ids)
        assert len({r["event_id"] for r in stored}) == len(stored)


def test_other_arguments_for_a_filled_day_are_a_clear_error_and_write_nothing(settings, capsys):
    run(settings, plan())
    counts = {t.identifier: len(rows(settings, t)) for t in (RECENTCHANGE, ORDERS)}
    for other in (plan(seed=7), plan(orders_per_day=ORDERS_PER_DAY + 1), plan(wikis={**WIKIS, "eswiki": "madrid"})):
        with pytest.raises(bf.BackfillError, match="already holds a backfill of seed 42") as info:
            bf.Backfill(load_catalog(settings), other, generator=generator(plan())).run([*DAYS, date(2026, 11, 12)])
        assert "2026-11-10" in str(info.value) and "this run asks" in str(info.value)
    assert {t.identifier: len(rows(settings, t)) for t in (RECENTCHANGE, ORDERS)} == counts  # 11-12 not written

    # The command says it and exits with status 1; a bad --days too.
    state = str(settings.state_dir)
    assert cli.main(["--state-dir", state, "backfill", "--days", "0"]) == 1
    assert "--days must be at least 1" in capsys.readouterr().err


def test_the_command_fills_the_days_before_today(settings, capsys):
    state = str(settings.state_dir)
    argv = ["--state-dir", state, "backfill", "--days", "1", "--orders-per-day", "500", "--seed", "3", "--json"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "backfill: 1/1 days" in out and "events/s" in out
    summary = json.loads(out[out.index("{") :])
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    placed = [r for r in rows(settings, ORDERS) if r["event_type"] == "placed"]
    assert summary["days_done"] == 1 and {r["event_time"].date() for r in placed} == {yesterday}
    assert cli.main(argv) == 0  # again: nothing added
    assert json.loads((out := capsys.readouterr().out)[out.index("{") :])["days_skipped"] == 1
    assert cli.main([*argv[:6], "501", *argv[7:]]) == 1
    assert "already holds a backfill of seed 3" in capsys.readouterr().err


# ----- what the rows look like --------------------------------------------------------------------------------
def test_every_market_has_demand_and_orders(settings):
    run(settings, plan())
    rc = rows(settings, RECENTCHANGE)
    orders = rows(settings, ORDERS)
    assert {r["wiki"] for r in rc} == set(WIKIS)  # wikidatawiki too, which the wikiticker day lacks
    assert {r["market"] for r in orders} == set(WIKIS.values())
    per_market = Counter(r["market"] for r in orders if r["event_type"] == "placed")
    assert sum(per_market.values()) == pytest.approx(2 * ORDERS_PER_DAY * np.mean(bf.WEEKDAY_FACTORS[1:3]), rel=0.1)
    # Orders follow demand: each market's share of orders is its wikis' share of edits, within a few points.
    edits = Counter(WIKIS[r["wiki"]] for r in rc)
    for market, n in per_market.items():
        assert n / sum(per_market.values()) == pytest.approx(edits[market] / len(rc), abs=0.03)
    # Every order is of its market's entities and currency.
    currency = {"new-york": "USD", "berlin": "EUR", "paris": "EUR", "london": "GBP", "tokyo": "JPY"}
    for r in orders:
        assert r["restaurant_id"].startswith(f"rst-{r['market']}-") and r["customer_id"].startswith(
            f"cus-{r['market']}-"
        )
        assert r["currency"] == currency[r["market"]]
        assert r["order_id"].endswith("-bf")


def test_each_order_has_one_consistent_lifecycle(settings):
    run(settings, plan())
    by_order: dict[str, list[dict]] = defaultdict(list)
    for r in rows(settings, ORDERS):
        by_order[r["order_id"]].append(r)
    assert len(by_order) > 4000
    fates = Counter()
    for events in by_order.values():
        events.sort(key=lambda r: r["event_time"])
        types = [r["event_type"] for r in events]
        assert types.count("placed") == 1 and types[0] == "placed"
        assert types in (
            ["placed", "cancelled"],
            ["placed", "accepted", "cancelled"],
            ["placed", "accepted", "picked_up", "cancelled"],
            ["placed", "accepted", "picked_up", "delivered"],
        ), types
        times = [r["event_time"] for r in events]
        assert times == sorted(times) and len(set(times)) == len(times)
        placed, last = events[0], events[-1]
        assert sum(i["unit_price"] * i["quantity"] for i in placed["items"]) == placed["order_total"]
        assert 1 <= len(placed["items"]) <= 5 and len({i["menu_item_id"] for i in placed["items"]}) == len(
            placed["items"]
        )
        assert all(
            i["menu_item_id"].startswith(placed["restaurant_id"].replace("rst-", "itm-")) for i in placed["items"]
        )
        for r in events:
            assert (r["order_total"], r["restaurant_id"], r["customer_id"]) == (
                placed["order_total"],
                placed["restaurant_id"],
                placed["customer_id"],
            )
            assert bool(r["items"]) == (r["event_type"] == "placed")  # (the lake reads a null list back as [])
        if last["event_type"] == "delivered":
            minutes = (last["event_time"] - placed["event_time"]).total_seconds() / 60
            assert last["delivery_minutes"] == pytest.approx(minutes, abs=0.006)
            assert 17 <= minutes <= 66  # accept 1-5 + pickup 8-25 + delivery 8-35 minutes
            assert last["courier_id"] is not None
        else:
            assert last["delivery_minutes"] is None and last["cancel_reason"]
        fates[last["cancel_reason"] or "delivered"] += 1
        courier = {r["courier_id"] for r in events if r["courier_id"] is not None}
        assert len(courier) <= 1
    assert fates["delivered"] / len(by_order) == pytest.approx(0.95, abs=0.015)  # about 5% cancelled


def as_read_back(row: dict) -> dict:
    """A row as pyiceberg 0.12 reads it back: a null list of structs comes back empty (its projection of a list
    column rebuilds the array from the offsets alone), for streamed rows and backfilled ones alike."""
    return {**row, "items": []} if "items" in row and row["items"] is None else row


def test_rows_are_the_normalizers_rows_of_their_raw_json(settings):
    run(settings, plan())
    catalog = load_catalog(settings)
    for table, normalize, source in (
        (RECENTCHANGE, recentchange_row, RECENTCHANGE_SOURCE),
        (ORDERS, order_row, ORDERS_SOURCE),
    ):
        stored = catalog.load_table(table.identifier).scan().to_arrow()
        assert stored.schema.equals(table.schema, check_metadata=False) or stored.schema.names == table.schema.names
        for row in stored.to_pylist():
            obj = parse_json_object(row["raw_json"])
            expected = normalize(obj, raw=row["raw_json"], sse_id=None, ingested_at=row["ingested_at"])
            assert as_read_back(expected) == row
            assert event_key(source, None, row["raw_json"], obj) == f"{source}:{row['event_id']}"
        assert stored.column("sse_id").null_count == stored.num_rows  # a backfilled event never crossed a stream


def test_the_vectorized_uuid5_is_sources_events_uuid5():
    names = pa.array(["a", "héllo/wörld", "", "42/2026-11-10/123456", "x" * 300])
    assert bf.uuid5_many(bf.ORDERS_NAMESPACE, names).to_pylist() == [
        uuid5(bf.ORDERS_NAMESPACE, n) for n in names.to_pylist()
    ]
    assert bf.uuid5_many(bf.ORDERS_NAMESPACE, names.slice(2)).to_pylist() == [
        uuid5(bf.ORDERS_NAMESPACE, n) for n in names.to_pylist()[2:]
    ]


def test_demand_has_the_recorded_days_hourly_rhythm_and_the_weekly_one():
    g = generator(plan())
    counts = bf.wiki_hour_counts()
    week = bf.days_before(date(2026, 11, 16), 14)  # two whole weeks, Monday 2026-11-02 to Sunday 11-15
    per_weekday = np.zeros(7)
    per_hour: dict[str, np.ndarray] = {w: np.zeros(24) for w in WIKIS}
    for day in week:
        table = g.generate(day).recentchange
        per_weekday[day.weekday()] += table.num_rows
        hours = np.array([t.hour for t in table.column("event_time").to_pylist()])
        wikis = np.array(table.column("wiki").to_pylist())
        for w in WIKIS:
            per_hour[w] += np.bincount(hours[wikis == w], minlength=24)
    for w in ("enwiki", "dewiki", "frwiki"):
        assert np.corrcoef(per_hour[w], counts[w])[0, 1] > 0.95, w
    whole_day = sum(counts.values())
    assert np.corrcoef(per_hour["wikidatawiki"], whole_day)[0, 1] > 0.9  # a wiki the day lacks: the day's shape
    share = per_weekday / per_weekday.sum()
    expected = np.array(bf.WEEKDAY_FACTORS) / sum(bf.WEEKDAY_FACTORS)
    assert np.abs(share - expected).max() < 0.005
    assert per_weekday[5] > 1.2 * per_weekday[1]  # Saturday against Tuesday


# ----- one backfill at a time, beside the speed writer --------------------------------------------------------
def test_a_second_backfill_is_refused_while_the_speed_writer_keeps_its_lease(settings):
    from airlake.lake.lease import Lease

    catalog = load_catalog(settings)
    ensure_tables(catalog)
    speed = Lease(load_catalog(settings), SPEED_WRITER).acquire()
    holder = Lease(load_catalog(settings), bf.BACKFILL_WRITER).acquire()
    try:
        with pytest.raises(LeaseHeld, match="'backfill' writer lease is held"):
            run(settings, plan())
    finally:
        holder.release()
    assert run(settings, plan())["days_done"] == 2  # beside the speed writer's lease
    speed.release()


def recentchange_event(event_id: str, when: datetime) -> str:
    return json.dumps({"meta": {"id": event_id, "dt": when.isoformat()}, "wiki": "enwiki", "type": "edit"})


def test_the_speed_pipelines_restart_ignores_backfill_commits(settings):
    """Recovery, the restart watermark and the dedupe warm-up read only the speed writer's commits."""

    def speed() -> SpeedPipeline:
        p = SpeedPipeline(
            load_catalog(settings),
            [],
            state_dir=settings.state_dir,
            markets=WIKIS,
            default_market="springfield",
            keep_snapshots=3,
        )
        p.take_lease()
        p.open_tables()
        return p

    now = datetime.now(UTC).replace(microsecond=0)
    first = speed()
    first.recover()
    batch = []
    for n in range(5):
        data = recentchange_event(f"live-{n}", now - timedelta(minutes=5 - n))
        sse_id = json.dumps([{"topic": "t", "partition": 0, "offset": n}])
        batch.append(("recentchange", sse_id, time.time(), data, event_key("recentchange", sse_id, data, None), None))
    assert first.run_batch(batch, {"recentchange": batch[-1][1]})
    first.lease.release()

    # A backfill commits after the speed writer, many times (small chunks), under its own name.
    summary = run(settings, plan(), chunk_rows=4_000)
    catalog = load_catalog(settings)
    rc = catalog.load_table(RECENTCHANGE.identifier)
    assert summary["events"] > 30_000
    assert bf.BatchMark.from_summary(dict(rc.current_snapshot().summary.additional_properties)).writer == "backfill"
    assert latest_mark(rc, bf.BACKFILL_WRITER).epoch > 0

    second = speed()
    recovery = second.recover()
    assert recovery.batch == 1 and recovery.positions == {"recentchange": batch[-1][1]}
    assert len(second.seen) == 5  # the speed writer's five ids, not the backfill's tens of thousands
    assert second.resume_times["recentchange"] == now - timedelta(minutes=1)  # not a backfill day's time
    assert "orders" not in second.resume_times  # the speed writer never committed orders
    assert len(recent_ids(rc, "event_id")) > 30_000  # (without the writer, the backfill's rows are read)

    # Snapshot expiry keeps the speed writer's newest commits under the backfill's many.
    expire_snapshots(rc, keep=3, writer=SPEED_WRITER)
    rc = load_catalog(settings).load_table(RECENTCHANGE.identifier)
    assert latest_mark(rc, SPEED_WRITER).batch == 1
    assert sorted(recent_ids(rc, "event_id", writer=SPEED_WRITER).to_pylist()) == [f"live-{n}" for n in range(5)]
    second.lease.release()
