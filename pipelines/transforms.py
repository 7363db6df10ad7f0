"""Beam transforms of the speed pipeline, runner-agnostic (nothing here depends on the DirectRunner).

Layers, as in Beam's mobile-gaming examples:

* :class:`NormalizeFn` parses one envelope (a source event as read from its firehose) into a typed row, or a
  dead letter with the reason, on tagged outputs;
* :class:`Normalize` wraps it; :class:`MinuteWindows` holds the windowing and triggers;
* :class:`DemandPerMinute` and :class:`OrdersPerMinute` are the domain aggregates;
* :class:`StageRows` is the sink the micro-batch driver reads back before its exactly-once commit.

Elements entering the pipeline are envelopes, one line each (see :func:`envelope`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger as triggers
from apache_beam.transforms import window

from airlake.lake.schemas import DEAD_LETTERS, DEMAND_MINUTE, ORDERS, ORDERS_MINUTE, RECENTCHANGE, TableDef
from airlake.sources.events import DELIVERED, ORDER_EVENT_TYPES, ORDERS_SOURCE, PLACED, RECENTCHANGE_SOURCE, is_canary
from airlake.sources.normalize import (
    InvalidEvent,
    event_key,
    order_row,
    parse_json_object,
    recentchange_row,
    row_key,
)

__all__ = ["event_key", "row_key"]


# Tags of Normalize's outputs.
RECENTCHANGE_TAG = "recentchange"
ORDERS_TAG = "orders"
DEAD_LETTER_TAG = "dead_letters"

WINDOW_SECONDS = 60
CENTS = Decimal(100)


RAW_ENVELOPE = "R"
JSON_ENVELOPE = "J"
_UNSAFE = ("\t", "\n", "\r")


def envelope(source: str, sse_id: str | None, received_at: float, data: str, error: str | None = None) -> str:
    """One pipeline input line: the event as read from its firehose, with where and when it was read.

    The common case is tab-separated with the payload last and untouched (``R``), so that reading it back costs
    no second JSON decode; a payload or id holding a tab or line break is JSON-encoded instead (``J``), and so is
    an event the reader already rejected (``error``: too large, say), which becomes a dead letter with that reason.
    """
    ident = "" if sse_id is None else sse_id
    if error is not None:
        return JSON_ENVELOPE + "\t" + json.dumps([source, sse_id, received_at, data, error], ensure_ascii=False)
    if any(c in data or c in ident for c in _UNSAFE) or ident == "\x00":
        return JSON_ENVELOPE + "\t" + json.dumps([source, sse_id, received_at, data], ensure_ascii=False)
    return f"{RAW_ENVELOPE}\t{source}\t{ident if sse_id is not None else chr(0)}\t{received_at!r}\t{data}"


def open_envelope(line: str) -> tuple[str, str | None, float, str, str | None]:
    """The (source, sse_id, received_at, data, error) of an :func:`envelope` line; ValueError when it is none."""
    if line.startswith(JSON_ENVELOPE + "\t"):
        parts = json.loads(line[2:])
        if not isinstance(parts, list) or len(parts) not in (4, 5):
            raise ValueError("a JSON envelope holds 4 or 5 fields")
        source, sse_id, received_at, data = parts[:4]
        error = str(parts[4]) if len(parts) == 5 and parts[4] is not None else None
        return str(source), sse_id, float(received_at), str(data), error
    kind, source, sse_id, received_at, data = line.split("\t", 4)
    if kind != RAW_ENVELOPE:
        raise ValueError(f"unknown envelope kind {kind!r}")
    return source, None if sse_id == "\x00" else sse_id, float(received_at), data, None


def dead_letter(
    source: str, sse_id: str | None, received: datetime, error: str, data: str, obj: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "dead_letter_id": event_key(source, sse_id, data, obj),
        "source": source,
        "received_at": received,
        "error": error,
        "payload": data,
        "sse_id": sse_id,
    }


class ReadLinesFn(beam.DoFn):
    """A file path -> its lines, or lists of up to ``chunk_size`` lines (any filesystem Beam knows)."""

    def __init__(self, chunk_size: int | None = None):
        self.chunk_size = chunk_size

    def process(self, path: str):
        from apache_beam.io.filesystems import FileSystems

        chunk: list[str] = []
        with FileSystems.open(path, compression_type="uncompressed") as handle:
            for raw in handle:
                line = raw.decode("utf-8").rstrip("\n")
                if not line:
                    continue
                if self.chunk_size is None:
                    yield line
                    continue
                chunk.append(line)
                if len(chunk) >= self.chunk_size:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


class ReadEnvelopes(beam.PTransform):
    """Segment file paths -> envelope lines (or chunks of them, see :class:`Normalize`)."""

    def __init__(self, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size

    def expand(self, paths):
        return paths | "ReadLines" >> beam.ParDo(ReadLinesFn(self.chunk_size))


DEFAULT_MAX_AHEAD_SECONDS = 300.0
"""How far after its receive time an event may be dated (clocks differ a little; a year ahead is a broken clock)."""


def normalize_envelope(
    line: str, max_ahead: float | None = DEFAULT_MAX_AHEAD_SECONDS
) -> tuple[str | None, dict[str, Any] | None]:
    """(output tag, row) of one envelope line; (None, None) for a canary, which is dropped.

    An event dated more than ``max_ahead`` seconds after it was received is a dead letter: it would move the
    aggregates' watermark into the future and close every open minute (None: no such check).
    """
    try:
        source, sse_id, received_at, data, error = open_envelope(line)
        received = datetime.fromtimestamp(received_at, UTC)
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        now = datetime.now(UTC)
        return DEAD_LETTER_TAG, dead_letter("unknown", None, now, f"unreadable envelope: {exc}", line, None)
    if error is not None:
        return DEAD_LETTER_TAG, dead_letter(source, sse_id, received, error, data, None)
    obj: dict[str, Any] | None = None
    try:
        obj = parse_json_object(data)
        if source == RECENTCHANGE_SOURCE:
            if is_canary(obj):
                return None, None
            tag, row = RECENTCHANGE_TAG, recentchange_row(obj, raw=data, sse_id=sse_id, ingested_at=received)
        elif source == ORDERS_SOURCE:
            tag, row = ORDERS_TAG, order_row(obj, raw=data, sse_id=sse_id, ingested_at=received)
        else:
            raise InvalidEvent(f"unknown source {source!r}")
        if max_ahead is not None and (row["event_time"] - received).total_seconds() > max_ahead:
            ahead = (row["event_time"] - received).total_seconds()
            raise InvalidEvent(
                f"event_time {row['event_time'].isoformat()} is {ahead:,.0f} s after the event was received"
                f" ({received.isoformat()}): more than the {max_ahead:,.0f} s allowed"
                " (pipeline.max_event_ahead_seconds)"
            )
        return tag, row
    except InvalidEvent as exc:
        return DEAD_LETTER_TAG, dead_letter(source, sse_id, received, str(exc), data, obj)


class NormalizeFn(beam.DoFn):
    """Envelope -> a row on the ``recentchange`` or ``orders`` output, or a dead letter with the reason.

    With ``chunked`` it takes lists of envelopes and emits lists of rows per output: the micro-batch graph carries
    chunks between its fused steps so that no per-event Beam hop is paid (the row-wise steps accept both).
    """

    def __init__(self, chunked: bool = False, max_ahead: float | None = DEFAULT_MAX_AHEAD_SECONDS) -> None:
        self.chunked = chunked
        self.max_ahead = max_ahead
        self.counters = {
            RECENTCHANGE_TAG: Metrics.counter("normalize", "recentchange"),
            ORDERS_TAG: Metrics.counter("normalize", "orders"),
            DEAD_LETTER_TAG: Metrics.counter("normalize", "dead_letters"),
            None: Metrics.counter("normalize", "canaries_dropped"),
        }

    def process(self, element):
        if not self.chunked:
            tag, row = normalize_envelope(element, self.max_ahead)
            self.counters[tag].inc()
            if tag is not None:
                yield beam.pvalue.TaggedOutput(tag, row)
            return
        out: dict[str | None, list[dict[str, Any]]] = {}
        for line in element:
            tag, row = normalize_envelope(line, self.max_ahead)
            out.setdefault(tag, []).append(row)
        for tag, rows in out.items():
            self.counters[tag].inc(len(rows))
            if tag is not None:
                yield beam.pvalue.TaggedOutput(tag, rows)


class Normalize(beam.PTransform):
    """Envelopes (or chunks of them) -> tagged outputs ``recentchange``, ``orders`` and ``dead_letters``."""

    def __init__(self, chunked: bool = False, max_ahead: float | None = DEFAULT_MAX_AHEAD_SECONDS):
        super().__init__()
        self.chunked = chunked
        self.max_ahead = max_ahead

    def expand(self, envelopes):
        return envelopes | "NormalizeEvents" >> beam.ParDo(NormalizeFn(self.chunked, self.max_ahead)).with_outputs(
            RECENTCHANGE_TAG, ORDERS_TAG, DEAD_LETTER_TAG
        )


def rows_of(element: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of an element that is a row or a chunk of rows."""
    return element if isinstance(element, list) else [element]


class MinuteWindows(beam.PTransform):
    """One-minute event-time windows.

    With no trigger (the micro-batch driver, and batch recomputation) each window fires once when its input is
    complete. A streaming runner passes ``early_firing_seconds`` to fire the accumulated value every so many
    seconds of processing time before the watermark, on time, and once per late element within
    ``allowed_lateness`` seconds: each firing is a new row of the speed table, the latest one wins.
    """

    def __init__(self, early_firing_seconds: float | None = None, allowed_lateness: float = 0.0):
        super().__init__()
        self.early_firing_seconds = early_firing_seconds
        self.allowed_lateness = allowed_lateness

    def expand(self, pcoll):
        if self.early_firing_seconds is None:
            return pcoll | "FixedMinutes" >> beam.WindowInto(window.FixedWindows(WINDOW_SECONDS))
        return pcoll | "FixedMinutes" >> beam.WindowInto(
            window.FixedWindows(WINDOW_SECONDS),
            trigger=triggers.AfterWatermark(
                early=triggers.AfterProcessingTime(self.early_firing_seconds),
                late=triggers.AfterCount(1),
            ),
            accumulation_mode=triggers.AccumulationMode.ACCUMULATING,
            allowed_lateness=self.allowed_lateness,
        )


def sum_tuples(values) -> tuple:
    """Element-wise sum of equally long tuples (the accumulators of the minute aggregates)."""
    total: list | None = None
    for value in values:
        if total is None:
            total = list(value)
        else:
            for i, v in enumerate(value):
                total[i] += v
    return tuple(total) if total is not None else ()


class WindowStartFn(beam.DoFn):
    """(key, accumulator) in a window -> a row through ``to_row(window_start, key, accumulator)``."""

    def __init__(self, to_row):
        self.to_row = to_row

    def process(self, element, win=beam.DoFn.WindowParam):
        key, acc = element
        yield self.to_row(win.start.to_utc_datetime().replace(tzinfo=UTC), key, acc)


class PartialMinuteSumsFn(beam.DoFn):
    """Sums the values of each (key, event minute) within a bundle, before windowing.

    This is combiner lifting done by hand: it turns one windowed element per event into one per key and minute
    and bundle, which is what makes the aggregates cheap. Each partial carries the start of its minute as its
    timestamp, so :class:`MinuteWindows` puts it in the window its events belong to.
    """

    def __init__(self, key_and_value):
        self.key_and_value = key_and_value
        self.sums: dict[tuple[Any, int], list] = {}

    def start_bundle(self):
        self.sums = {}

    def process(self, element):
        for row in rows_of(element):
            key, value = self.key_and_value(row)
            minute = int(row["event_time"].timestamp()) // WINDOW_SECONDS * WINDOW_SECONDS
            acc = self.sums.get((key, minute))
            if acc is None:
                self.sums[(key, minute)] = list(value)
            else:
                for i, v in enumerate(value):
                    acc[i] += v

    def finish_bundle(self):
        from apache_beam.utils.windowed_value import WindowedValue

        for (key, minute), acc in self.sums.items():
            yield WindowedValue((key, tuple(acc)), minute, [window.GlobalWindow()])
        self.sums = {}


def demand_value(row: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(events, edits, new_pages, bot_events, bytes_delta) of one recentchange row."""
    delta = 0
    if row.get("length_new") is not None and row.get("length_old") is not None:
        delta = row["length_new"] - row["length_old"]
    elif row.get("length_new") is not None:
        delta = row["length_new"]
    kind = row["type"]
    return (1, int(kind == "edit"), int(kind == "new"), int(bool(row.get("bot"))), delta)


def demand_row(window_start: datetime, key: tuple[str, str], acc: tuple) -> dict[str, Any]:
    market, wiki = key
    events, edits, new_pages, bots, delta = acc
    return {
        "window_start": window_start,
        "market": market,
        "wiki": wiki,
        "events": events,
        "edits": edits,
        "new_pages": new_pages,
        "bot_events": bots,
        "bytes_delta": delta,
    }


class DemandPerMinute(beam.PTransform):
    """recentchange rows -> per (minute, market, wiki) demand rows."""

    def __init__(self, markets: Mapping[str, str], default_market: str, windows: MinuteWindows | None = None):
        super().__init__()
        self.markets = dict(markets)
        self.default_market = default_market
        self.windows = windows or MinuteWindows()

    def expand(self, rows):
        markets, default = self.markets, self.default_market
        return (
            rows
            | "PartialSums"
            >> beam.ParDo(
                PartialMinuteSumsFn(lambda r: ((markets.get(r["wiki"], default), r["wiki"]), demand_value(r)))
            )
            | "Window" >> self.windows
            | "SumDemand" >> beam.CombinePerKey(sum_tuples)
            | "DemandRow" >> beam.ParDo(WindowStartFn(demand_row))
        )


def order_value(row: dict[str, Any]) -> tuple:
    """(placed, accepted, picked_up, delivered, cancelled, gmv_placed_cents, gmv_delivered_cents, delivery_min)."""
    kind = row["event_type"]
    cents = int((row.get("order_total") or Decimal(0)) * CENTS)
    counts = tuple(int(kind == t) for t in ORDER_EVENT_TYPES)
    delivered = kind == DELIVERED
    return (
        *counts,
        cents if kind == PLACED else 0,
        cents if delivered else 0,
        float(row.get("delivery_minutes") or 0.0) if delivered else 0.0,
    )


def orders_row(window_start: datetime, market: str, acc: tuple) -> dict[str, Any]:
    placed, accepted, picked_up, delivered, cancelled, gmv_placed, gmv_delivered, minutes = acc
    return {
        "window_start": window_start,
        "market": market,
        "placed": placed,
        "accepted": accepted,
        "picked_up": picked_up,
        "delivered": delivered,
        "cancelled": cancelled,
        "gmv_placed": Decimal(gmv_placed).scaleb(-2),
        "gmv_delivered": Decimal(gmv_delivered).scaleb(-2),
        "delivery_minutes_sum": minutes,
    }


class OrdersPerMinute(beam.PTransform):
    """order rows -> per (minute, market) order counts, GMV and delivery minutes."""

    def __init__(self, windows: MinuteWindows | None = None):
        super().__init__()
        self.windows = windows or MinuteWindows()

    def expand(self, rows):
        return (
            rows
            | "PartialSums" >> beam.ParDo(PartialMinuteSumsFn(lambda r: (r["market"], order_value(r))))
            | "Window" >> self.windows
            | "SumOrders" >> beam.CombinePerKey(sum_tuples)
            | "OrdersRow" >> beam.ParDo(WindowStartFn(orders_row))
        )


AGGREGATE_EXTRA_COLUMNS = ("fired_at", "batch")


def staged_schema(table: TableDef) -> pa.Schema:
    """The schema of what the pipeline stages for ``table``: aggregates lack the columns the driver adds."""
    schema = table.schema
    for name in AGGREGATE_EXTRA_COLUMNS:
        index = schema.get_field_index(name)
        if index >= 0:
            schema = schema.remove(index)
    return schema


class StageRowsFn(beam.DoFn):
    """Writes each bundle's rows as one Arrow IPC file under ``directory/<table>/``."""

    def __init__(self, directory: str, table: TableDef):
        self.directory = directory
        self.table = table
        self.rows: list[dict[str, Any]] = []

    def start_bundle(self):
        self.rows = []

    def process(self, element):
        self.rows.extend(rows_of(element))

    def finish_bundle(self):
        if not self.rows:
            return
        folder = os.path.join(self.directory, self.table.identifier)
        os.makedirs(folder, exist_ok=True)
        data = pa.Table.from_pylist(self.rows, schema=staged_schema(self.table))
        name = uuid.uuid4().hex
        tmp = os.path.join(folder, f".{name}.tmp")
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
            writer.write_table(data)
        os.replace(tmp, os.path.join(folder, f"{name}.arrow"))
        self.rows = []


class StageRows(beam.PTransform):
    def __init__(self, directory: str, table: TableDef):
        super().__init__()
        self.directory = directory
        self.table = table

    def expand(self, rows):
        return rows | "WriteArrow" >> beam.ParDo(StageRowsFn(self.directory, self.table))


def read_staged(directory: str, table: TableDef) -> pa.Table:
    """Everything :class:`StageRows` wrote for ``table`` under ``directory`` (an empty table when nothing)."""
    folder = os.path.join(directory, table.identifier)
    schema = staged_schema(table)
    if not os.path.isdir(folder):
        return schema.empty_table()
    parts = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".arrow"):
            with pa.memory_map(os.path.join(folder, name)) as source:
                parts.append(pa.ipc.open_file(source).read_all())
    return pa.concat_tables(parts) if parts else schema.empty_table()


class SpeedLayer(beam.PTransform):
    """Envelopes (or chunks of them, with ``chunked``) -> staged raw rows, dead letters and minute aggregates.

    This is the whole per-batch graph of the micro-batch driver; a streaming runner uses the same composites with
    a streaming read and :class:`MinuteWindows` triggers.
    """

    def __init__(
        self,
        stage_dir: str,
        markets: Mapping[str, str],
        default_market: str,
        chunked: bool = False,
        max_ahead: float | None = DEFAULT_MAX_AHEAD_SECONDS,
    ):
        super().__init__()
        self.chunked = chunked
        self.max_ahead = max_ahead
        self.stage_dir = stage_dir
        self.markets = markets
        self.default_market = default_market

    def expand(self, envelopes):
        out = envelopes | "Normalize" >> Normalize(self.chunked, self.max_ahead)
        out[RECENTCHANGE_TAG] | "StageRecentchange" >> StageRows(self.stage_dir, RECENTCHANGE)
        out[ORDERS_TAG] | "StageOrders" >> StageRows(self.stage_dir, ORDERS)
        out[DEAD_LETTER_TAG] | "StageDeadLetters" >> StageRows(self.stage_dir, DEAD_LETTERS)
        (
            out[RECENTCHANGE_TAG]
            | "DemandPerMinute" >> DemandPerMinute(self.markets, self.default_market)
            | "StageDemand" >> StageRows(self.stage_dir, DEMAND_MINUTE)
        )
        (
            out[ORDERS_TAG]
            | "OrdersPerMinute" >> OrdersPerMinute()
            | "StageOrdersMinute" >> StageRows(self.stage_dir, ORDERS_MINUTE)
        )
        return out
