"""Superset of the native stack: healthy, the generated admin logs in, its Trino connection answers."""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = pytest.mark.stack


def test_superset_health_login_and_trino_query(stack):
    settings = stack.settings
    base = f"http://{settings.require('stack.host')}:{int(settings.require('stack.superset.port'))}"
    health = requests.get(f"{base}/health", timeout=10)
    assert health.status_code == 200 and health.text.strip() == "OK"

    session = requests.Session()
    login = session.post(
        f"{base}/api/v1/security/login",
        json={
            "username": settings.require("stack.superset.admin_user"),
            "password": settings.require("stack.superset.admin_password"),
            "provider": "db",
            "refresh": True,
        },
        timeout=30,
    )
    assert login.status_code == 200, login.text
    session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    csrf = session.get(f"{base}/api/v1/security/csrf_token/", timeout=30)
    assert csrf.status_code == 200, csrf.text
    session.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": base})

    dbs = session.get(f"{base}/api/v1/database/", timeout=30).json()["result"]
    (trino_db,) = [db for db in dbs if db["database_name"] == "trino"]
    assert trino_db["backend"] == "trino"

    run = session.post(
        f"{base}/api/v1/sqllab/execute/",
        json={
            "database_id": trino_db["id"],
            "sql": "SELECT count(*) AS nations FROM tpch.tiny.nation",
            "runAsync": False,
            "client_id": uuid.uuid4().hex[:10],
            "tab": "stack test",
        },
        timeout=120,
    )
    assert run.status_code == 200, run.text
    assert run.json()["data"] == [{"nations": 25}]
