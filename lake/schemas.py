"""Table definitions of the lake: one :class:`TableDef` per Iceberg table.

Schemas are written as Arrow schemas because the pipeline builds Arrow tables to append; pyiceberg converts them
(a non-nullable Arrow field becomes a required Iceberg column). Every table is partitioned by the day of its time
column, and every table that takes events has an id column that the exactly-once writer deduplicates on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(12, 2)

RAW = "raw"
SPEED = "speed"
NAMESPACES = (RAW, SPEED)


@dataclass(frozen=True)
class TableDef:
    """An Iceberg table airlake owns.

    Attributes:
        namespace: Iceberg namespace (``raw``, ``speed``).
        name: table name inside the namespace.
        schema: Arrow schema of the rows appended.
        partition_column: timestamp column whose day partitions the table.
        id_column: the unique key rows are deduplicated on (None for aggregate tables).
        description: what one row is.
    """

    namespace: str
    name: str
    schema: pa.Schema
    partition_column: str
    id_column: str | None
    description: str

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.name}"


RECENTCHANGE = TableDef(
    RAW,
    "recentchange",
    pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("event_time", TS, nullable=False),
            pa.field("wiki", pa.string(), nullable=False),
            pa.field("type", pa.string(), nullable=False),
            pa.field("domain", pa.string()),
            pa.field("server_name", pa.string()),
            pa.field("namespace", pa.int32()),
            pa.field("title", pa.string()),
            pa.field("user_name", pa.string()),
            pa.field("bot", pa.bool_()),
            pa.field("minor", pa.bool_()),
            pa.field("patrolled", pa.bool_()),
            pa.field("length_old", pa.int64()),
            pa.field("length_new", pa.int64()),
            pa.field("revision_old", pa.int64()),
            pa.field("revision_new", pa.int64()),
            pa.field("rc_id", pa.int64()),
            pa.field("comment", pa.string()),
            pa.field("log_type", pa.string()),
            pa.field("log_action", pa.string()),
            pa.field("schema_uri", pa.string()),
            pa.field("stream", pa.string()),
            pa.field("sse_id", pa.string()),
            pa.field("ingested_at", TS, nullable=False),
            pa.field("raw_json", pa.string(), nullable=False),
        ]
    ),
    "event_time",
    "event_id",
    "One Wikimedia recentchange event (the demand signal), normalized; raw_json keeps the original.",
)

ORDER_ITEM = pa.struct(
    [
        pa.field("menu_item_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("quantity", pa.int32()),
        pa.field("unit_price", MONEY),
    ]
)

ORDERS = TableDef(
    RAW,
    "orders",
    pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("event_time", TS, nullable=False),
            pa.field("event_type", pa.string(), nullable=False),
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("market", pa.string(), nullable=False),
            pa.field("restaurant_id", pa.string()),
            pa.field("customer_id", pa.string()),
            pa.field("courier_id", pa.string()),
            pa.field("items", pa.list_(ORDER_ITEM)),
            pa.field("order_total", MONEY),
            pa.field("currency", pa.string()),
            pa.field("delivery_minutes", pa.float64()),
            pa.field("cancel_reason", pa.string()),
            pa.field("schema_version", pa.int32()),
            pa.field("sse_id", pa.string()),
            pa.field("ingested_at", TS, nullable=False),
            pa.field("raw_json", pa.string(), nullable=False),
        ]
    ),
    "event_time",
    "event_id",
    "One order lifecycle event (placed, accepted, picked_up, delivered, cancelled).",
)

DEAD_LETTERS = TableDef(
    RAW,
    "dead_letters",
    pa.schema(
        [
            pa.field("dead_letter_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("received_at", TS, nullable=False),
            pa.field("error", pa.string(), nullable=False),
            pa.field("payload", pa.string(), nullable=False),
            pa.field("sse_id", pa.string()),
        ]
    ),
    "received_at",
    "dead_letter_id",
    "An event that could not be ingested, with the reason; nothing is dropped silently.",
)

DEMAND_MINUTE = TableDef(
    SPEED,
    "demand_minute",
    pa.schema(
        [
            pa.field("window_start", TS, nullable=False),
            pa.field("market", pa.string(), nullable=False),
            pa.field("wiki", pa.string(), nullable=False),
            pa.field("events", pa.int64(), nullable=False),
            pa.field("edits", pa.int64(), nullable=False),
            pa.field("new_pages", pa.int64(), nullable=False),
            pa.field("bot_events", pa.int64(), nullable=False),
            pa.field("bytes_delta", pa.int64(), nullable=False),
            pa.field("fired_at", TS, nullable=False),
            pa.field("batch", pa.int64(), nullable=False),
        ]
    ),
    "window_start",
    None,
    "A firing of the per-minute demand aggregate of one wiki; the latest firing of a minute is its value.",
)

ORDERS_MINUTE = TableDef(
    SPEED,
    "orders_minute",
    pa.schema(
        [
            pa.field("window_start", TS, nullable=False),
            pa.field("market", pa.string(), nullable=False),
            pa.field("placed", pa.int64(), nullable=False),
            pa.field("accepted", pa.int64(), nullable=False),
            pa.field("picked_up", pa.int64(), nullable=False),
            pa.field("delivered", pa.int64(), nullable=False),
            pa.field("cancelled", pa.int64(), nullable=False),
            pa.field("gmv_placed", MONEY, nullable=False),
            pa.field("gmv_delivered", MONEY, nullable=False),
            pa.field("delivery_minutes_sum", pa.float64(), nullable=False),
            pa.field("fired_at", TS, nullable=False),
            pa.field("batch", pa.int64(), nullable=False),
        ]
    ),
    "window_start",
    None,
    "A firing of the per-minute order aggregate of one market; the latest firing of a minute is its value.",
)

IMAGES = TableDef(
    RAW,
    "images",
    pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("photo_id", pa.string()),
            pa.field("source_url", pa.string()),
            pa.field("format", pa.string(), nullable=False),
            pa.field("content_type", pa.string(), nullable=False),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("mode", pa.string()),
            pa.field("byte_size", pa.int64(), nullable=False),
            pa.field("phash", pa.string(), nullable=False),
            pa.field("dominant_colour", pa.string()),
            pa.field("exif_time", pa.string()),
            pa.field("stored_at", TS, nullable=False),
        ]
    ),
    "stored_at",
    "image_id",
    "One valid image (its metadata; the bytes and the document are in the side store, keyed by image_id, the"
    " SHA-256), committed after its document was written. Owners are in raw.image_owners.",
)

IMAGE_OWNERS = TableDef(
    RAW,
    "image_owners",
    pa.schema(
        [
            pa.field("owner_key", pa.string(), nullable=False),
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("photo_id", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("order_id", pa.string()),
            pa.field("menu_item_id", pa.string()),
            pa.field("restaurant_id", pa.string()),
            pa.field("courier_id", pa.string()),
            pa.field("market", pa.string()),
            pa.field("stored_at", TS, nullable=False),
        ]
    ),
    "stored_at",
    "owner_key",
    "One owner of an image (an order and its courier, or a restaurant's menu item) that references its photo;"
    " owner_key hashes the photo id and the owner keys.",
)

RAW_TABLES = (RECENTCHANGE, ORDERS, DEAD_LETTERS)
IMAGE_TABLES = (IMAGES, IMAGE_OWNERS)
SPEED_TABLES = (DEMAND_MINUTE, ORDERS_MINUTE)
ALL_TABLES = RAW_TABLES + IMAGE_TABLES + SPEED_TABLES
BY_IDENTIFIER = {t.identifier: t for t in ALL_TABLES}
