"""A data scientist's look at one courier's proof-of-delivery photos: metadata from the lake, bytes from the side store.

Loads the image metadata of ``raw.images`` and ``raw.image_owners`` with pyiceberg (the settings' catalog), picks
the courier with the most delivered orders that have a photo (or ``--courier``), prints each order with its photo's
perceptual hash and how far it is from the courier's other photos, and fetches the bytes with pymongo (GridFS)
into ``--out``, checking them against the SHA-256 in the lake.

    python docs/examples/images_by_courier.py --profile local --out /tmp/photos
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import gridfs
import pyarrow.compute as pc
import pymongo

from airlake.catalog import load_catalog
from airlake.lake.images import hamming
from airlake.settings import load_settings


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="local")
    parser.add_argument("--courier", help="a courier id (default: the one with the most photos)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the photos' bytes")
    args = parser.parse_args(argv)
    settings = load_settings({"profile": args.profile})
    catalog = load_catalog(settings)

    # 1. Metadata from the lake (pyiceberg): the owners of proof photos and the images they point at.
    owners = (
        catalog.load_table("raw.image_owners")
        .scan(
            row_filter="kind == 'proof_of_delivery'",
            selected_fields=("image_id", "photo_id", "order_id", "courier_id", "market"),
        )
        .to_arrow()
    )
    images = (
        catalog.load_table("raw.images")
        .scan(selected_fields=("image_id", "phash", "format", "width", "height", "byte_size"))
        .to_arrow()
    )
    joined = owners.join(images, "image_id", join_type="inner")
    courier = args.courier
    if courier is None:
        counts = pc.value_counts(joined.column("courier_id")).to_pylist()
        courier = max(counts, key=lambda c: (c["counts"], c["values"]))["values"]
    mine = joined.filter(pc.equal(joined.column("courier_id"), courier)).sort_by("order_id").to_pylist()

    # 2. Bytes from the side store (pymongo + GridFS), by the image's id.
    client = pymongo.MongoClient(f"mongodb://{settings.stack.host}:{settings.stack.ferretdb.port}/")
    db = client[settings.stack.ferretdb.database]
    bucket = gridfs.GridFSBucket(db)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in mine:
        document = db.images.find_one({"_id": row["image_id"]})
        data = bucket.open_download_stream(document["file_id"]).read()
        assert hashlib.sha256(data).hexdigest() == row["image_id"], row["image_id"]
        path = args.out / f"{row['order_id']}.{row['format'].lower()}"
        path.write_bytes(data)
        nearest = min((hamming(row["phash"], o["phash"]) for o in mine if o is not row), default=None)
        rows.append({**row, "path": str(path), "bytes": len(data), "nearest_other_photo_bits": nearest})
        print(f"{row['order_id']:40} {row['phash']} {row['format']:4} {row['width']}x{row['height']} -> {path}")
    client.close()
    result = {"courier_id": courier, "orders": len(rows), "photos": rows}
    print(json.dumps({"courier_id": courier, "orders": len(rows)}))
    return result


if __name__ == "__main__":
    main()
