"""``airlake demo`` twice on the same state: new firehoses are new logs, and nothing of the second run is skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airlake.demo import DEMO_LEAD, DEMO_SPEEDUP, timeline
from airlake.processes import clean_env, free_port
from tests.procs import Process, airlake_command, lake_stats

pytestmark = pytest.mark.integration


def demo(state: Path, log: Path) -> Process:
    env = clean_env(
        AIRLAKE__FIREHOSE__RECENTCHANGE_PORT=str(free_port()), AIRLAKE__FIREHOSE__ORDERS_PORT=str(free_port())
    )
    return Process(airlake_command(state, "demo", "--seconds", "20", "--rate", "300"), log, env=env)


def test_a_second_demo_adds_about_as_many_orders_as_the_first_none_skipped_none_twice(tmp_path: Path):
    state = tmp_path / "state"
    added = []
    before = {"raw.orders": 0, "raw.recentchange": 0}
    for run in (1, 2):
        process = demo(state, tmp_path / f"demo-{run}.log")
        assert process.wait(300) == 0, process.output()[-4000:]
        stats = lake_stats(state)
        for table in ("raw.orders", "raw.recentchange"):
            assert stats[table]["rows"] == stats[table]["distinct_ids"], (run, table, stats[table])
        added.append({t: stats[t]["rows"] - before[t] for t in before})
        before = {t: stats[t]["rows"] for t in before}
        assert stats["raw.dead_letters"]["rows"] == 0, stats["raw.dead_letters"]
    first, second = added
    assert first["raw.orders"] > 100 and first["raw.recentchange"] > 1000, added
    # The second run's firehoses are new logs: the committed positions name the old ones, so the readers resume by
    # event time from the newest committed event, where the second replay starts.
    assert "resuming by event time" in (tmp_path / "demo-2.log").read_text()
    # The replay rate is fixed, so the demand events of two runs are about equal. The orders follow the demand of
    # each market, and the second run replays a later stretch of the wikiticker day, whose market mix differs (a
    # fresh-clone run measured 4,755 then 7,683 orders for 5,255 then 5,515 demand events): their bound is looser.
    # A second run that skipped its start would fall below the lower bounds; one counted twice fails above.
    assert 0.6 * first["raw.recentchange"] <= second["raw.recentchange"] <= 1.6 * first["raw.recentchange"], added
    assert 0.5 * first["raw.orders"] <= second["raw.orders"] <= 2.0 * first["raw.orders"], added


def test_the_demo_timeline_starts_after_what_is_committed_and_never_runs_ahead():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def end(start: datetime, pace: float) -> datetime:
        return start + timedelta(seconds=45 * 300 / pace)

    start, pace = timeline(None, now, 45, 300)
    assert start == now - DEMO_LEAD and pace == 300 / DEMO_SPEEDUP
    newest = end(start, pace)
    start, pace = timeline(newest, now + timedelta(seconds=50), 45, 300)  # the next run covers as much event time
    assert start == newest + timedelta(seconds=1) and pace == 300 / DEMO_SPEEDUP
    start, pace = timeline(now - timedelta(minutes=2), now, 45, 300)  # little room left: slower, never ahead
    assert start == now - timedelta(minutes=2) + timedelta(seconds=1) and end(start, pace) <= now + timedelta(
        seconds=45
    )
    start, pace = timeline(now + timedelta(days=1), now, 45, 300)  # a lake with a future event: no future replay
    assert start == now and pace == 300
