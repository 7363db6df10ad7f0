"""``airlake dashboards import|export|screenshot``: Superset's dashboards as code (the YAML in ``superset/``).

``import`` loads the bundle into the stack's Superset (every object overwritten by its UUID), grants the analyst
and executive roles and users of the settings, then asks Superset for each chart's data: a chart that fails fails
the command, named. ``export`` writes what was edited in the browser back into the YAML. ``screenshot`` saves
Superset's own screenshot of a dashboard (Debian's Chromium). The work is in :mod:`airlake.stack.dashboards`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from airlake.settings import Settings

IMPORT, EXPORT, SCREENSHOT = "import", "export", "screenshot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command = parser.prog.split()[-1]
    if command in (IMPORT, EXPORT):
        parser.add_argument(
            "--bundle",
            type=Path,
            default=None,
            metavar="DIR",
            help="the bundle's folder (default: the committed superset/ of the checkout)",
        )
    if command == IMPORT:
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="do not ask Superset for each chart's data after the import (no dbt models needed)",
        )
    if command == SCREENSHOT:
        parser.add_argument("name", help="the dashboard's slug: ceo or operations")
        parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.png", help="where to write it")
        parser.add_argument("--width", type=int, default=1600, help="window width in pixels (%(default)s)")
        parser.add_argument("--height", type=int, default=1400, help="window height in pixels (%(default)s)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the subcommand.

    Returns:
        0; 1 when the import, a chart, the export or the screenshot failed.
    """
    from airlake.stack import dashboards
    from airlake.stack.credentials import with_credentials
    from airlake.stack.layout import Layout

    settings = with_credentials(settings, getattr(args, "config", None))  # the analyst's and executive's passwords
    layout = Layout.from_settings(settings)
    command = args.subcommand
    started = time.monotonic()
    try:
        if command == IMPORT:
            result = dashboards.import_bundle(layout, args.bundle, check=not args.no_check)
            print(
                f"imported {len(result.dashboards)} dashboards ({', '.join(d['title'] for d in result.dashboards)}),"
                f" {len(result.charts)} charts; users {', '.join(u['username'] for u in result.users)}"
                f" in {time.monotonic() - started:.1f} s"
            )
            if result.failed_charts:
                print(f"airlake dashboards import: {len(result.failed_charts)} charts failed:", file=sys.stderr)
                for line in result.failed_charts:
                    print(f"  {line}", file=sys.stderr)
                return 1
            if not args.no_check:
                print(f"every chart answered ({len(result.charts)})")
        elif command == EXPORT:
            written = dashboards.export_bundle(layout, args.bundle)
            print(f"exported into {args.bundle or dashboards.BUNDLE_DIR}: {len(written)} files changed")
            for name in written:
                print(f"  {name}")
        elif command == SCREENSHOT:
            size = dashboards.screenshot(layout, args.name, args.output, width=args.width, height=args.height)
            print(f"{args.output} ({size:,} bytes) in {time.monotonic() - started:.1f} s")
    except dashboards.DashboardsError as exc:
        print(f"airlake dashboards {command}: {exc}", file=sys.stderr)
        return 1
    return 0
