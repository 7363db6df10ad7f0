"""Backfill benchmark: events/s of ``airlake backfill`` (generation and exactly-once commits) into a lake.

``python -m airlake.bench.backfill`` backfills ``--days`` days (default 7) at ``--orders-per-day`` (default 40,000,
about 1.2 million events in all) into a fresh embedded lake (SQLite catalog, ``file://`` warehouse) in a temporary
directory; ``--profile local`` writes to the running stack's lake instead (PostgreSQL catalog, S3), into the newest
days before ``--before`` that no backfill filled yet, so that a rerun measures new work rather than skipped days.

It prints the per-day progress of the backfill, then: events, seconds and events/s of the backfill itself
(generating and committing, after the markets' entities are built), the setup apart (the order model's entities
built with Faker, the wikiticker day read), the rows the lake gained (its snapshots' total-records; they must equal what
was committed), and the machine's load average before and after (the machines are shared). The figures go to
``bench/results/backfill-<timestamp>.json`` too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
TARGET_EVENTS_PER_S = 50_000


def free_days(tables: dict, before: date, count: int) -> list[date]:
    """The newest ``count`` days before ``before`` that no backfill touched in any of ``tables``, oldest first."""
    from airlake.pipelines.backfill import day_record

    found: list[date] = []
    day = before - timedelta(days=1)
    while len(found) < count:
        if all(day_record(t, day) is None for t in tables.values()):
            found.append(day)
        day -= timedelta(days=1)
    return sorted(found)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from airlake.catalog import load_catalog
    from airlake.lake.schemas import ORDERS, RECENTCHANGE
    from airlake.lake.tables import ensure_tables
    from airlake.pipelines.backfill import Backfill, HistoryGenerator, plan_from
    from airlake.settings import load_settings

    scratch = None
    if args.profile == "embedded":
        scratch = Path(tempfile.mkdtemp(prefix="airlake-bench-backfill-"))
        settings = load_settings({"profile": "embedded", "state_dir": str(scratch / "state")})
    else:
        settings = load_settings({"profile": args.profile})
    try:
        load_before = os.getloadavg()
        catalog = load_catalog(settings)
        tables = ensure_tables(catalog)
        targets = {t.identifier: tables[t.identifier] for t in (RECENTCHANGE, ORDERS)}
        before_rows = {name: _rows(t) for name, t in targets.items()}
        days = free_days(targets, args.before, args.days)
        plan = plan_from(settings, argparse.Namespace(seed=args.seed, orders_per_day=args.orders_per_day))
        started = time.perf_counter()
        generator = HistoryGenerator(plan)
        setup = time.perf_counter() - started
        summary = Backfill(catalog, plan, generator=generator).run(days)
        load_after = os.getloadavg()
        catalog = load_catalog(settings)
        lake_rows = {
            name: _rows(catalog.load_table(name)) - before_rows[name]
            for name in (RECENTCHANGE.identifier, ORDERS.identifier)
        }
        result = {
            "benchmark": "backfill",
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": args.profile,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "days": [d.isoformat() for d in days],
            "orders_per_day": args.orders_per_day,
            "seed": plan.seed,
            "events": summary["events"],
            "rows": summary["rows"],
            "seconds": summary["seconds"],
            "events_per_s": summary["events_per_s"],
            "setup_seconds": round(setup, 2),
            "events_per_s_with_setup": round(summary["events"] / (summary["seconds"] + setup), 1),
            "lake_rows_added": lake_rows,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        }
        return result
    finally:
        if scratch is not None and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _rows(table: Any) -> int:
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.additional_properties.get("total-records", 0))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m airlake.bench.backfill", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="embedded", help="embedded (a fresh temporary lake) or local (the stack)")
    p.add_argument("--days", type=int, default=7, help="days to backfill (default: %(default)s)")
    p.add_argument("--orders-per-day", type=int, default=40_000, help="orders a day (default: %(default)s)")
    p.add_argument("--seed", type=int, help="seed (default: firehose.seed)")
    p.add_argument(
        "--before",
        type=date.fromisoformat,
        default=datetime.now(UTC).date(),
        help="fill the newest free days before this date (default: today)",
    )
    p.add_argument("--out", type=Path, help="JSON results file (default: bench/results/backfill-<timestamp>.json)")
    p.add_argument("--keep", action="store_true", help="keep the embedded lake's temporary directory")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.days < 1:
        print("--days must be at least 1", file=sys.stderr)
        return 1
    result = benchmark(args)
    ok = result["lake_rows_added"] == result["rows"]
    print()
    print(f"backfill benchmark ({result['profile']}): {len(result['days'])} days, {result['events']:,} events")
    print(f"  backfill:          {result['seconds']:>8.2f} s  {result['events_per_s']:>10,.0f} events/s")
    print(f"  with setup:        {result['seconds'] + result['setup_seconds']:>8.2f} s  "
          f"{result['events_per_s_with_setup']:>10,.0f} events/s  (setup {result['setup_seconds']} s)")  # fmt: skip
    print(
        f"  rows added:        {result['lake_rows_added']}  ({'equal to' if ok else 'NOT equal to'} the rows committed)"
    )
    print(f"  load average:      {result['load_average_before']} before, {result['load_average_after']} after")
    verdict = "met" if result["events_per_s"] >= TARGET_EVENTS_PER_S else "NOT met"
    print(f"  target {TARGET_EVENTS_PER_S:,} events/s: {verdict}")
    out = args.out or RESULTS_DIR / f"backfill-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"  results:           {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
