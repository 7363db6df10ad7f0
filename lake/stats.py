"""``airlake lake stats``: per-table figures used by tests, the demo and outside checks."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airlake.lake.commit import SPEED_WRITER, latest_mark, newest_commit_max
from airlake.lake.schemas import ALL_TABLES, ORDERS, RECENTCHANGE, TableDef

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from airlake.settings import Settings


def newest_event_time(catalog: Catalog, tables: tuple[TableDef, ...] = (RECENTCHANGE, ORDERS)) -> datetime | None:
    """The newest event time among the rows of the newest commit of each of ``tables`` (None: nothing committed)."""
    from pyiceberg.exceptions import NoSuchTableError

    newest: datetime | None = None
    for table in tables:
        try:
            t = catalog.load_table(table.identifier)
        except NoSuchTableError:
            continue
        found = newest_commit_max(t, table.partition_column)
        if found is not None:
            value = found[table.partition_column]
            newest = value if newest is None else max(newest, value)
    return newest


def table_stats(catalog: Catalog, table: TableDef, writer: str = SPEED_WRITER) -> dict[str, Any]:
    """Row count, distinct ids, snapshot count, data file count and newest committed positions of one table."""
    import pyarrow.compute as pc
    from pyiceberg.exceptions import NoSuchTableError

    try:
        t = catalog.load_table(table.identifier)
    except NoSuchTableError:
        return {"exists": False}
    snapshot = t.current_snapshot()
    rows = int(snapshot.summary.get("total-records", 0)) if snapshot and snapshot.summary else 0
    files = int(snapshot.summary.get("total-data-files", 0)) if snapshot and snapshot.summary else 0
    distinct = None
    if table.id_column and snapshot is not None:
        ids = t.scan(selected_fields=(table.id_column,)).to_arrow().column(table.id_column)
        distinct = int(pc.count_distinct(ids).as_py())
    mark = latest_mark(t, writer)
    return {
        "exists": True,
        "rows": rows,
        "distinct_ids": distinct,
        "snapshots": len(t.snapshots()),
        "data_files": files,
        "batch": mark.batch if mark else None,
        "positions": dict(mark.end) if mark else {},
    }


def lake_stats(catalog: Catalog) -> dict[str, dict[str, Any]]:
    return {t.identifier: table_stats(catalog, t) for t in ALL_TABLES}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts and tests)")


def format_table(stats: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'table':24} {'rows':>10} {'distinct':>10} {'snapshots':>9} {'files':>6}  newest position"]
    for name, s in stats.items():
        if not s.get("exists"):
            lines.append(f"{name:24} (not created)")
            continue
        distinct = "-" if s["distinct_ids"] is None else s["distinct_ids"]
        positions = "; ".join(f"{k}={v}" for k, v in s["positions"].items()) or "-"
        lines.append(f"{name:24} {s['rows']:>10} {distinct:>10} {s['snapshots']:>9} {s['data_files']:>6}  {positions}")
    return "\n".join(lines)


def main(args: argparse.Namespace, settings: Settings) -> int:
    from airlake.catalog import load_catalog

    stats = lake_stats(load_catalog(settings))
    print(json.dumps(stats, indent=2) if args.json else format_table(stats))
    return 0
