"""``airlake demo --fresh`` deletes only a directory that airlake marked as its state directory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airlake.catalog import STATE_MARKER, ensure_state_dir, is_state_dir
from airlake.demo import NotAStateDir, clear_state
from airlake.processes import clean_env


def _airlake(cwd, state, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airlake", "--state-dir", str(state), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fresh_refuses_a_directory_with_unrelated_files_and_leaves_it_untouched(tmp_path):
    unrelated = tmp_path / "thesis"
    unrelated.mkdir()
    (unrelated / "chapter1.tex").write_text("precious")
    (unrelated / "figures").mkdir()
    proc = _airlake(tmp_path, unrelated, "demo", "--fresh", "--seconds", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert STATE_MARKER in proc.stderr and "refusing to delete" in proc.stderr
    assert sorted(p.name for p in unrelated.iterdir()) == ["chapter1.tex", "figures"]
    assert (unrelated / "chapter1.tex").read_text() == "precious"


def test_a_state_dir_made_by_airlake_is_marked_and_cleared(tmp_path):
    state = tmp_path / "state"
    proc = _airlake(tmp_path, state, "lake", "init")  # the embedded catalog creates the state directory
    assert proc.returncode == 0, proc.stderr
    assert is_state_dir(state)
    assert (state / "catalog.db").is_file()
    clear_state(state)
    assert [p.name for p in state.iterdir()] == [STATE_MARKER]


def test_a_symlink_to_a_state_dir_is_refused(tmp_path):
    real = ensure_state_dir(tmp_path / "real")
    (real / "catalog.db").write_text("")
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(NotAStateDir):
        clear_state(link)
    assert (real / "catalog.db").exists()


def test_an_existing_directory_with_files_is_used_but_never_marked(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    ensure_state_dir(tmp_path)
    assert not is_state_dir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert is_state_dir(ensure_state_dir(empty))
