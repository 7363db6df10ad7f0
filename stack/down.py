"""``airlake stack down``: stop the stack's own supervisord and, through it, its services (nothing else)."""

from __future__ import annotations

import argparse
import sys

from airlake.settings import Settings
from airlake.stack import supervisor
from airlake.stack.layout import Layout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the stop (default: 90)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    layout = Layout.from_settings(settings)
    try:
        stopped = supervisor.shutdown(layout, timeout=float(getattr(args, "timeout", 90.0) or 90.0))
    except supervisor.SupervisorError as exc:
        print(f"airlake stack down: {exc}", file=sys.stderr)
        return 1
    print(f"Stopped the stack in {layout.state}" if stopped else f"No stack running in {layout.state}")
    return 0
