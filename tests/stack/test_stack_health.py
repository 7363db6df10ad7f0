"""The stack's Trino check without a Trino: a refused connection is the documented RuntimeError, and quickly.

The stack tests (``tests/stack``, marked ``stack``) run the same function against a real Trino.
"""

from __future__ import annotations

import socket
import time

import pytest

from airlake.settings import load_settings
from airlake.stack.health import check_trino, trino_query
from airlake.stack.layout import Layout


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_trino_query_with_nothing_listening_raises_runtime_error_quickly(tmp_path):
    env = {"AIRLAKE__STACK__HOST": "127.0.0.1", "AIRLAKE__STACK__TRINO__PORT": str(_closed_port())}
    layout = Layout.from_settings(load_settings(environ=env, cwd=tmp_path))
    started = time.monotonic()
    with pytest.raises(RuntimeError):
        trino_query(layout, "SELECT 1", timeout=10)
    assert time.monotonic() - started < 5.0
    healthy, detail = check_trino(layout)
    assert not healthy and detail
