"""``airlake images get`` and ``airlake images stats``: reading the image side store.

``get ID -o FILE`` writes an image's bytes (ID is its SHA-256 or the source's photo id); ``stats`` prints the
images and bytes per kind and format, the GridFS files, and the rejects by reason. Imports :mod:`lake.sidestore`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

GET = "get"
STATS = "stats"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``images get`` or ``images stats`` (told apart by the parser's name)."""
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for the side store (default 10)"
    )
    if parser.prog.split()[-1] == GET:
        parser.add_argument("image_id", metavar="ID", help="the image's SHA-256, or the source's photo id")
        parser.add_argument(
            "-o", "--output", type=Path, required=True, metavar="FILE", help="where to write the bytes ('-': stdout)"
        )
        parser.add_argument("--json", action="store_true", help="print the image's document as JSON on stderr")
    else:
        parser.add_argument("--json", action="store_true", help="print the statistics as JSON")


def format_stats(stats: dict[str, Any]) -> str:
    """The statistics of :meth:`SideStore.stats` as a table."""
    lines = [f"{'kind':20} {'format':7} {'images':>8} {'bytes':>14}"]
    for row in stats["images"]:
        lines.append(f"{row['kind']:20} {row['format']:7} {row['images']:>8,} {row['bytes']:>14,}")
    lines.append(f"{'total':28} {stats['total_images']:>8,} {stats['total_bytes']:>14,}")
    lines.append(f"GridFS: {stats['gridfs_files']:,} files, {stats['gridfs_bytes']:,} bytes")
    if stats["rejects"]:
        lines.append("rejects: " + ", ".join(f"{reason} {n:,}" for reason, n in stats["rejects"].items()))
    else:
        lines.append("rejects: none")
    return "\n".join(lines)


def main(args: argparse.Namespace, settings: Any) -> int:
    """Runs ``airlake images get`` or ``airlake images stats``.

    Returns:
        0; 1 for an unknown image; 2 when the side store can't be reached.
    """
    import pymongo.errors

    from airlake.lake.sidestore import SideStore, UnknownImage, mongo_uri

    command = getattr(args, "subcommand", STATS)
    try:
        with SideStore.from_settings(settings, timeout=args.timeout) as store:
            if command == GET:
                try:
                    document, data = store.read(args.image_id)
                except UnknownImage as exc:
                    print(f"airlake images get: {exc}", file=sys.stderr)
                    return 1
                if str(args.output) == "-":
                    sys.stdout.buffer.write(data)
                    sys.stdout.flush()
                else:
                    args.output.write_bytes(data)
                    print(
                        f"{document['_id']} ({document['kind']}, {document['format']}, {document['width']} x"
                        f" {document['height']}, {len(data):,} bytes) -> {args.output}",
                        file=sys.stderr,
                    )
                if args.json:
                    print(json.dumps(document, default=str, indent=1), file=sys.stderr)
                return 0
            stats = store.stats()
    except pymongo.errors.PyMongoError as exc:
        reason = str(exc).split(" (configured")[0]  # pymongo appends its timeouts and topology
        print(f"airlake images: the side store at {mongo_uri(settings)} can't be reached: {reason}", file=sys.stderr)
        return 2
    print(json.dumps(stats, indent=1) if args.json else format_stats(stats))
    return 0
