"""Benchmarks of airlake against the obvious alternatives (``python -m bench.ingest``; see docs/benchmarks.md)."""
