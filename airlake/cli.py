"""The ``airlake`` command.

Each subcommand's flags are defined by the module that does the work (``add_arguments``) and run by its
``main(args, settings)``; this module only wires them and imports them lazily so that ``airlake --help``
stays fast and a missing optional dependency only breaks the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from airlake import __version__
from airlake.settings import ConfigError, load_settings

# (group, command) -> (module, help). A group of None is a top-level command.
COMMANDS: dict[tuple[str | None, str], tuple[str, str]] = {
    ("firehose", "serve"): (
        "airlake.sources.firehose",
        "serve recorded recentchange events over SSE like EventStreams",
    ),
    ("firehose", "orders"): ("airlake.sources.orders", "serve generated order lifecycle events over SSE"),
    (None, "ingest"): ("airlake.pipelines.speed", "run the speed pipeline: firehoses into Iceberg, exactly once"),
    (None, "backfill"): (
        "airlake.pipelines.backfill",
        "generate past demand and orders for the whole days before today, exactly once",
    ),
    ("lake", "stats"): ("airlake.lake.stats", "print per-table statistics"),
    ("lake", "init"): ("airlake.lake.tables", "create the namespaces and tables"),
    (None, "demo"): ("airlake.demo", "run the end-to-end demo on the configured profile"),
    (None, "batch"): (
        "airlake.batch",
        "run the batch layer on Trino (dbt): recompute batch.* from raw, then advance the boundary",
    ),
    ("stack", "install"): ("airlake.stack.install", "download and build the native stack's components into the cache"),
    ("stack", "up"): ("airlake.stack.up", "start the native stack under supervisord and wait until it is healthy"),
    ("stack", "down"): ("airlake.stack.down", "stop the native stack's supervisord and its services"),
    ("stack", "status"): ("airlake.stack.status", "print each service of the native stack, its port, pid and health"),
    ("stack", "logs"): ("airlake.stack.logs", "print the tail of a service's log"),
    ("images", "get"): ("airlake.images", "write an image's bytes from the side store to a file"),
    ("images", "stats"): ("airlake.images", "print the side store's images and bytes per kind and format, and rejects"),
    ("config", "show"): ("airlake.config_show", "print every resolved setting and where its value came from"),
    (None, "sql"): ("airlake.sql", "run a query on the stack's Trino, open Trino's CLI, or build the dbt project"),
    ("dashboards", "import"): (
        "airlake.dashboards",
        "load superset/ (dashboards, charts, datasets) into Superset with the roles and users; check every chart",
    ),
    ("dashboards", "export"): ("airlake.dashboards", "write the dashboards edited in Superset back into superset/"),
    ("dashboards", "screenshot"): ("airlake.dashboards", "save Superset's screenshot of a dashboard as a PNG"),
    (None, "maintain"): ("airlake.maintain", "compact every Iceberg table, expire old snapshots, remove orphan files"),
}

GLOBAL_OPTIONS_WITH_VALUE = ("--config", "--profile", "--state-dir")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LIBRARY_NOISE = (
    # Apache Beam's BigQuery client module, imported with apache_beam.io, logs this on the root logger when the
    # optional GCP extras are absent; airlake reads no BigQuery.
    ("root", "apitools not found, and bigquery client libraries are not available"),
    # ... and, once the root logger is at INFO, this from the same import.
    ("apache_beam.io.gcp.bigquery", "No module named google.cloud.bigquery_storage_v1."),
)
"""(logger name, message prefix) of the library log records that are dropped."""

GROUP_HELP = {
    "firehose": "local SSE firehoses",
    "lake": "the Iceberg tables",
    "stack": "the native server stack (PostgreSQL, SeaweedFS S3, FerretDB, Trino, Superset)",
    "config": "the resolved settings",
    "dashboards": "Superset's dashboards as code (superset/)",
    "images": "the image side store (documents and bytes in FerretDB/MongoDB)",
}


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Builds the parser; only the module of the command named in ``argv`` is imported for its flags."""
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            words.append(word)
    parser = argparse.ArgumentParser(prog="airlake", description="airlake, the lakehouse of Here Comes The Airplane")
    parser.add_argument("--version", action="version", version=f"airlake {__version__}")
    parser.add_argument("--config", help="TOML settings file (default: ./airlake.toml or $AIRLAKE_CONFIG)")
    parser.add_argument("--profile", help="profile to use (embedded, local, compose)")
    parser.add_argument("--state-dir", help="where runtime state lives (default: .airlake)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for (group, name), (module, help_text) in COMMANDS.items():
        if group is None:
            sub = top.add_parser(name, help=help_text, description=help_text)
        else:
            if group not in groups:
                gp = top.add_parser(group, help=GROUP_HELP[group])
                groups[group] = gp.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
            sub = groups[group].add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        if words[:2] == [group, name] or (group is None and words[:1] == [name]):
            _lazy_arguments(sub, module)
    return parser


def _lazy_arguments(parser: argparse.ArgumentParser, module: str) -> None:
    mod = importlib.import_module(module)
    add = getattr(mod, "add_arguments", None)
    if add is not None:
        add(parser)


class LibraryNoise(logging.Filter):
    """Drops the warnings that libraries log at import time and that say nothing about airlake's run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(
            record.name == logger and record.getMessage().startswith(prefix) for logger, prefix in LIBRARY_NOISE
        )


def configure_logging(verbose: bool = False) -> None:
    """airlake's log format on stderr, set up before any command module (and so any library) is imported.

    Without it a library's first ``logging.warning`` (Apache Beam's at import) configures the root logger with
    Python's default format, and airlake's own format is lost. Calling it again only changes the level.
    """
    root = logging.getLogger()
    if not any(getattr(handler, "_airlake", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._airlake = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for holder in (root, *root.handlers):
        if not any(isinstance(f, LibraryNoise) for f in holder.filters):
            holder.addFilter(LibraryNoise())
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(verbose="-v" in argv or "--verbose" in argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        settings = load_settings(
            {"profile": args.profile, "state_dir": args.state_dir},
            config_file=args.config,
        )
        module = importlib.import_module(args._module)
        return int(module.main(args, settings) or 0)
    except ConfigError as exc:
        print(f"airlake: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`airlake config show | head`): stop quietly, as shell tools do. Python's docs
        # recommend pointing stdout at devnull so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
