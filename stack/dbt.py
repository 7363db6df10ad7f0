"""Running the dbt project in ``sql/`` against the stack's Trino (``airlake sql apply``/``docs``, ``airlake batch``).

dbt-core and dbt-trino live in a virtual environment of their own under the stack cache (``airlake stack install
dbt``; their pins clash with Beam's). Each run writes ``profiles.yml`` into ``{state_dir}/dbt/`` from the settings
(Trino's host and port, the ``iceberg`` catalog, the user; Trino has no password on the stack, and nothing secret is
passed on the command line) and passes the wiki-to-market map as dbt variables, so the batch layer maps wikis
exactly as the speed layer does.

Imports :mod:`airlake.settings` and :mod:`airlake.stack.layout` (same layer).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from airlake.settings import Settings
from airlake.stack.layout import Layout

PROJECT_DIR = Path(str(resources.files("airlake.dbt_project")))
"""The dbt project (``sql/`` of the checkout, shipped in the wheel as the package ``airlake.dbt_project``)."""

PROFILE = "airlake"
TARGET = "stack"
CATALOG = "iceberg"
USER = "airlake"


class DbtError(RuntimeError):
    """dbt is not installed or the project is missing; the message says what to do."""


def dbt_home(layout: Layout) -> Path:
    """Where ``airlake stack install dbt`` puts dbt's virtual environment."""
    return layout.cache / f"dbt-{layout.version('dbt')}"


def dbt_executable(layout: Layout) -> Path:
    return dbt_home(layout) / "venv" / "bin" / "dbt"


def state_dir(settings: Settings) -> Path:
    """dbt's profiles, compiled SQL, logs and documentation site for this state directory."""
    return settings.state_dir / "dbt"


def profiles_yml(settings: Settings) -> str:
    """The text of ``profiles.yml`` for the stack (JSON is YAML, and quotes every value safely)."""
    output = {
        "type": "trino",
        "method": "none",
        "user": USER,
        "host": settings.stack.host,
        "port": settings.stack.trino.port,
        "http_scheme": "http",
        "database": CATALOG,
        "schema": "serving",
        "threads": settings.stack.dbt.threads,
    }
    return json.dumps({PROFILE: {"target": TARGET, "outputs": {TARGET: output}}}, indent=2) + "\n"


def project_vars(settings: Settings) -> dict[str, object]:
    """Variables of the dbt project taken from the settings: the wiki-to-market map and its default market."""
    wikis = settings.markets.wikis
    return {
        "wiki_markets": {str(k): str(v) for k, v in dict(wikis).items()},
        "default_market": settings.markets.default,
    }


def _prepare(settings: Settings) -> tuple[Path, Path]:
    layout = Layout.from_settings(settings)
    exe = dbt_executable(layout)
    if not exe.is_file():
        raise DbtError(f"dbt is not installed at {exe}: run `airlake stack install dbt`")
    if not (PROJECT_DIR / "dbt_project.yml").is_file():
        raise DbtError(f"the dbt project is missing: no {PROJECT_DIR / 'dbt_project.yml'}")
    home = state_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    (home / "profiles.yml").write_text(profiles_yml(settings), encoding="utf-8")
    return exe, home


def _command(
    exe: Path,
    home: Path,
    verb: list[str],
    settings: Settings,
    target: Path | None = None,
    variables: dict[str, object] | None = None,
) -> list[str]:
    return [
        str(exe),
        *verb,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(home),
        "--target-path",
        str(target or home / "target"),
        "--log-path",
        str(home / "logs"),
        "--vars",
        json.dumps({**project_vars(settings), **(variables or {})}),
    ]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
        "DBT_USE_COLORS": "false",
        "DBT_PARTIAL_PARSE": "false",
    }


def run(
    settings: Settings,
    verb: list[str],
    *,
    target: Path | None = None,
    out: Callable[[str], None] | None = None,
    variables: dict[str, object] | None = None,
) -> int:
    """Runs one dbt command on the project, streaming its output line by line; returns dbt's exit status.

    ``variables`` are dbt variables added to the project's (the batch layer's ``batch_days``, for one).
    """
    exe, home = _prepare(settings)
    cmd = _command(exe, home, verb, settings, target, variables)
    write = out or (lambda line: print(line, flush=True))
    with subprocess.Popen(
        cmd, cwd=PROJECT_DIR, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            write(line.rstrip("\n"))
        return proc.wait()


def build(settings: Settings, select: str | None = None, *, full_refresh: bool = False) -> int:
    """Runs ``dbt build`` (models, then their tests) on the stack, streaming its output; returns dbt's exit status.

    Args:
        settings: the resolved settings (Trino's host and port, the market map).
        select: a dbt selection (``+path:models/batch``, ``stg_orders+``); everything when None.
        full_refresh: rebuild incremental models from scratch.
    """
    verb = ["build"]
    if select:
        verb += ["--select", select]
    if full_refresh:
        verb.append("--full-refresh")
    return run(settings, verb)


def docs(settings: Settings, target: Path | None = None) -> Path:
    """Runs ``dbt docs generate`` and returns the folder of the static site (``index.html`` with the lineage graph).

    Raises:
        DbtError: dbt is missing or ``dbt docs generate`` failed.
    """
    folder = (target or state_dir(settings) / "docs").resolve()
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    status = run(settings, ["docs", "generate"], target=folder, out=keep)
    if status != 0 or not (folder / "index.html").is_file():
        raise DbtError(f"dbt docs generate failed (exit {status}):\n" + "\n".join(lines[-20:]))
    return folder
