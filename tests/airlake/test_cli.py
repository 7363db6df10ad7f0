"""The ``airlake`` command's output: airlake's log format from the first line, no stray library warnings."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from airlake.processes import clean_env

COMMANDS = [
    ["--help"],
    ["lake", "init"],
    ["lake", "stats"],
    ["ingest", "--help"],
    ["firehose", "serve", "--help"],
    ["stack", "status"],
]

ROOT_LOGGER_LINE = re.compile(r"^(\w+:root:|\S+ \S+ \w+ root: )", re.MULTILINE)
"""A line from the root logger, in Python's default format or in airlake's."""


def _airlake(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airlake", "--state-dir", str(tmp_path / "state"), *args],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_no_stray_library_warnings(tmp_path, args):
    proc = _airlake(tmp_path, *args)
    assert proc.returncode in (0, 3), proc.stderr  # `stack status` exits 3 when the stack is not running
    assert "apitools" not in proc.stderr
    assert "bigquery" not in proc.stderr.lower()
    assert not ROOT_LOGGER_LINE.search(proc.stderr), proc.stderr
    for line in proc.stderr.splitlines():
        # Every log line of airlake's own has its format: time, level, logger.
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ", line), line


def test_airlakes_own_warnings_still_show_in_its_format(tmp_path):
    code = (
        "import logging, sys\n"
        "from airlake.cli import configure_logging\n"
        "configure_logging()\n"
        "import apache_beam.io  # logs the apitools warning on import\n"
        "logging.getLogger('lake.tables').warning('own warning')\n"
        "logging.getLogger('apache_beam').warning('beam warning')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "apitools" not in proc.stderr
    assert re.search(r"^\S+ \S+ WARNING lake\.tables: own warning$", proc.stderr, re.MULTILINE), proc.stderr
    assert re.search(r"WARNING apache_beam: beam warning$", proc.stderr, re.MULTILINE), proc.stderr


def test_output_into_a_pipe_that_closes_early_ends_quietly(tmp_path):
    """``airlake config show | head -1``: the reader leaves after one line; no traceback, the shell's status 141."""
    import fcntl
    import os

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: a pipe smaller than the output, so the writer must wait
    proc = subprocess.Popen(
        [sys.executable, "-m", "airlake", "config", "show", "--json"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        assert reader.readline().startswith("[")
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141


def test_batch_on_the_embedded_profile_says_which_command_to_type(tmp_path):
    """The batch layer plans from the stack's catalog: on the embedded lake it would plan from the wrong lake."""
    result = _airlake(tmp_path, "batch")
    assert result.returncode == 2
    assert "airlake --profile local batch" in result.stderr and "Traceback" not in result.stderr
