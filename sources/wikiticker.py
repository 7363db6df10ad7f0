"""Apache Druid's "wikiticker" day of Wikipedia edits, turned into Wikimedia recentchange events.

``shared/data/wikimedia/wikiticker-2015-09-12-sampled.json.gz`` holds 39,244 real edits of 2015-09-12 across 51
language wikis, as rows of the old IRC feed (``time``, ``channel``, ``page``, ``namespace`` as a name, ``user``,
``isRobot``, ``isNew``, ``added``, ``deleted``, ``delta``, GeoIP fields): no ids, no offsets, no log events. This
module derives the recentchange shape the normalizer and the speed pipeline accept, and says that it did:

- ``wiki`` from the channel (``#en.wikipedia`` is ``enwiki``), ``meta.domain`` and ``server_name``
  (``en.wikipedia.org``), ``meta.uri``, ``meta.stream`` (``mediawiki.recentchange``), ``$schema`` (the current one);
- ``meta.dt`` and ``timestamp`` from ``time`` (unchanged; 12 stray rows of the file lie on other days);
- ``meta.id``: a uuid5 of the file's content digest and the line number, so the same line always gets the same id,
  and another file never shares one; ``meta.offset``: the 0-based line number; ``id`` (the rcid): null, as the
  real stream has for some log events, since the feed had none;
- ``type`` ``new`` for a page creation, else ``edit``; ``bot``, ``minor``, ``patrolled`` (not ``isUnpatrolled``);
  ``namespace`` as a number for the canonical English names (``Main`` is 0, ``User talk`` 3, ...), null for the
  localized ones (``Benutzer``); ``length.new`` for a page creation (its size: ``added``), no ``length`` for an edit
  (only the change is known);
- the mark: ``meta.derived_from`` names the file, and ``airlake_derived`` holds the file, the line, the content
  digest, the conversion version, the list of derived fields and the wikiticker fields that have no recentchange
  counterpart (``added``, ``deleted``, ``delta``, ``isAnonymous``, the namespace name, the GeoIP fields).

A row that lacks what the lake needs is still converted, without the field it cannot derive, and with the reason in
``airlake_derived.problems``: the normalizer then dead-letters it naming that field (``missing field wiki``). A line
that is not a JSON object is passed on as it is (the normalizer says ``malformed JSON``).

:func:`recentchange_events` yields the converted events, :func:`convert_lines` what the replay firehose serves (the
JSON text of each line), and :func:`hourly_counts` the day's rhythm per wiki (edits per hour of the day, UTC), which
the history backfill shapes its demand with. Imports :mod:`sources.events` (the uuid5) only (and orjson).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from airlake.sources.events import uuid5

WIKITICKER_FILE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "wikimedia" / ("wikiticker-2015-09-12-sampled.json.gz")
)
"""The wikiticker day: ``shared/data/wikimedia/`` beside the repository checkout."""

CONVERSION = "wikiticker-to-recentchange/1"
"""The version of this conversion, named in every derived event (and part of the replay firehose's log identity):
change it when the derived events change."""

ID_NAMESPACE = uuid.UUID("0b6f7d52-5c2e-5d8a-9f1e-7a3c4b2d1e09")
"""Namespace of the derived ``meta.id``: ``uuid5(ID_NAMESPACE, "<content sha256>:<line number>")``."""
_ID_NAMESPACE_BYTES = ID_NAMESPACE.bytes

SCHEMA = "/mediawiki/recentchange/1.0.0"
STREAM = "mediawiki.recentchange"
DERIVED_KEY = "airlake_derived"
"""The top-level field that marks a derived event and holds what the conversion knew and did."""

DERIVED_FIELDS = ("meta.id", "meta.offset", "meta.uri", "id", "wiki", "namespace", "length")
"""Fields of a derived event that the wikiticker row does not hold as such: computed, or (``id``) left null."""

NAMESPACES: dict[str, int] = {
    "Main": 0,
    "Talk": 1,
    "User": 2,
    "User talk": 3,
    "Wikipedia": 4,
    "Wikipedia talk": 5,
    "File": 6,
    "File talk": 7,
    "MediaWiki": 8,
    "MediaWiki talk": 9,
    "Template": 10,
    "Template talk": 11,
    "Help": 12,
    "Help talk": 13,
    "Category": 14,
    "Category talk": 15,
    "Portal": 100,
    "Portal talk": 101,
    "Draft": 118,
    "Draft talk": 119,
    "Module": 828,
    "Module talk": 829,
}
"""MediaWiki's canonical (English) namespace names and numbers; a localized name (``Benutzer``) maps to null."""

PROJECTS = {
    "wikipedia": "wiki",
    "wiktionary": "wiktionary",
    "wikibooks": "wikibooks",
    "wikinews": "wikinews",
    "wikiquote": "wikiquote",
    "wikisource": "wikisource",
    "wikiversity": "wikiversity",
    "wikivoyage": "wikivoyage",
}
"""IRC channel project suffix (``#en.wikipedia``) to database name suffix (``enwiki``)."""

_KEPT = (
    "added",
    "deleted",
    "delta",
    "isAnonymous",
    "namespace",
    "countryName",
    "countryIsoCode",
    "regionName",
    "regionIsoCode",
    "cityName",
    "metroCode",
)
"""Wikiticker fields kept under ``airlake_derived.wikiticker``: those without a recentchange counterpart."""


class WikitickerError(ValueError):
    """The wikiticker file can't be read (missing, not gzip or UTF-8 text)."""


def read_text(path: str | Path) -> tuple[str, str]:
    """The text of a wikiticker file (gzip or plain) and the sha256 of that text.

    The digest is of the decompressed content, so a recompressed copy derives the same ids.

    Raises:
        WikitickerError: the file is missing or is neither gzip nor plain UTF-8 text.
    """
    path = Path(path)
    try:
        content = path.read_bytes()
        if content[:2] == b"\x1f\x8b":
            content = gzip.decompress(content)
        text = content.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise WikitickerError(f"cannot read wikiticker file {path}: {exc}") from exc
    return text, hashlib.sha256(content).hexdigest()


def is_wikiticker_row(obj: Any) -> bool:
    """Whether a parsed JSON value looks like a wikiticker row (``time`` and ``channel``, no recentchange ``meta``)."""
    return isinstance(obj, Mapping) and "channel" in obj and "time" in obj and "meta" not in obj


def wiki_of_channel(channel: Any) -> tuple[str, str] | None:
    """The wiki (``enwiki``) and domain (``en.wikipedia.org``) of an IRC channel (``#en.wikipedia``), or None."""
    return _wiki_of_channel(channel) if isinstance(channel, str) else None


@functools.lru_cache(maxsize=1024)
def _wiki_of_channel(channel: str) -> tuple[str, str] | None:
    if not channel.startswith("#") or channel.count(".") != 1:
        return None
    lang, project = channel[1:].split(".")
    suffix = PROJECTS.get(project)
    if not lang or suffix is None or not all(c.isalnum() or c == "-" for c in lang):
        return None
    return f"{lang.replace('-', '_')}{suffix}", f"{lang}.{project}.org"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _format_dt(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def event_id(digest: str, line: int) -> str:
    """The derived ``meta.id`` of line ``line`` (1-based) of the file whose content has sha256 ``digest``."""
    return uuid5(_ID_NAMESPACE_BYTES, f"{digest}:{line}")


def to_recentchange(row: Mapping[str, Any], *, line: int, digest: str, source: str) -> dict[str, Any]:
    """The recentchange event derived from one wikiticker row (see the module docstring for each field).

    Args:
        row: the parsed wikiticker row.
        line: its 1-based line number in the file (``meta.offset`` is ``line - 1``).
        digest: the sha256 of the file's content (see :func:`read_text`).
        source: the file's name, recorded as ``meta.derived_from``.

    Returns:
        The event. When the row lacks what the lake needs (a channel naming a wiki, an ISO-8601 ``time``), the
        field is left out and ``airlake_derived.problems`` says why; otherwise ``problems`` is empty.
    """
    problems: list[str] = []
    named = wiki_of_channel(row.get("channel"))
    if named is None:
        problems.append(f"channel {row.get('channel')!r} names no wiki (expected like '#en.wikipedia')")
    when = _time(row.get("time"))
    if when is None:
        problems.append(f"time {row.get('time')!r} is not an ISO-8601 time")
    title = row.get("page")
    meta: dict[str, Any] = {"id": event_id(digest, line)}
    if when is not None:
        meta["dt"] = _format_dt(when)
    if named is not None:
        meta["domain"] = named[1]
        if isinstance(title, str):
            meta["uri"] = f"https://{named[1]}/wiki/{title.replace(' ', '_')}"
    meta.update({"stream": STREAM, "partition": 0, "offset": line - 1, "derived_from": source})
    is_new = row.get("isNew") is True
    event: dict[str, Any] = {"$schema": SCHEMA, "meta": meta, "id": None, "type": "new" if is_new else "edit"}
    namespace = row.get("namespace")
    event["namespace"] = NAMESPACES.get(namespace) if isinstance(namespace, str) else None
    event["title"] = title
    event["comment"] = row.get("comment")
    if when is not None:
        event["timestamp"] = int(when.timestamp())
    event["user"] = row.get("user")
    for field, key in (("bot", "isRobot"), ("minor", "isMinor")):
        if isinstance(row.get(key), bool):
            event[field] = row[key]
    if isinstance(row.get("isUnpatrolled"), bool):
        event["patrolled"] = not row["isUnpatrolled"]
    added = row.get("added")
    if is_new and isinstance(added, int) and not isinstance(added, bool):
        event["length"] = {"new": added}
    if named is not None:
        event["server_url"] = f"https://{named[1]}"
        event["server_name"] = named[1]
        event["server_script_path"] = "/w"
        event["wiki"] = named[0]
    event[DERIVED_KEY] = {
        "from": source,
        "line": line,
        "sha256": digest,
        "conversion": CONVERSION,
        "derived": list(DERIVED_FIELDS),
        "wikiticker": {key: row.get(key) for key in _KEPT if key in row},
        "problems": problems,
    }
    return event


@dataclass(frozen=True)
class Converted:
    """One line of a wikiticker file, converted.

    Attributes:
        line: the 1-based line number.
        event: the derived event, or None when the line is not a JSON object.
        text: what the replay firehose serves: the event as JSON, or the line as it is when it is not a JSON object.
        problems: why the lake would dead-letter it (empty for a complete event).
    """

    line: int
    event: dict[str, Any] | None
    text: str
    problems: tuple[str, ...]


def convert_lines(path: str | Path = WIKITICKER_FILE) -> Iterator[Converted]:
    """Every non-blank line of a wikiticker file, converted (see :func:`to_recentchange`), in file order.

    Raises:
        WikitickerError: the file can't be read.
    """
    text, digest = read_text(path)
    return convert_text(text, digest=digest, source=Path(path).name)


def convert_text(text: str, *, digest: str, source: str) -> Iterator[Converted]:
    """Every non-blank line of a wikiticker file's text, converted, in order (see :func:`convert_lines`).

    Args:
        text: the file's (decompressed) text.
        digest: the sha256 of that text (see :func:`read_text`).
        source: the file's name, recorded in every event.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Converted(number, None, line, (f"line {number} is not JSON: {exc}",))
            continue
        if not isinstance(row, dict):
            yield Converted(number, None, line, (f"line {number} is a JSON {type(row).__name__}, not an object",))
            continue
        event = to_recentchange(row, line=number, digest=digest, source=source)
        problems = tuple(event[DERIVED_KEY]["problems"])
        yield Converted(number, event, orjson.dumps(event).decode(), problems)


def recentchange_events(path: str | Path = WIKITICKER_FILE) -> Iterator[dict[str, Any]]:
    """The recentchange events derived from a wikiticker file, in file order (lines that are not JSON objects are
    skipped; see :func:`convert_lines` for them).

    Raises:
        WikitickerError: the file can't be read.
    """
    for converted in convert_lines(path):
        if converted.event is not None:
            yield converted.event


HOURS = 24


def hourly_counts(path: str | Path = WIKITICKER_FILE) -> dict[str, tuple[int, ...]]:
    """The day's rhythm per wiki: edits per hour of the day (UTC, 0 to 23) of each wiki in a wikiticker file.

    Every row that names a wiki and a time counts, in the hour of the day of its ``time`` (the 12 stray rows of the
    2015 file that lie on other days count in their hour of the day too), so for the shipped file the counts add up
    to all 39,244 rows. Use ``counts[wiki][h] / sum(counts[wiki])`` as the share of a wiki's day in hour ``h``.

    Args:
        path: the wikiticker file (default: :data:`WIKITICKER_FILE`).

    Returns:
        ``{wiki: (count at 00 UTC, ..., count at 23 UTC)}``, wikis in name order.

    Raises:
        WikitickerError: the file can't be read.
    """
    counts: dict[str, list[int]] = {}
    for converted in convert_lines(path):
        event = converted.event
        if event is None or converted.problems:
            continue
        hour = int(event["meta"]["dt"][11:13])
        counts.setdefault(event["wiki"], [0] * HOURS)[hour] += 1
    return {wiki: tuple(counts[wiki]) for wiki in sorted(counts)}
