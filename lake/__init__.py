"""What stores data: Iceberg table definitions, exactly-once commits, the writer lease and table statistics.

May import :mod:`airlake.settings`, :mod:`airlake.sources` and :mod:`airlake.catalog` (docs/architecture.md).
"""
