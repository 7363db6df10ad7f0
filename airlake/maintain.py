"""``airlake maintain [--every SECONDS]``: compaction, snapshot expiry and orphan removal on every Iceberg table.

The work is :mod:`airlake.lake.maintenance` (what runs, what it keeps and why it is safe while ingestion commits);
this module prints the data files and snapshots of each table before and after, and loops with ``--every``.
Cron would run ``airlake --profile local maintain`` (say hourly); a long-running service, ``--every 3600``.

The command line layer: imports :mod:`airlake.lake.maintenance`, :mod:`airlake.catalog.trino` and
:mod:`airlake.sql` (how Trino is reached).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime

from airlake.lake.maintenance import TableReport, maintain
from airlake.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="run again every SECONDS (from the start of one run to the start of the next) until stopped",
    )
    parser.add_argument(
        "--table",
        action="append",
        metavar="NAMESPACE.TABLE",
        help="maintain only this table (repeatable; default: every table of every namespace)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per run instead of a table")


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds / 3600:.1f}h"


def print_header(settings: Settings) -> None:
    snapshots = settings.maintenance.snapshot_retention_seconds
    orphans = settings.maintenance.orphan_retention_seconds
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC  optimize, expire_snapshots (retention {_duration(snapshots)}), "
        f"remove_orphan_files (retention {_duration(orphans)})",
        flush=True,
    )
    print(f"  {'table':<28} {'data files':>16} {'snapshots':>14}   seconds (optimize/expire/orphans)", flush=True)


def print_report(report: TableReport) -> None:
    after = report.after or report.before
    files = f"{report.before.data_files} -> {after.data_files}"
    snaps = f"{report.before.snapshots} -> {after.snapshots}"
    steps = "/".join(
        f"{report.seconds[s]:.1f}" if s in report.seconds else "-"
        for s in ("optimize", "expire_snapshots", "remove_orphan_files")
    )
    line = f"  {report.table:<28} {files:>16} {snaps:>14}   {steps}"
    if report.kept_for:
        line += f"  (snapshots kept {_duration(report.snapshot_retention_seconds)}: {report.kept_for})"
    print(line, flush=True)
    if report.error:
        print(f"  {report.table}: failed: {report.error}", file=sys.stderr, flush=True)


def run_once(settings: Settings, args: argparse.Namespace, stop: threading.Event) -> int:
    from airlake.catalog.trino import TrinoError
    from airlake.lake.maintenance import list_tables
    from airlake.sql import not_running

    started = time.monotonic()
    try:
        tables = args.table or list_tables(settings)
    except TrinoError as exc:
        print(not_running(settings, "maintain") or f"airlake maintain: cannot list the tables: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        print_header(settings)
    reports = maintain(settings, tables, progress=None if args.json else print_report, stop=stop.is_set)
    failed = [r for r in reports if r.error]
    if args.json:
        print(
            json.dumps(
                {
                    "time": datetime.now(UTC).isoformat(),
                    "seconds": round(time.monotonic() - started, 3),
                    "tables": [r.to_dict() for r in reports],
                }
            ),
            flush=True,
        )
    else:
        before = sum(r.before.data_files for r in reports)
        after = sum((r.after or r.before).data_files for r in reports)
        print(
            f"  {len(reports)} tables, data files {before} -> {after}, {len(failed)} failed, "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
    return 1 if failed else 0


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.every is not None and args.every <= 0:
        print("airlake maintain: --every must be a positive number of seconds", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the table in hand, then stop
    while True:
        started = time.monotonic()
        status = run_once(settings, args, stop)
        if args.every is None or stop.wait(max(0.0, args.every - (time.monotonic() - started))):
            return status
