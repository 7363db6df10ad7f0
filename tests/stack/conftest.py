"""The native stack for the stack tests: installed and started through the project's own commands.

One stack per test session, in a fresh temporary state directory with free ports, started by
``airlake stack install`` and ``airlake stack up`` as subprocesses (what a developer types) and stopped by
``airlake stack down``. The cache (``~/.cache/airlake`` or ``$AIRLAKE__STACK__CACHE_DIR``) is reused; on an empty
machine the install fetches everything.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlake.settings import Settings, load_settings
from airlake.stack.layout import Layout

AIRLAKE = [sys.executable, "-m", "airlake.cli"]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int, rng: random.Random) -> list[int]:
    """Distinct free loopback ports whose +10000 neighbour is free too (SeaweedFS's gRPC ports)."""
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20000, 30000)
        if port in ports or port + 10000 in ports or port - 10000 in ports:
            continue
        if _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


@dataclass
class Stack:
    """A running stack: how to call its commands, and its resolved settings."""

    cwd: Path
    env: dict[str, str]
    first_up: str = ""
    """The output of the session's first ``airlake stack up``, on a fresh state directory."""

    def run(self, *args: str, timeout: float = 1200, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*AIRLAKE, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"airlake {' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n"
                f"{proc.stderr}"
            )
        return proc

    def status(self) -> dict:
        proc = self.run("stack", "status", "--json", check=False)
        assert proc.returncode in (0, 3), proc.stderr
        return {svc["service"]: svc for svc in json.loads(proc.stdout)["services"]}

    @property
    def settings(self) -> Settings:
        return load_settings(environ=self.env, cwd=self.cwd)

    @property
    def layout(self) -> Layout:
        return Layout.from_settings(self.settings)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # Not pytest's tmp_path: its base is mode 0700 and PostgreSQL runs as the postgres user.
    base = Path(tempfile.mkdtemp(prefix="airlake-stack-test-"))
    base.chmod(0o755)
    postgres, s3, master, volume, filer, admin, ferret, trino, superset = pick_ports(9, random.Random())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLAKE__") or k == "AIRLAKE__STACK__CACHE_DIR"}
    env.pop("AIRLAKE_CONFIG", None)
    env.update(
        {
            "AIRLAKE__STATE_DIR": str(base / "state"),
            "AIRLAKE__STACK__POSTGRES__PORT": str(postgres),
            "AIRLAKE__STACK__SEAWEEDFS__S3_PORT": str(s3),
            "AIRLAKE__STACK__SEAWEEDFS__MASTER_PORT": str(master),
            "AIRLAKE__STACK__SEAWEEDFS__VOLUME_PORT": str(volume),
            "AIRLAKE__STACK__SEAWEEDFS__FILER_PORT": str(filer),
            "AIRLAKE__STACK__SEAWEEDFS__ADMIN_PORT": str(admin),
            "AIRLAKE__STACK__FERRETDB__PORT": str(ferret),
            "AIRLAKE__STACK__TRINO__PORT": str(trino),
            "AIRLAKE__STACK__SUPERSET__PORT": str(superset),
        }
    )
    running = Stack(cwd=base, env=env)
    running.run("stack", "install", timeout=1800)
    try:
        running.first_up = running.run("stack", "up", timeout=900).stdout
        yield running
    finally:
        running.run("stack", "down", check=False, timeout=300)
        shutil.rmtree(base, ignore_errors=True)
