"""What each service of the native stack runs: command, environment, user, port.

The programs are rendered into ``supervisord.conf`` by :mod:`stack.supervisor`; their health checks are in
:mod:`stack.health`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from airlake.settings import ConfigError
from airlake.stack.layout import SUPERSET_CONFIG, TRINO_CATALOG_DIR, Layout, find_java_home, find_postgres_bindir

TRINO_ENV_VARS = (
    "TRINO_ICEBERG_JDBC_URL",
    "TRINO_ICEBERG_JDBC_USER",
    "TRINO_ICEBERG_JDBC_PASSWORD",
    "TRINO_ICEBERG_WAREHOUSE",
    "TRINO_S3_ENDPOINT",
    "TRINO_S3_REGION",
    "TRINO_S3_ACCESS_KEY",
    "TRINO_S3_SECRET_KEY",
    "TRINO_MONGODB_URL",
    "TRINO_FS_CACHE_DIR",
)
"""The variables that the committed catalog files read with ``${ENV:...}``."""


@dataclass
class Program:
    """One supervised process."""

    name: str
    command: list[str]
    port: int
    directory: Path
    environment: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 30
    startsecs: int = 3


def run_as_user() -> str | None:
    """The user that runs PostgreSQL: ``postgres`` when we are root (it refuses to run as root), else us."""
    return "postgres" if os.geteuid() == 0 else None


def host(layout: Layout) -> str:
    return layout.settings.stack.host


def port(layout: Layout, service: str) -> int:
    stack = layout.settings.stack
    return stack.seaweedfs.s3_port if service == "seaweedfs" else int(getattr(stack, service).port)


def trino_query_memory(heap: str) -> tuple[str, str]:
    """Trino's query memory limits from its JVM heap (``stack.trino.heap``, e.g. ``2G`` or ``1536M``): per node
    3/8 of the heap (2 GB gives Trino's usual 768 MB, the rest is headroom), per query half of it, in MB.

    Raises:
        ConfigError: the heap is not a size in M or G.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([MmGg])\s*", heap)
    if match is None:
        raise ConfigError(f"stack.trino.heap is {heap!r}: a size such as 2G or 1536M is expected")
    megabytes = int(match.group(1)) * (1024 if match.group(2) in "Gg" else 1)
    return f"{megabytes * 3 // 8}MB", f"{megabytes // 2}MB"


def postgres_socket_dir(layout: Layout) -> Path:
    return layout.data("postgres") / "run"


def postgres_data_dir(layout: Layout) -> Path:
    return layout.data("postgres") / "data"


def trino_environment(layout: Layout) -> dict[str, str]:
    s = layout.settings
    h = host(layout)
    return {
        "TRINO_ICEBERG_JDBC_URL": (f"jdbc:postgresql://{h}:{port(layout, 'postgres')}/{s.stack.postgres.catalog_db}"),
        "TRINO_ICEBERG_JDBC_USER": s.stack.postgres.user,
        "TRINO_ICEBERG_JDBC_PASSWORD": str(s.require("stack.postgres.password")),
        "TRINO_ICEBERG_WAREHOUSE": f"s3://{s.stack.s3.bucket}/warehouse",
        "TRINO_S3_ENDPOINT": f"http://{h}:{port(layout, 'seaweedfs')}",
        "TRINO_S3_REGION": s.stack.s3.region,
        "TRINO_S3_ACCESS_KEY": str(s.require("stack.s3.access_key")),
        "TRINO_S3_SECRET_KEY": str(s.require("stack.s3.secret_key")),
        "TRINO_MONGODB_URL": f"mongodb://{h}:{port(layout, 'ferretdb')}/",
        "TRINO_FS_CACHE_DIR": str(layout.data("trino") / "fs-cache"),
    }


def superset_environment(layout: Layout) -> dict[str, str]:
    s = layout.settings
    uri = (
        f"postgresql+psycopg2://{s.stack.postgres.superset_user}:"
        f"{s.require('stack.postgres.superset_password')}@{host(layout)}:{port(layout, 'postgres')}/"
        f"{s.stack.postgres.superset_db}"
    )
    return {
        "SUPERSET_CONFIG_PATH": str(SUPERSET_CONFIG),
        "SUPERSET_SECRET_KEY": str(s.require("stack.superset.secret_key")),
        "SUPERSET_DATABASE_URI": uri,
        "SUPERSET_HOME": str(layout.data("superset") / "home"),
        "FLASK_APP": "superset",
        "SUPERSET_WEBDRIVER_BASEURL": f"http://{host(layout)}:{port(layout, 'superset')}/",
        "PATH": f"{layout.superset_venv / 'bin'}:/usr/bin:/bin",
    }


def superset_trino_uri(layout: Layout) -> str:
    return f"trino://airlake@{host(layout)}:{port(layout, 'trino')}/iceberg"


def programs(layout: Layout) -> list[Program]:
    """The supervised programs of the stack, in start order."""
    s = layout.settings
    h = host(layout)
    pg_bin = find_postgres_bindir()
    if pg_bin is None:
        raise FileNotFoundError("PostgreSQL is not installed: run `airlake stack install`")
    sw = layout.data("seaweedfs")
    trino = layout.data("trino")
    java_home = find_java_home(s)
    return [
        Program(
            name="postgres",
            command=[
                str(pg_bin / "postgres"),
                "-D",
                str(postgres_data_dir(layout)),
                "-p",
                str(port(layout, "postgres")),
                "-c",
                f"listen_addresses={h}",
                "-c",
                f"unix_socket_directories={postgres_socket_dir(layout)}",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "max_connections=100",
            ],
            port=port(layout, "postgres"),
            directory=layout.data("postgres"),
            user=run_as_user(),
            stopsignal="INT",  # fast shutdown: roll back open transactions, do not wait for clients
        ),
        Program(
            name="seaweedfs",
            command=[
                str(layout.weed),
                "mini",
                f"-dir={sw / 'data'}",
                f"-ip={h}",
                f"-ip.bind={h}",
                "-master.telemetry=false",
                f"-s3.config={sw / 's3.json'}",
                f"-s3.port={port(layout, 'seaweedfs')}",
                f"-master.port={s.stack.seaweedfs.master_port}",
                f"-volume.port={s.stack.seaweedfs.volume_port}",
                f"-filer.port={s.stack.seaweedfs.filer_port}",
                f"-admin.port={s.stack.seaweedfs.admin_port}",
                f"-filer.localSocket={sw / 'filer.sock'}",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-bucket={s.stack.s3.bucket}",
            ],
            port=port(layout, "seaweedfs"),
            directory=sw,
        ),
        Program(
            name="ferretdb",
            command=[
                str(layout.ferretdb_binary),
                f"-listen-addr={h}:{port(layout, 'ferretdb')}",
                f"-sqlite-dir={layout.data('ferretdb') / 'data'}",
            ],
            port=port(layout, "ferretdb"),
            directory=layout.data("ferretdb"),
        ),
        Program(
            name="trino",
            command=[
                str(layout.trino_home / "bin" / "launcher"),
                "run",
                f"-etc-dir={trino / 'etc'}",
                f"-data-dir={trino / 'data'}",
                f"-jvm-dir={java_home}",
            ],
            port=port(layout, "trino"),
            directory=trino,
            environment={
                **trino_environment(layout),
                "JAVA_HOME": str(java_home),
                "PATH": f"{java_home / 'bin'}:/usr/bin:/bin",
            },
            stopwaitsecs=60,
            startsecs=5,
        ),
        Program(
            name="superset",
            command=[
                str(layout.superset_venv / "bin" / "gunicorn"),
                "--workers",
                str(s.stack.superset.workers),
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--bind",
                f"{h}:{port(layout, 'superset')}",
                "--timeout",
                "120",
                "superset.app:create_app()",
            ],
            port=port(layout, "superset"),
            directory=layout.data("superset"),
            environment=superset_environment(layout),
        ),
    ]


def trino_catalog_dir(layout: Layout) -> Path:
    """The catalog directory Trino reads: symlinks to the committed files whose plugin is installed."""
    return layout.data("trino") / "etc" / "catalog"


def render_trino_etc(layout: Layout) -> list[str]:
    """Writes Trino's etc directory into the state directory; returns the catalogs enabled.

    The catalog files themselves stay the committed ones (``stack/trino/etc/catalog``, also mounted by
    docker-compose.yml): the state directory only links to those whose plugin is installed.
    """
    from airlake.stack.layout import TRINO_ETC_TEMPLATES

    trino = layout.data("trino")
    etc = trino / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (trino / "data").mkdir(parents=True, exist_ok=True)
    values = {
        "@PORT@": str(port(layout, "trino")),
        "@HOST@": host(layout),
        "@CATALOG_DIR@": str(trino_catalog_dir(layout)),
        "@DATA_DIR@": str(trino / "data"),
        "@HEAP@": layout.settings.stack.trino.heap,
        **dict(
            zip(
                ("@QUERY_MAX_MEMORY_PER_NODE@", "@QUERY_MAX_MEMORY@"),
                trino_query_memory(layout.settings.stack.trino.heap),
                strict=True,
            )
        ),
    }
    for template in sorted(TRINO_ETC_TEMPLATES.glob("*.in")):
        text = template.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(key, value)
        (etc / template.name.removesuffix(".in")).write_text(text, encoding="utf-8")
    (etc / "log.properties").write_text(
        (TRINO_ETC_TEMPLATES / "log.properties").read_text(encoding="utf-8"), encoding="utf-8"
    )
    catalogs = trino_catalog_dir(layout)
    catalogs.mkdir(exist_ok=True)
    for old in catalogs.iterdir():
        old.unlink()
    plugins = set(layout.installed_trino_plugins())
    enabled = []
    for source in sorted(TRINO_CATALOG_DIR.glob("*.properties")):
        connector = _connector_name(source)
        if connector == MONGODB_CONNECTOR:
            continue  # only when the side store takes Trino's reads: enable_mongodb_catalog, once it runs
        if connector in plugins:
            (catalogs / source.name).symlink_to(source)
            enabled.append(source.stem)
    return enabled


MONGODB_CONNECTOR = "mongodb"


def enable_mongodb_catalog(layout: Layout) -> tuple[bool, str]:
    """Links the ``mongodb`` catalog when its plugin is installed and the running side store takes the reads of
    Trino's MongoDB connector (a ``find`` with ``collation``: MongoDB does, FerretDB 1.24 does not, error 238).

    Decided by the probe, not by the profile or the store's name. Returns whether it is enabled and why.
    """
    from airlake.lake.sidestore import mongo_uri, supports_collation

    ok, why = supports_collation(mongo_uri(layout.settings), timeout=30.0)
    if ok and MONGODB_CONNECTOR not in set(layout.installed_trino_plugins()):
        return False, f"{why}, but Trino's mongodb plugin is not installed"
    if ok:
        for source in TRINO_CATALOG_DIR.glob("*.properties"):
            if _connector_name(source) == MONGODB_CONNECTOR:
                link = trino_catalog_dir(layout) / source.name
                link.unlink(missing_ok=True)
                link.symlink_to(source)
    return ok, why


def _connector_name(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "connector.name":
            return value.strip()
    return ""
