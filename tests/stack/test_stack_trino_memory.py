"""Trino's query memory follows the heap the settings give it (a lake of ten million events needs more than 768 MB)."""

from __future__ import annotations

import pytest

from airlake.settings import ConfigError
from airlake.stack.services import trino_query_memory


def test_query_memory_follows_the_heap():
    assert trino_query_memory("2G") == ("768MB", "1024MB")  # the limits the stack had before
    assert trino_query_memory("6G") == ("2304MB", "3072MB")
    assert trino_query_memory("1536m") == ("576MB", "768MB")


@pytest.mark.parametrize("heap", ["", "2", "2GB", "lots", "-1G"])
def test_a_heap_that_is_not_a_size_is_a_clear_error(heap):
    with pytest.raises(ConfigError, match="stack.trino.heap"):
        trino_query_memory(heap)
