"""Creating airlake's namespaces and tables, with the properties that keep streaming commits fast."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from airlake.lake.schemas import ALL_TABLES, NAMESPACES, TableDef

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from airlake.settings import Settings

log = logging.getLogger(__name__)

# Table properties for many small appends (see DESIGN.md: without them commit time grows with every snapshot).
MANIFEST_MERGE_ENABLED = "commit.manifest-merge.enabled"
METADATA_DELETE_AFTER_COMMIT = "write.metadata.delete-after-commit.enabled"
METADATA_PREVIOUS_VERSIONS_MAX = "write.metadata.previous-versions-max"
COMMIT_NUM_RETRIES = "commit.retry.num-retries"
PARQUET_COMPRESSION = "write.parquet.compression-codec"

STREAMING_PROPERTIES = {
    MANIFEST_MERGE_ENABLED: "true",
    METADATA_DELETE_AFTER_COMMIT: "true",
    METADATA_PREVIOUS_VERSIONS_MAX: "10",
    COMMIT_NUM_RETRIES: "10",
    PARQUET_COMPRESSION: "zstd",
}
PARTITION_FIELD_SUFFIX = "_day"


def ensure_table(catalog: Catalog, table: TableDef) -> Table:
    """Creates ``table`` (partitioned by day of its time column) unless it exists, and returns it."""
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
    from pyiceberg.transforms import DayTransform

    catalog.create_namespace_if_not_exists(table.namespace)
    try:
        return catalog.load_table(table.identifier)
    except NoSuchTableError:
        pass
    try:
        with (
            catalog.create_table_transaction(
                table.identifier,
                schema=table.schema,
                properties={**STREAMING_PROPERTIES, "comment": table.description},
            ) as txn,
            txn.update_spec() as spec,
        ):
            spec.add_field(table.partition_column, DayTransform(), table.partition_column + PARTITION_FIELD_SUFFIX)
        log.info("created table %s", table.identifier)
    except TableAlreadyExistsError:
        pass  # another process created it first
    return catalog.load_table(table.identifier)


def ensure_tables(catalog: Catalog, tables: tuple[TableDef, ...] = ALL_TABLES) -> dict[str, Table]:
    """Creates every namespace and table airlake writes to; returns them by identifier."""
    for namespace in NAMESPACES:
        catalog.create_namespace_if_not_exists(namespace)
    return {t.identifier: ensure_table(catalog, t) for t in tables}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the created tables as JSON")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from airlake.catalog import load_catalog

    tables = ensure_tables(load_catalog(settings))
    if args.json:
        print(json.dumps({name: t.location() for name, t in tables.items()}, indent=2))
    else:
        for name, t in tables.items():
            print(f"{name:24} {t.location()}")
    return 0
