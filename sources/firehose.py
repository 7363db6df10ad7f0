"""The local recentchange firehose: recorded Wikimedia events replayed over SSE like EventStreams.

``airlake firehose serve`` serves the recordings in ``shared/data/wikimedia/`` (beside the checkout) at
``/v2/stream/recentchange``, at a fixed rate, at the recorded pace sped up, or as fast as possible, once or
in an endless loop, with deterministic faults for testing the pipeline:

- server level, per connection (:class:`~sources.sse_server.Faults`): dropped connections and stalls;
- log level (:class:`FaultyLog`): malformed JSON, incomplete events and duplicates inserted into the log
  itself, each with its own offset, so that the counts are deterministic and ``Last-Event-ID`` resume stays
  exact.

Every log has an identity (``log_id``, a hash of the recordings' bytes and of what else determines its offsets
and content: loop start and pace, faults), which the server puts into every SSE id, so that a position taken
from one log is never resumed in another.

Both schema variants in the recordings are served as they are: legacy 2018 events (``meta.schema_uri``,
``dt`` like ``2018-03-07T16:16:17+00:00``) and current ones (``$schema``, ``dt`` like
``2026-09-08T00:24:20.990Z``). The event time is ``meta.dt``. The log order is the file order; nothing is
sorted. A wikiticker file (Apache Druid's day of edits across 51 Wikipedias, gzip or not) is served as the
recentchange events :mod:`sources.wikiticker` derives from it, each marked as derived (``meta.derived_from``,
``airlake_derived``).

With ``interleave`` (``--interleave``, loop mode only) each source is a track, and the tracks are spread over the
same timeline and merged by time instead of following each other: ``make demo`` serves the 2018 recordings and the
wikiticker day side by side this way, so the demand (and the orders that follow it) covers every mapped market.

In process (tests, benchmarks)::

    server = SseServer()
    server.add_stream(STREAM_PATH, build_log([path], malformed_every=100))
    server.start()
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airlake.sources import wikiticker
from airlake.sources.events import uuid5 as events_uuid5
from airlake.sources.sse_server import (
    Faults,
    SseServer,
    add_pacing_arguments,
    log_identity,
    pacing_from_args,
    parse_since,
    serve_until_stopped,
)

logger = logging.getLogger(__name__)

TOPIC = "eqiad.mediawiki.recentchange"
STREAM_PATH = "/v2/stream/recentchange"
DEFAULT_RATE = 50.0
DEFAULT_SOURCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikimedia"
"""The recordings: ``shared/data/wikimedia/`` beside the repository checkout."""

MAX_LOOP_GAP = 60.0
"""In loop mode, a gap between consecutive events longer than this (or going back more than this), such as the
jump between two recordings, is replaced by the mean gap so that the replay looks continuous."""

ID_NAMESPACE = uuid.UUID("5a2c3f4e-8d1b-5b6e-9c0a-a1b2c3d4e5f6")
"""Namespace of the deterministic uuid5 ids given to looped and inserted events."""

_ID, _OFFSET, _DT, _TS = '"@@airlake:id@@"', '"@@airlake:offset@@"', '"@@airlake:dt@@"', '"@@airlake:ts@@"'
_PLACEHOLDERS = {_ID: "id", _OFFSET: "offset", _DT: "dt", _TS: "ts"}


GZIP_MAGIC = b"\x1f\x8b"
"""A recording starting with these bytes is gzip-compressed (the wikiticker day is)."""


class SourceError(ValueError):
    """The recordings to replay are missing or unreadable."""


def _is_wikiticker(text: str) -> bool:
    """Whether a recording is a wikiticker file: its first non-blank line is a wikiticker row."""
    for line in text.splitlines():
        if line.strip():
            try:
                return wikiticker.is_wikiticker_row(json.loads(line))
            except ValueError:
                return False
    return False


def resolve_sources(sources: Sequence[str | Path] | str | Path | None) -> list[Path]:
    """The JSONL files to replay: files as given, directories expanded to their ``*.jsonl`` in name order.

    Args:
        sources: files and directories; empty or None means :data:`DEFAULT_SOURCE_DIR`.

    Raises:
        SourceError: a path does not exist or a directory holds no ``.jsonl`` file.
    """
    if sources is None or isinstance(sources, str | Path):
        sources = [sources] if sources else []
    paths = [Path(s).expanduser() for s in sources if str(s)] or [DEFAULT_SOURCE_DIR]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise SourceError(f"no .jsonl recordings in {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(
                f"recording {path} does not exist (pass --source FILE.jsonl or a directory, or set firehose.source)"
            )
    return files


def event_time(event: dict[str, Any]) -> float | None:
    """Epoch seconds of ``meta.dt`` (both ``+00:00`` and ``Z`` forms), or None when missing or invalid."""
    meta = event.get("meta")
    dt = meta.get("dt") if isinstance(meta, dict) else None
    if not isinstance(dt, str):
        return None
    try:
        when = datetime.fromisoformat(dt)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


_SECONDS_CACHE: dict[int, str] = {}


def _format_dt(epoch: float, like: str) -> str:
    """``epoch`` in the style of the original ``dt``: ``Z`` with milliseconds, or seconds and ``+00:00``."""
    seconds = math.floor(epoch)
    text = _SECONDS_CACHE.get(seconds)
    if text is None:
        if len(_SECONDS_CACHE) > 100_000:
            _SECONDS_CACHE.clear()
        text = _SECONDS_CACHE[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if like.endswith("Z"):
        return f"{text}.{int((epoch - seconds) * 1000):03d}Z"
    return text + "+00:00"


_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def uuid5(name: str) -> str:
    """``str(uuid.uuid5(ID_NAMESPACE, name))``, computed a few times faster."""
    return events_uuid5(_NAMESPACE_BYTES, name)


def _template(text: str) -> tuple[list[str], list[str]]:
    """Splits JSON text at the placeholders: the literal pieces, and the field name between each two."""
    found = sorted((text.index(marker), marker) for marker in _PLACEHOLDERS if marker in text)
    pieces, names, at = [], [], 0
    for position, marker in found:
        pieces.append(text[at:position])
        names.append(_PLACEHOLDERS[marker])
        at = position + len(marker)
    pieces.append(text[at:])
    return pieces, names


class RecordedLog:
    """Recorded events as an :class:`~sources.sse_server.EventLog`: offsets 0..n-1 in file order.

    In loop mode the log is endless: offset ``k * n + j`` is event ``j`` of pass ``k``, with a fresh
    ``meta.id`` (uuid5 of the log identity, the pass number and the original id, so that two loop logs never
    share an id), ``meta.offset`` equal to the log offset, and ``meta.dt`` and ``timestamp`` moved so that time
    keeps increasing across passes: the first pass starts at ``start_time`` (the wall clock when the log is
    built), keeps the recorded gaps (see :data:`MAX_LOOP_GAP`) or, with ``events_per_second``, the recorded gaps
    scaled so that the mean rate of the timeline is that rate, and each pass starts after the previous one ends.
    Served at that same rate, the event times then follow the wall clock instead of running ahead of it.

    With ``interleave`` (loop mode only), each of ``sources`` is a track (a directory: its recordings one after
    the other); each track's recorded gaps are stretched so that one pass of the track fills the same period (all
    events of all tracks at ``events_per_second``), and the tracks are merged by time. A pass then holds every
    event of every track once, so the mix of wikis is the mix of the recordings' event counts.

    The log identity :attr:`log_id` is a hash of what determines the content: the topic, the recordings' bytes
    (for a wikiticker file: its content and the conversion version; interleaved: per track), and in loop mode the
    start time and the pace.

    Args:
        sources: JSONL files (see :func:`resolve_sources`).
        loop: replay forever.
        start_time: epoch seconds where loop mode starts its timeline (default: now).
        topic: the topic named in the SSE ids.
        events_per_second: in loop mode, the mean event rate of the timeline (default: the recorded pace).
        interleave: in loop mode, serve the sources side by side on one timeline (see above).

    Raises:
        SourceError: a recording is missing or unreadable, or none holds an event.
        ValueError: ``events_per_second`` is not positive, or ``interleave`` without ``loop``.
    """

    def __init__(
        self,
        sources: Sequence[str | Path] | str | Path | None = None,
        *,
        loop: bool = False,
        start_time: float | None = None,
        topic: str = TOPIC,
        events_per_second: float | None = None,
        interleave: bool = False,
    ) -> None:
        if events_per_second is not None and not events_per_second > 0:
            raise ValueError("events_per_second must be positive")
        if interleave and not loop:
            raise ValueError(
                "interleaving puts the recordings on one replayed timeline, which only loop mode builds: add --loop"
            )
        self.topic = topic
        self.loop = loop
        self.interleave = interleave
        self.events_per_second = events_per_second if loop else None
        if interleave:
            given = [sources] if sources is None or isinstance(sources, str | Path) else list(sources)
            tracks = [resolve_sources(source) for source in given or [None]]
        else:
            tracks = [resolve_sources(sources)]
        self.files = [path for track in tracks for path in track]
        self.lines: list[str] = []
        self.times: list[float | None] = []
        self.derived = 0
        parsed: list[dict[str, Any] | None] = []
        track_digests: list[list[str]] = []
        self._track_sizes: list[int] = []
        for track in tracks:
            digests: list[str] = []
            size = len(self.lines)
            for path in track:
                digests.append(self._read(path, parsed))
            track_digests.append(digests)
            self._track_sizes.append(len(self.lines) - size)
            if interleave and self._track_sizes[-1] == 0:
                raise SourceError(f"the recordings of a track hold no events: {', '.join(map(str, track))}")
        if not self.lines:
            raise SourceError(f"the recordings hold no events: {', '.join(map(str, self.files))}")
        self.started_at = time.time() if start_time is None else start_time
        timeline = {"start_time": repr(float(self.started_at)), "pace": self.events_per_second} if loop else {}
        if interleave:
            self.log_id = log_identity("recorded", topic, track_digests, loop, timeline, "interleaved")
        else:
            self.log_id = log_identity("recorded", topic, track_digests[0], loop, timeline)
        if loop:
            self._prepare_loop(parsed)

    def _read(self, path: Path, parsed: list[dict[str, Any] | None]) -> str:
        """Appends the events of one recording (JSONL, or a wikiticker file converted); returns its digest."""
        try:
            content = path.read_bytes()
            if content[:2] == GZIP_MAGIC:
                content = gzip.decompress(content)
            text = content.decode("utf-8")
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read recording {path}: {exc}") from exc
        digest = hashlib.sha256(content).hexdigest()
        if _is_wikiticker(text):
            for converted in wikiticker.convert_text(text, digest=digest, source=path.name):
                self.lines.append(converted.text)
                parsed.append(converted.event)
                self.times.append(event_time(converted.event) if converted.event else None)
                self.derived += converted.event is not None
            return f"{wikiticker.CONVERSION}:{digest}"
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                event = None
            self.lines.append(line)
            parsed.append(event)
            self.times.append(event_time(event) if event else None)
        return digest

    def __len__(self) -> int:
        return len(self.lines)

    def _prepare_loop(self, parsed: list[dict[str, Any] | None]) -> None:
        if self.interleave:
            timeline, order = self._interleaved_timeline()
            self.lines = [self.lines[i] for i in order]
            self.times = [self.times[i] for i in order]
            parsed = [parsed[i] for i in order]
        else:
            timeline = self._concatenated_timeline()
        self._timeline = timeline
        self._max_time = max(timeline)
        self._templates: list[tuple[list[str], list[str], str, str] | None] = []
        for event in parsed:
            meta = event.get("meta") if event else None
            if not isinstance(meta, dict) or not isinstance(meta.get("id"), str):
                self._templates.append(None)  # served unchanged
                continue
            original_id, like = meta["id"], str(meta.get("dt", ""))
            copy = dict(event)
            copy["meta"] = {**meta, "id": _ID[1:-1], "offset": _OFFSET[1:-1], "dt": _DT[1:-1]}
            if isinstance(event.get("timestamp"), int | float):
                copy["timestamp"] = _TS[1:-1]
            self._templates.append((*_template(json.dumps(copy)), original_id, like))

    @staticmethod
    def _relative(times: Sequence[float | None]) -> list[float]:
        """Event times relative to the first, with gaps beyond :data:`MAX_LOOP_GAP` replaced by the mean gap."""
        gaps = [
            b - a
            for a, b in zip(times, times[1:], strict=False)
            if a is not None and b is not None and abs(b - a) <= MAX_LOOP_GAP
        ]
        mean_gap = sum(gaps) / len(gaps) if gaps else 0.1
        relative: list[float] = []
        previous: float | None = None
        current = 0.0
        for i, t in enumerate(times):
            if i:
                gap = t - previous if t is not None and previous is not None else mean_gap
                current += gap if abs(gap) <= MAX_LOOP_GAP else mean_gap
            relative.append(current)
            previous = t if t is not None else previous
        return relative

    def _concatenated_timeline(self) -> list[float]:
        """The recordings one after the other (the pass period set in :attr:`_period`)."""
        relative = self._relative(self.times)
        n, span = len(relative), max(relative) - min(relative)
        if self.events_per_second:
            # n events per period: (n - 1) gaps inside a pass and one gap between passes, all scaled alike.
            rate = self.events_per_second
            if span > 0:
                scale = (n - 1) / rate / span
                relative = [r * scale for r in relative]
            else:
                relative = [j / rate for j in range(n)]
            self._period = n / rate
        else:
            self._period = span + 1.0
        return [self.started_at + r for r in relative]

    def _interleaved_timeline(self) -> tuple[list[float], list[int]]:
        """Every track spread over the same pass period, merged by time: the timeline and the log order.

        The period is the events of all tracks at :attr:`events_per_second` (else the longest track's span plus
        a second); a track of ``m`` events is stretched so that its ``m`` gaps (the last one up to the next pass)
        fill the period. Ties keep the track order, then the file order.
        """
        spans: list[tuple[int, list[float]]] = []
        at = 0
        for size in self._track_sizes:
            relative = self._relative(self.times[at : at + size])
            low = min(relative)
            spans.append((at, [r - low for r in relative]))
            at += size
        n = len(self.lines)
        if self.events_per_second:
            period = n / self.events_per_second
        else:
            period = max(max(relative) for _, relative in spans) + 1.0
        keyed: list[tuple[float, int, int]] = []
        for track, (first, relative) in enumerate(spans):
            m, span = len(relative), max(relative)
            for j, r in enumerate(relative):
                t = r * period * (m - 1) / m / span if span > 0 else j * period / m
                keyed.append((t, track, first + j))
        keyed.sort()
        self._period = period
        return [self.started_at + t for t, _, _ in keyed], [i for _, _, i in keyed]

    def time_at(self, offset: int) -> float | None:
        """The event time at ``offset``."""
        n = len(self.lines)
        if not self.loop:
            return self.times[offset]
        k, j = divmod(offset, n)
        return self._timeline[j] + k * self._period

    def _render(self, k: int, j: int, offset: int) -> str:
        template = self._templates[j]
        if template is None:
            return self.lines[j]
        pieces, names, original_id, like = template
        when = self._timeline[j] + k * self._period
        values = {
            "id": f'"{uuid5(f"{self.log_id}:{k}:{original_id}")}"',
            "offset": str(offset),
            "dt": f'"{_format_dt(when, like)}"',
            "ts": str(math.floor(when)),
        }
        out = [pieces[0]]
        for name, piece in zip(names, pieces[1:], strict=True):
            out.append(values[name])
            out.append(piece)
        return "".join(out)

    def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
        """Yields (offset, event time, JSON) from ``offset``; never blocks; ends at the end unless looping."""
        n = len(self.lines)
        offset = max(0, offset)
        if not self.loop:
            lines, times = self.lines, self.times
            for i in range(offset, n):
                if stop.is_set():
                    return
                yield i, times[i], lines[i]
            return
        k, j = divmod(offset, n)
        timeline, period = self._timeline, self._period
        while not stop.is_set():
            yield offset, timeline[j] + k * period, self._render(k, j, offset)
            offset += 1
            j += 1
            if j == n:
                k, j = k + 1, 0

    def offset_for_time(self, epoch_seconds: float) -> int:
        """The first offset with event time >= ``epoch_seconds`` (the end of the log when there is none)."""
        if not self.loop:
            for i, t in enumerate(self.times):
                if t is not None and t >= epoch_seconds:
                    return i
            return len(self.lines)
        n = len(self.lines)
        k = max(0, -int(-(epoch_seconds - self._max_time) // self._period))
        base = epoch_seconds - k * self._period
        for j, t in enumerate(self._timeline):
            if t >= base:
                return k * n + j
        return (k + 1) * n  # unreachable by construction; kept for safety

    def stats(self) -> dict[str, Any]:
        """What the log holds: real events per pass, whether it loops, the files."""
        return {
            "topic": self.topic,
            "real_events": len(self.lines),
            "loop": self.loop,
            "events_per_second": self.events_per_second,
            "log_id": self.log_id,
            "sources": [str(p) for p in self.files],
            "interleaved_tracks": list(self._track_sizes) if self.interleave else None,
            "derived_events": self.derived,
        }


FAULT_KINDS = ("malformed", "incomplete", "duplicate")


class FaultyLog:
    """Inserts deterministic faults into a log, each in its own (virtual) offset.

    After every ``malformed_every`` real events comes a truncated copy of the previous event (invalid JSON);
    after every ``incomplete_every`` a valid copy of it with a fresh ``meta.id`` and without ``meta.dt`` and
    ``wiki``; after every ``duplicate_every`` an exact copy of it (same ``meta.id``). When several fall after
    the same event they come in that order. Real event ``i`` sits at offset ``i + sum(i // every)`` over the
    kinds in use. The faults move offsets, so they are part of the log identity :attr:`log_id`.

    Args:
        base: the log of real events (offsets 0, 1, 2, ...).
        malformed_every: insert malformed JSON after every N real events (0: never).
        incomplete_every: insert an incomplete event after every N real events (0: never).
        duplicate_every: insert a duplicate after every N real events (0: never).
    """

    def __init__(
        self,
        base: RecordedLog,
        *,
        malformed_every: int = 0,
        incomplete_every: int = 0,
        duplicate_every: int = 0,
    ) -> None:
        everies = {"malformed": malformed_every, "incomplete": incomplete_every, "duplicate": duplicate_every}
        if any(v < 0 for v in everies.values()):
            raise ValueError("fault intervals must be >= 0")
        self.base = base
        self.topic = base.topic
        self.everies = everies
        self.log_id = log_identity("faulty", base.log_id, everies)
        self._kinds = [(kind, every) for kind, every in everies.items() if every > 0]

    def _virtual(self, real: int) -> int:
        return real + sum(real // every for _, every in self._kinds)

    def _real_at_or_before(self, offset: int) -> int:
        """The largest real index whose virtual offset is <= ``offset`` (binary search: they increase)."""
        lo, hi = 0, offset
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._virtual(mid) <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _insert(self, kind: str, real: int, event_time: float | None, data: str) -> tuple[float | None, str]:
        if kind == "duplicate":
            return event_time, data
        if kind == "malformed":
            return None, data[: max(1, len(data) // 2)]
        try:
            event = json.loads(data)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            event = {}
        meta = event.get("meta") if isinstance(event.get("meta"), dict) else {}
        fresh = uuid5(f"incomplete:{real}:{meta.get('id')}")
        meta = {k: v for k, v in meta.items() if k != "dt"}
        meta["id"] = str(fresh)
        event = {k: v for k, v in event.items() if k != "wiki"}
        event["meta"] = meta
        return None, json.dumps(event)

    def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
        """Yields (virtual offset, event time, JSON) from ``offset`` on, real events and inserted faults."""
        offset = max(0, offset)
        real = self._real_at_or_before(offset)
        skip = offset - self._virtual(real)
        first = True
        for index, event_time, data in self.base.read(real, stop):
            virtual = self._virtual(index)
            if not (first and skip):
                yield virtual, event_time, data
            slot = 0
            for kind, every in self._kinds:
                if (index + 1) % every:
                    continue
                slot += 1
                if first and slot < skip:
                    continue
                inserted_time, inserted = self._insert(kind, index, event_time, data)
                yield virtual + slot, inserted_time, inserted
            first = False

    def offset_for_time(self, epoch_seconds: float) -> int:
        """The virtual offset of the first real event at or after ``epoch_seconds``."""
        return self._virtual(self.base.offset_for_time(epoch_seconds))

    def stats(self) -> dict[str, Any]:
        """The base log's stats plus the faults inserted per pass (for a finite log: in total)."""
        result = self.base.stats()
        n = result["real_events"]
        injected = {kind: (n // every if every else 0) for kind, every in self.everies.items()}
        result["log_id"] = self.log_id
        result["fault_every"] = dict(self.everies)
        result["faults_injected"] = injected
        result["total_events"] = None if self.base.loop else n + sum(injected.values())
        return result


def build_log(
    sources: Sequence[str | Path] | str | Path | None = None,
    *,
    loop: bool = False,
    malformed_every: int = 0,
    incomplete_every: int = 0,
    duplicate_every: int = 0,
    start_time: float | None = None,
    topic: str = TOPIC,
    events_per_second: float | None = None,
    interleave: bool = False,
) -> RecordedLog | FaultyLog:
    """The firehose's event log: the recordings, optionally looped, optionally with log-level faults.

    Args:
        sources: JSONL files or directories (default: :data:`DEFAULT_SOURCE_DIR`).
        loop: replay forever with fresh ids and increasing times (see :class:`RecordedLog`).
        malformed_every: see :class:`FaultyLog`.
        incomplete_every: see :class:`FaultyLog`.
        duplicate_every: see :class:`FaultyLog`.
        start_time: where loop mode's timeline starts (default: now).
        topic: the topic named in the SSE ids.
        events_per_second: in loop mode, the mean event rate of the timeline; pass the serving rate so that
            event times keep pace with the wall clock (default: the recorded pace).
        interleave: in loop mode, each of ``sources`` is a track (a directory: its recordings one after the
            other), and the tracks are spread over the same timeline and merged (see :class:`RecordedLog`).

    Returns:
        A log to pass to :meth:`SseServer.add_stream`; its ``stats()`` shows the real event and fault counts.
    """
    log = RecordedLog(
        sources,
        loop=loop,
        start_time=start_time,
        topic=topic,
        events_per_second=events_per_second,
        interleave=interleave,
    )
    if malformed_every or incomplete_every or duplicate_every:
        return FaultyLog(
            log,
            malformed_every=malformed_every,
            incomplete_every=incomplete_every,
            duplicate_every=duplicate_every,
        )
    return log


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``airlake firehose serve``."""
    parser.epilog = (
        f"The stream is at {STREAM_PATH}, with /stats (connections, events sent, faults injected) and /healthz. "
        "Unlike the live EventStreams service, which starts at 'now', a client without Last-Event-ID or "
        "?since= (epoch ms or ISO-8601) gets the recording from its first event."
    )
    parser.add_argument("--host", help="address to bind (default: firehose.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: firehose.recentchange_port, 8090; 0 picks one)")
    parser.add_argument(
        "--source",
        action="append",
        metavar="PATH",
        help="a .jsonl recording, a directory of them, or a wikiticker file (.json.gz, converted to recentchange "
        "events); repeat for several (default: firehose.source, else every .jsonl recording in "
        "shared/data/wikimedia/)",
    )
    add_pacing_arguments(parser, default=f"default {DEFAULT_RATE:g}", times="the recorded times (meta.dt)")
    parser.add_argument(
        "--start-time",
        metavar="WHEN",
        help="with --loop: where the replayed timeline starts, epoch milliseconds or ISO-8601 (default: now)",
    )
    parser.add_argument(
        "--pace",
        type=float,
        metavar="EVENTS_PER_S",
        help="with --loop: the mean event rate of the replayed timeline (default: the --rate, so that event times "
        "track the wall clock; the recorded pace with --speedup or --max); a reader faster than it sees events "
        "dated ahead of its clock",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="with --loop: each --source is a track (a directory: its recordings one after the other); every "
        "track is spread over the same pass of the timeline and the tracks are merged by time, so the wikis of all "
        "of them are served side by side (one log, whose identity covers every file)",
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help="replay forever: fresh meta.id and meta.offset per pass, times rebased to now and increasing "
        "(at --rate R, the recorded gaps are scaled to R events/s so that event times follow the wall clock)",
    )
    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--drop-every",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="close each connection abruptly after every N events sent on it",
    )
    faults.add_argument(
        "--stall-every",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="after every N events on a connection, send nothing for --stall-seconds",
    )
    faults.add_argument(
        "--stall-seconds",
        type=_non_negative_float,
        default=5.0,
        metavar="S",
        help="length of a stall (default 5)",
    )
    faults.add_argument(
        "--malformed-every",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="insert a line of malformed JSON after every N real events",
    )
    faults.add_argument(
        "--incomplete-every",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="insert a copy of the previous event without meta.dt and wiki, with a fresh meta.id, "
        "after every N real events",
    )
    faults.add_argument(
        "--duplicate-every",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="insert an exact copy of the previous event after every N real events",
    )


def main(args: argparse.Namespace, settings: Any) -> int:
    """Runs ``airlake firehose serve`` until Ctrl-C or SIGTERM.

    Args:
        args: the parsed flags (see :func:`add_arguments`).
        settings: the resolved :class:`airlake.settings.Settings`.

    Returns:
        The exit status.
    """
    host = args.host or settings.firehose.host
    port = args.port if args.port is not None else settings.firehose.recentchange_port
    sources = args.source or settings.firehose.source or None
    try:
        pacing = pacing_from_args(args, DEFAULT_RATE)
        log = build_log(
            sources,
            loop=args.loop,
            malformed_every=args.malformed_every,
            incomplete_every=args.incomplete_every,
            duplicate_every=args.duplicate_every,
            # At a fixed rate, the looped timeline goes at that rate, so event times follow the wall clock.
            events_per_second=(args.pace or pacing.rate or None) if args.loop else None,
            start_time=parse_since(args.start_time) if args.start_time else None,
            interleave=args.interleave,
        )
    except ValueError as exc:  # SourceError too
        print(f"airlake firehose: {exc}", flush=True)
        return 2
    faults = Faults(drop_every=args.drop_every, stall_every=args.stall_every, stall_seconds=args.stall_seconds)
    try:
        server = SseServer(host, port)
    except OSError as exc:
        print(f"airlake firehose: cannot listen on {host}:{port}: {exc}", flush=True)
        return 2
    server.add_stream(STREAM_PATH, log, pacing=pacing, faults=faults)
    stats = log.stats()
    if pacing.rate:
        speed = f"{pacing.rate:g} events/s"
    elif pacing.speedup:
        speed = f"recorded pace x{pacing.speedup:g}"
    else:
        speed = "as fast as possible"
    return serve_until_stopped(
        server,
        lambda: (
            f"firehose serving {stats['real_events']} recorded events ({stats['derived_events']} derived from "
            f"wikiticker){' interleaved' if args.interleave else ''}{' in a loop' if args.loop else ''} at "
            f"{server.url(STREAM_PATH)} ({speed}, log {log.log_id}); stats at {server.url('/stats')}"
        ),
        "firehose stopped",
    )
