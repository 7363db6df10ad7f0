"""Superset's dashboards as code in a real browser (Debian's Chromium), on a lake with a backfilled day and a demo.

The module's lake: one backfilled day (yesterday) and a 15 s demo (today), the dbt models built (``airlake sql
apply``), the bundle imported by ``airlake dashboards import`` (which asks Superset for every chart's data). Then
each role opens each dashboard; the CEO's headline numbers equal the same query on Trino; the executive is kept
out of SQL Lab, the datasets and the admin's pages; the analyst runs a query in SQL Lab and downloads its CSV; a
broken dataset makes the import fail with its charts named. Screenshots go to the test's output folder
(``$AIRLAKE_TEST_OUTPUT`` or pytest's temporary folder) and, with ``AIRLAKE_DOCS_SCREENSHOTS=1``, to docs/img/.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from airlake.bench.dashboards import DASHBOARDS, chrome, login, open_dashboard
from airlake.catalog.trino import query, run
from airlake.processes import free_port
from airlake.stack.dashboards import BUNDLE_DIR
from tests.procs import Process

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
ROLES = ("admin", "analyst", "executive")

HEADLINES = {
    # chart name -> (ceo_kpis column, Python format of the chart's d3 format)
    "GMV today": ("gmv_today", "{:,.2f}"),
    "Orders today": ("orders_today", "{:,d}"),
    "Active markets": ("active_markets", "{:,d}"),
    "On-time delivery rate": ("on_time_rate_today", "{:.1%}"),
    "Average delivery time": ("avg_delivery_minutes_today", "{:,.1f}"),
}
"""The CEO's headline numbers that hold still while the lake does (the ones against yesterday move with the clock)."""


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    where = os.environ.get("AIRLAKE_TEST_OUTPUT")
    folder = Path(where) / "dashboards" if where else tmp_path_factory.mktemp("dashboards")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def lake(stack, tmp_path_factory):
    """Yesterday backfilled, a demo today, the dbt models built, the bundle imported and checked."""
    # The same backfill as test_stack_backfill's (seed 11): a rerun adds nothing, whichever runs first.
    stack.run("--profile", "local", "backfill", "--days", "1", "--orders-per-day", "2000", "--seed", "11", timeout=900)
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    env = stack.env | {
        "AIRLAKE__FIREHOSE__RECENTCHANGE_PORT": str(free_port()),
        "AIRLAKE__FIREHOSE__ORDERS_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    demo = Process(
        [sys.executable, "-m", "airlake", "--profile", "local", "demo", "--seconds", "15", "--rate", "200"],
        log,
        cwd=stack.cwd,
        env=env,
    )
    assert demo.wait(600) == 0, demo.output()[-4000:]
    stack.run("--profile", "local", "sql", "apply", timeout=1200)
    imported = stack.run("dashboards", "import", timeout=900)
    return imported.stdout


def credentials(stack, role: str) -> tuple[str, str]:
    s = stack.settings
    return s.require(f"stack.superset.{role}_user"), str(s.require(f"stack.superset.{role}_password"))


def base_url(stack) -> str:
    s = stack.settings
    return f"http://{s.require('stack.host')}:{int(s.require('stack.superset.port'))}"


def test_stack_up_imported_the_bundle_and_the_import_checked_every_chart(stack, lake):
    assert "dashboards, roles and users imported from superset/" in stack.first_up
    charts = len(list((BUNDLE_DIR / "charts").glob("*.yaml")))
    assert "imported 2 dashboards (CEO, Operations)" in lake or "imported 2 dashboards (Operations, CEO)" in lake
    assert f"every chart answered ({charts})" in lake, lake


@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_each_dashboard_without_a_chart_error(stack, lake, output, role):
    driver = chrome()
    try:
        login(driver, base_url(stack), *credentials(stack, role))
        for slug, count in DASHBOARDS.items():
            load = open_dashboard(driver, base_url(stack), slug, count)
            time.sleep(1)  # let the charts' animations finish before the screenshot
            shot = output / f"{slug}-{role}.png"
            driver.save_screenshot(str(shot))
            assert len(load.charts) == count, (slug, sorted(load.charts))
            assert not load.errors, (slug, role, load.errors, shot)
            if slug == "ceo":
                result = run(stack.settings, "SELECT * FROM iceberg.serving.ceo_kpis", timeout=120)
                kpis = dict(zip(result.columns, result.rows[0], strict=True))
                for chart, (column, fmt) in HEADLINES.items():
                    value = kpis[column]
                    expected = fmt.format(int(value) if fmt.endswith("d}") else float(value))
                    assert load.big_numbers[chart] == expected, (chart, load.big_numbers, kpis)
                assert int(kpis["orders_today"]) > 0 and int(kpis["active_markets"]) > 0
            if role == "executive" and os.environ.get("AIRLAKE_DOCS_SCREENSHOTS") == "1":
                docs = REPO / "docs" / "img"
                docs.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, docs / f"dashboard-{slug}.png")
    finally:
        driver.quit()


def test_the_executive_cannot_open_sql_lab_the_datasets_or_the_admin_pages(stack, lake):
    from selenium.webdriver.common.by import By

    driver = chrome()
    try:
        login(driver, base_url(stack), *credentials(stack, "executive"))
        for path in ("/sqllab/", "/tablemodelview/list/", "/users/list/", "/roles/list/", "/api/v1/dataset/"):
            driver.get(base_url(stack) + path)
            body = driver.find_element(By.TAG_NAME, "body").text
            assert "Forbidden" in body or "not authorized" in body.lower(), (path, body[:300])
            assert not driver.find_elements(By.CSS_SELECTOR, '[data-test="sql-editor-tabs"]'), path
    finally:
        driver.quit()


def test_the_analyst_runs_a_query_in_sql_lab_and_downloads_its_csv(stack, lake, output, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    sql = "SELECT market, sum(orders) AS orders FROM iceberg.marts.market_day GROUP BY market ORDER BY market"
    expected = query(stack.settings, sql, timeout=120)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chrome(downloads, height=1000)
    try:
        login(driver, base_url(stack), *credentials(stack, "analyst"))
        driver.get(base_url(stack) + "/sqllab/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-test="sql-editor-tabs"]'))
        if not driver.find_elements(By.CSS_SELECTOR, ".ace_text-input"):
            driver.find_element(By.CSS_SELECTOR, '[data-test="add-tab-icon"]').click()
        editor = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".ace_text-input"))
        ActionChains(driver).click(driver.find_element(By.CSS_SELECTOR, ".ace_content")).perform()
        editor.send_keys(Keys.CONTROL, "a")
        editor.send_keys(Keys.DELETE)
        editor.send_keys(sql)
        editor.send_keys(Keys.CONTROL, Keys.ENTER)
        WebDriverWait(driver, 180).until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, '[data-test="export-csv-button"]')
                or d.find_elements(By.CSS_SELECTOR, ".ant-alert-error")
            )
        )
        driver.save_screenshot(str(output / "sqllab-analyst.png"))
        assert not driver.find_elements(By.CSS_SELECTOR, ".ant-alert-error"), driver.find_element(
            By.TAG_NAME, "body"
        ).text
        driver.find_element(By.CSS_SELECTOR, '[data-test="export-csv-button"]').click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [p for p in downloads.glob("*.csv")]:
            time.sleep(0.2)
        (csv,) = downloads.glob("*.csv")
        rows = [line.split(",") for line in csv.read_text(encoding="utf-8-sig").strip().splitlines()]
        assert rows[0] == ["market", "orders"], rows[:2]
        assert [(r[0], int(r[1])) for r in rows[1:]] == [(m, int(o)) for m, o in expected]
    finally:
        driver.quit()


def test_a_chart_on_a_broken_dataset_fails_the_import_naming_the_chart(stack, lake, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE_DIR, bundle, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    dataset = bundle / "datasets" / "trino" / "serving_top_restaurants_today.yaml"
    doc = yaml.safe_load(dataset.read_text(encoding="utf-8"))
    doc["sql"] = "SELECT restaurant_id, market, orders, gmv FROM iceberg.serving.no_such_view"
    dataset.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    try:
        failed = stack.run("dashboards", "import", "--bundle", str(bundle), check=False, timeout=900)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "1 charts failed" in failed.stderr, failed.stderr
        assert "chart 'Top restaurants today' (dataset top_restaurants_today)" in failed.stderr, failed.stderr
        assert "no_such_view" in failed.stderr, failed.stderr
    finally:
        stack.run("dashboards", "import", "--no-check", timeout=900)


def test_superset_screenshots_a_dashboard_with_chromium(stack, lake, output):
    png = output / "ceo-superset.png"
    done = stack.run("dashboards", "screenshot", "ceo", "-o", str(png), timeout=600)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", done.stdout + done.stderr
    assert png.stat().st_size > 20_000


def test_export_writes_an_edit_made_in_superset_back_into_the_yaml(stack, lake, tmp_path):
    from airlake.stack.dashboards import admin_session
    from airlake.stack.dashboards import base_url as superset_url

    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE_DIR, bundle, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    chart_file = bundle / "charts" / "ceo_orders_today.yaml"
    chart = yaml.safe_load(chart_file.read_text(encoding="utf-8"))
    session = admin_session(stack.layout)
    found = session.get(
        f"{superset_url(stack.layout)}/api/v1/chart/",
        params={"q": f"(filters:!((col:slice_name,opr:eq,value:'{chart['slice_name']}')))"},
        timeout=60,
    ).json()["result"]
    (chart_id,) = [c["id"] for c in found]
    try:
        # What a designer does in the browser: rename the chart and save it.
        edit = session.put(
            f"{superset_url(stack.layout)}/api/v1/chart/{chart_id}", json={"slice_name": "Orders so far today"}
        )
        assert edit.status_code == 200, edit.text
        done = stack.run("dashboards", "export", "--bundle", str(bundle), timeout=600)
        assert "charts/ceo_orders_today.yaml" in done.stdout, done.stdout
        exported = yaml.safe_load(chart_file.read_text(encoding="utf-8"))
        assert exported["slice_name"] == "Orders so far today"
        assert exported["uuid"] == chart["uuid"] and exported["query_context"]
        database = yaml.safe_load((bundle / "databases" / "trino.yaml").read_text(encoding="utf-8"))
        assert database["sqlalchemy_uri"] == "trino://airlake@127.0.0.1:8080/iceberg"  # not this stack's port
        changed = [line.strip() for line in done.stdout.splitlines()[1:]]
        assert changed == ["charts/ceo_orders_today.yaml"], done.stdout  # the rest exports as committed
    finally:
        stack.run("dashboards", "import", "--no-check", timeout=900)
