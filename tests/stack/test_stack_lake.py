"""pyiceberg and Trino share one lake: the PostgreSQL JDBC catalog and the S3 bucket of the native stack."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
import trino
from pyiceberg.catalog import load_catalog

from airlake.settings import CATALOG_NAME

pytestmark = pytest.mark.stack


def test_pyiceberg_writes_trino_reads_trino_inserts_pyiceberg_reads(stack):
    settings = stack.settings
    props = settings.catalog_properties("local")
    assert props["uri"].startswith("postgresql+psycopg2://")
    catalog = load_catalog(CATALOG_NAME, **props)
    namespace = f"stacktest_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(namespace)
    rows = pa.table(
        {
            "order_id": pa.array([1, 2, 3], pa.int64()),
            "market": pa.array(["berlin", "london", "paris"], pa.string()),
            "gmv": pa.array([12.5, 7.25, 30.0], pa.float64()),
        }
    )
    table = catalog.create_table(f"{namespace}.orders", schema=rows.schema)
    table.append(rows)
    assert table.metadata_location.startswith(f"s3://{settings.require('stack.s3.bucket')}/warehouse/")

    conn = trino.dbapi.connect(
        host=settings.require("stack.host"),
        port=int(settings.require("stack.trino.port")),
        user="airlake",
        catalog="iceberg",
        schema=namespace,
    )
    cur = conn.cursor()
    cur.execute("SELECT order_id, market, gmv FROM orders ORDER BY order_id")
    assert cur.fetchall() == [[1, "berlin", 12.5], [2, "london", 7.25], [3, "paris", 30.0]]

    cur.execute("INSERT INTO orders VALUES (4, 'madrid', 3.5), (5, 'rome', 8.0)")
    assert cur.fetchall() == [[2]]

    reread = load_catalog(CATALOG_NAME, **props).load_table(f"{namespace}.orders")
    result = reread.scan().to_arrow().sort_by("order_id")
    assert result.column("order_id").to_pylist() == [1, 2, 3, 4, 5]
    assert result.column("market").to_pylist() == ["berlin", "london", "paris", "madrid", "rome"]

    cur.execute(f"DROP TABLE iceberg.{namespace}.orders")
    cur.fetchall()
    catalog.drop_namespace(namespace)
