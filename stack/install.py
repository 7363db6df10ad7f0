"""``airlake stack install``: fetch and build every component of the native stack into the cache."""

from __future__ import annotations

import argparse
import sys
import time

from airlake.settings import Settings
from airlake.stack.components import INSTALLERS, InstallError, install_all
from airlake.stack.credentials import ensure_credentials
from airlake.stack.layout import Layout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "components",
        nargs="*",
        metavar="COMPONENT",
        help=f"components to install (default: all of {', '.join(INSTALLERS)})",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    layout = Layout.from_settings(settings)
    components = list(getattr(args, "components", None) or INSTALLERS)
    unknown = sorted(set(components) - set(INSTALLERS))
    if unknown:
        print(f"airlake stack install: unknown component {', '.join(unknown)}", file=sys.stderr)
        return 2
    print(f"Installing {', '.join(components)} into {layout.cache}", flush=True)
    started = time.monotonic()
    try:
        install_all(layout, components, out=lambda line: print(line, flush=True))
    except InstallError as exc:
        print(f"airlake stack install: {exc}", file=sys.stderr)
        return 1
    written = ensure_credentials()
    if written:
        print(f"Generated {len(written)} credentials into ./.env (kept private; never commit it)")
    print(f"Installed in {time.monotonic() - started:.1f} s. Next: airlake stack up", flush=True)
    return 0
