"""The image step's parts that need no side store: photo references, fetching with retries, when it runs."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pyarrow as pa
import pytest
import requests

from airlake.lake.images import ImageLimits
from airlake.lake.sidestore import FETCH_FAILED, NOT_FOUND
from airlake.pipelines.images import ImageConfig, enabled, fetch_photo, owner_key, refs_from_orders


@pytest.fixture
def server():
    """A photo server whose answers per path are scripted: a list of (status, body) taken in turn."""
    script: dict[str, list[tuple[int, bytes]]] = {}
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits[self.path] = hits.get(self.path, 0) + 1
            answers = script.get(self.path, [(404, b"")])
            status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script, hits
    httpd.shutdown()
    httpd.server_close()


CONFIG = ImageConfig("mongodb://unused/", "unused", ImageLimits(max_bytes=1000), attempts=3, backoff=0.01, timeout=2)


def test_a_404_is_final_and_5xx_are_retried(server) -> None:
    base, script, hits = server
    script["/ok"] = [(503, b""), (500, b""), (200, b"x" * 10)]
    script["/down"] = [(503, b"")]
    session = requests.Session()
    got = fetch_photo(session, base + "/ok", CONFIG, sleep=lambda _: None)
    assert (got.data, got.reason, got.attempts) == (b"x" * 10, None, 3)
    missing = fetch_photo(session, base + "/missing", CONFIG, sleep=lambda _: None)
    assert (missing.data, missing.reason, hits["/missing"]) == (None, NOT_FOUND, 1)
    down = fetch_photo(session, base + "/down", CONFIG, sleep=lambda _: None)
    assert (down.data, down.reason, hits["/down"]) == (None, FETCH_FAILED, 3)
    assert "HTTP 503" in down.detail and "after 3 attempts" in down.detail


def test_an_oversized_photo_is_read_only_one_byte_past_the_limit(server) -> None:
    base, script, _ = server
    script["/big"] = [(200, b"y" * 50_000)]
    got = fetch_photo(requests.Session(), base + "/big", CONFIG)
    assert got.data is not None and len(got.data) == CONFIG.limits.max_bytes + 1


def test_an_unreachable_photo_server_fails_after_its_attempts() -> None:
    got = fetch_photo(requests.Session(), "http://127.0.0.1:1/p", CONFIG, sleep=lambda _: None)
    assert got.reason == FETCH_FAILED and got.attempts == 3 and "ConnectionError" in got.detail


def test_references_of_delivered_orders_resolve_against_the_firehose() -> None:
    def row(event_type: str, extra: dict) -> dict:
        event = {"event_type": event_type, "order_id": "ord-1", "courier_id": "cur-1", "market": "london", **extra}
        return {"event_type": event_type, "raw_json": json.dumps(event)}

    rows = [
        row("placed", {}),
        row(
            "delivered",
            {
                "proof_photo_id": "pod.ord-1.20180307T161624Z",
                "proof_photo_url": "/v1/photos/pod.ord-1.20180307T161624Z",
            },
        ),
        row(
            "delivered",
            {"proof_photo_id": "pod.ord-2.x", "proof_photo_url": "https://cdn.example/v1/photos/pod.ord-2.x"},
        ),
        row("delivered", {}),  # an older event without a photo
    ]
    table = pa.table({"event_type": [r["event_type"] for r in rows], "raw_json": [r["raw_json"] for r in rows]})
    refs = refs_from_orders(table, "http://127.0.0.1:8091/v2/stream/orders")
    assert [r["url"] for r in refs] == [
        "http://127.0.0.1:8091/v1/photos/pod.ord-1.20180307T161624Z",
        "https://cdn.example/v1/photos/pod.ord-2.x",
    ]
    assert refs[0]["owner"] == {"order_id": "ord-1", "courier_id": "cur-1", "market": "london"}
    assert owner_key(refs[0]["photo_id"], refs[0]["owner"]) != owner_key(refs[1]["photo_id"], refs[1]["owner"])


@pytest.mark.parametrize(
    ("mode", "profile", "sources", "expected"),
    [
        ("auto", "embedded", ["orders"], False),
        ("auto", "local", ["orders", "recentchange"], True),
        ("auto", "local", ["recentchange"], False),
        ("on", "embedded", ["orders"], True),
        ("off", "local", ["orders"], False),
    ],
)
def test_when_the_image_step_runs(mode, profile, sources, expected) -> None:
    settings = SimpleNamespace(images=SimpleNamespace(ingest=mode), profile=profile)
    assert enabled(settings, sources) is expected
