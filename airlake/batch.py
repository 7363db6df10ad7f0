"""``airlake batch [--every SECONDS]``: the batch layer of the Lambda architecture, run on Trino through dbt.

One run recomputes only the days whose raw data changed since the previous run, a step at a time:

1. **Plan.** For ``raw.recentchange`` and ``raw.orders``, the days of the data files added after the sequence number
   that ``batch.boundary`` recorded last time (:mod:`airlake.lake.changes`, from the Iceberg manifests; every day
   on the first run, with ``--full-refresh``, or when a raw table was dropped and created again). The days are cut
   into steps of at most ``batch.max_step_events`` raw events per source, so that the staging views'
   deduplication of one step fits in Trino's memory whatever the lake's size.
2. **Steps.** Each step is one ``dbt build`` that recomputes ``batch.demand_minute`` and ``batch.orders_minute``
   for its days (the dbt variable ``batch_days``), each replaced by one ``MERGE`` of only the keys whose value
   changed: one Iceberg snapshot per table and step. Its tests check the staging views on the step's days
   (``sql/macros/get_where_subquery.sql``) and the batch tables. ``batch.sources_seen`` records what the plan read
   (newest event time at the planned snapshot, the table's UUID and sequence number).
3. **Boundary.** The last step also builds ``batch.boundary``, which advances the time boundary and records the
   planned sequence numbers, only after the batch tables are committed and tested, and then the serving views,
   which hold the boundary as a literal. A failed step leaves the boundary and the recorded sequence numbers where they were, so the next run
   plans the same days again (a repeated step changes nothing).

``--every`` repeats it until interrupted, printing each run's duration, steps, rows changed and the new boundary.
The work runs on Trino, so the batch layer scales by adding Trino workers. See docs/serving.md.

The command line layer: may import everything below it (here :mod:`airlake.stack.dbt`, :mod:`airlake.lake.changes`
and :mod:`airlake.catalog`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from airlake.catalog.trino import TrinoError, query
from airlake.lake.changes import Changes, TableState, changed_days, chunk_days, day_ranges
from airlake.settings import Settings
from airlake.stack import dbt

SELECT = "+path:models/batch path:models/serving"
"""The last step: the batch models and everything upstream of them (the staging views they read), the boundary,
and the serving views, which take the new boundary as a literal (``sql/macros/hybrid_minute.sql``)."""

STEP_SELECT = "+batch_demand_minute +batch_orders_minute"
"""A step before the last: the two batch models and what they read, and their tests, without the boundary."""

BATCH_MODELS = ("batch_demand_minute", "batch_orders_minute")
"""The models whose MERGEs are the rows a run changed."""

SOURCES = {"recentchange": "raw.recentchange", "orders": "raw.orders"}
"""The raw tables the batch layer reads, by the source name the dbt models use."""


@dataclass
class Plan:
    """The days one run recomputes, per source, cut into steps."""

    changes: dict[str, Changes]
    steps: list[list[date]]
    reset_boundary: bool
    """A raw table is not the one the boundary was computed on (dropped and created again, or rolled back)."""
    recorded: bool
    """Every raw table's state was recorded by a completed run (so the batch tables and the boundary exist)."""

    def step_days(self, step: list[date]) -> dict[str, list[list[str]]]:
        """The dbt variable ``batch_days`` of a step: per source, its changed days in the step as half-open ranges."""
        chosen = set(step)
        return {
            source: [[first.isoformat(), end.isoformat()] for first, end in day_ranges(sorted(chosen & set(c.days)))]
            for source, c in self.changes.items()
        }

    def seen(self) -> dict[str, dict[str, Any]]:
        """The dbt variable ``batch_seen``: each raw table's state as the plan read it."""
        return {
            source: {
                "table_uuid": c.state.table_uuid,
                "sequence_number": c.state.sequence_number,
                "snapshot_id": c.snapshot_id,
            }
            for source, c in self.changes.items()
        }

    def events(self, step: list[date]) -> int:
        return sum(c.day_events.get(day, 0) for c in self.changes.values() for day in step)


@dataclass
class RunReport:
    """What one batch run did."""

    status: int
    seconds: float
    rows_changed: dict[str, int]
    boundary: datetime | None
    steps: int = 0
    days: dict[str, int] = field(default_factory=dict)
    """Days recomputed per source."""

    def line(self) -> str:
        changed = ", ".join(f"{name}={rows}" for name, rows in self.rows_changed.items()) or "none"
        boundary = self.boundary.isoformat() if self.boundary else "none yet"
        verdict = "ok" if self.status == 0 else f"FAILED (dbt exit {self.status})"
        days = ", ".join(f"{source} {count}" for source, count in self.days.items()) or "none"
        return (
            f"batch run {verdict} in {self.seconds:.1f} s: days recomputed {days} in {self.steps} step(s); "
            f"rows changed {changed}; boundary {boundary}"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="run again every SECONDS (counted from the start of each run) until interrupted",
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="recompute every day and rebuild the batch tables from scratch instead of merging",
    )
    parser.add_argument("--quiet", action="store_true", help="print only each run's summary line, not dbt's output")


def rows_changed(settings: Settings) -> dict[str, int]:
    """Rows each batch model's MERGE changed in the last dbt invocation (from dbt's ``run_results.json``)."""
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


def _missing(exc: TrinoError) -> bool:
    text = str(exc)
    return "does not exist" in text or "cannot be resolved" in text


def current_boundary(settings: Settings) -> datetime | None:
    """The boundary in ``batch.boundary``, or None before the first run."""
    try:
        rows = query(settings, "select max(boundary) from iceberg.batch.boundary")
    except TrinoError as exc:
        if _missing(exc):
            return None
        raise
    return rows[0][0] if rows else None


def recorded_states(settings: Settings) -> dict[str, TableState | None]:
    """Each raw table's UUID and sequence number as the last completed run recorded them (None: recompute all)."""
    columns = ", ".join(f"max({source}_table_uuid), max({source}_sequence_number)" for source in SOURCES)
    try:
        rows = query(settings, f"select {columns} from iceberg.batch.boundary")
    except TrinoError as exc:
        if _missing(exc):  # before the first run, or a boundary table from before the sequence numbers
            return dict.fromkeys(SOURCES)
        raise
    row = rows[0] if rows else [None] * (2 * len(SOURCES))
    states: dict[str, TableState | None] = {}
    for index, source in enumerate(SOURCES):
        uuid, number = row[2 * index], row[2 * index + 1]
        states[source] = TableState(str(uuid), int(number)) if uuid is not None and number is not None else None
    return states


def plan(settings: Settings, *, full_refresh: bool = False) -> Plan:
    """The days to recompute: per raw table, those of the data files added since the recorded state."""
    from airlake.catalog import load_catalog

    recorded = dict.fromkeys(SOURCES) if full_refresh else recorded_states(settings)
    catalog = load_catalog(settings)
    changes = {source: changed_days(catalog.load_table(table), recorded[source]) for source, table in SOURCES.items()}
    # a step holds at most max_step_events of each source: size the days by the larger of their sources
    sizes: dict[date, int] = {}
    for c in changes.values():
        for day, events in c.day_events.items():
            sizes[day] = max(sizes.get(day, 0), events)
    reset = any(recorded[source] is not None and c.everything for source, c in changes.items())
    return Plan(
        changes,
        chunk_days(sizes, settings.batch.max_step_events),
        reset_boundary=reset or full_refresh,
        recorded=all(state is not None for state in recorded.values()),
    )


def run_once(settings: Settings, *, full_refresh: bool = False, quiet: bool = False) -> RunReport:
    """One batch run: plan the changed days, recompute them step by step, then the tests and the boundary."""
    started = time.monotonic()
    lines: list[str] = []
    out = lines.append if quiet else (lambda line: print(line, flush=True))
    the_plan = plan(settings, full_refresh=full_refresh)
    days = {source: len(c.days) for source, c in the_plan.changes.items()}
    if not the_plan.steps and the_plan.recorded:  # nothing written since the last completed run: nothing to do
        nothing = dict.fromkeys((name.removeprefix("batch_") for name in BATCH_MODELS), 0)
        return RunReport(0, time.monotonic() - started, nothing, current_boundary(settings), steps=0, days=days)
    steps = the_plan.steps or [[]]  # no day yet, or no run recorded: one build creates the tables and tests them
    base = {"batch_seen": the_plan.seen(), "batch_reset_boundary": the_plan.reset_boundary}
    total: dict[str, int] = {}
    status = 0
    for number, step in enumerate(steps, start=1):
        last = number == len(steps)
        if step:
            print(
                f"batch step {number}/{len(steps)}: {step[0]} to {step[-1]} ({len(step)} day(s), "
                f"{the_plan.events(step):,} raw events)",
                flush=True,
            )
        variables = {**base, "batch_days": the_plan.step_days(step)}
        verb = ["build", "--select", SELECT if last else STEP_SELECT, "--indirect-selection", "cautious"]
        if full_refresh and number == 1:
            verb.append("--full-refresh")
        step_lines_from = len(lines)
        status = dbt.run(settings, verb, out=out, variables=variables)
        for name, rows in rows_changed(settings).items():
            total[name] = total.get(name, 0) + rows
        if status != 0:
            if quiet:  # what failed, from dbt's closing summary
                tail = next(
                    (i for i, line in enumerate(lines) if i >= step_lines_from and "Completed with" in line),
                    max(step_lines_from, len(lines) - 30),
                )
                print("\n".join(lines[tail:]), file=sys.stderr, flush=True)
            break
    seconds = time.monotonic() - started
    return RunReport(status, seconds, total, current_boundary(settings), steps=len(the_plan.steps), days=days)


def main(args: argparse.Namespace, settings: Settings) -> int:
    every = getattr(args, "every", None)
    if every is not None and every <= 0:
        print("airlake batch: --every takes a positive number of seconds", file=sys.stderr)
        return 2
    if settings.profile == "embedded":
        print(
            "airlake batch: the batch layer runs on the stack's Trino, which reads the stack's lake, not the embedded "
            "one: run `airlake --profile local batch` (or set AIRLAKE__PROFILE=local)",
            file=sys.stderr,
        )
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
