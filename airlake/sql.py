"""``airlake sql``: ask the lake a question from the shell, through the stack's Trino.

Four forms:

- ``airlake sql "QUERY"`` runs one statement and prints its rows as an aligned table (``--json``: a JSON array of
  objects, ``--csv``: CSV with a header); the row count goes to stderr. Rows are fetched and printed a page at a
  time, so a large result is never held whole (the table's column widths come from the first page).
- ``airlake sql`` alone opens Trino's own CLI (``trino-cli-<version>-executable.jar``, installed by
  ``airlake stack install``) on the stack: its server, the ``iceberg`` catalog, the ``airlake`` user, a JDK that
  runs it.
- ``airlake sql apply`` builds the dbt project in ``sql/`` on the stack (``airlake.stack.dbt.build``).
- ``airlake sql docs`` writes dbt's documentation site (``airlake.stack.dbt.docs``) and prints its folder.

A SQL error prints Trino's message on stderr and exits with status 1; so does a Trino that cannot be reached, with
the command that starts it.

The command line layer: imports :mod:`airlake.catalog.trino` (the one Trino client) and :mod:`airlake.stack`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TextIO

from airlake.settings import Settings

TRINO_CATALOG = "iceberg"
"""The lake's catalog in Trino (``stack/trino/etc/catalog/iceberg.properties``)."""

TRINO_USER = "airlake"
PAGE_ROWS = 1000
"""Rows fetched and printed at a time."""

WORDS = {"apply": "build the dbt project in sql/ on the stack", "docs": "write dbt's documentation site"}

FORMS = """forms:
  airlake sql "QUERY"        run one statement on the stack's Trino and print its rows (a table; --json, --csv);
                             the row count goes to stderr; "-" reads the statement from stdin
  airlake sql                open Trino's CLI on the stack (catalog iceberg), e.g. SHOW TABLES FROM raw;
  airlake sql apply          build the dbt project in sql/ on the stack (dbt build: models and their tests)
  airlake sql docs           write dbt's documentation site with the lineage graph and print its folder

A SQL error prints Trino's message and exits with status 1. Tables are iceberg.<namespace>.<table>, e.g.
  airlake sql "select market, count(*) from iceberg.raw.orders group by 1 order by 2 desc"
"""

NOT_RUNNING = "Trino is not running at {url} ({reason}): start the stack with `airlake stack up`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "airlake sql [--json | --csv] [--timeout S] [QUERY | apply | docs]"
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = FORMS
    parser.add_argument(
        "words",
        nargs="*",
        metavar="QUERY",
        help='the statement (one argument, quoted; several are joined by spaces), or "apply", or "docs"',
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the rows as a JSON array of objects")
    fmt.add_argument("--csv", action="store_true", help="print the rows as CSV with a header line")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds the statement may run, queueing included (600)",
    )


def trino_url(settings: Settings) -> str:
    return f"http://{settings.stack.host}:{settings.stack.trino.port}"


def trino_cli_command(settings: Settings, *extra: str) -> list[str]:
    """The command that runs Trino's CLI on the stack (``airlake sql`` alone runs it with no ``extra``).

    Raises:
        FileNotFoundError: the CLI jar is not installed; the message names the command that installs it.
        ConfigError: no JDK new enough to run it.
    """
    from airlake.stack.components import trino_cli_jar
    from airlake.stack.layout import Layout, find_java_home

    layout = Layout.from_settings(settings)
    jar = trino_cli_jar(layout)
    if not jar.is_file():
        raise FileNotFoundError(f"Trino's CLI is not installed ({jar}): run `airlake stack install trino-cli`")
    java = find_java_home(settings) / "bin" / "java"
    return [
        str(java),
        "--enable-native-access=ALL-UNNAMED",  # JLine's terminal support; without it Java 24+ prints warnings
        "-jar",
        str(jar),
        "--server",
        trino_url(settings),
        "--catalog",
        TRINO_CATALOG,
        "--user",
        TRINO_USER,
        *extra,
    ]


def trino_reachable(settings: Settings) -> str | None:
    """None when Trino answers ``/v1/info`` and has started; else why not."""
    import requests

    try:
        info = requests.get(trino_url(settings) + "/v1/info", timeout=5).json()
    except (requests.RequestException, ValueError) as exc:
        return type(exc).__name__
    return "still starting" if info.get("starting", True) else None


def not_running(settings: Settings, command: str) -> str | None:
    """``airlake <command>: Trino is not running at ...`` when Trino does not answer or is starting, else None:
    what a command says when a Trino call failed and the reason may be a stack that is down."""
    reason = trino_reachable(settings)
    if reason is None:
        return None
    return f"airlake {command}: " + NOT_RUNNING.format(url=trino_url(settings), reason=reason)


# ----- formatting -----------------------------------------------------------------------------------------------
def to_json_value(value: Any) -> Any:
    """A JSON-able form of a Trino value (timestamps and dates in ISO 8601, decimals as numbers, bytes as hex)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


def to_text(value: Any) -> str:
    """How a value reads in the aligned table (NULL for a missing value, as Trino's CLI prints it)."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dict | list | tuple):
        return json.dumps(to_json_value(value), ensure_ascii=False)
    return str(value)


class Aligned:
    """An aligned table; the widths are those of the header and the first page (later rows may push past them)."""

    def __init__(self, out: TextIO):
        self.out, self.widths, self.numeric = out, [], []
        self.columns: list[str] = []

    def header(self, columns: list[str]) -> None:
        self.columns = columns

    def page(self, rows: list[list[Any]]) -> None:
        texts = [[to_text(v) for v in row] for row in rows]
        if not self.widths:
            self.widths = [max([len(c), *(len(t[i]) for t in texts)]) for i, c in enumerate(self.columns)]
            self.numeric = [
                bool(rows) and all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows)
                for i in range(len(self.columns))
            ]
            self.out.write(
                " | ".join(c.center(w) for c, w in zip(self.columns, self.widths, strict=True)).rstrip() + "\n"
            )
            self.out.write("-+-".join("-" * w for w in self.widths) + "\n")
        for row in texts:
            cells = [
                t.rjust(w) if num else t.ljust(w) for t, w, num in zip(row, self.widths, self.numeric, strict=True)
            ]
            self.out.write(" | ".join(cells).rstrip() + "\n")

    def end(self) -> None:
        if not self.widths:  # no page came: print the header alone
            self.page([])


class JsonArray:
    """A JSON array of one object per row, written row by row."""

    def __init__(self, out: TextIO):
        self.out, self.columns, self.first = out, [], True

    def header(self, columns: list[str]) -> None:
        self.columns = columns
        self.out.write("[")

    def page(self, rows: list[list[Any]]) -> None:
        for row in rows:
            obj = {c: to_json_value(v) for c, v in zip(self.columns, row, strict=True)}
            self.out.write(("\n" if self.first else ",\n") + json.dumps(obj, ensure_ascii=False))
            self.first = False

    def end(self) -> None:
        self.out.write("\n]\n" if not self.first else "]\n")


class Csv:
    """CSV with a header line (NULL is an empty field)."""

    def __init__(self, out: TextIO):
        self.writer = csv.writer(out, lineterminator="\n")

    def header(self, columns: list[str]) -> None:
        self.writer.writerow(columns)

    def page(self, rows: list[list[Any]]) -> None:
        for row in rows:
            self.writer.writerow(["" if v is None else to_text(v) if not isinstance(v, str) else v for v in row])

    def end(self) -> None:
        pass


# ----- running ----------------------------------------------------------------------------------------------------
def clean_statement(text: str) -> str:
    """The statement without surrounding blanks and trailing semicolons (Trino takes one statement, no ``;``)."""
    return text.strip().rstrip(";").strip()


def run_query(settings: Settings, statement: str, printer: Aligned | JsonArray | Csv, *, timeout: float) -> int:
    """Runs ``statement`` and prints its rows page by page; returns the number of rows.

    Raises:
        TrinoError: Trino's message for a query error, or why Trino could not be reached.
    """
    import trino.exceptions

    from airlake.catalog.trino import TrinoError, connect

    conn = connect(settings, user=TRINO_USER, timeout=timeout, catalog=TRINO_CATALOG)
    cursor = conn.cursor()
    count = 0
    try:
        cursor.execute(statement)
        rows = cursor.fetchmany(PAGE_ROWS)
        printer.header([col[0] for col in cursor.description or []])
        while rows:
            printer.page([list(r) for r in rows])
            count += len(rows)
            rows = cursor.fetchmany(PAGE_ROWS)
        printer.end()
        return count
    except trino.exceptions.TrinoQueryError as exc:
        raise TrinoError(exc.message) from exc
    except (trino.exceptions.Error, trino.exceptions.HttpError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise TrinoError(str(exc) or type(exc).__name__) from exc
    except BaseException:
        _cancel(cursor)
        raise
    finally:
        conn.close()


def _cancel(cursor: Any) -> None:
    with contextlib.suppress(Exception):  # the query may be gone already
        cursor.cancel()


def run_cli(settings: Settings) -> int:
    """Opens Trino's CLI on the stack; returns its exit status."""
    from airlake.settings import ConfigError

    down = not_running(settings, "sql")
    if down is not None:
        print(down, file=sys.stderr)
        return 1
    try:
        command = trino_cli_command(settings)
    except (FileNotFoundError, ConfigError) as exc:
        print(f"airlake sql: {exc}", file=sys.stderr)
        return 1
    return subprocess.run(command).returncode


def query_main(settings: Settings, statement: str, args: argparse.Namespace) -> int:
    from airlake.catalog.trino import TrinoError

    if not statement:
        print("airlake sql: the statement is empty", file=sys.stderr)
        return 2
    printer = JsonArray(sys.stdout) if args.json else Csv(sys.stdout) if args.csv else Aligned(sys.stdout)
    try:
        count = run_query(settings, statement, printer, timeout=args.timeout)
    except TrinoError as exc:
        print(not_running(settings, "sql") or f"airlake sql: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader (``| head``) has gone: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    sys.stdout.flush()
    print(f"({count} row{'' if count == 1 else 's'})", file=sys.stderr)
    return 0


def main(args: argparse.Namespace, settings: Settings) -> int:
    words: Sequence[str] = args.words
    if not words:
        if args.json or args.csv:
            print("airlake sql: --json and --csv need a QUERY", file=sys.stderr)
            return 2
        return run_cli(settings)
    if len(words) == 1 and words[0] in WORDS:
        try:
            from airlake.stack import dbt  # needed only here
        except ImportError as exc:
            print(f"airlake sql {words[0]}: the dbt project cannot be run here ({exc})", file=sys.stderr)
            return 1
        if words[0] == "apply":
            return int(dbt.build(settings))
        print(dbt.docs(settings))
        return 0
    if list(words) == ["-"]:
        return query_main(settings, clean_statement(sys.stdin.read()), args)
    return query_main(settings, clean_statement(" ".join(words)), args)
