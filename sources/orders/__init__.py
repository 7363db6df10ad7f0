"""The order firehose; for now everything is in :mod:`sources.orders.generator` (being split into rooms)."""

from sources.orders.generator import *  # noqa: F403
