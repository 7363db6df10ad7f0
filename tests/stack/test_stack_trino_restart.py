"""Faults: Trino killed with SIGKILL is reported by ``status`` and brought back by ``up``."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = pytest.mark.stack


def test_killed_trino_is_reported_and_brought_back(stack):
    before = stack.status()
    assert all(svc["healthy"] for svc in before.values()), before
    pid = before["trino"]["pid"]
    assert pid

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)

    during = stack.status()
    assert during["trino"]["healthy"] is False, during["trino"]
    assert all(during[name]["healthy"] for name in ("postgres", "seaweedfs", "ferretdb", "superset")), during
    table = stack.run("stack", "status", check=False)
    assert table.returncode == 3
    assert "UNHEALTHY" in next(line for line in table.stdout.splitlines() if line.startswith("trino"))

    started = time.monotonic()
    up = stack.run("stack", "up", timeout=600)
    assert "trino" in up.stdout and "healthy" in up.stdout
    after = stack.status()
    assert after["trino"]["healthy"] is True, after["trino"]
    assert after["trino"]["pid"] != pid
    assert time.monotonic() - started < 180

    logs = stack.run("stack", "logs", "trino", "-n", "400")
    assert "SERVER STARTED" in logs.stdout
