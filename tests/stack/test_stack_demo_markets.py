"""Demand across markets: a 30-second ``airlake --profile local demo`` (the 2018 recordings and the wikiticker day
replayed side by side) places orders in at least six markets, each in proportion to its wikis' edits.

Both sides are measured from the lake through Trino: the edits in ``raw.recentchange`` and the ``placed`` events in
``raw.orders`` that this demo ingested (``ingested_at`` after it started), per market (wikis mapped by the
settings' ``markets.wikis``, the others to ``markets.default``) and minute of event time, over the minutes that both
tables hold completely (see :func:`complete_minutes`).

The tolerance (:func:`tolerance`): the generator draws the orders of a market and minute from a Poisson law whose
mean is ``firehose.orders_per_edit`` times the market's edits in that minute, so a market whose wikis made a share p
of the edits gets a share of the N orders of p, give or take one standard deviation sqrt(p(1-p)/N). A market passes
within 4 standard deviations of its wikis' share, and never less than 1 point: a chance failure is about 1 in 15,000
per market. With at least :data:`MIN_ORDERS` orders that is at most 4.5 points (p = 0.5); on this replay the largest
market (``new-york``, about 36% of the edits) gets about 3.5 points at 3,000 orders, the small ones about 1 point.
Measured on the first run: 3,239 orders in 15 markets, the largest difference 1.3 points (1.5 standard deviations).
A wrong mapping or orders that ignore a market's demand miss by its whole share (up to 36 points); a market with
orders but no edits fails on its own.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from airlake.catalog.trino import query
from airlake.processes import free_port
from airlake.sources.orders import market_for_wiki
from tests.procs import Process

pytestmark = pytest.mark.stack

DEMO_SECONDS = 30
MIN_ORDERS = 2_000
MIN_MARKETS = 6
STANDARD_DEVIATIONS = 4.0
MIN_TOLERANCE_POINTS = 1.0


def tolerance(share_points: float, orders: int) -> float:
    """How far (in points) a market's share of ``orders`` orders may lie from its wikis' share of the edits."""
    p = share_points / 100.0
    return max(MIN_TOLERANCE_POINTS, STANDARD_DEVIATIONS * 100.0 * math.sqrt(p * (1.0 - p) / orders))


def per_minute(settings, sql: str) -> dict[tuple[str, datetime], int]:
    return {(key, minute): int(count) for key, minute, count in query(settings, sql, timeout=120)}


def complete_minutes(*tables: dict[tuple[str, datetime], int]) -> tuple[datetime, datetime]:
    """The minutes every table holds completely: from the first minute of any, up to (not including) the newest
    minute of the table that stops first.

    Each firehose serves its log in event-time order and the pipeline commits it in that order, so a table holding
    an event of minute m holds every event of the minutes before m; minute m itself may be cut. The first minute is
    whole on both sides: the order generator reads the same replay from its first event.
    """
    first = min(minute for table in tables for _, minute in table)
    last = min(max(minute for _, minute in table) for table in tables)
    return first, last


def shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: 100.0 * value / total for key, value in counts.items()}


def test_a_demo_places_orders_in_six_markets_in_proportion_to_their_wikis_edits(stack, tmp_path):
    settings = stack.settings
    env = stack.env | {
        "AIRLAKE__FIREHOSE__RECENTCHANGE_PORT": str(free_port()),
        "AIRLAKE__FIREHOSE__ORDERS_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    # Rows ingested from here on are this demo's (Trino prints timestamps with a zone; a second of margin).
    since = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    run = Process(
        [sys.executable, "-m", "airlake", "--profile", "local", "demo", "--seconds", str(DEMO_SECONDS)],
        tmp_path / "demo.log",
        cwd=stack.cwd,
        env=env,
    )
    assert run.wait(600) == 0, run.output()[-4000:]
    assert "wikiticker day" in run.output()

    edits = per_minute(
        settings,
        "SELECT wiki, date_trunc('minute', event_time), count(*) FROM iceberg.raw.recentchange"
        f" WHERE ingested_at >= TIMESTAMP '{since}' GROUP BY 1, 2",
    )
    placed = per_minute(
        settings,
        "SELECT market, date_trunc('minute', event_time), count(*) FROM iceberg.raw.orders"
        f" WHERE ingested_at >= TIMESTAMP '{since}' AND event_type = 'placed' GROUP BY 1, 2",
    )
    everything = per_minute(
        settings,
        "SELECT 'all', date_trunc('minute', event_time), count(*) FROM iceberg.raw.orders"
        f" WHERE ingested_at >= TIMESTAMP '{since}' GROUP BY 1, 2",
    )
    assert edits and placed, (len(edits), len(placed))
    first, last = complete_minutes(edits, everything)
    assert last - first >= timedelta(minutes=3), (first, last)  # 30 s at 20x real time: about 10 minutes

    edits_per_market: Counter[str] = Counter()
    for (wiki, minute), count in edits.items():
        if first <= minute < last:
            edits_per_market[market_for_wiki(wiki, settings)] += count
    orders_per_market = Counter({m: 0 for m in edits_per_market})
    for (market, minute), count in placed.items():
        if first <= minute < last:
            orders_per_market[market] += count

    total_orders = sum(orders_per_market.values())
    assert total_orders >= MIN_ORDERS, (total_orders, orders_per_market)
    with_orders = sorted(m for m, n in orders_per_market.items() if n)
    assert len(with_orders) >= MIN_MARKETS, orders_per_market
    assert set(orders_per_market) == set(edits_per_market), "orders in a market without edits"
    demand, supply = shares(edits_per_market), shares(orders_per_market)
    table = "\n".join(
        f"{m:12} edits {edits_per_market[m]:6} ({demand[m]:5.1f}%)  orders {orders_per_market[m]:5} ({supply[m]:5.1f}%)"
        f"  within {tolerance(demand[m], total_orders):.1f}"
        for m in sorted(demand, key=demand.get, reverse=True)
    )
    print(f"\nminutes {first:%H:%M}..{last:%H:%M} UTC, {total_orders} orders in {len(with_orders)} markets\n{table}")
    off = {
        m: round(supply[m] - demand[m], 2)
        for m in demand
        if abs(supply[m] - demand[m]) > tolerance(demand[m], total_orders)
    }
    assert not off, f"shares off by more than their tolerance (points): {off}\n{table}"
