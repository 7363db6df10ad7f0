"""Loading the Iceberg catalog of a profile (one place, shared by the pipeline, the CLI and data scientists)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from airlake.config import CATALOG_NAME, Settings, load_settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def load_catalog(settings: Settings | None = None, profile: str | None = None) -> Catalog:
    """Returns the pyiceberg catalog of ``profile`` (the configured profile by default).

    The embedded profile (SQLite catalog, ``file://`` warehouse) creates its state directory on first use.

    Example (what a data scientist runs)::

        from catalog import load_catalog
        orders = load_catalog().load_table("raw.orders").scan().to_pandas()
    """
    from pyiceberg.catalog import load_catalog as pyiceberg_load_catalog

    settings = settings or load_settings()
    props = settings.catalog_properties(profile)
    if props.get("uri", "").startswith("sqlite:///"):
        Path(props["uri"].removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if props.get("warehouse", "").startswith("file://"):
        Path(props["warehouse"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return pyiceberg_load_catalog(CATALOG_NAME, **props)
