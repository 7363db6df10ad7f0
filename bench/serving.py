"""Serving benchmark: the CEO dashboard's queries through Trino, on the serving views and on batch-only tables, over
a lake with millions of order events from ``airlake backfill``.

``python -m airlake.bench.serving`` needs the stack (``airlake stack up``) and the dbt environment
(``airlake stack install``). On the ``local`` profile's lake it:

1. backfills, when ``raw.orders`` holds fewer than ``--order-events`` (10 million by default), the days before today
   that no backfill filled yet, at the orders a day that reach the target over ``--days`` days; the backfill's
   events/s is printed (the target is 50,000);
2. runs the batch layer (``airlake batch``: the changed days step by step, then the boundary), times a second run
   that finds nothing new, and builds the serving views;
3. counts data files, runs ``airlake maintain`` (Trino's ``optimize``, expiry, orphan removal) and counts again;
4. runs each dashboard query ``--repeat`` times (after one warm-up run) on the serving views (batch below the
   boundary, the speed layer's latest firing above it) and on the batch tables alone, and prints p50 and p95 of each
   side by side with the ratio (targets: every serving p95 at most 2 s; the merged view at most 1.3 times the
   batch-only time).

The figures go to ``bench/results/serving-<timestamp>.json`` too; ``docs/benchmarks.md`` keeps the measured ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
TARGET_P95_S = 2.0
TARGET_MERGED_RATIO = 1.3
TARGET_BACKFILL_EVENTS_PER_S = 50_000
ORDER_EVENTS_PER_ORDER = 3.5
"""About how many lifecycle events an order has (placed, accepted, picked up, delivered or cancelled)."""

QUERIES: dict[str, str] = {
    # The CEO dashboard: GMV today against the same time yesterday, per market (each in its own currency).
    "gmv_today_vs_yesterday": """
        select
            market,
            sum(gmv_placed) filter (where window_start >= date_trunc('day', now())) as gmv_today,
            sum(gmv_placed) filter (
                where window_start < date_trunc('day', now()) and window_start < now() - interval '1' day
            ) as gmv_yesterday_same_time
        from {orders}
        where window_start >= date_trunc('day', now()) - interval '1' day
        group by 1
        order by 1
    """,
    # Orders per minute over the last hour.
    "orders_per_minute_last_hour": """
        select window_start, sum(placed) as orders
        from {orders}
        where window_start >= now() - interval '1' hour
        group by 1
        order by 1
    """,
    # Deliveries and delivery time per market today (the on-time rate's inputs the minute tables hold).
    "deliveries_per_market_today": """
        select market, sum(delivered) as delivered, sum(cancelled) as cancelled,
               sum(delivery_minutes_sum) / nullif(sum(delivered), 0) as mean_delivery_minutes
        from {orders}
        where window_start >= date_trunc('day', now())
        group by 1
        order by 1
    """,
    # Demand against orders per market and minute over the last day.
    "demand_vs_orders_last_day": """
        with demand as (
            select window_start, market, sum(events) as demand_events
            from {demand}
            where window_start >= now() - interval '1' day
            group by 1, 2
        ),
        orders as (
            select window_start, market, sum(placed) as placed
            from {orders}
            where window_start >= now() - interval '1' day
            group by 1, 2
        )
        select coalesce(d.market, o.market) as market, coalesce(d.window_start, o.window_start) as window_start,
               coalesce(d.demand_events, 0) as demand_events, coalesce(o.placed, 0) as placed
        from demand d
        full outer join orders o on d.market = o.market and d.window_start = o.window_start
    """,
}
"""The dashboard's queries; ``{orders}`` and ``{demand}`` are the per-minute tables of the side measured."""

SIDES = {
    "serving": {"orders": "iceberg.serving.orders_minute", "demand": "iceberg.serving.demand_minute"},
    "batch_only": {"orders": "iceberg.batch.orders_minute", "demand": "iceberg.batch.demand_minute"},
}

ON_TIME_QUERY = """
    select market, count_if(is_on_time) * 1e0 / count(*) as on_time_rate,
           avg(delivery_minutes) as mean_delivery_minutes, approx_percentile(delivery_minutes, 0.9) as p90_minutes
    from iceberg.marts.deliveries
    where delivered_at >= date_trunc('day', now())
    group by 1
"""
"""The on-time rate and delivery times per market today, from marts.deliveries (one row per delivered order; the
minute tables have no on-time counts): measured on its own, there is no batch-only form of it."""


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def time_query(settings: Any, sql: str, repeat: int) -> dict[str, float]:
    """p50/p95/max seconds of ``sql`` over ``repeat`` runs after one warm-up."""
    from airlake.catalog import trino

    trino.query(settings, sql, timeout=300)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        trino.query(settings, sql, timeout=300)
        times.append(time.perf_counter() - started)
    return {
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(percentile(times, 0.95), 3),
        "max_s": round(max(times), 3),
    }


def count(settings: Any, sql: str) -> int:
    from airlake.catalog import trino

    return int(trino.query(settings, sql, timeout=300)[0][0] or 0)


def backfill(settings: Any, target_events: int, days: int) -> dict[str, Any]:
    """Backfills free days so that ``raw.orders`` holds about ``target_events`` order events (``days`` days at the
    orders a day that reach it); the run's figures."""
    from airlake.bench.backfill import free_days
    from airlake.catalog import load_catalog
    from airlake.lake.schemas import ORDERS, RECENTCHANGE
    from airlake.lake.tables import ensure_tables
    from airlake.pipelines.backfill import Backfill, HistoryGenerator, plan_from

    have = count(settings, "select count(*) from iceberg.raw.orders")
    if have >= target_events:
        return {"skipped": True, "order_events_before": have}
    missing = target_events - have
    orders_per_day = int(missing / ORDER_EVENTS_PER_ORDER / days) + 1
    catalog = load_catalog(settings)
    tables = ensure_tables(catalog)
    targets = {t.identifier: tables[t.identifier] for t in (RECENTCHANGE, ORDERS)}
    chosen = free_days(targets, datetime.now(UTC).date(), days)
    plan = plan_from(settings, argparse.Namespace(seed=None, orders_per_day=orders_per_day))
    print(f"backfill: {len(chosen)} days from {chosen[0]} at {orders_per_day:,} orders a day", flush=True)
    generator = HistoryGenerator(plan)
    started = time.perf_counter()
    summary = Backfill(catalog, plan, generator=generator).run(chosen)
    seconds = time.perf_counter() - started
    events = int(summary["events"])
    return {
        "skipped": False,
        "order_events_before": have,
        "days": [str(d) for d in chosen],
        "orders_per_day": orders_per_day,
        "events": events,
        "seconds": round(seconds, 1),
        "events_per_s": round(events / seconds) if seconds else None,
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from airlake.batch import run_once
    from airlake.lake import maintenance
    from airlake.settings import load_settings
    from airlake.stack import dbt

    settings = load_settings({"profile": "local"})
    load_before = os.getloadavg()
    result: dict[str, Any] = {"benchmark": "serving", "started": datetime.now(UTC).isoformat(timespec="seconds")}
    result["backfill"] = backfill(settings, args.order_events, args.days)
    result["order_events"] = count(settings, "select count(*) from iceberg.raw.orders")
    result["demand_events"] = count(settings, "select count(*) from iceberg.raw.recentchange")
    print(f"lake: {result['order_events']:,} order events, {result['demand_events']:,} demand events", flush=True)

    started = time.perf_counter()
    report = run_once(settings, quiet=True)
    result["batch_run_s"] = round(time.perf_counter() - started, 1)
    result["batch_run"] = {"steps": report.steps, "days": report.days, "rows_changed": report.rows_changed}
    result["boundary"] = str(report.boundary)
    if report.status != 0:
        raise SystemExit(f"the batch run failed ({report.line()}); its dbt log is above")
    print(report.line(), flush=True)
    started = time.perf_counter()
    again = run_once(settings, quiet=True)  # nothing changed since: what a scheduled run costs on a quiet lake
    result["batch_rerun_s"] = round(time.perf_counter() - started, 1)
    if again.status != 0:
        raise SystemExit(f"the second batch run failed ({again.line()})")
    print(again.line(), flush=True)
    views = ["run", "--select", "path:models/staging path:models/marts path:models/serving"]
    status = dbt.run(settings, views, out=lambda line: None)
    if status != 0:
        raise SystemExit(f"dbt run of the serving views failed with status {status} (see `airlake sql apply`)")

    started = time.perf_counter()
    reports = maintenance.maintain(settings)
    result["maintain_s"] = round(time.perf_counter() - started, 1)
    result["data_files"] = {
        r.table: {"before": r.before.data_files, "after_optimize": r.after.data_files if r.after else None}
        for r in reports
    }
    failed = [f"{r.table}: {r.error}" for r in reports if r.error]
    if failed:
        raise SystemExit("maintenance failed: " + "; ".join(failed))

    result["queries"] = {}
    for name, template in QUERIES.items():
        row = {side: time_query(settings, template.format(**names), args.repeat) for side, names in SIDES.items()}
        row["ratio_p95"] = round(row["serving"]["p95_s"] / max(row["batch_only"]["p95_s"], 1e-3), 2)
        result["queries"][name] = row
        print(
            f"{name:30} serving p50 {row['serving']['p50_s']:.3f} s p95 {row['serving']['p95_s']:.3f} s | "
            f"batch-only p50 {row['batch_only']['p50_s']:.3f} s p95 {row['batch_only']['p95_s']:.3f} s | "
            f"ratio {row['ratio_p95']}",
            flush=True,
        )
    result["queries"]["on_time_rate_per_market_today"] = {"marts": time_query(settings, ON_TIME_QUERY, args.repeat)}
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    return result


def report(result: dict[str, Any]) -> None:
    print("\n== serving benchmark ==")
    bf = result["backfill"]
    if not bf.get("skipped"):
        print(
            f"backfill: {bf['events']:,} events in {bf['seconds']} s = {bf['events_per_s']:,} events/s "
            f"(target >= {TARGET_BACKFILL_EVENTS_PER_S:,})"
        )
    batch = result["batch_run"]
    print(
        f"lake: {result['order_events']:,} order events; batch run {result['batch_run_s']} s "
        f"({batch['steps']} steps, days {batch['days']}); a second run with nothing new {result['batch_rerun_s']} s"
    )
    for table, files in result["data_files"].items():
        print(f"data files {table:22} {files['before']:6} -> {files['after_optimize']:6} after optimize")
    print(f"{'query':32} {'serving p50':>12} {'p95':>8} {'batch p50':>10} {'p95':>8} {'ratio':>6}")
    for name, row in result["queries"].items():
        if "serving" in row:
            s, b = row["serving"], row["batch_only"]
            print(
                f"{name:32} {s['p50_s']:12.3f} {s['p95_s']:8.3f} {b['p50_s']:10.3f} {b['p95_s']:8.3f} {row['ratio_p95']:6}"
            )
        else:
            m = row["marts"]
            print(f"{name:32} {m['p50_s']:12.3f} {m['p95_s']:8.3f} {'(marts.deliveries only)':>26}")
    print(f"targets: serving p95 <= {TARGET_P95_S} s, merged/batch-only <= {TARGET_MERGED_RATIO}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airlake.bench.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--order-events", type=int, default=10_000_000, help="order events the lake must hold")
    parser.add_argument("--days", type=int, default=28, help="days a backfill spreads them over")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs of each query")
    args = parser.parse_args(argv)
    result = benchmark(args)
    report(result)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"serving-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
