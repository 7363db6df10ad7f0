"""Dashboard load time in a real browser, cold and warm, and the browser helpers the stack tests share with it.

``python -m airlake.bench.dashboards`` needs the stack up with the dashboards imported and the dbt models built
(``airlake stack up``, ``airlake sql apply``); fill the lake first (``airlake backfill``, ``airlake demo``). For each
dashboard it times, ``--repeat`` times, from navigation until every chart has rendered (no ``.loading``, each chart
showing its number, table, canvas or an error):
- **cold**: a new browser (empty cache) and the dashboard opened with ``?force=true``, so Superset skips its data
  cache and every chart's query runs on Trino;
- **warm**: the same browser opening it again, charts from Superset's data cache (``CACHE_DEFAULT_TIMEOUT``).
The target: the CEO dashboard fully rendered within 5 s warm. Figures go to ``bench/results/dashboards-<ts>.json``.

Debian's Chromium driven by Selenium (a dev dependency).

``airlake stack install`` installs ``chromium`` and ``chromium-driver`` (apt); ``playwright install`` can't download
here. Superset's front end calls an external telemetry pixel: that failure is not a chart error and is ignored.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DASHBOARDS = {"ceo": 13, "operations": 7}
"""Each dashboard's slug and how many charts it shows."""
TARGET_WARM_S = 5.0
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@dataclass
class DashboardLoad:
    """A dashboard as rendered: each chart's name, its text, any error shown, and the time until all rendered."""

    seconds: float
    charts: dict[str, str]
    errors: dict[str, str]
    big_numbers: dict[str, str]


def chrome(downloads: Path | None = None, width: int = 1600, height: int = 1400):
    """A headless Chromium (fresh profile: a cold browser cache)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(arg)
    if downloads is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def login(driver, base: str, username: str, password: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/login/")
    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-test="username-input"]'))
    driver.find_element(By.CSS_SELECTOR, '[data-test="username-input"]').send_keys(username)
    driver.find_element(By.CSS_SELECTOR, '[data-test="password-input"]').send_keys(password)
    driver.find_element(By.CSS_SELECTOR, '[data-test="login-button"]').click()
    wait.until(lambda d: "/login" not in d.current_url)


def open_dashboard(
    driver, base: str, slug: str, expected_charts: int, timeout: float = 180, *, force: bool = False
) -> DashboardLoad:
    """Opens a dashboard and waits until ``expected_charts`` charts are on the page and none is loading.

    Args:
        force: open it with ``?force=true`` (Superset runs every chart's query instead of answering from its cache).
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    driver.get(f"{base}/superset/dashboard/{slug}/" + ("?force=true" if force else ""))

    def rendered(d) -> bool:
        holders = d.find_elements(By.CSS_SELECTOR, '[data-test="chart-grid-component"]')
        if len(holders) < expected_charts:
            return False
        if d.find_elements(By.CSS_SELECTOR, ".loading"):
            return False
        # Every chart shows its visualization, an empty result or an error, not an empty box.
        return all(
            h.find_elements(By.CSS_SELECTOR, ".header-line, table, canvas, [role='alert']") or "No results" in h.text
            for h in holders
        )

    WebDriverWait(driver, timeout, poll_frequency=0.1).until(rendered)
    seconds = time.monotonic() - started
    charts, errors, big = {}, {}, {}
    for holder in driver.find_elements(By.CSS_SELECTOR, '[data-test="chart-grid-component"]'):
        name = holder.get_attribute("data-test-chart-name")
        charts[name] = holder.text
        alerts = [a.text for a in holder.find_elements(By.CSS_SELECTOR, "[role='alert'], .alert-danger")]
        if alerts:
            errors[name] = " / ".join(alerts)
        if holder.get_attribute("data-test-viz-type") == "big_number_total":
            lines = holder.find_elements(By.CSS_SELECTOR, ".header-line")
            big[name] = lines[0].text if lines else ""
    return DashboardLoad(seconds=seconds, charts=charts, errors=errors, big_numbers=big)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from airlake.catalog.trino import query
    from airlake.settings import load_settings

    settings = load_settings({"profile": "local"})
    s = settings.stack
    base = f"http://{s.host}:{s.superset.port}"
    user = args.user
    password = str(settings.require(f"stack.superset.{user}_password"))
    username = settings.require(f"stack.superset.{user}_user")
    orders = query(settings, "SELECT count(*) FROM iceberg.raw.orders", timeout=300)[0][0]
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "order_events": orders,
        "user": username,
        "repeat": args.repeat,
        "dashboards": {},
    }
    for slug, charts in DASHBOARDS.items():
        cold, warm, errors = [], [], {}
        for _ in range(args.repeat):
            driver = chrome()
            try:
                login(driver, base, username, password)
                load = open_dashboard(driver, base, slug, charts, force=True)
                cold.append(load.seconds)
                errors.update(load.errors)
                load = open_dashboard(driver, base, slug, charts)
                warm.append(load.seconds)
                errors.update(load.errors)
            finally:
                driver.quit()
        result["dashboards"][slug] = {"cold_s": cold, "warm_s": warm, "chart_errors": errors}
    return result


def report(result: dict[str, Any]) -> None:
    print(f"\n{result['order_events']:,} order events in the lake; {result['repeat']} loads each as {result['user']}")
    print(f"{'dashboard':<12} {'cold p50':>9} {'cold max':>9} {'warm p50':>9} {'warm max':>9}  chart errors")
    for slug, figures in result["dashboards"].items():
        cold, warm = figures["cold_s"], figures["warm_s"]
        print(
            f"{slug:<12} {statistics.median(cold):8.2f}s {max(cold):8.2f}s {statistics.median(warm):8.2f}s"
            f" {max(warm):8.2f}s  {len(figures['chart_errors'])}"
        )
    ceo = statistics.median(result["dashboards"]["ceo"]["warm_s"])
    verdict = "met" if ceo <= TARGET_WARM_S else "missed"
    print(f"target: the CEO dashboard within {TARGET_WARM_S:.0f} s warm: {verdict} ({ceo:.2f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airlake.bench.dashboards", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cold and warm loads of each dashboard")
    parser.add_argument("--user", choices=("admin", "analyst", "executive"), default="executive")
    args = parser.parse_args(argv)
    result = benchmark(args)
    report(result)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"dashboards-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
