"""Loading the Iceberg catalog of a profile (one place, shared by the pipeline, the CLI and data scientists), and
marking the state directory that airlake creates for it.

Imports only :mod:`airlake.settings` (and pyiceberg, lazily).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airlake.settings import CATALOG_NAME, Settings, load_settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

STATE_MARKER = ".airlake-state"
"""The file that marks a directory as an airlake state directory: only such a directory is ever deleted whole."""

_MARKER_TEXT = "airlake state directory: `airlake demo --fresh` may delete this whole directory.\n"


def ensure_state_dir(path: str | Path) -> Path:
    """Creates the state directory ``path`` if needed and marks it with :data:`STATE_MARKER`.

    Only a directory that airlake creates here, or finds empty, is marked: an existing directory with other files
    in it (``--state-dir ~`` by mistake) is used but never marked, so it is never deleted whole.
    """
    path = Path(path)
    marker = path / STATE_MARKER
    if marker.is_file():
        return path
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        marker.write_text(_MARKER_TEXT, encoding="utf-8")
    return path


def is_state_dir(path: str | Path) -> bool:
    """Whether ``path`` is a real directory (not a symlink) that holds the airlake state marker."""
    path = Path(path)
    marker = path / STATE_MARKER
    return path.is_dir() and not path.is_symlink() and marker.is_file() and not marker.is_symlink()


def load_catalog(settings: Settings | None = None, profile: str | None = None) -> Catalog:
    """Returns the pyiceberg catalog of ``profile`` (the configured profile by default).

    The embedded profile (SQLite catalog, ``file://`` warehouse) creates and marks its state directory on first use.

    Example (what a data scientist runs)::

        from airlake.catalog import load_catalog
        orders = load_catalog().load_table("raw.orders").scan().to_pandas()
    """
    from pyiceberg.catalog import load_catalog as pyiceberg_load_catalog

    settings = settings or load_settings()
    props = settings.catalog_properties(profile)
    local_paths = []
    if props.get("uri", "").startswith("sqlite:///"):
        local_paths.append(Path(props["uri"].removeprefix("sqlite:///")).parent)
    if props.get("warehouse", "").startswith("file://"):
        local_paths.append(Path(props["warehouse"].removeprefix("file://")))
    state = settings.state_dir
    if any(path.resolve().is_relative_to(state) for path in local_paths):
        ensure_state_dir(state)
    for path in local_paths:
        path.mkdir(parents=True, exist_ok=True)
    catalog = _create(pyiceberg_load_catalog, props)
    engine = getattr(catalog, "engine", None)
    if engine is not None:
        tune_engine(engine)
    return catalog


def _create(loader: Any, props: dict[str, str], attempts: int = 3) -> Catalog:
    """pyiceberg's catalog; on a new database its first use creates the catalog's tables, and when two processes
    do that at once the slower one's ``CREATE TABLE`` fails: the tables are there then, so it tries again."""
    from sqlalchemy.exc import DBAPIError

    for attempt in range(1, attempts + 1):
        try:
            return loader(CATALOG_NAME, **props)
        except DBAPIError as exc:
            if attempt == attempts or not ("already exists" in str(exc) or "pg_type_typname_nsp_index" in str(exc)):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite catalog connection waits for another process's write before it fails (pysqlite's is 5 s)."""

IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
"""PostgreSQL ends a catalog session that sits in an open transaction this long (a writer paused mid-commit), so
its locks can't keep the writer lease from being taken over."""


def tune_engine(engine: Any) -> None:
    """Connection settings for several processes sharing one catalog database.

    SQLite runs in WAL mode (readers and the writer don't block each other, so a paused process can't lock readers
    out) with a longer busy timeout; PostgreSQL sessions get an ``idle_in_transaction_session_timeout``.
    """
    from sqlalchemy import event

    dialect = engine.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if dialect == "sqlite":
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA journal_mode")
                if str(cursor.fetchone()[0]).lower() != "wal":
                    # Persistent, once per database file; when another process holds a lock, a later connection sets it.
                    with contextlib.suppress(Exception):
                        cursor.execute("PRAGMA journal_mode = WAL")
            else:
                cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS}")
                dbapi_connection.commit()
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener (pyiceberg's table check) are not reused
