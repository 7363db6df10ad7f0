"""One namespace: the wheel puts only ``airlake`` (and its dist-info) at site-packages' top level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.procs import REPO

pytestmark = pytest.mark.integration


def test_the_wheel_holds_only_the_airlake_namespace_with_its_data(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(REPO)],
        check=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("airlake-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"airlake", wheel.name.split("-py3")[0] + ".dist-info"}
    for expected in (
        "airlake/cli.py",
        "airlake/catalog/__init__.py",
        "airlake/lake/lease.py",
        "airlake/sources/orders/menu.yaml",
        "airlake/pipelines/speed.py",
        "airlake/stack/trino/etc/catalog/iceberg.properties",
        "airlake/bench/ingest.py",
        "airlake/dbt_project/dbt_project.yml",  # the dbt project of sql/, which `airlake sql apply` runs
        "airlake/dbt_project/models/serving/orders_minute.sql",
        "airlake/dbt_project/macros/generate_schema_name.sql",
    ):
        assert expected in names, expected
