"""Tests of the wikiticker conversion (sources/wikiticker.py) and of its replay, alone or interleaved with the 2018
recordings (sources/firehose.py)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airlake.sources import wikiticker
from airlake.sources.firehose import STREAM_PATH, RecordedLog, SourceError, build_log, event_time
from airlake.sources.normalize import InvalidEvent, parse_json_object, recentchange_row
from airlake.sources.sse import SseStream
from airlake.sources.sse_server import SseServer
from tests.conftest import NEW_ITEMS_2018, RECORDING_2018, SHARED_DATA

pytestmark = pytest.mark.integration  # the replay tests serve over real sockets and start the CLI

WIKITICKER = SHARED_DATA / "wikiticker-2015-09-12-sampled.json.gz"
ROWS = [json.loads(line) for line in gzip.decompress(WIKITICKER.read_bytes()).decode().splitlines() if line.strip()]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def converted() -> list[wikiticker.Converted]:
    return list(wikiticker.convert_lines(WIKITICKER))


def normalize(text: str) -> dict:
    """What the speed pipeline's normalizer makes of an event's JSON (raises InvalidEvent for a dead letter)."""
    return recentchange_row(parse_json_object(text), raw=text, sse_id=None, ingested_at=NOW)


def dead_letter_reason(text: str) -> str:
    with pytest.raises(InvalidEvent) as caught:
        normalize(text)
    return str(caught.value)


def test_every_line_converts_and_normalizes_with_no_dead_letter(converted) -> None:
    assert wikiticker.WIKITICKER_FILE == WIKITICKER
    assert len(ROWS) == 39_244 and len(converted) == 39_244
    assert [c.problems for c in converted if c.problems] == []
    rows = [normalize(c.text) for c in converted]  # raises on the first dead letter
    assert Counter(r["wiki"] for r in rows) == Counter(row["channel"][1:].replace(".wikipedia", "wiki") for row in ROWS)
    assert {r["type"] for r in rows} == {"edit", "new"}
    assert sum(r["type"] == "new" for r in rows) == sum(row["isNew"] for row in ROWS)
    assert sum(bool(r["bot"]) for r in rows) == sum(row["isRobot"] for row in ROWS) == 15_420
    assert [r["event_time"] for r in rows] == [datetime.fromisoformat(row["time"]) for row in ROWS]
    assert [r["title"] for r in rows] == [row["page"] for row in ROWS]
    assert [r["user_name"] for r in rows] == [row["user"] for row in ROWS]
    assert all(r["schema_uri"] == wikiticker.SCHEMA and r["stream"] == "mediawiki.recentchange" for r in rows)


def test_ids_and_offsets_are_derived_deterministically(converted, tmp_path: Path) -> None:
    events = [c.event for c in converted]
    ids = [e["meta"]["id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert [e["meta"]["offset"] for e in events] == list(range(len(events)))  # the 0-based line number
    digest = events[0][wikiticker.DERIVED_KEY]["sha256"]
    namespace = uuid.UUID("0b6f7d52-5c2e-5d8a-9f1e-7a3c4b2d1e09")
    assert ids[:50] == [str(uuid.uuid5(namespace, f"{digest}:{n}")) for n in range(1, 51)]
    assert all(e["id"] is None for e in events)  # no rcid in the feed: null, not invented
    # The same content (here decompressed) derives the same ids; other content, other ids.
    plain = tmp_path / WIKITICKER.name.removesuffix(".gz")
    plain.write_bytes(gzip.decompress(WIKITICKER.read_bytes()))
    assert [e["meta"]["id"] for e in wikiticker.recentchange_events(plain)] == ids
    changed = tmp_path / "changed.json"
    changed.write_text("\n".join(json.dumps(row) for row in ROWS[:3] + [{**ROWS[3], "page": "Other"}]) + "\n")
    assert [e["meta"]["id"] for e in wikiticker.recentchange_events(changed)][:4] != ids[:4]


def test_every_event_is_marked_as_derived(converted) -> None:
    for c in converted[::97]:
        event = c.event
        assert event["meta"]["derived_from"] == WIKITICKER.name
        mark = event[wikiticker.DERIVED_KEY]
        assert mark["from"] == WIKITICKER.name and mark["line"] == c.line
        assert mark["conversion"] == wikiticker.CONVERSION and "meta.id" in mark["derived"]
        row = ROWS[c.line - 1]
        assert mark["wikiticker"]["delta"] == row["delta"] and mark["wikiticker"]["namespace"] == row["namespace"]
        assert normalize(c.text)["raw_json"] == c.text  # the mark reaches the lake in raw_json


def test_fields_of_edits_page_creations_and_namespaces(converted) -> None:
    first = converted[0].event
    assert first["wiki"] == "enwiki" and first["meta"]["domain"] == "en.wikipedia.org"
    assert first["meta"]["dt"] == "2015-09-11T00:46:58.771Z" and first["timestamp"] == 1441932418
    assert first["namespace"] == 1 and first["type"] == "edit" and "length" not in first
    assert first["meta"]["uri"] == "https://en.wikipedia.org/wiki/Talk:Oswald_Tilghman"
    for c in converted:
        row, event = ROWS[c.line - 1], c.event
        if row["isNew"]:
            assert event["type"] == "new" and event["length"] == {"new": row["added"]}
        assert event["patrolled"] is (not row["isUnpatrolled"])
        assert event["namespace"] == wikiticker.NAMESPACES.get(row["namespace"])
    assert wikiticker.wiki_of_channel("#simple.wikipedia") == ("simplewiki", "simple.wikipedia.org")
    assert wikiticker.wiki_of_channel("#zh-yue.wikipedia") == ("zh_yuewiki", "zh-yue.wikipedia.org")
    assert wikiticker.wiki_of_channel("#en.wiktionary") == ("enwiktionary", "en.wiktionary.org")
    assert wikiticker.wiki_of_channel("en.wikipedia") is None and wikiticker.wiki_of_channel(7) is None


def test_a_line_that_cannot_convert_gets_a_clear_dead_letter_reason(tmp_path: Path) -> None:
    good = ROWS[0]
    lines = [
        json.dumps(good),
        '{"time": "2015-09-12T01:00:00Z", "channel": ',  # cut short
        "[1, 2]",
        json.dumps({**good, "channel": "#general"}),
        json.dumps({**good, "time": "yesterday"}),
        "",
        json.dumps({k: v for k, v in good.items() if k != "channel"}),
    ]
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    got = list(wikiticker.convert_lines(path))
    assert [c.line for c in got] == [1, 2, 3, 4, 5, 7]  # blank lines are skipped, numbers stay the file's
    assert got[0].problems == ()
    assert "line 2 is not JSON" in got[1].problems[0] and got[1].event is None and got[1].text == lines[1]
    assert got[2].problems == ("line 3 is a JSON list, not an object",) and got[2].text == "[1, 2]"
    assert got[3].problems == ("channel '#general' names no wiki (expected like '#en.wikipedia')",)
    assert got[4].problems == ("time 'yesterday' is not an ISO-8601 time",)
    assert got[5].problems == ("channel None names no wiki (expected like '#en.wikipedia')",)
    normalize(got[0].text)
    reasons = [dead_letter_reason(c.text) for c in got[1:]]
    assert reasons[0].startswith("malformed JSON")
    assert reasons[1] == "not a JSON object but a list"
    assert reasons[2:] == ["missing field wiki", "missing field meta.dt", "missing field wiki"]
    for c in got[3:]:  # the conversion's own reason travels with the event into the dead letter's raw JSON
        assert json.loads(c.text)[wikiticker.DERIVED_KEY]["problems"] == list(c.problems)
    assert list(wikiticker.recentchange_events(path)) == [c.event for c in got if c.event is not None]
    assert wikiticker.hourly_counts(path) == {"enwiki": tuple(1 if h == 0 else 0 for h in range(24))}
    with pytest.raises(wikiticker.WikitickerError, match="cannot read wikiticker file"):
        list(wikiticker.convert_lines(tmp_path / "missing.json.gz"))
    broken = tmp_path / "broken.json.gz"
    broken.write_bytes(path.read_bytes()[:40])
    with pytest.raises(wikiticker.WikitickerError, match="cannot read wikiticker file"):
        list(wikiticker.convert_lines(broken))


def test_hourly_counts_per_wiki_add_up_to_the_whole_day() -> None:
    counts = wikiticker.hourly_counts()
    assert sum(sum(hours) for hours in counts.values()) == 39_244
    assert len(counts) == 51 and all(len(hours) == 24 for hours in counts.values())
    assert list(counts) == sorted(counts)
    per_wiki = Counter(row["channel"][1:].replace(".wikipedia", "wiki") for row in ROWS)
    assert {wiki: sum(hours) for wiki, hours in counts.items()} == dict(per_wiki)
    per_hour = Counter(int(row["time"][11:13]) for row in ROWS)
    assert [sum(hours[h] for hours in counts.values()) for h in range(24)] == [per_hour[h] for h in range(24)]
    assert counts["enwiki"][17] == sum(
        1 for row in ROWS if row["channel"] == "#en.wikipedia" and row["time"][11:13] == "17"
    )


def test_the_firehose_serves_the_wikiticker_file_as_derived_recentchange_events(converted) -> None:
    log = RecordedLog(WIKITICKER)
    assert len(log) == 39_244 and log.stats()["derived_events"] == 39_244
    served = list(log.read(0, threading.Event()))
    assert [text for _, _, text in served] == [c.text for c in converted]
    assert served[5][1] == datetime.fromisoformat(ROWS[5]["time"]).timestamp()
    assert log.log_id != RecordedLog(RECORDING_2018).log_id


def interleaved(**kwargs: object) -> RecordedLog:
    options: dict[str, object] = {"loop": True, "interleave": True, "start_time": 1e9, "events_per_second": 15.0}
    options.update(kwargs)
    sources = options.pop("sources", [RECORDING_2018, WIKITICKER])
    return build_log(sources, **options)  # type: ignore[arg-type]


def test_interleaving_spreads_every_track_over_one_timeline_and_one_log_identity(tmp_path: Path) -> None:
    log = interleaved()
    n2018, nday = 3_818, 39_244
    assert len(log) == n2018 + nday and log.stats()["interleaved_tracks"] == [n2018, nday]
    period = (n2018 + nday) / 15.0
    stop = threading.Event()
    first_pass = []
    for offset, when, text in log.read(0, stop):
        if offset == len(log) + 10:
            break
        first_pass.append((offset, when, json.loads(text)))
    times = [when for _, when, _ in first_pass]
    assert times == sorted(times) and times[0] == 1e9
    assert first_pass[len(log)][1] == pytest.approx(1e9 + period)  # the next pass starts one period later
    one = [event for _, _, event in first_pass[: len(log)]]
    assert Counter(e["wiki"] == "wikidatawiki" for e in one) == {True: n2018, False: nday}
    assert len({e["meta"]["id"] for e in one}) == len(one)
    assert [e["meta"]["offset"] for e in one] == list(range(len(one)))
    assert [event_time(e) for e in one] == pytest.approx(times[: len(log)])
    # Side by side: each tenth of the pass holds a share of each track near its share of the pass.
    for tenth in range(10):
        part = [e for _, when, e in first_pass[: len(log)] if tenth <= (when - 1e9) / period * 10 < tenth + 1]
        share = sum(e["wiki"] == "wikidatawiki" for e in part) / len(part)
        assert 0.04 < share < 0.25, (tenth, share)
    derived = [e for e in one if "airlake_derived" in e]
    assert len(derived) == nday and all(e["meta"]["derived_from"] == WIKITICKER.name for e in derived)
    # The log identity covers both files, the way they are combined, the start and the pace (shown on a part of the
    # day, to keep the test quick).
    day = tmp_path / "day.json.gz"
    day.write_bytes(gzip.compress(gzip.decompress(WIKITICKER.read_bytes())[:300_000]))
    base = interleaved(sources=[RECORDING_2018, day])
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(RECORDING_2018.read_bytes())
    assert interleaved(sources=[copy, day]).log_id == base.log_id
    copy.write_bytes(RECORDING_2018.read_bytes()[:-2000])
    others = {
        log.log_id,
        interleaved(sources=[copy, day]).log_id,
        interleaved(sources=[RECORDING_2018, NEW_ITEMS_2018]).log_id,
        interleaved(sources=[[RECORDING_2018, day]]).log_id,
        build_log([RECORDING_2018, day], loop=True, start_time=1e9, events_per_second=15.0).log_id,
        interleaved(sources=[RECORDING_2018, day], start_time=2e9).log_id,
        interleaved(sources=[RECORDING_2018, day], events_per_second=30.0).log_id,
    }
    assert len(others) == 7 and base.log_id not in others
    with pytest.raises(ValueError, match="only loop mode"):
        build_log([RECORDING_2018, WIKITICKER], interleave=True)


def test_interleaved_replay_over_sse_normalizes_with_no_dead_letter() -> None:
    log = interleaved(start_time=datetime.now(UTC).timestamp() - 3600)
    server = SseServer()
    server.add_stream(STREAM_PATH, log)
    server.start()
    try:
        stream = SseStream(server.url(STREAM_PATH), user_agent="airlake-tests/0.1 (tests@example.org)")
        wikis: Counter[str] = Counter()
        for event in stream:
            row = normalize(event.data)
            assert json.loads(event.id)[0]["log"] == log.log_id
            wikis[row["wiki"]] += 1
            if sum(wikis.values()) == 5_000:
                break
        stream.close()
    finally:
        server.stop()
    assert len(wikis) > 20 and wikis["wikidatawiki"] > 0 and wikis["enwiki"] > 0


def test_cli_refuses_interleave_without_loop(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airlake", "firehose", "serve", "--port", "0", "--interleave",
         "--source", str(RECORDING_2018), "--source", str(WIKITICKER)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "only loop mode builds: add --loop" in result.stdout + result.stderr


def test_an_empty_track_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(SourceError, match="of a track hold no events: .*empty.jsonl"):
        build_log([RECORDING_2018, empty], loop=True, interleave=True)
