"""``airlake stack status``: each service, its port, pid, supervisord state and health (``--json`` too).

Exits 0 when every service is healthy and 3 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from airlake.settings import ConfigError, Settings
from airlake.stack import supervisor
from airlake.stack.health import CHECKS
from airlake.stack.layout import SERVICES, Layout
from airlake.stack.services import port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def rss_mib(pid: int | None, tree: dict[int, list[int]] | None = None) -> float | None:
    """Resident memory of a process and all its descendants, in MiB (``None`` without a process)."""
    if not pid:
        return None
    tree = _children() if tree is None else tree
    total_kib, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(tree.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text(encoding="utf-8").splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return round(total_kib / 1024, 1)


def collect(layout: Layout) -> list[dict[str, Any]]:
    """One record per service: name, host, port, state, pid, healthy, detail."""
    info = supervisor.process_info(layout)
    tree = _children()

    def one(name: str) -> dict[str, Any]:
        proc = info.get(name, {})
        try:
            state = proc.get("statename")
            healthy, detail = CHECKS[name](layout) if state == "RUNNING" else (False, (state or "not running").lower())
        except ConfigError as exc:
            healthy, detail = False, str(exc)
        return {
            "service": name,
            "host": layout.settings.stack.host,
            "port": port(layout, name),
            "state": proc.get("statename", "NOT STARTED" if info else "SUPERVISORD DOWN"),
            "pid": proc.get("pid") or None,
            "rss_mib": rss_mib(proc.get("pid"), tree),
            "healthy": healthy,
            "detail": detail,
            "log": str(layout.log(name)),
        }

    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        return list(pool.map(one, SERVICES))


def main(args: argparse.Namespace, settings: Settings) -> int:
    layout = Layout.from_settings(settings)
    records = collect(layout)
    known = [r["rss_mib"] for r in records if r["rss_mib"] is not None]
    if getattr(args, "json", False):
        doc = {
            "state_dir": str(layout.state),
            "supervisord_pid": supervisor.supervisord_pid(layout),
            "services": records,
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"stack in {layout.state}, supervisord pid {supervisor.supervisord_pid(layout) or '-'}")
        print(f"{'SERVICE':<10} {'ADDRESS':<16} {'STATE':<17} {'PID':>7} {'RSS MiB':>8}  HEALTH")
        for r in records:
            health = "healthy" if r["healthy"] else "UNHEALTHY"
            print(
                f"{r['service']:<10} {r['host'] + ':' + str(r['port']):<16} {r['state']:<17} {r['pid'] or '-':>7} "
                f"{r['rss_mib'] if r['rss_mib'] is not None else '-':>8}  {health} ({r['detail']})"
            )
        print(f"total resident memory of the services: {sum(known):.0f} MiB")
    return 0 if all(r["healthy"] for r in records) else 3
