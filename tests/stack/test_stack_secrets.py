"""The running stack keeps its secrets: in no process's argv, in no file that other users can read."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from airlake.stack.credentials import GENERATED, env_name

pytestmark = pytest.mark.stack

CANARY = "airlakeCanary7Qz"


def _secrets(stack) -> dict[str, str]:
    settings = stack.settings
    values = {env_name(key): str(settings.require(key)) for key in GENERATED}
    assert all(len(value) >= 20 for value in values.values())
    return values


class ArgvScanner(threading.Thread):
    """Reads every process's ``/proc/<pid>/cmdline`` over and over, and keeps the argv that hold a needle."""

    def __init__(self, needles: list[str]):
        super().__init__(name="argv-scanner", daemon=True)
        self.needles = [n.encode() for n in needles]
        self.found: dict[bytes, list[str]] = {}
        self.scans = 0
        self.done = threading.Event()

    def scan(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                continue
            for needle in self.needles:
                if needle in cmdline:
                    self.found.setdefault(needle, []).append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
        self.scans += 1

    def run(self) -> None:
        while not self.done.is_set():
            self.scan()


def test_no_secret_in_any_argv_while_the_stack_runs_and_up_sets_the_passwords(stack):
    secrets = _secrets(stack)
    scanner = ArgvScanner([*secrets.values(), CANARY])
    scanner.start()
    try:
        # The scanner sees short-lived processes: a 50 ms one (as long as a psql call) carrying the canary.
        subprocess.run(["bash", "-c", f"exec -a {CANARY} sleep 0.05"], check=True)
        # `up` again: it sets the PostgreSQL roles' passwords through psql each time.
        stack.run("stack", "up", timeout=600)
    finally:
        scanner.done.set()
        scanner.join()
    assert CANARY.encode() in scanner.found, f"the scanner missed a short-lived process in {scanner.scans} scans"
    leaked = {name for name, value in secrets.items() if value.encode() in scanner.found}
    assert not leaked, {name: scanner.found[secrets[name].encode()][:2] for name in leaked}


def _readable_by_others(path: Path, root: Path) -> bool:
    if not path.stat().st_mode & stat.S_IROTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents if parent.is_relative_to(root))


def test_files_with_secrets_are_private_and_no_other_file_holds_one(stack):
    secrets = _secrets(stack)
    layout = stack.layout
    private = [
        stack.cwd / ".env",
        layout.supervisord_conf,
        layout.data("seaweedfs") / "s3.json",
        layout.data("superset") / "bootstrapped",
        layout.data("superset") / "bootstrap.log",
    ]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    exposed = []
    for path in layout.state.rglob("*"):
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4 * 1024 * 1024:
            continue
        if not _readable_by_others(path, layout.state):
            continue
        data = path.read_bytes()
        exposed += [f"{path}: {name}" for name, value in secrets.items() if value.encode() in data]
    assert not exposed, exposed
