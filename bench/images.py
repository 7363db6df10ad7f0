"""Image benchmark: photos into the side store, their effect on the orders' commit lag, reading an order's photo.

``python -m airlake.bench.images`` runs against the stack of the settings (``--profile local``: the native stack's
FerretDB and lake; start it with ``airlake stack up``), in a fresh side-store database that it drops afterwards:

1. **store**: ``--photos`` distinct JPEGs of about ``--kb`` KB (noise, so they do not compress), served by a local
   HTTP server, go through the image step's Beam pipeline (:func:`pipelines.images.run_image_batch`: fetch,
   validate, ``put`` with GridFS) with ``images.fetch_concurrency`` threads: images/s and MB/s of the whole step.
2. **lag**: ``airlake ingest --sources orders`` over the same paced order firehose (the 2018 recording at
   ``--speedup``), once with the image step off and once on (the proof photos of every delivered order fetched
   from the firehose): the p50/p95 of the orders' received-to-committed lag of each run. The lake tables are purged
   before each run (only run it on a benchmark stack).
3. **read**: latency p50/p95 of fetching an order's photo by order id (``SideStore.for_order`` then the GridFS
   bytes), for ``--reads`` stored proof photos (of the lag run, else of the store section).
4. **collection statistics** of ``images``, ``fs.files`` and ``fs.chunks`` (``collStats``) and the database's
   (``dbStats``).

Every figure is printed and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TARGET_IMAGES_PER_S = 200
TARGET_LAG_DELTA_S = 1.0
RECORDING = "recentchange-2018-03-07-wikidata.jsonl"


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def noise_jpeg(index: int, kb: int) -> bytes:
    """A distinct JPEG of about ``kb`` KB (noise at quality 90: about 0.93 bytes per pixel)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(index)
    side = int((kb * 1024 / 0.93) ** 0.5)
    pixels = rng.integers(0, 256, size=(side * 3 // 4, side * 4 // 3, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


class PhotoServer:
    """Serves ``photos`` (id -> bytes) at ``/p/{id}`` on 127.0.0.1."""

    def __init__(self, photos: dict[str, bytes]):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                data = photos.get(self.path.rsplit("/", 1)[-1])
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def store_run(settings: Any, photos: int, kb: int, workdir: Path) -> dict[str, Any]:
    """Section 1: images/s and MB/s of the image step's Beam pipeline into the side store."""
    from airlake.pipelines.images import ImageConfig, ref, run_image_batch

    data = {f"bench-{i:06d}": noise_jpeg(i, kb) for i in range(photos)}
    server = PhotoServer(data)
    try:
        segment = workdir / "refs.jsonl"
        with segment.open("w") as out:
            for i, photo_id in enumerate(data):
                owner = {"order_id": f"ord-bench-{i:06d}", "courier_id": f"cur-{i % 50:03d}", "market": "bench"}
                out.write(json.dumps(ref(photo_id, f"{server.base}/p/{photo_id}", "proof_of_delivery", owner)) + "\n")
        config = ImageConfig.from_settings(settings)
        started = time.perf_counter()
        run_image_batch(str(segment), str(workdir / "stage"), config)
        seconds = time.perf_counter() - started
    finally:
        server.close()
    total = sum(len(d) for d in data.values())
    return {
        "photos": photos,
        "mean_kb": round(total / photos / 1024, 1),
        "seconds": round(seconds, 2),
        "images_per_s": round(photos / seconds, 1),
        "mb_per_s": round(total / seconds / 1e6, 2),
        "concurrency": config.concurrency,
    }


def purge_lake(settings: Any) -> None:
    from airlake.catalog import load_catalog
    from airlake.lake.schemas import ALL_TABLES

    catalog = load_catalog(settings)
    for table in ALL_TABLES:
        if catalog.table_exists(table.identifier):
            catalog.purge_table(table.identifier)


def lag_run(env: dict[str, str], cwd: Path, workdir: Path, *, images: bool, speedup: float, orders_per_edit: float):
    """One ``airlake ingest`` of the paced order firehose; returns its metrics (lag p50/p95, images stored)."""
    from airlake.processes import free_port, wait_healthy

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikimedia" / RECORDING  # ../shared
    label = "with" if images else "without"
    port = free_port()
    firehose_log = (workdir / f"firehose-{label}.log").open("wb")
    firehose = subprocess.Popen(
        [sys.executable, "-m", "airlake", "--state-dir", str(workdir / f"fh-{label}"), "firehose", "orders"]
        + ["--port", str(port), "--demand-file", str(shared), "--speedup", str(speedup)]
        + ["--orders-per-edit", str(orders_per_edit)],
        stdout=firehose_log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", firehose, workdir / f"firehose-{label}.log")
        metrics = workdir / f"ingest-{label}.json"
        run_env = {**env, "AIRLAKE__IMAGES__INGEST": "on" if images else "off", "AIRLAKE__IMAGES__MENUS": "false"}
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "airlake", "--profile", "local", "ingest", "--sources", "orders"]
            + ["--orders-url", f"http://127.0.0.1:{port}/v2/stream/orders", "--stop-after-idle", "8"]
            + ["--metrics-file", str(metrics), "--wait"],
            env=run_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ingest {label} photos exited {proc.returncode}: {proc.stderr[-2000:]}")
        figures = json.loads(metrics.read_text())
        figures["wall_s"] = round(time.perf_counter() - started, 1)
        return figures
    finally:
        firehose.terminate()
        firehose.wait(30)
        firehose_log.close()


def read_latency(store: Any, order_ids: list[str]) -> dict[str, Any]:
    """Section 3: an order's photo by order id (document, then the GridFS bytes)."""
    seconds = []
    for order_id in order_ids:
        started = time.perf_counter()
        (document,) = store.for_order(order_id)
        store.bucket.open_download_stream(document["file_id"]).read()
        seconds.append(time.perf_counter() - started)
    return {"orders": len(order_ids), "p50_ms": _ms(percentile(seconds, 0.5)), "p95_ms": _ms(percentile(seconds, 0.95))}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def collection_stats(store: Any) -> dict[str, Any]:
    """Section 4: ``collStats`` of the image collections and ``dbStats`` (what the store reports of them)."""
    keep = ("count", "size", "avgObjSize", "storageSize", "nindexes", "totalIndexSize")
    out: dict[str, Any] = {}
    for name in ("images", "fs.files", "fs.chunks"):
        try:
            stats = store.db.command("collStats", name)
            out[name] = {k: stats.get(k) for k in keep}
        except Exception as exc:  # noqa: BLE001 - a store may lack the command
            out[name] = {"error": str(exc).splitlines()[0][:200]}
    try:
        stats = store.db.command("dbStats")
        out["db"] = {k: stats.get(k) for k in ("collections", "objects", "dataSize", "storageSize", "indexSize")}
    except Exception as exc:  # noqa: BLE001
        out["db"] = {"error": str(exc).splitlines()[0][:200]}
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m airlake.bench.images", description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=1000, help="photos of the store section (default: %(default)s)")
    p.add_argument("--kb", type=int, default=100, help="their size in KB (default: %(default)s)")
    p.add_argument("--speedup", type=float, default=10.0, help="pace of the recording in the lag runs (default: 10)")
    p.add_argument("--orders-per-edit", type=float, default=0.2, help="orders per demand event (default: 0.2)")
    p.add_argument("--reads", type=int, default=50, help="orders whose photo is read back (default: %(default)s)")
    p.add_argument("--skip-lag", action="store_true", help="only the store, read and statistics sections")
    p.add_argument("--out", type=Path, help="JSON results (default: bench/results/images-<timestamp>.json)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from airlake.lake.sidestore import SideStore
    from airlake.settings import load_settings

    args = parse_args(argv)
    database = f"bench_images_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "AIRLAKE__STACK__FERRETDB__DATABASE": database}
    settings = load_settings({"profile": "local"}, environ=env)
    cwd = Path.cwd()
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "python": platform.python_version()},
        "database": database,
    }
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp, SideStore.from_settings(settings) as store:
        workdir = Path(tmp)
        try:
            store.ensure_indexes()
            report["store"] = store_run(settings, args.photos, args.kb, workdir)
            print(
                f"store: {report['store']['photos']} photos of {report['store']['mean_kb']} KB in"
                f" {report['store']['seconds']} s: {report['store']['images_per_s']} images/s,"
                f" {report['store']['mb_per_s']} MB/s (concurrency {report['store']['concurrency']})",
                flush=True,
            )
            order_ids = [f"ord-bench-{i:06d}" for i in range(args.photos)]
            if not args.skip_lag:
                runs = {}
                for images in (False, True):
                    purge_lake(settings)
                    runs["with" if images else "without"] = lag_run(
                        env, cwd, workdir, images=images, speedup=args.speedup, orders_per_edit=args.orders_per_edit
                    )
                keep = ("read", "batches", "lag_p50_s", "lag_p95_s", "commit_p50_s", "images_stored")
                report["lag"] = {
                    k: {f: v.get(f) for f in (*keep, "image_dead_letters", "wall_s")} for k, v in runs.items()
                }
                for label, figures in report["lag"].items():
                    print(
                        f"lag {label} photos: orders {figures['read']['orders']}, lag p50 {figures['lag_p50_s']} s,"
                        f" p95 {figures['lag_p95_s']} s; images stored {figures['images_stored']}",
                        flush=True,
                    )
                proof = store.images.find({"kind": "proof_of_delivery", "order_ids.0": {"$exists": True}})
                order_ids = [d["order_ids"][0] for d in proof if d["order_ids"][0].startswith("ord-")]
            report["read"] = read_latency(store, order_ids[: args.reads])
            print(
                f"read an order's photo by order id: {report['read']['orders']} orders, p50"
                f" {report['read']['p50_ms']} ms, p95 {report['read']['p95_ms']} ms",
                flush=True,
            )
            report["collections"] = collection_stats(store)
            print("collection statistics: " + json.dumps(report["collections"]), flush=True)
        finally:
            store.client.drop_database(database)
    ok_rate = report["store"]["images_per_s"] >= TARGET_IMAGES_PER_S
    print(f"target >= {TARGET_IMAGES_PER_S} images/s of {args.kb} KB: {'met' if ok_rate else 'missed'}")
    if "lag" in report:
        delta = (report["lag"]["with"]["lag_p95_s"] or 0) - (report["lag"]["without"]["lag_p95_s"] or 0)
        report["lag_p95_delta_s"] = round(delta, 3)
        print(
            f"target lag p95 within {TARGET_LAG_DELTA_S} s of the run without photos: {delta:+.3f} s,"
            f" {'met' if delta <= TARGET_LAG_DELTA_S else 'missed'}"
        )
    out = args.out or Path(__file__).resolve().parent / "results" / f"images-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
