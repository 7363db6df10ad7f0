"""Starting airlake's own local processes (firehoses, the pipeline) and waiting until they answer.

Shared by the demo, the tests and the benchmarks, which all run the real commands as subprocesses.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without ``AIRLAKE__`` settings, so a child sees only what it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLAKE__")}
    return env | {"PYTHONUNBUFFERED": "1"} | extra


def wait_healthy(url: str, proc: subprocess.Popen, log: Path | None = None, timeout: float = 60.0) -> None:
    """Waits until ``url`` answers 200.

    Raises:
        RuntimeError: ``proc`` exited first or ``timeout`` passed; the message ends with the tail of ``log``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        exited = proc.poll() is not None
        if exited or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            why = f"exited with code {proc.returncode}" if exited else f"did not answer in {timeout:.0f} s"
            raise RuntimeError(f"{' '.join(map(str, proc.args))} {why} ({url})\n{tail}")
        time.sleep(0.2)
