"""``airlake stack up``: start the native stack under its own supervisord and wait until every service is healthy.

Idempotent: a running supervisord is reused (its configuration updated when ports or credentials changed),
services already running are left alone, and first-start steps run only once. Every ``up`` makes sure the lake's
namespaces and tables exist (as ``airlake lake init``), so Trino and Superset answer before the first event; Superset's dashboards, roles and users are imported from
``superset/`` whenever that folder (or a user) changed since the last import.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

from airlake.catalog import ensure_state_dir
from airlake.settings import ConfigError, Settings
from airlake.stack import bootstrap, dashboards, supervisor
from airlake.stack.components import is_installed
from airlake.stack.credentials import with_credentials
from airlake.stack.health import CHECKS, port_open
from airlake.stack.layout import SERVICES, Layout
from airlake.stack.services import enable_mongodb_catalog, port, programs, render_trino_etc

LOG_TAIL_LINES = 25


class UpError(RuntimeError):
    """The stack did not come up; the message names the service and carries its log tail."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, help="seconds to wait for all services (default: stack.up_timeout)")


def tail(path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log yet)"
    return "\n".join(data.splitlines()[-lines:])


def missing_components(layout: Layout) -> list[str]:
    from airlake.stack.layout import find_postgres_bindir

    missing = [] if find_postgres_bindir() else ["postgres"]
    homes = {
        "seaweedfs": layout.seaweedfs_home,
        "ferretdb": layout.ferretdb_home,
        "trino": layout.trino_home,
        "superset": layout.superset_home,
    }
    missing += [name for name, home in homes.items() if not is_installed(home)]
    return missing


def _fail(layout: Layout, service: str, reason: str) -> UpError:
    return UpError(
        f"{service} is not healthy: {reason}\n--- last lines of {layout.log(service)} ---\n{tail(layout.log(service))}"
    )


def wait_healthy(
    layout: Layout, services: list[str], deadline: float, out: Callable[[str], None], started: float
) -> None:
    """Polls the health checks until all ``services`` pass; raises :class:`UpError` at the deadline."""
    pending = list(services)
    last: dict[str, str] = {}
    next_report = time.monotonic() + 10
    while pending:
        for name in list(pending):
            ok, detail = CHECKS[name](layout)
            last[name] = detail
            if ok:
                pending.remove(name)
                out(f"  {name:<10} healthy  {time.monotonic() - started:5.1f} s  ({detail})")
        if not pending:
            return
        now = time.monotonic()
        if now > deadline:
            raise _fail(layout, pending[0], last.get(pending[0], "no answer"))
        info = supervisor.process_info(layout)
        for name in pending:
            state = info.get(name, {}).get("statename")
            if state in ("FATAL", "BACKOFF") and info[name].get("spawnerr"):
                raise _fail(layout, name, f"supervisord reports {state}: {info[name]['spawnerr']}")
            if state == "FATAL":
                raise _fail(layout, name, "supervisord gave up restarting it (FATAL)")
        if now >= next_report:
            waiting = ", ".join(f"{n} ({last.get(n, '...')})" for n in pending)
            out(f"  ... {now - started:5.1f} s, waiting for {waiting}")
            next_report = now + 10
        time.sleep(1.0)


PORT_SETTINGS = {
    "postgres": ["stack.postgres.port"],
    "seaweedfs": [
        "stack.seaweedfs.s3_port",
        "stack.seaweedfs.master_port",
        "stack.seaweedfs.volume_port",
        "stack.seaweedfs.filer_port",
        "stack.seaweedfs.admin_port",
    ],
    "ferretdb": ["stack.ferretdb.port"],
    "trino": ["stack.trino.port"],
    "superset": ["stack.superset.port"],
}


def check_ports_free(layout: Layout) -> None:
    """Before starting a service that is not running, its ports must be free: name the setting when one is not."""
    info = supervisor.process_info(layout)
    host = layout.settings.stack.host
    for service, keys in PORT_SETTINGS.items():
        if info.get(service, {}).get("statename") in ("RUNNING", "STARTING", "BACKOFF"):
            continue
        for key in keys:
            number = int(layout.settings.require(key))
            if port_open(host, number, timeout=0.3):
                name = "AIRLAKE__" + key.replace(".", "__").upper()
                raise UpError(
                    f"{service}: port {host}:{number} is already in use by another process; "
                    f"choose another with {name} (in .env or airlake.toml)"
                )


def bring_up(layout: Layout, timeout: float, out: Callable[[str], None] = print) -> float:
    """Starts everything and waits; returns the seconds it took.

    Raises:
        UpError: a service is not healthy within ``timeout``, or a first-start step failed.
    """
    started = time.monotonic()
    deadline = started + timeout
    missing = missing_components(layout)
    if missing:
        raise UpError(f"not installed: {', '.join(missing)}; run `airlake stack install` first")
    ensure_state_dir(layout.settings.state_dir)
    layout.state.mkdir(parents=True, exist_ok=True)
    layout.state.chmod(0o755)
    for name in SERVICES:
        layout.data(name).mkdir(parents=True, exist_ok=True)
    bootstrap.prepare_postgres(layout)
    bootstrap.write_s3_identities(layout)
    catalogs = render_trino_etc(layout)
    progs = programs(layout)
    changed = supervisor.write_conf(layout, progs)
    if supervisor.is_running(layout):
        if changed:
            replaced = supervisor.update(layout)
            out(f"  supervisord updated its configuration (restarting: {', '.join(replaced) or 'none'})")
        else:
            out("  supervisord already running")
    else:
        supervisor.start(layout)
        out(f"  supervisord started (pid {supervisor.supervisord_pid(layout)}, {layout.supervisord_conf})")

    check_ports_free(layout)
    supervisor.start_program(layout, "postgres")
    try:
        bootstrap.wait_postgres_socket(layout, timeout=max(5.0, deadline - time.monotonic()))
        bootstrap.setup_postgres(layout)
    except bootstrap.BootstrapError as exc:
        raise _fail(layout, "postgres", str(exc)) from exc
    wait_healthy(layout, ["postgres"], deadline, out, started)
    # Before Trino starts: its JDBC catalog fails every query while pyiceberg's catalog tables are missing.
    try:
        lake = bootstrap.open_lake_catalog(layout)
    except bootstrap.BootstrapError as exc:
        raise _fail(layout, "postgres", str(exc)) from exc

    for name in ("seaweedfs", "ferretdb"):
        supervisor.start_program(layout, name)
    mongodb, why = enable_mongodb_catalog(layout)  # before Trino starts: it reads its catalogs once
    supervisor.start_program(layout, "trino")
    out(f"  trino catalogs: {', '.join([*catalogs, 'mongodb'] if mongodb else catalogs)}")
    out(f"  trino mongodb catalog: {'on' if mongodb else 'off'} ({why})")

    # Superset's first start migrates its metadata (slow): do it while Trino warms up.
    errors: list[BaseException] = []

    def superset_steps() -> None:
        try:
            if bootstrap.setup_superset(layout):
                out(
                    f"  superset   metadata, admin user and Trino connection ready  {time.monotonic() - started:5.1f} s"
                )
            supervisor.start_program(layout, "superset")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    worker = threading.Thread(target=superset_steps, name="superset-bootstrap", daemon=True)
    worker.start()
    wait_healthy(layout, ["seaweedfs"], deadline, out, started)
    bootstrap.ensure_bucket(layout)
    try:
        tables = bootstrap.init_lake(lake)
    except bootstrap.BootstrapError as exc:
        raise _fail(layout, "seaweedfs", str(exc)) from exc
    out(f"  lake       {len(tables)} tables ready ({', '.join(tables)})  {time.monotonic() - started:5.1f} s")
    wait_healthy(layout, ["ferretdb", "trino"], deadline, out, started)
    worker.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise _fail(layout, "superset", str(errors[0]))
    if worker.is_alive():
        raise _fail(layout, "superset", "its first-start steps (db upgrade, init) did not finish in time")
    # After Trino is healthy: importing the database asks Trino for its catalogs.
    try:
        if dashboards.import_if_changed(layout):
            out(
                f"  superset   dashboards, roles and users imported from superset/  {time.monotonic() - started:5.1f} s"
            )
    except dashboards.DashboardsError as exc:
        raise _fail(layout, "superset", f"importing superset/ failed: {exc}") from exc
    wait_healthy(layout, ["superset"], deadline, out, started)
    return time.monotonic() - started


def main(args: argparse.Namespace, settings: Settings) -> int:
    settings = with_credentials(settings, getattr(args, "config", None))
    layout = Layout.from_settings(settings)
    timeout = float(args.timeout if getattr(args, "timeout", None) else settings.stack.up_timeout)
    print(f"Starting the airlake stack in {layout.state} (timeout {timeout:.0f} s)", flush=True)
    try:
        took = bring_up(layout, timeout, out=lambda line: print(line, flush=True))
    except (UpError, bootstrap.BootstrapError, supervisor.SupervisorError, ConfigError, FileNotFoundError) as exc:
        print(f"airlake stack up: {exc}", file=sys.stderr)
        return 1
    s = settings
    host = s.stack.host
    print(f"All services healthy in {took:.1f} s:", flush=True)
    print(
        f"  PostgreSQL  {host}:{port(layout, 'postgres')}  (databases {s.stack.postgres.catalog_db}, "
        f"{s.stack.postgres.superset_db})"
    )
    print(f"  S3          http://{host}:{port(layout, 'seaweedfs')}  (bucket {s.stack.s3.bucket})")
    print(f"  MongoDB     mongodb://{host}:{port(layout, 'ferretdb')}/  (FerretDB)")
    print(f"  Trino       http://{host}:{port(layout, 'trino')}")
    print(
        f"  Superset    http://{host}:{port(layout, 'superset')}  (user {s.stack.superset.admin_user}, "
        f"password in .env as AIRLAKE__STACK__SUPERSET__ADMIN_PASSWORD)"
    )
    print(
        f"              dashboards /superset/dashboard/ceo/ and /operations/; users {s.stack.superset.analyst_user}"
        f" and {s.stack.superset.executive_user} (passwords in .env)"
    )
    return 0
