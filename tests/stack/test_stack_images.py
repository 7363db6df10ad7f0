"""The image side store on the native stack's FerretDB: photos served by the order firehose, fetched over HTTP,
validated, stored and read back; idempotent puts; ``airlake images get`` and ``stats`` through the command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from airlake.lake.images import (
    NOT_AN_IMAGE,
    TOO_MANY_BYTES,
    TOO_MANY_PIXELS,
    TRUNCATED,
    ImageLimits,
    ImageMeta,
    validate,
)
from airlake.lake.sidestore import NOT_FOUND, SideStore
from airlake.settings import load_settings
from airlake.sources.photos import PhotoFaults, parse_photo_id, render_photo
from tests.conftest import RECORDING_2018
from tests.procs import Firehose
from tests.stack.conftest import AIRLAKE

pytestmark = pytest.mark.stack

SEED = 42
EVERY = 8
FAULT_REASONS = {
    "missing": NOT_FOUND,
    "truncated": TRUNCATED,
    "not_image": NOT_AN_IMAGE,
    "bomb": TOO_MANY_PIXELS,
    "oversized": TOO_MANY_BYTES,
}


@pytest.fixture
def store_env(stack):
    """The stack's environment with a fresh side-store database, dropped afterwards."""
    env = {**stack.env, "AIRLAKE__STACK__FERRETDB__DATABASE": f"images_{uuid.uuid4().hex[:10]}"}
    settings = load_settings(environ=env, cwd=stack.cwd)
    with SideStore.from_settings(settings) as store:
        store.ensure_indexes()
        yield env, store
        store.client.drop_database(store.db.name)


def airlake(stack, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIRLAKE, *args], cwd=stack.cwd, env=env, capture_output=True, text=True, timeout=120)


def delivered_events(url: str, wanted: int) -> list[dict]:
    """The first ``wanted`` delivered events of the order stream."""
    found: list[dict] = []
    with requests.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: ") and '"delivered"' in line:
                found.append(json.loads(line[6:]))
                if len(found) == wanted:
                    break
    return found


def ingest(
    store: SideStore, limits: ImageLimits, url: str, kind: str, photo_id: str, owner: dict[str, str]
) -> tuple[str, bytes]:
    """Fetches one photo and stores it, or its rejection; returns what happened and the bytes served."""
    response = requests.get(url, timeout=60)
    if response.status_code == 404:
        store.reject(reason=NOT_FOUND, kind=kind, owners=[owner], photo_id=photo_id, source_url=url)
        return NOT_FOUND, b""
    assert response.status_code == 200, (url, response.status_code)
    data = response.content
    assert response.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    result = validate(data, limits)
    if isinstance(result, ImageMeta):
        store.put(data, result, kind=kind, owners=[owner], photo_id=photo_id, source_url=url)
        return "stored", data
    store.reject(result, kind=kind, owners=[owner], photo_id=photo_id, source_url=url)
    return result.reason, data


def test_photos_round_trip_from_the_firehose_through_the_side_store(stack, store_env, tmp_path: Path) -> None:
    env, store = store_env
    limits = ImageLimits.from_settings(load_settings(environ=env, cwd=stack.cwd))
    fault_flags = [arg for kind in FAULT_REASONS for arg in (f"--photo-{kind.replace('_', '-')}-every", str(EVERY))]
    faults = PhotoFaults(**{f"{kind}_every": EVERY for kind in FAULT_REASONS})
    firehose = Firehose(
        tmp_path / "state",
        "orders",
        "--demand-file",
        str(RECORDING_2018),
        "--seed",
        str(SEED),
        *fault_flags,
        log=tmp_path / "firehose.log",
    )
    try:
        menus = requests.get(f"{firehose.base}/v1/restaurants?market=springfield", timeout=120).json()["restaurants"]
        events = delivered_events(firehose.url, 24)
        jobs = [
            (
                item["photo_url"],
                "menu",
                item["photo_id"],
                {"menu_item_id": item["menu_item_id"], "restaurant_id": r["restaurant_id"], "market": r["market"]},
            )
            for r in menus[:4]
            for item in r["menu"]
        ]
        jobs += [
            (
                firehose.base + e["proof_photo_url"],
                "proof_of_delivery",
                e["proof_photo_id"],
                {
                    "order_id": e["order_id"],
                    "courier_id": e["courier_id"],
                    "restaurant_id": e["restaurant_id"],
                    "market": e["market"],
                },
            )
            for e in events
        ]
        outcomes: Counter[str] = Counter()
        served: dict[str, bytes] = {}
        for url, kind, photo_id, owner in jobs:
            outcome, data = ingest(store, limits, url, kind, photo_id, owner)
            fault = faults.fault(SEED, photo_id)
            # Each fault ends with its own reason, and a good photo is stored.
            assert outcome == (FAULT_REASONS[fault] if fault else "stored"), (photo_id, fault, outcome)
            outcomes[outcome] += 1
            if fault is None:
                assert data == render_photo(SEED, photo_id)[1]  # what the source generated
                served[photo_id] = data
    finally:
        firehose.kill()
    assert set(outcomes) == {"stored", *FAULT_REASONS.values()}, outcomes

    # Read back: bytes and metadata equal what was served, one document and one GridFS file per distinct photo.
    distinct = {hashlib.sha256(data).hexdigest(): data for data in served.values()}
    for photo_id, data in served.items():
        document, back = store.read(photo_id)
        assert back == data
        meta = validate(data)
        assert document["_id"] == meta.sha256
        for key, value in meta.as_dict().items():
            if key != "sha256":
                assert document.get(key) == value, key
        assert document["kind"] == parse_photo_id(photo_id).kind
        assert photo_id in document["photo_ids"]
    assert store.images.count_documents({}) == len(distinct)
    assert store.files.count_documents({}) == len(distinct)
    # Menu items of several restaurants share stock photos: one document lists all of their owners.
    shared = [d for d in store.images.find({"kind": "menu"}) if len(d.get("restaurant_ids", [])) >= 2]
    assert shared and all(len(d["menu_item_ids"]) == len(d["restaurant_ids"]) for d in shared)
    for event in events:
        if event["proof_photo_id"] in served:
            (document,) = store.for_order(event["order_id"])
            assert document["courier_ids"] == [event["courier_id"]]
    stats = store.stats()
    assert stats["total_images"] == len(distinct)
    assert stats["total_bytes"] == stats["gridfs_bytes"] == sum(len(d) for d in distinct.values())
    rejected = Counter(doc["reason"] for doc in store.rejects.find({}))
    assert stats["rejects"] == dict(rejected)
    assert set(rejected) == set(FAULT_REASONS.values())


def test_the_same_photo_twice_is_one_document_and_one_file_with_both_owners(store_env) -> None:
    _, store = store_env
    photo_id = "pod.ord-london-201803071616-0007.20180307T161624Z"
    _, data = render_photo(SEED, photo_id)
    meta = validate(data)
    assert isinstance(meta, ImageMeta)
    first = store.put(data, meta, kind="proof_of_delivery", owners=[{"order_id": "ord-a", "courier_id": "cur-1"}])
    again = store.put(data, meta, kind="proof_of_delivery", owners=[{"order_id": "ord-a", "courier_id": "cur-1"}])
    other = store.put(data, meta, kind="proof_of_delivery", owners=[{"order_id": "ord-b", "courier_id": "cur-2"}])
    assert (first.created, first.file_created) == (True, True)
    assert not (again.created or again.file_created or other.created or other.file_created)
    assert store.images.count_documents({}) == 1 and store.files.count_documents({}) == 1
    document = store.document(meta.sha256)
    assert document["order_ids"] == ["ord-a", "ord-b"] and document["courier_ids"] == ["cur-1", "cur-2"]
    assert len(document["owners"]) == 2
    assert store.read(meta.sha256)[1] == data


def test_a_file_left_by_a_crash_before_its_document_is_reused(store_env) -> None:
    _, store = store_env
    _, data = render_photo(SEED, "dish.thai.pad-thai.1")
    meta = validate(data)
    # What a put that died between its GridFS upload and its document write leaves behind.
    orphan = store.bucket.upload_from_stream(meta.sha256, data)
    result = store.put(data, meta, kind="menu", owners=[{"menu_item_id": "itm-x-0001-01"}])
    assert (result.created, result.file_created) == (True, False)
    assert store.document(meta.sha256)["file_id"] == orphan
    assert store.files.count_documents({}) == 1


def test_images_get_and_stats_through_the_command_line(stack, store_env, tmp_path: Path) -> None:
    env, store = store_env
    stored = {}
    for photo_id in (
        "dish.pizza.margherita.0",
        "dish.sushi.tuna-maki.1",
        "pod.ord-london-201803071616-0001.20180307T161618Z",
    ):
        _, data = render_photo(SEED, photo_id)
        meta = validate(data)
        store.put(data, meta, kind=parse_photo_id(photo_id).kind, photo_id=photo_id)
        stored[photo_id] = (parse_photo_id(photo_id).kind, meta, data)
    store.reject(validate(b"hello, not an image"), kind="menu", photo_id="dish.pizza.funghi.0")
    store.reject(reason=NOT_FOUND, kind="menu", photo_id="dish.pizza.funghi.1", source_url="http://x/1")

    for photo_id, (_, meta, data) in stored.items():
        out = tmp_path / f"{photo_id}.bin"
        proc = airlake(stack, env, "images", "get", meta.sha256, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == data
        by_photo_id = airlake(stack, env, "images", "get", photo_id, "-o", str(tmp_path / "again.bin"))
        assert by_photo_id.returncode == 0 and (tmp_path / "again.bin").read_bytes() == data
    unknown = airlake(stack, env, "images", "get", "0" * 64, "-o", str(tmp_path / "nothing.bin"))
    assert unknown.returncode == 1
    assert f"no image {'0' * 64!r} in the side store" in unknown.stderr
    assert not (tmp_path / "nothing.bin").exists()

    proc = airlake(stack, env, "images", "stats", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    expected: Counter[tuple[str, str]] = Counter()
    expected_bytes: Counter[tuple[str, str]] = Counter()
    for kind, meta, _ in stored.values():
        expected[(kind, meta.format)] += 1
        expected_bytes[(kind, meta.format)] += meta.byte_size
    got = {(row["kind"], row["format"]): (row["images"], row["bytes"]) for row in stats["images"]}
    assert got == {key: (expected[key], expected_bytes[key]) for key in expected}
    assert stats["rejects"] == {NOT_AN_IMAGE: 1, NOT_FOUND: 1}
    text = airlake(stack, env, "images", "stats")
    assert text.returncode == 0 and "not_an_image 1, not_found 1" in text.stdout
    assert f"{sum(expected.values()):>8,}" in text.stdout


def test_an_unreachable_side_store_is_a_clear_error(stack, tmp_path: Path) -> None:
    env = {**stack.env, "AIRLAKE__STACK__FERRETDB__PORT": "1"}
    proc = airlake(stack, env, "images", "stats", "--timeout", "1")
    assert proc.returncode == 2
    assert "the side store at mongodb://127.0.0.1:1/ can't be reached" in proc.stderr
