"""Dashboard load time in a real browser, cold and warm, and the browser helpers the stack tests share with it.

Debian's Chromium driven by Selenium (a dev dependency).

``airlake stack install`` installs ``chromium`` and ``chromium-driver`` (apt); ``playwright install`` can't download
here. Superset's front end calls an external telemetry pixel: that failure is not a chart error and is ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

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


def open_dashboard(driver, base: str, slug: str, expected_charts: int, timeout: float = 180) -> DashboardLoad:
    """Opens a dashboard and waits until ``expected_charts`` charts are on the page and none is loading."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    driver.get(f"{base}/superset/dashboard/{slug}/")

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
