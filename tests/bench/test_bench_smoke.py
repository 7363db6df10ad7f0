"""The ingestion benchmark runs end to end and reports every figure (no timing is asserted: machines differ)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airlake.processes import clean_env
from tests.procs import REPO

pytestmark = pytest.mark.integration

EVENTS = 2000


def test_quick_benchmark_reports_every_figure_and_lands_every_event(tmp_path: Path):
    out = tmp_path / "ingest.json"
    run = subprocess.run(
        [sys.executable, "-m", "airlake.bench.ingest", "--quick", "--events", str(EVENTS)]
        + ["--contenders", "airlake,plain,plain-tuned", "--out", str(out)],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    report = json.loads(out.read_text())
    runs = {(r["contender"], r["scenario"]): r for r in report["results"]}
    assert set(runs) == {(c, s) for c in ("airlake", "plain", "plain-tuned") for s in ("max", "rate")}
    for (contender, scenario), r in runs.items():
        assert r["ok"], r["error"]
        lake = r["lake"]
        assert lake["rows"] == lake["distinct_ids"] == EVENTS, (contender, scenario, lake)
        assert lake["duplicates"] == 0 and lake["offset_gaps"] == 0
        assert lake["events_per_s"] > 0
        assert r["run"]["peak_rss_mb"] > 0 and r["run"]["cpu_s"] > 0
        assert r["process"]["commit_p50_s"] is not None and r["process"]["commit_p95_s"] is not None
        if scenario == "rate":
            assert lake["lag_p50_s"] is not None and lake["lag_p95_s"] is not None
    assert runs[("airlake", "max")]["process"]["committed_rows"]["raw.recentchange"] == EVENTS
    assert runs[("plain", "max")]["process"]["committed_rows"] == EVENTS
    assert runs[("plain-tuned", "max")]["process"]["committed_rows"] == EVENTS
    assert runs[("airlake", "max")]["lake"]["dead_letters"] == 0
    assert runs[("airlake", "max")]["process"]["fence_checks"] > 0
    for line in ("| contender", "| airlake", "| plain", "| plain-tuned", "target", "writer lease and fencing"):
        assert line in run.stdout
