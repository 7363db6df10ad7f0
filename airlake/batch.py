"""``airlake batch [--every SECONDS]``: the batch layer of the Lambda architecture, run on Trino through dbt.

One run builds the dbt models of ``sql/models/batch`` and what they read (``dbt build --select
+path:models/batch --indirect-selection cautious``, with only the tests whose every parent is selected):
``batch.sources_seen`` (the sources' newest event times, read first), then
``batch.demand_minute`` and ``batch.orders_minute`` (recomputed from the raw tables deduplicated by event id, each
replaced by one ``MERGE`` of only the keys whose value changed: one Iceberg snapshot per table), their tests, and
last ``batch.boundary`` (advanced only after both batch tables are committed and tested). ``--every`` repeats it
until interrupted, printing each run's duration, rows changed and the new boundary. The work runs on Trino, so the
batch layer scales by adding Trino workers. See docs/serving.md.

The command line layer: may import everything below it (here :mod:`airlake.stack.dbt` and
:mod:`airlake.catalog.trino`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airlake.catalog.trino import TrinoError, query
from airlake.settings import Settings
from airlake.stack import dbt

SELECT = "+path:models/batch"
"""The batch models and everything upstream of them (the staging views they read)."""

BATCH_MODELS = ("batch_demand_minute", "batch_orders_minute")
"""The models whose MERGEs are the rows a run changed."""


@dataclass
class RunReport:
    """What one batch run did."""

    status: int
    seconds: float
    rows_changed: dict[str, int]
    boundary: datetime | None

    def line(self) -> str:
        changed = ", ".join(f"{name}={rows}" for name, rows in self.rows_changed.items()) or "none"
        boundary = self.boundary.isoformat() if self.boundary else "none yet"
        verdict = "ok" if self.status == 0 else f"FAILED (dbt exit {self.status})"
        return f"batch run {verdict} in {self.seconds:.1f} s: rows changed {changed}; boundary {boundary}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="run again every SECONDS (counted from the start of each run) until interrupted",
    )
    parser.add_argument(
        "--full-refresh", action="store_true", help="rebuild the batch tables from scratch instead of merging"
    )
    parser.add_argument("--quiet", action="store_true", help="print only each run's summary line, not dbt's output")


def rows_changed(settings: Settings) -> dict[str, int]:
    """Rows each batch model's MERGE changed in the last dbt run (from dbt's ``run_results.json``)."""
    path = dbt.state_dir(settings) / "target" / "run_results.json"
    if not path.is_file():
        return {}
    results: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8")).get("results", [])
    changed: dict[str, int] = {}
    for result in results:
        name = str(result.get("unique_id", "")).rsplit(".", 1)[-1]
        if name in BATCH_MODELS and str(result.get("unique_id", "")).startswith("model."):
            rows = (result.get("adapter_response") or {}).get("rows_affected")
            changed[name.removeprefix("batch_")] = int(rows) if isinstance(rows, int) and rows >= 0 else 0
    return changed


def current_boundary(settings: Settings) -> datetime | None:
    """The boundary in ``batch.boundary``, or None before the first run."""
    try:
        rows = query(settings, "select max(boundary) from iceberg.batch.boundary")
    except TrinoError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return rows[0][0] if rows else None


def run_once(settings: Settings, *, full_refresh: bool = False, quiet: bool = False) -> RunReport:
    """One batch run: the batch models, their tests, then the boundary."""
    started = time.monotonic()
    lines: list[str] = []
    out = lines.append if quiet else (lambda line: print(line, flush=True))
    status = dbt.run(
        settings,
        [
            "build",
            "--select",
            SELECT,
            "--indirect-selection",
            "cautious",
            *(["--full-refresh"] if full_refresh else []),
        ],
        out=out,
    )
    seconds = time.monotonic() - started
    if status != 0 and quiet:  # what failed, from dbt's closing summary
        tail = next((i for i, line in enumerate(lines) if "Completed with" in line), max(0, len(lines) - 30))
        print("\n".join(lines[tail:]), file=sys.stderr, flush=True)
    return RunReport(status, seconds, rows_changed(settings), current_boundary(settings))


def main(args: argparse.Namespace, settings: Settings) -> int:
    every = getattr(args, "every", None)
    if every is not None and every <= 0:
        print("airlake batch: --every takes a positive number of seconds", file=sys.stderr)
        return 2
    full_refresh = bool(getattr(args, "full_refresh", False))
    quiet = bool(getattr(args, "quiet", False))
    try:
        if every is None:
            report = run_once(settings, full_refresh=full_refresh, quiet=quiet)
            print(report.line(), flush=True)
            return report.status
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    report = run_once(settings, full_refresh=full_refresh, quiet=quiet)
                    full_refresh = False  # only the first run rebuilds
                    print(report.line(), flush=True)
                except TrinoError as exc:  # Trino restarting: report it, try again on schedule
                    print(f"airlake batch: run failed: {exc}", file=sys.stderr, flush=True)
                stop.wait(max(0.0, every - (time.monotonic() - started)))
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        print("airlake batch: stopped", flush=True)
        return 0
    except (dbt.DbtError, TrinoError) as exc:
        print(f"airlake batch: {exc}", file=sys.stderr)
        return 1
