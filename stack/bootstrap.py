"""First-start steps of the stack, each idempotent: PostgreSQL's cluster, roles and databases; the S3 identities
file and bucket; the lake's namespaces and tables; Superset's metadata, admin user and Trino connection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from airlake.stack.credentials import write_private
from airlake.stack.health import s3_filesystem
from airlake.stack.layout import SUPERSET_BOOTSTRAP, Layout, find_postgres_bindir
from airlake.stack.services import (
    port,
    postgres_data_dir,
    postgres_socket_dir,
    run_as_user,
    superset_environment,
    superset_trino_uri,
)

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


class BootstrapError(RuntimeError):
    """A first-start step failed; the message carries the command's output."""


def _as_service_user(cmd: list[str]) -> list[str]:
    user = run_as_user()
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _run(
    cmd: list[str], *, what: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 600
) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BootstrapError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _check_traversable(path: Path, user: str) -> None:
    """PostgreSQL runs as ``user``: every parent of its data directory must let that user through."""
    uid = pwd.getpwnam(user).pw_uid
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == uid:
            continue
        if not st.st_mode & 0o001:
            raise BootstrapError(
                f"PostgreSQL runs as {user!r}, which cannot enter {parent} (mode {oct(st.st_mode & 0o777)}): "
                f"choose a state directory that {user!r} can reach, or `chmod o+x {parent}`"
            )


def prepare_postgres(layout: Layout) -> None:
    """Creates the cluster on first start (``initdb``), owned by the user that runs the server."""
    bindir = find_postgres_bindir()
    if bindir is None:
        raise BootstrapError("PostgreSQL is not installed: run `airlake stack install`")
    root = layout.data("postgres")
    data, run = postgres_data_dir(layout), postgres_socket_dir(layout)
    user = run_as_user()
    for path in (root, run):
        path.mkdir(parents=True, exist_ok=True)
    if user:
        _check_traversable(root, user)
        pw = pwd.getpwnam(user)
        for path in (root, run):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    if (data / "PG_VERSION").is_file():
        return
    if data.exists():
        shutil.rmtree(data)  # a half-made cluster from an interrupted initdb
    data.mkdir(mode=0o700)
    if user:
        pw = pwd.getpwnam(user)
        os.chown(data, pw.pw_uid, pw.pw_gid)
    _run(
        _as_service_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                superuser(),
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--no-instructions",
            ]
        ),
        what="initdb",
    )


def superuser() -> str:
    """The cluster's superuser: the OS user that runs the server (peer authentication on the socket only)."""
    return run_as_user() or pwd.getpwuid(os.geteuid()).pw_name


def psql(layout: Layout, sql: str, *, db: str = "postgres") -> str:
    """Runs ``sql`` as the superuser over the unix socket; the SQL goes through stdin, never into argv."""
    bindir = find_postgres_bindir()
    assert bindir is not None
    cmd = [
        str(bindir / "psql"),
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(postgres_socket_dir(layout)),
        "-p",
        str(port(layout, "postgres")),
        "-U",
        superuser(),
        "-d",
        db,
        "-f",
        "-",
    ]
    return _run(_as_service_user(cmd), what="psql", stdin=sql).strip()


def scram_sha_256(password: str, *, iterations: int = 4096, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5803 format, as libpq computes it)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    salt64, stored64, server64 = (base64.b64encode(raw).decode("ascii") for raw in (salt, stored_key, server_key))
    return f"SCRAM-SHA-256${iterations}:{salt64}${stored64}:{server64}"


def wait_postgres_socket(layout: Layout, timeout: float = 60.0) -> None:
    bindir = find_postgres_bindir()
    assert bindir is not None
    cmd = [
        str(bindir / "pg_isready"),
        "-q",
        "-h",
        str(postgres_socket_dir(layout)),
        "-p",
        str(port(layout, "postgres")),
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return
        time.sleep(0.3)
    raise BootstrapError(f"PostgreSQL did not accept connections within {timeout} s")


def setup_postgres(layout: Layout) -> None:
    """Creates (or updates the passwords of) the catalog and Superset roles and their databases."""
    s = layout.settings
    pairs = [
        (
            s.stack.postgres.user,
            s.require("stack.postgres.password"),
            s.stack.postgres.catalog_db,
        ),
        (
            s.stack.postgres.superset_user,
            s.require("stack.postgres.superset_password"),
            s.stack.postgres.superset_db,
        ),
    ]
    for role, password, db in pairs:
        for what, value in (("role", role), ("password", password), ("database", db)):
            if not str(value).replace("_", "").isalnum():
                shown = "of the role " + str(role) if what == "password" else repr(value)
                raise BootstrapError(f"the {what} {shown}: roles, databases and passwords must be letters and digits")
        exists = psql(layout, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
        verb = "ALTER" if exists else "CREATE"
        # The server gets the SCRAM verifier, not the password (as psql's \password does): a statement that a
        # failure logs shows no secret.
        psql(layout, f"{verb} ROLE {role} WITH LOGIN PASSWORD '{scram_sha_256(str(password))}'")
        if not psql(layout, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
            psql(layout, f"CREATE DATABASE {db} OWNER {role}")


def write_s3_identities(layout: Layout) -> None:
    """SeaweedFS's S3 identities file with the generated key pair (mode 0600)."""
    s = layout.settings
    directory = layout.data("seaweedfs")
    (directory / "data").mkdir(parents=True, exist_ok=True)
    doc = {
        "identities": [
            {
                "name": "airlake",
                "credentials": [
                    {"accessKey": s.require("stack.s3.access_key"), "secretKey": s.require("stack.s3.secret_key")}
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    write_private(directory / "s3.json", json.dumps(doc, indent=2))


def ensure_bucket(layout: Layout) -> None:
    """Creates the lake bucket unless it exists (SeaweedFS's ``-bucket`` does it too; other S3 servers may not)."""
    from pyarrow import fs

    bucket = layout.settings.stack.s3.bucket
    s3 = s3_filesystem(layout, allow_bucket_creation=True)
    if s3.get_file_info(bucket).type != fs.FileType.Directory:
        s3.create_dir(bucket)


STACK_PROFILE = "local"
"""The profile whose catalog is this stack's (PostgreSQL JDBC catalog, data in the stack's S3 bucket)."""


def open_lake_catalog(layout: Layout) -> Catalog:
    """Loads the stack's pyiceberg catalog; pyiceberg creates its catalog tables in PostgreSQL (``iceberg_tables``,
    ``iceberg_namespace_properties``) on first use, which is what Trino's JDBC catalog needs to answer at all.

    Raises:
        BootstrapError: the catalog could not be opened.
    """
    from airlake.catalog import load_catalog

    try:
        return load_catalog(layout.settings, STACK_PROFILE)
    except Exception as exc:  # noqa: BLE001 - pyiceberg and SQLAlchemy raise many kinds
        raise BootstrapError(f"opening the lake's catalog in PostgreSQL failed: {exc}") from exc


def init_lake(catalog: Catalog) -> list[str]:
    """Creates the lake's namespaces and tables unless they exist (what ``airlake lake init`` does).

    Returns:
        The table identifiers.

    Raises:
        BootstrapError: a namespace or table could not be created.
    """
    from airlake.lake.tables import ensure_tables

    try:
        return list(ensure_tables(catalog))
    except Exception as exc:  # noqa: BLE001 - pyiceberg, SQLAlchemy and S3 errors alike
        raise BootstrapError(f"creating the lake's namespaces and tables failed: {exc}") from exc


def superset_fingerprint(layout: Layout) -> str:
    s = layout.settings
    parts = [
        layout.version("superset"),
        s.stack.superset.admin_user,
        str(s.require("stack.superset.admin_password")),
        superset_trino_uri(layout),
        superset_environment(layout)["SUPERSET_DATABASE_URI"],
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def setup_superset(layout: Layout) -> bool:
    """Migrates Superset's metadata, creates the admin user, initializes roles and registers Trino.

    Skipped when nothing changed since the last run (a fingerprint file in the state directory).

    Returns:
        Whether the steps ran.
    """
    s = layout.settings
    home = layout.data("superset")
    (home / "home").mkdir(parents=True, exist_ok=True)
    stamp = home / "bootstrapped"
    fingerprint = superset_fingerprint(layout)
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == fingerprint:
        return False
    env = {
        **os.environ,
        **superset_environment(layout),
        "AIRLAKE_SUPERSET_ADMIN": s.stack.superset.admin_user,
        "AIRLAKE_SUPERSET_ADMIN_PASSWORD": str(s.require("stack.superset.admin_password")),
        "AIRLAKE_SUPERSET_TRINO_URI": superset_trino_uri(layout),
    }
    python = str(layout.superset_venv / "bin" / "python")
    output = _run([python, str(SUPERSET_BOOTSTRAP)], env=env, what="Superset's first-start steps")
    write_private(home / "bootstrap.log", output)
    write_private(stamp, fingerprint + "\n")
    return True
