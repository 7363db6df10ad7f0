"""Superset's dashboards as code: the YAML bundle in ``superset/`` imported into the stack's Superset (with the
roles and users), checked chart by chart through Superset's chart data API, exported back, and screenshotted.

The work inside Superset runs in its own interpreter (``stack/superset/airlake_dashboards.py``, in the app
context); the checks go through Superset's REST API over HTTP, as a browser would. May import the settings and the
rest of the stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from airlake.stack.credentials import write_private
from airlake.stack.layout import STACK_DIR, Layout
from airlake.stack.services import port, superset_environment, superset_trino_uri

BUNDLE_DIR = Path(str(resources.files("airlake.superset_bundle")))
"""The committed bundle (``superset/`` of the checkout, shipped in the wheel as ``airlake.superset_bundle``)."""
SCRIPT = STACK_DIR / "superset" / "airlake_dashboards.py"
STAMP = "dashboards-imported"
"""The file in Superset's state folder holding the fingerprint of the last import ``stack up`` made."""


class DashboardsError(RuntimeError):
    """An import, check, export or screenshot failed; the message says which object and why."""


@dataclass
class ImportResult:
    """What an import loaded and granted, and the charts whose data failed (empty when all answered)."""

    charts: list[dict[str, Any]]
    dashboards: list[dict[str, Any]]
    users: list[dict[str, Any]]
    failed_charts: list[str] = field(default_factory=list)


def users(layout: Layout) -> list[dict[str, str]]:
    """The analyst and executive users of the settings, with their passwords and roles."""
    s = layout.settings.stack.superset
    return [
        {
            "username": s.analyst_user,
            "password": str(layout.settings.require("stack.superset.analyst_password")),
            "role": "analyst",
        },
        {
            "username": s.executive_user,
            "password": str(layout.settings.require("stack.superset.executive_password")),
            "role": "executive",
        },
    ]


def base_url(layout: Layout) -> str:
    s = layout.settings
    return f"http://{s.stack.host}:{port(layout, 'superset')}"


def _run_script(layout: Layout, *args: str, timeout: float = 600) -> dict[str, Any]:
    s = layout.settings
    env = {
        **os.environ,
        **superset_environment(layout),
        "AIRLAKE_SUPERSET_ADMIN": s.stack.superset.admin_user,
        "AIRLAKE_SUPERSET_TRINO_URI": superset_trino_uri(layout),
        "AIRLAKE_SUPERSET_USERS": json.dumps(users(layout)),
        "AIRLAKE_SUPERSET_URL": base_url(layout) + "/",
    }
    python = str(layout.superset_venv / "bin" / "python")
    proc = subprocess.run(
        [python, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=layout.state
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        errors = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        # Superset logs plenty on stderr; the script's own message is what it printed last.
        raise DashboardsError("\n".join(errors[-12:]) or f"exit {proc.returncode}")
    return json.loads(lines[-1])


def fingerprint(layout: Layout, bundle: Path) -> str:
    """Changes when a file of the bundle, the script, a user or the Trino URI changes."""
    digest = hashlib.sha256()
    for path in sorted(bundle.rglob("*.yaml")) + [SCRIPT]:
        digest.update(path.as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps(users(layout)).encode())
    digest.update(superset_trino_uri(layout).encode())
    return digest.hexdigest()


def import_bundle(layout: Layout, bundle: Path | None = None, *, check: bool = True) -> ImportResult:
    """Imports the bundle (every object overwritten by UUID), grants the roles and users, then checks each chart.

    Args:
        layout: the stack.
        bundle: the bundle's folder (the committed ``superset/`` by default).
        check: ask Superset for every imported chart's data (its saved query context, on Trino); needs the stack
            running and the dbt models built (``airlake sql apply``).

    Raises:
        DashboardsError: the bundle is invalid or the import failed (Superset's message).
    """
    bundle = Path(bundle or BUNDLE_DIR)
    if not (bundle / "metadata.yaml").is_file():
        raise DashboardsError(f"{bundle} holds no metadata.yaml: not a Superset bundle")
    done = _run_script(layout, "import", str(bundle.resolve()))
    result = ImportResult(charts=done["charts"], dashboards=done["dashboards"], users=done["users"])
    if check:
        result.failed_charts = check_charts(layout, result.charts)
    return result


def import_if_changed(layout: Layout) -> bool:
    """``stack up``'s import: only when the bundle, a user or Trino's URI changed since the last one; no chart check
    (the dbt models may not be built yet). Returns whether it imported."""
    stamp = layout.data("superset") / STAMP
    current = fingerprint(layout, BUNDLE_DIR)
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == current:
        return False
    import_bundle(layout, check=False)
    write_private(stamp, current + "\n")
    return True


def login(layout: Layout, username: str, password: str):  # -> requests.Session
    """A session on Superset's REST API, logged in with a token and carrying the CSRF token."""
    import requests

    base = base_url(layout)
    session = requests.Session()
    answer = session.post(
        f"{base}/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": True},
        timeout=60,
    )
    if answer.status_code != 200:
        raise DashboardsError(f"Superset refused the login of {username}: {answer.status_code} {answer.text[:200]}")
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    csrf = session.get(f"{base}/api/v1/security/csrf_token/", timeout=60)
    session.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": base})
    return session


def admin_session(layout: Layout):
    s = layout.settings
    return login(layout, s.stack.superset.admin_user, str(s.require("stack.superset.admin_password")))


def chart_data(session, layout: Layout, chart_id: int, *, force: bool = True) -> dict[str, Any]:
    """The chart's data from its saved query context (``GET /api/v1/chart/{id}/data/``), as Superset answers."""
    answer = session.get(
        f"{base_url(layout)}/api/v1/chart/{chart_id}/data/", params={"force": "true" if force else ""}, timeout=300
    )
    try:
        body = answer.json()
    except ValueError:
        body = {"message": answer.text[:300]}
    body["status_code"] = answer.status_code
    return body


def _chart_error(body: dict[str, Any]) -> str | None:
    if body["status_code"] != 200:
        message = body.get("message") or body.get("errors") or body
        if isinstance(message, list):
            message = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in message)
        return f"HTTP {body['status_code']}: {message}"
    for query in body.get("result", []):
        if query.get("error") or query.get("status") == "failed":
            return str(query.get("error") or query.get("status"))
    return None


def check_charts(layout: Layout, charts: list[dict[str, Any]]) -> list[str]:
    """Asks Superset for each chart's data; returns ``chart 'NAME' (dataset D): why`` for every chart that failed."""
    session = admin_session(layout)
    failed = []
    for chart in sorted(charts, key=lambda c: c["name"]):
        error = _chart_error(chart_data(session, layout, chart["id"]))
        if error:
            failed.append(f"chart {chart['name']!r} (dataset {chart['dataset']}): {' '.join(error.split())[:400]}")
    return failed


def export_bundle(layout: Layout, bundle: Path | None = None) -> list[str]:
    """Writes every dashboard of the running Superset, with its charts, datasets and database, into the bundle.

    Returns:
        The files written (relative to the bundle), those that changed or are new.
    """
    bundle = Path(bundle or BUNDLE_DIR)
    bundle.mkdir(parents=True, exist_ok=True)
    return list(_run_script(layout, "export", str(bundle.resolve()))["written"])


def screenshot(layout: Layout, slug: str, out: Path, *, width: int = 1600, height: int = 1400) -> int:
    """Superset's own screenshot of a dashboard (Selenium with Debian's Chromium); returns the PNG's bytes."""
    return int(_run_script(layout, "screenshot", slug, str(Path(out).resolve()), str(width), str(height))["bytes"])
