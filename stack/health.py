"""Health checks, one per service: each returns ``(healthy, detail)`` and never raises."""

from __future__ import annotations

import socket
from collections.abc import Callable

import requests

from airlake.catalog import trino
from airlake.stack.layout import Layout

Check = Callable[[Layout], tuple[bool, str]]
TIMEOUT = 5.0


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _host(layout: Layout) -> str:
    return layout.settings.stack.host


def check_postgres(layout: Layout) -> tuple[bool, str]:
    """Logs in as the catalog user over TCP and runs ``SELECT 1`` in the catalog database."""
    s = layout.settings
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - pinned in setup.cfg
        return False, "psycopg2 is missing: pip install psycopg2-binary"
    try:
        conn = psycopg2.connect(
            host=_host(layout),
            port=s.stack.postgres.port,
            user=s.stack.postgres.user,
            password=s.require("stack.postgres.password"),
            dbname=s.stack.postgres.catalog_db,
            connect_timeout=int(TIMEOUT),
        )
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
        return False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version()")
            (version,) = cur.fetchone()
        return True, version.split(" on ")[0]
    except Exception as exc:  # noqa: BLE001
        return False, str(exc)
    finally:
        conn.close()


def s3_filesystem(layout: Layout, *, allow_bucket_creation: bool = False):
    """A pyarrow S3 filesystem on the stack's S3 endpoint (any S3 server works by config)."""
    from pyarrow import fs

    s = layout.settings
    return fs.S3FileSystem(
        access_key=s.require("stack.s3.access_key"),
        secret_key=s.require("stack.s3.secret_key"),
        endpoint_override=f"http://{_host(layout)}:{s.stack.seaweedfs.s3_port}",
        region=s.stack.s3.region,
        scheme="http",
        force_virtual_addressing=False,
        allow_bucket_creation=allow_bucket_creation,
        connect_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )


def check_s3(layout: Layout) -> tuple[bool, str]:
    """The S3 endpoint answers a signed request and the lake bucket exists."""
    from pyarrow import fs

    port = layout.settings.stack.seaweedfs.s3_port
    if not port_open(_host(layout), port):
        return False, f"nothing listens on {_host(layout)}:{port}"
    bucket = layout.settings.stack.s3.bucket
    try:
        info = s3_filesystem(layout).get_file_info(bucket)
    except Exception as exc:  # noqa: BLE001
        return False, str(exc).splitlines()[0]
    if info.type != fs.FileType.Directory:
        return False, f"bucket {bucket} does not exist yet"
    return True, f"bucket {bucket}"


def check_ferretdb(layout: Layout) -> tuple[bool, str]:
    """A MongoDB ``ping`` through pymongo."""
    import pymongo

    port = layout.settings.stack.ferretdb.port
    client = pymongo.MongoClient(
        f"mongodb://{_host(layout)}:{port}/", serverSelectionTimeoutMS=int(TIMEOUT * 1000), connectTimeoutMS=2000
    )
    try:
        client.admin.command("ping")
        info = client.server_info()
        return True, f"MongoDB protocol {info.get('version', '?')}"
    except Exception as exc:  # noqa: BLE001
        return False, str(exc).split(",")[0]
    finally:
        client.close()


def trino_query(layout: Layout, sql: str, *, user: str = "airlake", timeout: float = 30.0) -> list[list]:
    """Runs one statement through :mod:`airlake.catalog.trino` and returns its rows.

    Raises:
        TrinoError: (a RuntimeError) Trino could not be reached, answered with an error, or ran out of time.
    """
    return trino.query(layout.settings, sql, user=user, timeout=timeout)


def check_trino(layout: Layout) -> tuple[bool, str]:
    """``/v1/info`` says the server has started, and ``SELECT 1`` answers."""
    base = f"http://{_host(layout)}:{layout.settings.stack.trino.port}"
    try:
        info = requests.get(f"{base}/v1/info", timeout=TIMEOUT).json()
    except (requests.RequestException, ValueError) as exc:
        return False, type(exc).__name__
    if info.get("starting", True):
        return False, "starting"
    try:
        rows = trino_query(layout, "SELECT 1", timeout=15.0)
    except (requests.RequestException, RuntimeError, ValueError) as exc:
        return False, f"query failed: {exc}"
    if rows != [[1]]:
        return False, f"SELECT 1 returned {rows!r}"
    return True, f"Trino {info.get('nodeVersion', {}).get('version', '?')}"


def check_superset(layout: Layout) -> tuple[bool, str]:
    """``/health`` answers OK."""
    url = f"http://{_host(layout)}:{layout.settings.stack.superset.port}/health"
    try:
        resp = requests.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return False, type(exc).__name__
    if resp.status_code == 200 and resp.text.strip() == "OK":
        return True, "OK"
    return False, f"HTTP {resp.status_code}"


CHECKS: dict[str, Check] = {
    "postgres": check_postgres,
    "seaweedfs": check_s3,
    "ferretdb": check_ferretdb,
    "trino": check_trino,
    "superset": check_superset,
}
