"""Loading the Iceberg catalog of a profile (one place, shared by the pipeline, the CLI and data scientists), and
marking the state directory that airlake creates for it.

Imports only :mod:`airlake.config` (and pyiceberg, lazily).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from airlake.config import CATALOG_NAME, Settings, load_settings

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

        from catalog import load_catalog
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
    return pyiceberg_load_catalog(CATALOG_NAME, **props)
