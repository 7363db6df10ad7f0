"""The image benchmark runs end to end on the stack, tiny, and reports every figure (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack


def test_tiny_image_benchmark_reports_its_figures(stack, tmp_path: Path) -> None:
    out = tmp_path / "images.json"
    run = subprocess.run(
        [sys.executable, "-m", "airlake.bench.images", "--photos", "20", "--skip-lag", "--out", str(out)],
        cwd=stack.cwd,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["store"]["photos"] == 20 and report["store"]["images_per_s"] > 0
    assert 80 <= report["store"]["mean_kb"] <= 120
    assert report["read"]["orders"] == 20 and report["read"]["p95_ms"] > 0
    assert report["collections"]["images"].get("count") == 20 or "error" in report["collections"]["images"]
    for line in ("store:", "read an order's photo", "collection statistics", "target >= 200 images/s"):
        assert line in run.stdout
