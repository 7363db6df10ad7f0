"""Running airlake's own commands as real processes in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import requests

from airlake.processes import clean_env, free_port, wait_healthy

REPO = Path(__file__).resolve().parents[1]


def airlake_command(state_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "airlake", "--state-dir", str(state_dir), *args]


class Process:
    """A started airlake command with its output in a log file."""

    def __init__(self, args: Sequence[str], log: Path, *, cwd: Path = REPO, env: dict[str, str] | None = None):
        self.log = log
        self.handle = log.open("wb")
        env = clean_env() if env is None else env
        self.proc = subprocess.Popen(list(args), stdout=self.handle, stderr=subprocess.STDOUT, cwd=cwd, env=env)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise AssertionError(f"{self.proc.args} did not end in {timeout} s:\n{self.output()[-3000:]}") from exc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.handle.close()


class Firehose(Process):
    """``airlake firehose serve|orders`` on a free port, ready when /healthz answers."""

    def __init__(self, state_dir: Path, kind: str, *args: str, log: Path):
        self.port = free_port()
        super().__init__(airlake_command(state_dir, "firehose", kind, "--port", str(self.port), *args), log)
        self.path = "/v2/stream/recentchange" if kind == "serve" else "/v2/stream/orders"
        try:
            wait_healthy(self.base + "/healthz", self.proc, log)
        except RuntimeError as exc:
            self.kill()
            raise AssertionError(f"firehose did not start: {exc}") from exc

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + self.path

    def stats(self) -> dict:
        return requests.get(self.base + "/stats", timeout=5).json()


def lake_stats(state_dir: Path) -> dict:
    out = subprocess.run(
        airlake_command(state_dir, "lake", "stats", "--json"),
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)
