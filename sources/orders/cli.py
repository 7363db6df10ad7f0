"""``airlake firehose orders``: its flags, its pacing and its main, which serves an :class:`OrderLog` over SSE, and
beside it the photos (``/v1/photos/{id}``) and the restaurant catalog (``/v1/restaurants``) of :mod:`sources.photos`.

Imports the other modules of :mod:`sources.orders`, :mod:`sources.photos` and :mod:`sources.sse_server`; the CLI registry in
:mod:`airlake.cli` reaches it through :mod:`sources.orders`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from airlake.sources.orders.generator import generator_from_settings
from airlake.sources.orders.log import DEFAULT_RETENTION, OrderLog
from airlake.sources.photos import (
    OVERSIZED_BYTES,
    PHOTOS_PATH,
    RESTAURANTS_PATH,
    PhotoFaults,
    PhotoService,
    RestaurantCatalog,
)
from airlake.sources.sse_server import Pacing, add_pacing_arguments
from airlake.sources.sse_server import pacing_from_args as sse_pacing_from_args

STREAM_PATH = "/v2/stream/orders"

# Settings keys read by this module.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of ``airlake firehose orders``."""
    parser.add_argument("--host", help="address to bind (default: firehose.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: firehose.orders_port, 8091; 0 picks one)")
    parser.add_argument("--seed", type=int, help="seed of the generator (default: firehose.seed)")
    demand = parser.add_mutually_exclusive_group()
    demand.add_argument(
        "--demand-url",
        metavar="URL",
        help="SSE stream of recentchange events (default: sources.recentchange.url)",
    )
    demand.add_argument(
        "--demand-file", type=Path, metavar="FILE.jsonl", help="a recording of recentchange events instead"
    )
    parser.add_argument(
        "--orders-per-edit", type=float, metavar="X", help="mean orders per demand event (firehose.orders_per_edit)"
    )
    add_pacing_arguments(parser, default="default: as fast as the orders are generated", times="the event times")
    parser.add_argument(
        "--drop-every",
        type=int,
        default=0,
        metavar="N",
        help="fault: close each connection abruptly after every N events sent on it",
    )
    for kind, what in (
        ("missing", "answered 404"),
        ("truncated", "cut short"),
        ("not-image", "a text page instead"),
        ("bomb", "a decompression bomb (a 900-megapixel PNG)"),
        ("oversized", f"a {OVERSIZED_BYTES / 1e6:g} MB JPEG"),
    ):
        parser.add_argument(
            f"--photo-{kind}-every",
            type=int,
            default=0,
            metavar="N",
            help=f"fault: about one photo in N is {what} (chosen by its id, so always the same photos)",
        )
    parser.add_argument(
        "--photo-base-url",
        default="",
        metavar="URL",
        help="base of the proof_photo_url of delivered events (a CDN); default: the path /v1/photos/{id}",
    )
    parser.add_argument(
        "--photo-cache-mb",
        type=float,
        default=64,
        metavar="MB",
        help="rendered photos kept in memory (default 64 MB); photos are rendered on first request",
    )
    parser.add_argument(
        "--retention",
        type=int,
        default=DEFAULT_RETENTION,
        metavar="N",
        help=f"events kept in memory for resuming clients (default {DEFAULT_RETENTION:,})",
    )


def pacing_from_args(args: argparse.Namespace) -> Pacing:
    """The pacing of ``airlake firehose orders``: none unless ``--rate`` or ``--speedup`` asks for it."""
    return sse_pacing_from_args(args, None)


def photo_faults_from_args(args: argparse.Namespace) -> PhotoFaults:
    """The photo faults of the ``--photo-<kind>-every`` flags.

    Raises:
        ValueError: a negative value.
    """
    return PhotoFaults(
        missing_every=args.photo_missing_every,
        truncated_every=args.photo_truncated_every,
        not_image_every=args.photo_not_image_every,
        bomb_every=args.photo_bomb_every,
        oversized_every=args.photo_oversized_every,
    )


def main(args: argparse.Namespace, settings: Any) -> int:
    """Runs ``airlake firehose orders`` until Ctrl-C or SIGTERM: generates orders and serves them over SSE.

    Args:
        args: the parsed flags (see :func:`add_arguments`).
        settings: the resolved :class:`airlake.settings.Settings`.

    Returns:
        The exit status.
    """

    from airlake.sources.sse_server import Faults, SseServer, serve_until_stopped

    try:
        pacing = pacing_from_args(args)
        generator = generator_from_settings(
            settings, seed=args.seed, orders_per_edit=args.orders_per_edit, photo_base_url=args.photo_base_url
        )
        faults = photo_faults_from_args(args)
        if args.photo_cache_mb < 0:
            raise ValueError("--photo-cache-mb must not be negative")
    except ValueError as exc:
        print(f"airlake firehose orders: {exc}", flush=True)
        return 2
    if args.demand_file is not None:
        if not args.demand_file.is_file():
            print(f"airlake firehose orders: no demand file {args.demand_file}", flush=True)
            return 2
        log = OrderLog.from_file(args.demand_file, generator, retention=args.retention)
        demand_name = str(args.demand_file)
    else:
        demand = settings.sources.recentchange
        demand_name = args.demand_url or demand.url
        log = OrderLog.from_url(
            demand_name,
            generator,
            user_agent=demand.user_agent,
            retention=args.retention,
            connect_timeout=demand.connect_timeout,
            read_timeout=demand.read_timeout,
            backoff_initial=demand.backoff_initial,
            backoff_max=demand.backoff_max,
        )
    host = args.host or settings.firehose.host
    port = args.port if args.port is not None else settings.firehose.orders_port
    try:
        server = SseServer(host, port)
    except OSError as exc:
        print(f"airlake firehose orders: cannot listen on {host}:{port}: {exc}", flush=True)
        return 2
    server.add_stream(STREAM_PATH, log, pacing=pacing, faults=Faults(drop_every=args.drop_every))
    photos = PhotoService(generator.seed, faults, cache_bytes=int(args.photo_cache_mb * 1e6))
    server.add_route(PHOTOS_PATH, photos.handle, photos.stats_dict)
    markets = [*settings.markets.wikis.values(), settings.markets.default]
    catalog = RestaurantCatalog(generator.seed, generator.market, markets, args.photo_base_url or server.url())
    server.add_route(RESTAURANTS_PATH, catalog.handle)
    log.start()
    try:
        return serve_until_stopped(
            server,
            lambda: (
                f"orders firehose serving at {server.url(STREAM_PATH)} (demand {demand_name}, seed"
                f" {generator.seed}, log {log.log_id}, {generator.orders_per_edit:g} orders per edit); photos at"
                f" {server.url(PHOTOS_PATH)}{{id}}, restaurants at {server.url(RESTAURANTS_PATH)}; stats at"
                f" {server.url('/stats')}"
            ),
            "orders firehose stopped",
        )
    finally:
        log.close()
