"""The image step of the speed pipeline: the photos that orders and menus reference, into the side store and the lake.

A *photo reference* is a dict ``{photo_id, url, kind, owner}``: the proof-of-delivery photo of a ``delivered``
order event (:func:`refs_from_orders`, owner: order, courier, restaurant, market), or the photo of a menu item of
the restaurant catalog (:func:`refs_from_catalog`, owner: menu item, restaurant, market).

:class:`IngestPhotos` is the Beam composite: it groups references by photo id, fetches each photo once (a thread
pool of ``fetch_concurrency`` per bundle, timeouts, retries with backoff for connection errors, timeouts and 5xx),
validates it (:func:`lake.images.validate`), upserts its document and GridFS bytes with every owner
(:meth:`lake.sidestore.SideStore.put`), and emits on tagged outputs the metadata row of ``raw.images``, one
``raw.image_owners`` row per owner, or a dead letter with the reason (and a ``rejects`` document). Rows are emitted
only after the document is written, so a lake row always has its document.

The speed pipeline's driver (:mod:`pipelines.speed`) runs :class:`IngestPhotos` in an :class:`ImageWorker`, a
process of its own, on the references of the batches it has committed, and commits the rows the worker staged in
a later batch: slow photos never hold back the orders' commits (see docs/images.md for what the stream positions
mean then). :func:`run_image_batch` is that Beam pipeline.

Imports :mod:`lake` (images, side store, schemas), :mod:`sources` (photos, retry) and :mod:`pipelines.transforms`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urljoin

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from airlake.lake.images import ImageLimits, ImageMeta, validate
from airlake.lake.schemas import DEAD_LETTERS, IMAGE_OWNERS, IMAGES
from airlake.lake.sidestore import FETCH_FAILED, NOT_FOUND, OWNER_KEYS
from airlake.pipelines.transforms import ReadLinesFn, StageRows
from airlake.sources.events import DELIVERED
from airlake.sources.photos import MENU, PROOF_OF_DELIVERY, RESTAURANTS_PATH
from airlake.sources.retry import jittered_delay

log = logging.getLogger(__name__)

IMAGES_SOURCE = "images"
"""The ``source`` of an image's dead letter in ``raw.dead_letters``."""
IMAGES_TAG = "images"
OWNERS_TAG = "image_owners"
DEAD_LETTER_TAG = "dead_letters"
BACKOFF_MAX = 10.0
KILL_BEFORE_IMAGES_COMMIT = "AIRLAKE_TEST_KILL_BEFORE_IMAGES_COMMIT"
"""A test hook: when this environment variable is set, the driver kills itself (SIGKILL) after an image batch's
documents are written and before its rows are committed to Iceberg. Only the kill test sets it."""


@dataclass(frozen=True)
class ImageConfig:
    """What the image step needs: the side store, the validator's limits and how to fetch (``images`` settings)."""

    mongo_uri: str
    database: str
    limits: ImageLimits = ImageLimits()
    concurrency: int = 8
    timeout: float = 10.0
    attempts: int = 4
    backoff: float = 0.5
    max_batch_photos: int = 2_000
    menus: bool = True
    menu_markets: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> ImageConfig:
        from airlake.lake.sidestore import mongo_uri

        images = settings.images
        return cls(
            mongo_uri=mongo_uri(settings),
            database=settings.stack.ferretdb.database,
            limits=ImageLimits.from_settings(settings),
            concurrency=images.fetch_concurrency,
            timeout=images.fetch_timeout,
            attempts=images.fetch_attempts,
            backoff=images.fetch_backoff,
            max_batch_photos=images.max_batch_photos,
            menus=images.menus,
            menu_markets=tuple(images.menu_markets),
        )


def enabled(settings: Any, sources: Iterable[str]) -> bool:
    """Whether ``airlake ingest`` runs the image step (``images.ingest``; ``auto``: not on ``embedded``)."""
    from airlake.sources.events import ORDERS_SOURCE

    mode = settings.images.ingest
    if mode == "off" or ORDERS_SOURCE not in set(sources):
        return False
    return mode == "on" or settings.profile != "embedded"


# ----- references ------------------------------------------------------------------------------------------------


def owner_key(photo_id: str, owner: Mapping[str, Any]) -> str:
    """The key of one owner of a photo in ``raw.image_owners``: a hash of the photo id and the owner keys."""
    text = "\x1f".join([photo_id, *(str(owner.get(k) or "") for k in OWNER_KEYS)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def image_dead_letter_id(photo_id: str) -> str:
    """The ``dead_letter_id`` of a rejected photo: one per photo id, however often it is referenced."""
    return f"image:{photo_id}"


def ref(photo_id: str, url: str, kind: str, owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "photo_id": photo_id,
        "url": url,
        "kind": kind,
        "owner": {k: str(v) for k, v in owner.items() if k in OWNER_KEYS and v not in (None, "")},
    }


def refs_from_orders(orders: pa.Table, base_url: str) -> list[dict[str, Any]]:
    """The proof-of-delivery photo references of the ``delivered`` events among ``raw.orders`` rows.

    ``proof_photo_url`` is resolved against ``base_url`` (the orders firehose's URL) when it is a path.
    """
    if orders.num_rows == 0:
        return []
    import pyarrow.compute as pc

    delivered = orders.filter(pc.equal(orders.column("event_type"), DELIVERED))
    found = []
    for raw in delivered.column("raw_json").to_pylist():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        photo_id, url = event.get("proof_photo_id"), event.get("proof_photo_url")
        if not isinstance(photo_id, str) or not photo_id or not isinstance(url, str) or not url:
            continue
        owner = {k: event.get(k) for k in ("order_id", "courier_id", "restaurant_id", "market")}
        found.append(ref(photo_id, urljoin(base_url, url), PROOF_OF_DELIVERY, owner))
    return found


def refs_from_catalog(base_url: str, timeout: float = 30.0, markets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The menu photo references of the restaurant catalog (``/v1/restaurants`` next to the orders firehose), of
    ``markets`` (all when empty)."""
    import requests

    url = urljoin(base_url, RESTAURANTS_PATH)
    restaurants = []
    for params in [{"market": m} for m in markets] or [{}]:
        response = requests.get(url, params=params, timeout=timeout)
        response.raise_for_status()
        restaurants.extend(response.json().get("restaurants", []))
    found = []
    for restaurant in restaurants:
        for item in restaurant.get("menu", []):
            if not item.get("photo_id") or not item.get("photo_url"):
                continue
            owner = {
                "menu_item_id": item.get("menu_item_id"),
                "restaurant_id": restaurant.get("restaurant_id"),
                "market": restaurant.get("market"),
            }
            found.append(ref(item["photo_id"], urljoin(url, item["photo_url"]), MENU, owner))
    return found


# ----- fetching --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """The outcome of fetching one photo: its bytes, or the reason (``not_found``, ``fetch_failed``) and detail."""

    data: bytes | None
    reason: str | None = None
    detail: str = ""
    attempts: int = 1


def fetch_photo(session: Any, url: str, config: ImageConfig, sleep: Any = time.sleep) -> Fetched:
    """GET one photo: a 404 is final; connection errors, timeouts, 429 and 5xx are retried with backoff.

    At most ``limits.max_bytes + 1`` bytes are read: a larger photo is rejected by the validator unread.
    """
    import requests

    cap = config.limits.max_bytes + 1
    detail = ""
    for attempt in range(config.attempts):
        if attempt:
            sleep(jittered_delay(attempt - 1, config.backoff, BACKOFF_MAX))
        try:
            with session.get(url, timeout=config.timeout, stream=True) as response:
                status = response.status_code
                if status == 404:
                    return Fetched(None, NOT_FOUND, f"HTTP 404 from {url}", attempt + 1)
                if status == 429 or status >= 500:
                    detail = f"HTTP {status} from {url}"
                    continue
                if status != 200:
                    return Fetched(None, FETCH_FAILED, f"HTTP {status} from {url}", attempt + 1)
                chunks, size = [], 0
                for chunk in response.iter_content(chunk_size=256 * 1024):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= cap:
                        break
                return Fetched(b"".join(chunks)[:cap], attempts=attempt + 1)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
    return Fetched(None, FETCH_FAILED, f"{detail} (after {config.attempts} attempts)", config.attempts)


def image_row(meta: ImageMeta, kind: str, photo_id: str, url: str, stored_at: datetime) -> dict[str, Any]:
    return {
        "image_id": meta.sha256,
        "kind": kind,
        "photo_id": photo_id,
        "source_url": url,
        "format": meta.format,
        "content_type": meta.content_type,
        "width": meta.width,
        "height": meta.height,
        "mode": meta.mode,
        "byte_size": meta.byte_size,
        "phash": meta.phash,
        "dominant_colour": meta.dominant_colour,
        "exif_time": meta.exif_time,
        "stored_at": stored_at,
    }


def owner_rows(image_id: str, photo_id: str, kind: str, owners: list[dict[str, Any]], stored_at: datetime):
    return [
        {
            "owner_key": owner_key(photo_id, owner),
            "image_id": image_id,
            "photo_id": photo_id,
            "kind": kind,
            **{k: owner.get(k) for k in OWNER_KEYS},
            "stored_at": stored_at,
        }
        for owner in owners
    ]


def image_dead_letter(photo_id: str, url: str, kind: str, owners: list[dict[str, Any]], reason: str, detail: str):
    payload = json.dumps({"photo_id": photo_id, "url": url, "kind": kind, "owners": owners}, sort_keys=True)
    return {
        "dead_letter_id": image_dead_letter_id(photo_id),
        "source": IMAGES_SOURCE,
        "received_at": datetime.now(UTC),
        "error": f"{reason}: {detail}",
        "payload": payload,
        "sse_id": None,
    }


class StorePhotosFn(beam.DoFn):
    """Batches of ``(photo_id, [references])`` -> ``raw.images`` rows, ``raw.image_owners`` rows, dead letters.

    Each photo of a batch is fetched, validated and stored by a pool of ``config.concurrency`` threads; a failure
    of the side store itself (not of a photo) raises, which fails the image batch (the driver runs it again).
    """

    def __init__(self, config: ImageConfig):
        self.config = config
        self.counters = {
            IMAGES_TAG: Metrics.counter("images", "stored"),
            DEAD_LETTER_TAG: Metrics.counter("images", "dead_letters"),
        }

    def setup(self):
        import pymongo
        import requests
        from requests.adapters import HTTPAdapter

        from airlake.lake.sidestore import SideStore

        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, self.config.concurrency))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        client = pymongo.MongoClient(self.config.mongo_uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
        self.store = SideStore(client, self.config.database)
        self.store.ensure_indexes()
        self.pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="photo")

    def teardown(self):
        self.pool.shutdown(wait=True)
        self.session.close()
        self.store.close()

    def store_one(self, photo_id: str, refs: list[dict[str, Any]]) -> tuple[str, list[dict], list[dict]]:
        """(output tag, rows, owner rows) of one photo and every reference to it."""
        first = refs[0]
        kind, url = first["kind"], first["url"]
        unique = {owner_key(photo_id, r["owner"]): r["owner"] for r in refs if r.get("owner")}
        owners = list(unique.values())  # a reference repeated (a retry, a replay) is one owner
        fetched = fetch_photo(self.session, url, self.config)
        if fetched.data is None:
            self.store.reject(
                reason=fetched.reason,
                detail=fetched.detail,
                kind=kind,
                owners=owners,
                photo_id=photo_id,
                source_url=url,
            )
            return DEAD_LETTER_TAG, [image_dead_letter(photo_id, url, kind, owners, fetched.reason, fetched.detail)], []
        result = validate(fetched.data, self.config.limits)
        if not isinstance(result, ImageMeta):
            self.store.reject(result, kind=kind, owners=owners, photo_id=photo_id, source_url=url)
            return DEAD_LETTER_TAG, [image_dead_letter(photo_id, url, kind, owners, result.reason, result.detail)], []
        self.store.put(fetched.data, result, kind=kind, owners=owners, photo_id=photo_id, source_url=url)
        stored_at = datetime.now(UTC)
        return (
            IMAGES_TAG,
            [image_row(result, kind, photo_id, url, stored_at)],
            owner_rows(result.sha256, photo_id, kind, owners, stored_at),
        )

    def process(self, batch):
        results = list(self.pool.map(lambda item: self.store_one(item[0], list(item[1])), batch))
        out: dict[str, list[dict]] = {IMAGES_TAG: [], OWNERS_TAG: [], DEAD_LETTER_TAG: []}
        for tag, rows, owners in results:
            out[tag].extend(rows)
            out[OWNERS_TAG].extend(owners)
            self.counters[tag].inc(len(rows))
        for tag, rows in out.items():
            if rows:
                yield beam.pvalue.TaggedOutput(tag, rows)


class IngestPhotos(beam.PTransform):
    """Photo references -> tagged outputs ``images``, ``image_owners`` and ``dead_letters`` (lists of rows)."""

    def __init__(self, config: ImageConfig):
        super().__init__()
        self.config = config

    def expand(self, refs):
        batch = max(1, self.config.concurrency * 4)
        return (
            refs
            | "KeyByPhoto" >> beam.Map(lambda r: (r["photo_id"], r))
            | "GroupByPhoto" >> beam.GroupByKey()
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=batch)
            | "FetchValidateStore"
            >> beam.ParDo(StorePhotosFn(self.config)).with_outputs(IMAGES_TAG, OWNERS_TAG, DEAD_LETTER_TAG)
        )


def run_image_batch(segment: str, stage_dir: str, config: ImageConfig) -> None:
    """The Beam pipeline of one image batch: references (JSON lines in ``segment``) -> rows staged in ``stage_dir``."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = (
            p
            | "Segments" >> beam.Create([segment])
            | "ReadRefs" >> beam.ParDo(ReadLinesFn())
            | "ParseRefs" >> beam.Map(json.loads)
            | "IngestPhotos" >> IngestPhotos(config)
        )
        out[IMAGES_TAG] | "StageImages" >> StageRows(stage_dir, IMAGES)
        out[OWNERS_TAG] | "StageOwners" >> StageRows(stage_dir, IMAGE_OWNERS)
        out[DEAD_LETTER_TAG] | "StageDeadLetters" >> StageRows(stage_dir, DEAD_LETTERS)


# ----- the worker process ----------------------------------------------------------------------------------------


def _work(image_config: ImageConfig, conn: Connection, parent: int) -> None:
    """The body of the image worker process: runs each image batch it is sent until told to stop."""
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    try:
        while os.getppid() == parent:
            if not conn.poll(0.5):
                continue
            job = conn.recv()
            if job is None:
                break
            segment, stage_dir = job
            try:
                run_image_batch(segment, stage_dir, image_config)
                conn.send(("done", stage_dir, ""))
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which runs the batch again later
                conn.send(("error", stage_dir, f"{type(exc).__name__}: {exc}"))
    except (BrokenPipeError, EOFError, OSError):
        pass  # the driver is gone


class ImageWorker:
    """The driver's handle on the image worker process (one image batch at a time)."""

    def __init__(self, config: ImageConfig):
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that has started threads
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_work, args=(config, child, os.getpid()), name="images", daemon=True)
        self.process.start()
        child.close()
        self.busy = False

    def submit(self, segment: str, stage_dir: str) -> None:
        self.conn.send((segment, stage_dir))
        self.busy = True

    def poll(self) -> tuple[str, str, str] | None:
        """``(status, stage_dir, error)`` of the finished batch, or None while it runs (or none was submitted)."""
        if not self.busy:
            return None
        if not self.process.is_alive() and not self.conn.poll():
            self.busy = False
            return ("error", "", f"image worker exited with code {self.process.exitcode}")
        if not self.conn.poll():
            return None
        self.busy = False
        try:
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            return ("error", "", f"image worker: {exc}")

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(None)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        self.conn.close()
