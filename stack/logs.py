"""``airlake stack logs [SERVICE]``: the tail of a service's log (supervisord's own without a service)."""

from __future__ import annotations

import argparse
import sys

from airlake.settings import Settings
from airlake.stack.layout import SERVICES, Layout
from airlake.stack.up import tail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", nargs="?", help=f"one of {', '.join(SERVICES)} (default: supervisord)")
    parser.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default: 50)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    layout = Layout.from_settings(settings)
    service = getattr(args, "service", None) or "supervisord"
    if service not in (*SERVICES, "supervisord"):
        print(f"airlake stack logs: unknown service {service!r} (one of {', '.join(SERVICES)})", file=sys.stderr)
        return 2
    path = layout.log(service)
    if not path.is_file():
        print(f"airlake stack logs: no log at {path} (has the stack been started here?)", file=sys.stderr)
        return 1
    print(tail(path, int(getattr(args, "lines", 50) or 50)))
    return 0
