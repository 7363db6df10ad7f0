"""Queries through Trino, the serving engine over the same Iceberg catalog (one client, shared by the stack's
health check, the demo, the batch layer, ``airlake sql`` and maintenance).

Imports only :mod:`airlake.settings` (and the ``trino`` client, lazily).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airlake.settings import Settings

REQUEST_TIMEOUT = 5.0
"""Seconds each HTTP request of the client waits (a query's own run time is bounded by its ``timeout``)."""


class TrinoError(RuntimeError):
    """Trino could not be reached, answered with an error, or the query did not finish in time.

    ``str()`` is Trino's own message (for a query error) or the connection problem.
    """


@dataclass
class Result:
    """The columns and rows of one statement."""

    columns: list[str]
    rows: list[list[Any]]


def connect(
    settings: Settings,
    *,
    user: str = "airlake",
    timeout: float = 30.0,
    catalog: str | None = None,
    schema: str | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
) -> Any:
    """A ``trino.dbapi`` connection to the stack's Trino; queries may run ``timeout`` seconds, queueing included."""
    import trino.dbapi

    return trino.dbapi.connect(
        host=settings.stack.host,
        port=settings.stack.trino.port,
        user=user,
        catalog=catalog,
        schema=schema,
        session_properties={"query_max_run_time": f"{timeout:g}s"},
        max_attempts=1,
        request_timeout=request_timeout,
    )


def run(settings: Settings, sql: str, *, user: str = "airlake", timeout: float = 30.0) -> Result:
    """Runs one statement and returns its columns and rows.

    Raises:
        TrinoError: Trino could not be reached, answered with an error, or the query ran out of time.
    """
    import trino.exceptions

    conn = connect(settings, user=user, timeout=timeout)
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        rows = [list(row) for row in cursor.fetchall()]
        columns = [col[0] for col in cursor.description or []]
        return Result(columns, rows)
    except trino.exceptions.TrinoQueryError as exc:
        raise TrinoError(exc.message) from exc
    except (trino.exceptions.Error, trino.exceptions.HttpError) as exc:
        raise TrinoError(str(exc) or type(exc).__name__) from exc
    except OSError as exc:
        raise TrinoError(str(exc) or type(exc).__name__) from exc
    finally:
        conn.close()


def query(settings: Settings, sql: str, *, user: str = "airlake", timeout: float = 30.0) -> list[list[Any]]:
    """The rows of one statement (see :func:`run`)."""
    return run(settings, sql, user=user, timeout=timeout).rows
