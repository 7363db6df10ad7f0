"""The image step of ``airlake ingest`` on the native stack: photos of delivered orders fetched from the order
firehose (with every fault), stored once in FerretDB, their metadata in ``raw.images``, bad photos as dead letters,
exactly once across reruns and a kill -9 between the document writes and the Iceberg commit."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from airlake.catalog import load_catalog
from airlake.lake.images import NOT_AN_IMAGE, TOO_MANY_BYTES, TOO_MANY_PIXELS, TRUNCATED, ImageMeta, validate
from airlake.lake.schemas import ALL_TABLES, IMAGE_OWNERS, IMAGES
from airlake.lake.sidestore import NOT_FOUND, SideStore
from airlake.pipelines.images import (
    IMAGES_SOURCE,
    KILL_BEFORE_IMAGES_COMMIT,
    ImageConfig,
    image_dead_letter_id,
    ref,
    run_image_batch,
)
from airlake.pipelines.transforms import read_staged
from airlake.settings import load_settings
from airlake.sources.photos import PhotoFaults, render_photo
from tests.conftest import RECORDING_2018
from tests.procs import Firehose, Process

pytestmark = pytest.mark.stack

SEED = 42
EVERY = 8
BYTES_CHECKED = 8
FAULT_REASONS = {
    "missing": NOT_FOUND,
    "truncated": TRUNCATED,
    "not_image": NOT_AN_IMAGE,
    "bomb": TOO_MANY_PIXELS,
    "oversized": TOO_MANY_BYTES,
}


@pytest.fixture
def lake(stack):
    """Empty lake tables and a fresh side-store database (the stack is shared by the session's tests)."""
    env = {
        **stack.env,
        "AIRLAKE__STACK__FERRETDB__DATABASE": f"ingest_{uuid.uuid4().hex[:10]}",
        "AIRLAKE__IMAGES__MENUS": "false",
    }
    settings = load_settings({"profile": "local"}, environ=env, cwd=stack.cwd)
    catalog = load_catalog(settings)
    for table in ALL_TABLES:
        if catalog.table_exists(table.identifier):
            catalog.purge_table(table.identifier)
    with SideStore.from_settings(settings) as store:
        yield env, settings, catalog, store
        store.client.drop_database(store.db.name)


@pytest.fixture
def firehose(tmp_path: Path):
    """The order firehose over the 2018 recording (about 180 orders), every photo fault one photo in 8 each."""
    flags = [arg for kind in FAULT_REASONS for arg in (f"--photo-{kind.replace('_', '-')}-every", str(EVERY))]
    fh = Firehose(
        tmp_path / "firehose",
        "orders",
        "--demand-file",
        str(RECORDING_2018),
        "--seed",
        str(SEED),
        "--orders-per-edit",
        "0.05",
        *flags,
        log=tmp_path / "firehose.log",
    )
    deadline = time.monotonic() + 120
    while not fh.stats()["/v2/stream/orders"]["log"]["finished"]:
        assert time.monotonic() < deadline, "the order generator did not finish"
        time.sleep(0.5)
    yield fh
    fh.kill()


def ingest(stack, env: dict[str, str], url: str, log: Path, **extra_env: str) -> Process:
    command = [sys.executable, "-m", "airlake", "--profile", "local", "ingest", "--sources", "orders"]
    command += ["--orders-url", url, "--commit-interval", "1", "--stop-after-idle", "6", "--wait"]
    return Process(command, log, cwd=stack.cwd, env={**env, **extra_env})


def served_orders(fh: Firehose) -> list[dict]:
    """Every event of the firehose's log (the generator has finished), in order."""
    import requests

    events = []
    with requests.get(fh.url, stream=True, timeout=60) as response:
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == fh.stats()["/v2/stream/orders"]["log"]["events"]:
                    break
    return events


def read_lake(catalog) -> dict[str, list[dict]]:
    return {
        name: catalog.load_table(f"raw.{name}").scan().to_arrow().to_pylist()
        for name in ("orders", "images", "image_owners", "dead_letters")
    }


def check_lake_and_store(lake_rows: dict[str, list[dict]], store: SideStore, events: list[dict]) -> None:
    """Every delivered order's photo is once in each store (or a dead letter with its fault's reason)."""
    faults = PhotoFaults(**{f"{kind}_every": EVERY for kind in FAULT_REASONS})
    assert len(lake_rows["orders"]) == len(events) == len({r["event_id"] for r in lake_rows["orders"]})
    images = {r["image_id"]: r for r in lake_rows["images"]}
    assert len(images) == len(lake_rows["images"]), "one raw.images row per image"
    by_photo = {r["photo_id"]: r for r in lake_rows["images"]}
    owners = Counter((r["photo_id"], r["order_id"]) for r in lake_rows["image_owners"])
    assert all(n == 1 for n in owners.values())
    dead = {r["dead_letter_id"]: r for r in lake_rows["dead_letters"] if r["source"] == IMAGES_SOURCE}
    assert len(dead) == sum(r["source"] == IMAGES_SOURCE for r in lake_rows["dead_letters"])
    delivered = [e for e in events if e["event_type"] == "delivered"]
    reasons: Counter[str] = Counter()
    for event in delivered:
        photo_id = event["proof_photo_id"]
        fault = faults.fault(SEED, photo_id)
        if fault is not None:
            letter = dead[image_dead_letter_id(photo_id)]
            assert letter["error"].startswith(FAULT_REASONS[fault] + ":"), (photo_id, fault, letter["error"])
            assert json.loads(letter["payload"])["owners"][0]["order_id"] == event["order_id"]
            reasons[FAULT_REASONS[fault]] += 1
            assert photo_id not in by_photo
            continue
        row = by_photo[photo_id]
        assert owners[(photo_id, event["order_id"])] == 1
        # Round trip: the bytes and metadata in the side store equal what the source served. (Reading GridFS
        # from FerretDB 1.24 takes about a second per chunk, its filters on files_id scanning every chunk: the
        # bytes of a sample are read back, the SHA-256 and metadata of every photo are compared.)
        data = render_photo(SEED, photo_id)[1]
        document = store.document(row["image_id"])
        if reasons["stored"] < BYTES_CHECKED:
            assert store.read(row["image_id"])[1] == data
        meta = validate(data)
        assert isinstance(meta, ImageMeta) and meta.sha256 == row["image_id"] == document["_id"]
        for key, value in meta.as_dict().items():
            if key != "sha256":
                assert row[key] == value, key
                assert document.get(key) == value, key
        assert document["order_ids"] == [event["order_id"]] and document["courier_ids"] == [event["courier_id"]]
        reasons["stored"] += 1
    assert set(reasons) == {"stored", *FAULT_REASONS.values()}, reasons
    assert len(dead) == len(delivered) - reasons["stored"]
    # No lake row without its document, and no document without its lake row.
    assert {d["_id"] for d in store.images.find({}, {"_id": 1})} == set(images)
    assert store.files.count_documents({}) == len(images)


def test_photos_of_delivered_orders_land_once_with_faults_as_dead_letters(stack, lake, firehose, tmp_path):
    env, _, catalog, store = lake
    events = served_orders(firehose)
    run = ingest(stack, env, firehose.url, tmp_path / "ingest.log")
    assert run.wait(600) == 0, run.output()[-3000:]
    first = read_lake(catalog)
    check_lake_and_store(first, store, events)
    assert "image step on" in run.output()

    # A rerun (the positions say everything is in) and a retry of every photo change nothing.
    again = ingest(stack, env, firehose.url, tmp_path / "again.log")
    assert again.wait(600) == 0, again.output()[-3000:]
    second = read_lake(catalog)
    assert {k: len(v) for k, v in second.items()} == {k: len(v) for k, v in first.items()}
    check_lake_and_store(second, store, events)


def test_kill_9_between_the_documents_and_the_commit(stack, lake, firehose, tmp_path):
    env, _, catalog, store = lake
    events = served_orders(firehose)
    killed = ingest(stack, env, firehose.url, tmp_path / "killed.log", **{KILL_BEFORE_IMAGES_COMMIT: "1"})
    assert killed.wait(600) == -signal.SIGKILL, killed.output()[-3000:]
    # The documents were written, their rows were not committed; the orders are in.
    assert store.images.count_documents({}) > 0
    assert catalog.load_table("raw.images").scan().to_arrow().num_rows == 0
    assert catalog.load_table("raw.orders").scan().to_arrow().num_rows == len(events)

    restarted = ingest(stack, env, firehose.url, tmp_path / "restarted.log")
    assert restarted.wait(600) == 0, restarted.output()[-3000:]
    assert "fetched again" in restarted.output()
    check_lake_and_store(read_lake(catalog), store, events)


def test_the_same_photo_referenced_twice_is_one_document_and_one_row(stack, lake, firehose, tmp_path):
    """Two orders with one photo, and the same reference twice (a retry), in one image batch of the Beam step."""
    env, settings, _, store = lake
    faults = PhotoFaults(**{f"{kind}_every": EVERY for kind in FAULT_REASONS})
    photo_id = next(p for i in range(100) if faults.fault(SEED, p := f"pod.ord-x-{i:04d}.20180307T161624Z") is None)
    url = f"{firehose.base}/v1/photos/{photo_id}"
    refs = [
        ref(photo_id, url, "proof_of_delivery", {"order_id": "ord-a", "courier_id": "cur-1", "market": "london"}),
        ref(photo_id, url, "proof_of_delivery", {"order_id": "ord-b", "courier_id": "cur-2", "market": "london"}),
        ref(photo_id, url, "proof_of_delivery", {"order_id": "ord-a", "courier_id": "cur-1", "market": "london"}),
    ]
    segment = tmp_path / "refs.jsonl"
    segment.write_text("".join(json.dumps(r) + "\n" for r in refs))
    config = ImageConfig.from_settings(settings)
    for attempt in range(2):  # the second run is a retry of the whole batch
        stage = tmp_path / f"stage-{attempt}"
        run_image_batch(str(segment), str(stage), config)
        images = read_staged(str(stage), IMAGES).to_pylist()
        owners = read_staged(str(stage), IMAGE_OWNERS).to_pylist()
        assert len(images) == 1 and images[0]["photo_id"] == photo_id
        assert sorted(o["order_id"] for o in owners) == ["ord-a", "ord-b"]
    assert store.images.count_documents({}) == 1 and store.files.count_documents({}) == 1
    document = store.document(photo_id)
    assert document["order_ids"] == ["ord-a", "ord-b"] and document["courier_ids"] == ["cur-1", "cur-2"]
    assert store.read(photo_id)[1] == render_photo(SEED, photo_id)[1]


def test_join_models_equal_a_python_recomputation_and_the_example_runs(stack, lake, firehose, tmp_path):
    """marts.proof_of_delivery and marts.menu_photos (dbt on Trino) against the same joins in Python over the raw
    tables; then the data scientist's example (pyiceberg + pymongo) on the same lake."""
    env, _, catalog, store = lake
    env = {**env, "AIRLAKE__IMAGES__MENUS": "true", "AIRLAKE__IMAGES__MENU_MARKETS": "london"}
    run = ingest(stack, env, firehose.url, tmp_path / "ingest.log")
    assert run.wait(900) == 0, run.output()[-3000:]
    stack.run("sql", "apply", timeout=1800)

    rows = read_lake(catalog)
    image_ids = {r["image_id"] for r in rows["images"]}
    owners = [r for r in rows["image_owners"] if r["image_id"] in image_ids]
    assert any(o["kind"] == "menu" for o in owners) and any(o["kind"] == "proof_of_delivery" for o in owners)

    # Python: the orders' lifecycle (as marts.orders), then coverage per market, courier and delivery day.
    orders: dict[str, dict] = {}
    for event in {r["event_id"]: r for r in rows["orders"]}.values():
        order = orders.setdefault(event["order_id"], {"market": event["market"], "courier_id": None, "delivered": []})
        if event["courier_id"] is not None:
            order["courier_id"] = max(order["courier_id"] or "", event["courier_id"])
        if event["event_type"] == "delivered":
            order["delivered"].append(event["event_time"])
    with_photo = {o["order_id"] for o in owners if o["kind"] == "proof_of_delivery"}
    proof: Counter = Counter()
    covered: Counter = Counter()
    for order_id, order in orders.items():
        if order["delivered"]:
            key = (order["market"], order["courier_id"], min(order["delivered"]).date().isoformat())
            proof[key] += 1
            covered[key] += order_id in with_photo
    expected_proof = {k: (proof[k], covered[k], proof[k] - covered[k]) for k in proof}
    got = stack_query(stack, "select * from marts.proof_of_delivery")
    assert {
        (r["market"], r["courier_id"], r["day"]): (
            r["delivered_orders"],
            r["orders_with_photo"],
            r["orders_without_photo"],
        )
        for r in got
    } == expected_proof
    assert all(abs(r["photo_coverage"] - r["orders_with_photo"] / r["delivered_orders"]) < 1e-9 for r in got)

    # Python: menu items ordered (placed events' items) or with a photo, their photos, orders, quantity, revenue.
    from decimal import Decimal

    sales: dict[tuple, dict] = {}
    for event in {r["event_id"]: r for r in rows["orders"]}.values():
        if event["event_type"] != "placed":
            continue
        for item in event["items"] or []:
            entry = sales.setdefault(
                (event["restaurant_id"], item["menu_item_id"]), {"orders": set(), "quantity": 0, "revenue": Decimal(0)}
            )
            entry["orders"].add(event["order_id"])
            entry["quantity"] += item["quantity"]
            entry["revenue"] += item["quantity"] * item["unit_price"]
    photos = {(o["restaurant_id"], o["menu_item_id"]) for o in owners if o["kind"] == "menu"}
    expected_menu = {
        key: (
            key in photos,
            len(sales[key]["orders"]) if key in sales else 0,
            sales.get(key, {}).get("quantity", 0),
            str(sales[key]["revenue"]) if key in sales else "0",
        )
        for key in set(sales) | photos
    }
    got = stack_query(stack, "select * from marts.menu_photos")
    assert {
        (r["restaurant_id"], r["menu_item_id"]): (
            r["has_photo"],
            r["orders"],
            r["quantity"],
            Decimal(str(r["revenue"])),
        )
        for r in got
    } == {k: (v[0], v[1], v[2], Decimal(v[3])) for k, v in expected_menu.items()}
    assert any(r["has_photo"] for r in got) and any(r["orders"] for r in got)

    # The data scientist's example: one courier's orders with their photos' hashes, the bytes through pymongo.
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "images_by_courier.py"
    out = subprocess.run(
        [sys.executable, str(example), "--profile", "local", "--out", str(tmp_path / "photos")],
        cwd=stack.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    courier = summary["courier_id"]
    mine = [o for o in owners if o["kind"] == "proof_of_delivery" and o["courier_id"] == courier]
    assert summary["orders"] == len(mine) > 0
    for owner in mine:
        (path,) = (tmp_path / "photos").glob(f"{owner['order_id']}.*")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == owner["image_id"]


def stack_query(stack, sql: str) -> list[dict]:
    proc = stack.run("sql", sql, "--json", timeout=300)
    return json.loads(proc.stdout)


def test_the_mongodb_catalog_is_enabled_by_a_probe_of_the_store(stack) -> None:
    """FerretDB 1.24 rejects the collation Trino's MongoDB connector sends (error 238): no mongodb catalog."""
    from airlake.lake.sidestore import mongo_uri, supports_collation

    ok, why = supports_collation(mongo_uri(stack.settings))
    assert not ok and "error 238" in why
    assert "trino mongodb catalog: off (find with collation fails: error 238" in stack.first_up
    catalogs = {row["Catalog"] for row in stack_query(stack, "show catalogs")}
    assert "iceberg" in catalogs and "mongodb" not in catalogs
