"""What produces data: SSE clients, the local firehoses and the event normalizers.

May import :mod:`airlake.settings` only, of airlake's packages (docs/architecture.md).
"""
