"""Benchmarks of airlake against the obvious alternatives (``python -m airlake.bench.ingest``; see
docs/benchmarks.md). A tool on top of the layers: may import every airlake package (docs/architecture.md).
"""
