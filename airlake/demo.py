"""``airlake demo`` (``make demo``): both local firehoses into the lake, with live progress, then the figures.

On the ``local`` profile (what ``make demo`` uses) it first installs and starts the server stack (``airlake stack
install`` and ``up``: PostgreSQL catalog, S3 store, FerretDB, Trino, Superset) and, while ingesting, prints the
live row counts as Trino sees them. On ``embedded`` it needs no servers. Either way it starts the recentchange
replay firehose (looping, with times rebased to now) and the order firehose that follows its demand, runs the
speed pipeline for a bounded time, and prints the table statistics, how to read the data with pyiceberg and, on
``local``, the Superset URL and login.

The replay firehose serves two tracks side by side on one timeline (``firehose serve --interleave``): the 2018
recordings (``firehose.source``, else every ``.jsonl`` in ``shared/data/wikimedia/``: all ``wikidatawiki``, so
``london``) and the wikiticker day of edits across 51 Wikipedias, so the orders follow demand in every market of
``markets.wikis`` (see ``docs/streaming.md``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from airlake.processes import wait_healthy

if TYPE_CHECKING:
    from airlake.settings import Settings

READ_SNIPPET = """\
from airlake.catalog import load_catalog          # run inside the project's virtual environment
catalog = load_catalog(profile="{profile}")  # state directory and credentials from airlake.toml, .env, AIRLAKE__*
orders = catalog.load_table("raw.orders").scan().to_pandas()
demand = catalog.load_table("speed.demand_minute").scan().to_arrow()
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=45.0, help="how long to ingest (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=300.0, help="recentchange events/s (default: %(default)s)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="embedded profile: start from empty tables (deletes the state directory, only if airlake made it)",
    )


class NotAStateDir(RuntimeError):
    """``--fresh`` was asked to delete a directory that airlake did not mark as its own."""


def clear_state(state: Path) -> None:
    """Deletes the state directory ``state`` and makes a new, empty, marked one.

    Raises:
        NotAStateDir: ``state`` exists but is not a directory holding the airlake state marker (``.airlake-state``);
            nothing is deleted.
    """
    from airlake.catalog import STATE_MARKER, ensure_state_dir, is_state_dir

    if state.exists() or state.is_symlink():
        if not is_state_dir(state):
            raise NotAStateDir(
                f"--fresh deletes the state directory, but {state} has no {STATE_MARKER} marker, so airlake did not "
                f"make it (or made it before markers existed): refusing to delete it. Choose another --state-dir, "
                f"or delete it yourself if it is an old airlake state directory."
            )
        shutil.rmtree(state)
    ensure_state_dir(state)


DEMO_LEAD = timedelta(hours=1)
"""How far in the past a fresh demo's replayed timeline starts."""

DEMO_SPEEDUP = 20.0
"""How much faster than real time the replayed demand runs: a demo of a minute shows 20 minutes of orders (placed,
then accepted, picked up, delivered), and every demo run covers as much event time as the one before it."""


def timeline(newest: datetime | None, now: datetime, seconds: float, rate: float) -> tuple[datetime, float]:
    """Where the demo's replayed demand starts and its pace (events per second of event time).

    The timeline starts ``DEMO_LEAD`` in the past, or just after the newest committed event when that is later: a
    second demo on the same state resumes by event time from there (its firehoses are new logs), so a timeline that
    reached back before it would be skipped. It runs ``DEMO_SPEEDUP`` times faster than real time, slower when that
    would take it past the wall clock: no event is dated ahead of the time it is received.
    """
    start = now - DEMO_LEAD
    if newest is not None and newest + timedelta(seconds=1) > start:
        start = min(newest + timedelta(seconds=1), now)
    room = (now - start).total_seconds() + seconds
    speedup = min(DEMO_SPEEDUP, max(1.0, room / max(seconds, 1.0)))
    return start, rate / speedup


def replay_sources(settings: Settings) -> list[str]:
    """The tracks the demo's replay firehose interleaves: the recordings, then the wikiticker day.

    The recordings are ``firehose.source`` when set, else every ``.jsonl`` recording of ``shared/data/wikimedia/``.
    """
    from airlake.sources.firehose import DEFAULT_SOURCE_DIR
    from airlake.sources.wikiticker import WIKITICKER_FILE

    recordings = settings.firehose.source or str(DEFAULT_SOURCE_DIR)
    return [recordings, str(WIKITICKER_FILE)]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)


def _stack_up(settings: Settings, args: argparse.Namespace) -> Settings:
    """Installs and starts the server stack through its own commands; returns the settings with its credentials."""
    from airlake.settings import load_settings

    base = [sys.executable, "-m", "airlake", "--profile", settings.profile, "--state-dir", str(settings.state_dir)]
    if args.config:
        base += ["--config", args.config]
    for step in ("install", "up"):
        print(f"$ airlake stack {step}", flush=True)
        if subprocess.run([*base, "stack", step]).returncode != 0:
            raise SystemExit(f"airlake demo: airlake stack {step} failed (see above); `airlake stack logs` may help")
    return load_settings({"profile": settings.profile, "state_dir": str(settings.state_dir)}, config_file=args.config)


class TrinoCounts(threading.Thread):
    """Prints the row counts of the raw tables as Trino sees them, every few seconds, while the demo ingests."""

    SQL = (
        "SELECT (SELECT count(*) FROM iceberg.raw.recentchange), (SELECT count(*) FROM iceberg.raw.orders),"
        " (SELECT count(*) FROM iceberg.raw.dead_letters)"
    )

    def __init__(self, settings: Settings, every: float = 5.0):
        super().__init__(name="trino-counts", daemon=True)
        self.settings, self.every, self.stop = settings, every, threading.Event()

    def run(self) -> None:
        from airlake.stack.health import trino_query
        from airlake.stack.layout import Layout

        layout = Layout.from_settings(self.settings)
        while not self.stop.wait(self.every):
            try:
                [[recentchange, orders, dead]] = trino_query(layout, self.SQL, timeout=10)
                print(
                    f"trino:  raw.recentchange={recentchange} raw.orders={orders} raw.dead_letters={dead}", flush=True
                )
            except Exception as exc:  # noqa: BLE001 - the tables appear with the first commit
                print(f"trino:  {str(exc).splitlines()[0][:120]}", flush=True)


def main(args: argparse.Namespace, settings: Settings) -> int:
    from airlake.catalog import ensure_state_dir
    from airlake.lake.stats import format_table, lake_stats
    from airlake.pipelines import speed

    state = settings.state_dir
    local = settings.profile != "embedded"
    if args.fresh and not local:
        try:
            clear_state(state)
        except (NotAStateDir, OSError) as exc:
            print(f"airlake demo: {exc}", file=sys.stderr)
            return 2
    elif args.fresh:
        print(f"airlake demo: --fresh applies to the embedded profile only; the {settings.profile} lake is kept")
    ensure_state_dir(state)
    if local:
        settings = _stack_up(settings, args)
    logs = state / "logs"
    host = settings.firehose.host
    rc_port, orders_port = settings.firehose.recentchange_port, settings.firehose.orders_port
    base = [sys.executable, "-m", "airlake", "--state-dir", str(state)]
    rc_url = f"http://{host}:{rc_port}/v2/stream/recentchange"
    orders_url = f"http://{host}:{orders_port}/v2/stream/orders"
    print(f"airlake demo: profile {settings.profile}, state in {state}")
    procs: list[subprocess.Popen] = []
    counts: TrinoCounts | None = None
    try:
        from airlake.catalog import load_catalog
        from airlake.lake.stats import newest_event_time

        start, pace = timeline(newest_event_time(load_catalog(settings)), datetime.now(UTC), args.seconds, args.rate)
        replay = ["--loop", "--rate", str(args.rate), "--pace", f"{pace:.3f}", "--start-time", start.isoformat()]
        replay += ["--interleave", *(arg for source in replay_sources(settings) for arg in ("--source", source))]
        rc = _start([*base, "firehose", "serve", "--port", str(rc_port), *replay], logs / "firehose-recentchange.log")
        procs.append(rc)
        wait_healthy(f"http://{host}:{rc_port}/healthz", rc, logs / "firehose-recentchange.log")
        orders = _start(
            [*base, "firehose", "orders", "--port", str(orders_port), "--demand-url", rc_url],
            logs / "firehose-orders.log",
        )
        procs.append(orders)
        wait_healthy(f"http://{host}:{orders_port}/healthz", orders, logs / "firehose-orders.log")
        print(
            f"  recentchange firehose: {rc_url} ({args.rate:.0f} events/s, looping the 2018 recordings and the"
            f" wikiticker day of 51 Wikipedias side by side; event times from {start:%H:%M:%S} UTC at"
            f" {args.rate / pace:.1f}x real time)"
        )
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
        pipeline = speed.build(settings, ns)
        if local:
            counts = TrinoCounts(settings)
            counts.start()
        summary = pipeline.run()
    except RuntimeError as exc:
        print(f"airlake demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if counts is not None:
            counts.stop.set()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    from airlake.catalog import load_catalog

    print("\nTables:\n" + format_table(lake_stats(load_catalog(settings))))
    print(
        f"\nRun: {summary['events_per_s']} events/s read, lag p50 {summary['lag_p50_s']} s, p95 {summary['lag_p95_s']} s,"
        f" dead letters {summary['dead_letters']}, duplicates dropped {summary['duplicates_dropped']}"
    )
    print("\nRead the data with pyiceberg:\n\n" + READ_SNIPPET.format(profile=settings.profile))
    print(f"Or from the shell: airlake --profile {settings.profile} --state-dir {state} lake stats --json")
    if local:
        stack = settings.stack
        print(
            f"\nTrino:    http://{stack.host}:{stack.trino.port}  (catalog iceberg: raw.*, speed.*)"
            f"\nSuperset: http://{stack.host}:{stack.superset.port}"
            f"  login {stack.superset.admin_user} / {stack.superset.admin_password.get_secret_value()}"
            "\nThe stack keeps running: `airlake stack status`, `airlake stack down`."
        )
    return 0
