"""Where the stack's downloads, builds and runtime state live, and the versions it pins."""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from airlake.settings import ConfigError, Settings

STACK_DIR = Path(__file__).resolve().parent
"""The committed files of the stack (this package)."""

TRINO_CATALOG_DIR = STACK_DIR / "trino" / "etc" / "catalog"
"""Trino's catalog files; the native stack and docker-compose.yml both use these very files."""

TRINO_ETC_TEMPLATES = STACK_DIR / "trino" / "etc"
SUPERSET_CONFIG = STACK_DIR / "superset" / "superset_config.py"
SUPERSET_BOOTSTRAP = STACK_DIR / "superset" / "airlake_bootstrap.py"
FERRETDB_SOURCE = STACK_DIR / "ferretdb"

TRINO_PLUGINS = ("iceberg", "mongodb", "memory", "tpch")
"""Trino plugins fetched beside the server core; a catalog file is loaded only when its plugin is installed."""

SUPERSET_EXTRAS = (
    "flask-caching==2.4.1",
    "rich==15.0.0",
    "cachetools==8.0.2",
    "trino[sqlalchemy]==0.340.0",
    "psycopg2-binary==2.9.13",
    "gunicorn==27.0.1",
)
"""Pinned additions to Superset's own environment (it fails at run time without the first three)."""

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
SERVICES = ("postgres", "seaweedfs", "ferretdb", "trino", "superset")
"""The services in start order."""


@dataclass(frozen=True)
class Layout:
    """Paths of the cache (downloads and builds) and of the runtime state of one stack."""

    cache: Path
    state: Path
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        cache = Path(os.path.expanduser(settings.stack.cache_dir)).resolve()
        return cls(cache=cache, state=settings.state_dir / "stack", settings=settings)

    def version(self, component: str) -> str:
        return str(getattr(self.settings.stack, component).version)

    # -- cache -------------------------------------------------------------------------------------
    @property
    def maven_repo(self) -> Path:
        return self.cache / "maven"

    @property
    def go_dir(self) -> Path:
        return self.cache / "go"

    @property
    def seaweedfs_home(self) -> Path:
        return self.cache / f"seaweedfs-{self.version('seaweedfs')}"

    @property
    def weed(self) -> Path:
        return self.seaweedfs_home / "venv" / "bin" / "weed"

    @property
    def ferretdb_home(self) -> Path:
        return self.cache / f"ferretdb-{self.version('ferretdb')}"

    @property
    def ferretdb_binary(self) -> Path:
        return self.ferretdb_home / "airlake-ferretdb"

    @property
    def trino_home(self) -> Path:
        return self.cache / f"trino-{self.version('trino')}"

    @property
    def superset_home(self) -> Path:
        return self.cache / f"superset-{self.version('superset')}"

    @property
    def superset_venv(self) -> Path:
        return self.superset_home / "venv"

    def installed_trino_plugins(self) -> list[str]:
        return [name for name in TRINO_PLUGINS if (self.trino_home / "plugin" / name).is_dir()]

    # -- state -------------------------------------------------------------------------------------
    @property
    def supervisord_conf(self) -> Path:
        return self.state / "supervisord.conf"

    @property
    def supervisord_sock(self) -> Path:
        return self.state / "supervisor.sock"

    @property
    def supervisord_pid(self) -> Path:
        return self.state / "supervisord.pid"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def data(self, service: str) -> Path:
        return self.state / service


def find_postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with ``initdb`` and ``pg_ctl``, or ``None``."""
    candidates = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        bindir = Path(path)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file() and (bindir / "postgres").is_file():
            try:
                candidates.append((int(bindir.parent.name), bindir))
            except ValueError:
                continue
    return max(candidates)[1] if candidates else None


def java_version(java_home: Path) -> int | None:
    release = java_home / "release"
    if not (java_home / "bin" / "java").is_file() or not release.is_file():
        return None
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("JAVA_VERSION="):
            value = line.partition("=")[2].strip().strip('"')
            head = value.split(".")[0]
            try:
                return int(head)
            except ValueError:
                return None
    return None


def find_java_home(settings: Settings, minimum: int = 24, root: Path = Path("/usr/lib/jvm")) -> Path:
    """A JDK for Trino: ``stack.trino.java_home`` if set, else the newest JDK >= ``minimum`` under ``root``.

    Raises:
        ConfigError: no JDK new enough was found; the message names what to install.
    """
    configured = settings.stack.trino.java_home
    if configured:
        home = Path(configured)
        version = java_version(home)
        if version is None or version < minimum:
            raise ConfigError(f"stack.trino.java_home={home} is not a JDK {minimum} or newer (found {version})")
        return home
    found = []
    for home in sorted(root.glob("*")):
        if home.is_symlink():
            continue
        version = java_version(home)
        if version is not None and version >= minimum:
            found.append((version, "temurin" in home.name, home))
    if not found:
        raise ConfigError(
            f"Trino needs a JDK {minimum} or newer and none was found under {root}: install one "
            f"(for example the Temurin JDK 25, package temurin-25-jdk) or set AIRLAKE__STACK__TRINO__JAVA_HOME"
        )
    return max(found)[2]


def which(name: str) -> str | None:
    return shutil.which(name)
