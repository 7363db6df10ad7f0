"""One writer per lake: a lease in the catalog's own database, and fencing of every catalog commit by its epoch.

A file lock is not enough when the catalog is shared (PostgreSQL, reached from several hosts), so the lease is a row
of the table :data:`LEASE_TABLE` in the catalog's database, one row per writer name (``speed``, later ``backfill``):
holder, host, pid, epoch, heartbeat and expiry. It is taken by a conditional update (free or expired rows, or a row
whose holder was a process of this host that no longer exists: kill -9 need not wait for the expiry), renewed by a
heartbeat thread, and released on exit. Every expiry and heartbeat time is the *database's* clock, so a
writer whose own clock is far off neither steals a live lease nor keeps a dead one.

Taking a lease increments its epoch. While a :class:`Lease` is held, every transaction that the pyiceberg
``SqlCatalog`` commits through its engine (table commits, creations) first runs::

    UPDATE airlake_writer_leases SET commits = commits + 1 WHERE name = :name AND epoch = :epoch AND holder = :holder

in the same database transaction, and is rolled back when that touches no row: a writer whose lease was taken over
(a paused process that wakes up, the zombie writer of apache/iceberg#17551) has its commit refused, not applied.
The row lock taken by that update also orders a takeover strictly before or after a commit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

LEASE_TABLE = "airlake_writer_leases"
DEFAULT_TTL_SECONDS = 30.0


class LeaseError(RuntimeError):
    """The writer lease cannot be used (base class)."""


class LeaseHeld(LeaseError):
    """Another process holds the lease; ``holder`` describes it."""

    def __init__(self, name: str, holder: LeaseInfo):
        self.name, self.holder = name, holder
        super().__init__(
            f"the lake's {name!r} writer lease is held by {holder.describe()}; stop that writer first, "
            "or pass --wait to take over when it ends"
        )


class LeaseLost(LeaseError):
    """The lease was taken over by another writer: this process must stop writing."""


@dataclass(frozen=True)
class LeaseInfo:
    """A lease row as read from the database (``expires_in`` and ``heartbeat_age`` by the database's clock)."""

    name: str
    holder: str | None
    host: str | None
    pid: int | None
    epoch: int
    heartbeat_age: float | None
    expires_in: float | None
    commits: int

    def describe(self) -> str:
        if self.holder is None:
            return "nobody"
        age = f"{self.heartbeat_age:.1f} s ago" if self.heartbeat_age is not None else "never"
        left = f"expires in {max(0.0, self.expires_in or 0.0):.1f} s"
        return f"pid {self.pid} on host {self.host} (holder {self.holder}, epoch {self.epoch}, heartbeat {age}, {left})"


def _now_sql(engine: Engine) -> str:
    """An SQL expression for the database server's clock in epoch seconds."""
    if engine.dialect.name == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())"
    if engine.dialect.name == "sqlite":
        return "((julianday('now') - 2440587.5) * 86400.0)"
    raise LeaseError(f"the writer lease does not support {engine.dialect.name} catalogs (PostgreSQL or SQLite)")


def _alive(pid: int) -> bool:
    """Whether a process of this host with ``pid`` exists (a zombie of ours counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def engine_of(catalog: Catalog) -> Engine:
    """The SQLAlchemy engine of a pyiceberg SQL catalog."""
    engine = getattr(catalog, "engine", None)
    if engine is None:
        raise LeaseError(f"the writer lease needs a SQL catalog (PostgreSQL or SQLite), not {type(catalog).__name__}")
    return engine


def ensure_lease_table(engine: Engine) -> None:
    """Creates :data:`LEASE_TABLE` unless it exists (safe when several processes do it at once)."""
    from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table
    from sqlalchemy.exc import DBAPIError

    metadata = MetaData()
    Table(
        LEASE_TABLE,
        metadata,
        Column("name", String(255), primary_key=True),
        Column("holder", String(255), nullable=True),
        Column("host", String(255), nullable=True),
        Column("pid", Integer, nullable=True),
        Column("epoch", BigInteger, nullable=False, default=0),
        Column("acquired_at", Float, nullable=True),
        Column("heartbeat_at", Float, nullable=True),
        Column("expires_at", Float, nullable=False, default=0.0),
        Column("commits", BigInteger, nullable=False, default=0),
    )
    for attempt in range(3):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except DBAPIError:  # two processes created it at once: the loser's CREATE fails; the table is there
            if attempt == 2:
                raise
            time.sleep(0.1)


def clock_offset(engine: Engine) -> float:
    """Seconds the database server's clock is ahead of this host's (negative: behind), to a few milliseconds."""
    from sqlalchemy import text

    with engine.connect() as conn:
        before = time.time()
        server = float(conn.execute(text(f"SELECT {_now_sql(engine)}")).scalar_one())
        after = time.time()
    return server - (before + after) / 2


def read_lease(engine: Engine, name: str) -> LeaseInfo | None:
    """The lease row of writer ``name``, or None when nobody ever took it."""
    from sqlalchemy import text

    now = _now_sql(engine)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                f"SELECT holder, host, pid, epoch, {now} - heartbeat_at, expires_at - {now}, commits"
                f" FROM {LEASE_TABLE} WHERE name = :name"
            ),
            {"name": name},
        ).first()
    if row is None:
        return None
    holder, host, pid, epoch, age, left, commits = row
    return LeaseInfo(
        name,
        holder,
        host,
        pid,
        int(epoch),
        None if age is None else float(age),
        None if left is None else float(left),
        int(commits),
    )


class _Fences:
    """The held leases by engine, consulted by one SQLAlchemy ``before_commit`` hook for every Session."""

    def __init__(self) -> None:
        self._by_engine: weakref.WeakKeyDictionary[Any, Lease] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._installed = False

    def add(self, engine: Engine, lease: Lease) -> None:
        with self._lock:
            if not self._installed:
                from sqlalchemy import event
                from sqlalchemy.orm import Session

                event.listen(Session, "before_commit", self._before_commit)
                self._installed = True
            self._by_engine[engine] = lease

    def remove(self, engine: Engine, lease: Lease) -> None:
        with self._lock:
            if self._by_engine.get(engine) is lease:
                del self._by_engine[engine]

    def _before_commit(self, session: Any) -> None:
        try:
            bind = session.get_bind()
        except Exception:  # noqa: BLE001 - a session without a bind is not a catalog session
            return
        lease = self._by_engine.get(bind)
        if lease is not None:
            lease.fence(session)


_FENCES = _Fences()


class Lease:
    """The lease of writer ``name`` on the lake of ``catalog``; use :meth:`acquire`, then :meth:`release`.

    Args:
        catalog: a pyiceberg SQL catalog (its engine holds the lease table).
        name: the writer's name (one lease per writer name).
        ttl: seconds after the last heartbeat at which the lease expires and another writer may take it.
        heartbeat: seconds between renewals (default: a third of ``ttl``).
    """

    def __init__(
        self, catalog: Catalog, name: str, *, ttl: float = DEFAULT_TTL_SECONDS, heartbeat: float | None = None
    ):
        if ttl <= 0:
            raise ValueError("the lease ttl must be positive")
        self.engine = engine_of(catalog)
        self.name = name
        self.ttl = float(ttl)
        self.heartbeat = float(heartbeat) if heartbeat else self.ttl / 3.0
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.epoch: int | None = None
        self.lost = threading.Event()
        self.lost_reason = ""
        self.fence_seconds = 0.0
        self.fences = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._now = _now_sql(self.engine)
        self._row_ready = False

    _OURS = "name = :n AND epoch = :epoch AND holder = :holder"
    """The lease row while this process holds it (its epoch and holder)."""

    def _ours(self, **extra: Any) -> dict[str, Any]:
        """The parameters of :data:`_OURS`, and ``extra``."""
        return {"n": self.name, "epoch": self.epoch, "holder": self.holder, **extra}

    def _ensure_row(self) -> None:
        """Creates the lease table and this writer's row, once per :class:`Lease` (safe when two processes race)."""
        from sqlalchemy import text
        from sqlalchemy.exc import IntegrityError

        if self._row_ready:
            return
        ensure_lease_table(self.engine)
        try:
            with self.engine.begin() as conn:
                exists = conn.execute(text(f"SELECT 1 FROM {LEASE_TABLE} WHERE name = :n"), {"n": self.name}).first()
                if exists is None:
                    conn.execute(
                        text(f"INSERT INTO {LEASE_TABLE} (name, epoch, expires_at, commits) VALUES (:n, 0, 0, 0)"),
                        {"n": self.name},
                    )
        except IntegrityError:
            pass  # another process inserted the row first
        self._row_ready = True

    # ----- taking and giving back ----------------------------------------------------------------------------
    def try_acquire(self) -> bool:
        """Takes the lease if it is free, expired, or held by a process of this host that is gone (kill -9).

        Returns:
            whether this process holds the lease now.
        """
        self._ensure_row()
        if self._try_update(f"(holder IS NULL OR expires_at < {self._now})", {}):
            return True
        info = read_lease(self.engine, self.name)
        if info is None or info.holder is None or info.host != socket.gethostname() or not info.pid:
            return False
        if _alive(info.pid):
            return False
        log.warning(
            "the %r writer lease is held by pid %d on this host, which is gone: taking it over", self.name, info.pid
        )
        return self._try_update(
            "epoch = :seen_epoch AND holder = :seen_holder", {"seen_epoch": info.epoch, "seen_holder": info.holder}
        )

    def _try_update(self, condition: str, params: dict[str, Any]) -> bool:
        """Takes the lease where ``condition`` holds on its row."""
        from sqlalchemy import text

        with self.engine.begin() as conn:
            taken = conn.execute(
                text(
                    f"UPDATE {LEASE_TABLE} SET holder = :holder, host = :host, pid = :pid, epoch = epoch + 1,"
                    f" acquired_at = {self._now}, heartbeat_at = {self._now}, expires_at = {self._now} + :ttl"
                    f" WHERE name = :n AND {condition}"
                ),
                {
                    "holder": self.holder,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "ttl": self.ttl,
                    "n": self.name,
                    **params,
                },
            ).rowcount
            if taken != 1:
                return False
            epoch = conn.execute(
                text(f"SELECT epoch FROM {LEASE_TABLE} WHERE name = :n AND holder = :holder"),
                {"n": self.name, "holder": self.holder},
            ).scalar_one()
        self.epoch = int(epoch)
        self.lost.clear()
        _FENCES.add(self.engine, self)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        log.info("took the %r writer lease (epoch %d, ttl %.0f s) as %s", self.name, self.epoch, self.ttl, self.holder)
        return True

    def acquire(self, *, wait: bool = False, timeout: float | None = None, poll: float = 1.0) -> Lease:
        """Takes the lease; raises :class:`LeaseHeld` when another holder has it (after ``timeout`` with ``wait``)."""
        from sqlalchemy.exc import OperationalError

        deadline = None if timeout is None else time.monotonic() + timeout
        announced = False
        while True:
            try:
                if self.try_acquire():
                    return self
                info = read_lease(self.engine, self.name)
            except OperationalError as exc:  # the database is down or locked by another process's write
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    raise LeaseError(f"cannot take the {self.name!r} writer lease: {str(exc).splitlines()[0]}") from exc
                log.warning("the catalog database is not answering (%s); retrying", str(exc).splitlines()[0])
                time.sleep(poll)
                continue
            if info is None or info.holder is None:
                continue  # released in between: try again at once
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                raise LeaseHeld(self.name, info)
            if not announced:
                log.warning("waiting for the %r writer lease, held by %s", self.name, info.describe())
                announced = True
            time.sleep(min(poll, max(0.05, info.expires_in or poll)))

    def release(self) -> None:
        """Stops renewing and frees the lease (when it is still ours)."""
        from sqlalchemy import text

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        _FENCES.remove(self.engine, self)
        if self.epoch is None:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    text(f"UPDATE {LEASE_TABLE} SET holder = NULL, expires_at = 0 WHERE {self._OURS}"),
                    self._ours(),
                )
        except Exception as exc:  # noqa: BLE001 - the lease then expires by itself
            log.warning("could not release the %r writer lease (%s); it expires in %.0f s", self.name, exc, self.ttl)
        self.epoch = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ----- keeping it --------------------------------------------------------------------------------------
    def renew(self) -> bool:
        """Extends the lease by ``ttl``; returns False (and sets :attr:`lost`) when another writer has taken it."""
        from sqlalchemy import text

        with self.engine.begin() as conn:
            renewed = conn.execute(
                text(
                    f"UPDATE {LEASE_TABLE} SET heartbeat_at = {self._now}, expires_at = {self._now} + :ttl"
                    f" WHERE {self._OURS}"
                ),
                self._ours(ttl=self.ttl),
            ).rowcount
        if renewed != 1:
            self._mark_lost("its heartbeat found it taken over")
            return False
        return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                if not self.renew():
                    return
            except Exception as exc:  # noqa: BLE001 - the database may be back before the lease expires
                log.warning(
                    "renewing the %r writer lease failed (%s: %s); retrying", self.name, type(exc).__name__, exc
                )

    def _mark_lost(self, how: str) -> None:
        if self.lost.is_set():
            return
        info = None
        with contextlib.suppress(Exception):
            info = read_lease(self.engine, self.name)
        now_held_by = info.describe() if info is not None else "another writer"
        self.lost_reason = (
            f"the {self.name!r} writer lease of epoch {self.epoch} was lost ({how}); it is now held by {now_held_by}"
        )
        self.lost.set()
        log.error("%s", self.lost_reason)

    def check(self) -> None:
        """Raises :class:`LeaseLost` when the heartbeat found the lease taken over."""
        if self.lost.is_set():
            raise LeaseLost(self.lost_reason)

    def fence(self, session: Any) -> None:
        """Runs inside every catalog transaction: refuses the commit unless this process still holds the lease."""
        from sqlalchemy import text

        started = time.perf_counter()
        touched = session.execute(
            text(f"UPDATE {LEASE_TABLE} SET commits = commits + 1 WHERE {self._OURS}"),
            self._ours(),
        ).rowcount
        self.fence_seconds += time.perf_counter() - started
        self.fences += 1
        if touched != 1:
            self._mark_lost("a commit was refused")
            raise LeaseLost(
                f"commit refused: this process no longer holds the {self.name!r} writer lease of epoch {self.epoch}"
                f" ({self.lost_reason or 'taken over by another writer'})"
            )
