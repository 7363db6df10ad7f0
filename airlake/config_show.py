"""``airlake config show``: every resolved setting, where its value came from, secrets masked."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from airlake.settings import Settings, env_name, is_secret

MASK = "****"


def rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting: its key, value (masked when secret and set), source and environment variable."""

    def walk(tree: Mapping[str, Any], prefix: str = "") -> list[dict[str, Any]]:
        out = []
        for key, value in tree.items():
            path = prefix + key
            if isinstance(value, Mapping):
                out.extend(walk(value, path + "."))
                continue
            shown = MASK if is_secret(path) and value not in (None, "") else value
            source = settings.sources_of_values.get(path, "default")
            out.append({"key": path, "value": shown, "source": source, "variable": env_name(path)})
        return out

    return walk(settings.data)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")


def main(args: argparse.Namespace, settings: Settings) -> int:
    table = rows(settings)
    if args.json:
        print(json.dumps(table, indent=2, default=str))
        return 0
    width = max(len(r["key"]) for r in table)
    for r in table:
        print(f"{r['key']:{width}}  {r['value']!s:40}  ({r['source']})")
    return 0
