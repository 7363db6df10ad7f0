"""``airlake demo`` (``make demo``): both local firehoses into the lake, with live progress, then the figures.

It starts the recentchange replay firehose (looping, with times rebased to now) and the order firehose that
follows its demand, runs the speed pipeline for a bounded time, and prints the table statistics and the few
lines of pyiceberg a data scientist needs to read the data.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from airlake.processes import wait_healthy

if TYPE_CHECKING:
    from airlake.config import Settings

READ_SNIPPET = """\
from catalog import load_catalog          # run inside the project's virtual environment
catalog = load_catalog()                  # the profile and state directory of airlake.toml / AIRLAKE__*
orders = catalog.load_table("raw.orders").scan().to_pandas()
demand = catalog.load_table("speed.demand_minute").scan().to_arrow()
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=45.0, help="how long to ingest (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=300.0, help="recentchange events/s (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="start from empty tables (deletes the demo state)")


def _start(command: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)


def main(args: argparse.Namespace, settings: Settings) -> int:
    import shutil

    from lake.stats import format_table, lake_stats
    from pipelines import speed

    state = settings.state_dir
    if args.fresh:
        shutil.rmtree(state, ignore_errors=True)
    logs = state / "logs"
    host = settings.get("firehose.host")
    rc_port, orders_port = int(settings.get("firehose.recentchange_port")), int(settings.get("firehose.orders_port"))
    base = [sys.executable, "-m", "airlake", "--state-dir", str(state)]
    rc_url = f"http://{host}:{rc_port}/v2/stream/recentchange"
    orders_url = f"http://{host}:{orders_port}/v2/stream/orders"
    print(f"airlake demo: profile {settings.profile}, state in {state}")
    procs: list[subprocess.Popen] = []
    try:
        rc = _start(
            [*base, "firehose", "serve", "--port", str(rc_port), "--loop", "--rate", str(args.rate)],
            logs / "firehose-recentchange.log",
        )
        procs.append(rc)
        wait_healthy(f"http://{host}:{rc_port}/healthz", rc, logs / "firehose-recentchange.log")
        orders = _start(
            [*base, "firehose", "orders", "--port", str(orders_port), "--demand-url", rc_url],
            logs / "firehose-orders.log",
        )
        procs.append(orders)
        wait_healthy(f"http://{host}:{orders_port}/healthz", orders, logs / "firehose-orders.log")
        print(f"  recentchange firehose: {rc_url} ({args.rate:.0f} events/s, looping the recordings)")
        print(f"  order firehose:        {orders_url} (rate follows the demand)")
        print(f"  ingesting for {args.seconds:.0f} s into the {settings.profile} lake; progress every 5 s\n")
        ns = argparse.Namespace(
            sources="recentchange,orders",
            recentchange_url=rc_url,
            orders_url=orders_url,
            commit_interval=None,
            stop_after_idle=None,
            max_seconds=args.seconds,
            metrics_file=state / "demo-metrics.json",
            beam_args=[],
        )
        speed.quiet_beam(args.verbose)
        summary = speed.build(settings, ns).run()
    except RuntimeError as exc:
        print(f"airlake demo: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    from catalog import load_catalog

    print("\nTables:\n" + format_table(lake_stats(load_catalog(settings))))
    print(
        f"\nRun: {summary['events_per_s']} events/s read, lag p50 {summary['lag_p50_s']} s, p95 {summary['lag_p95_s']} s,"
        f" dead letters {summary['dead_letters']}, duplicates dropped {summary['duplicates_dropped']}"
    )
    print(f"\nRead the data with pyiceberg:\n\n{READ_SNIPPET}")
    print(f"Or from the shell: airlake --state-dir {state} lake stats --json")
    return 0
