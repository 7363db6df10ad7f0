"""Shared fixtures: the recorded data, fresh state directories and settings pointing at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from airlake.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "wikimedia"
RECORDING_2018 = SHARED_DATA / "recentchange-2018-03-07-wikidata.jsonl"
MODERN_SAMPLES = SHARED_DATA / "recentchange-2026-modern-samples.jsonl"
NEW_ITEMS_2018 = SHARED_DATA / "recentchange-2018-wikidata-new-items.jsonl"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-profile settings whose state lives in a fresh temporary directory."""
    return load_settings({"state_dir": str(tmp_path / "state"), "profile": "embedded"}, environ={}, cwd=tmp_path)
