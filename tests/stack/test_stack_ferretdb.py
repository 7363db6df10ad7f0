"""The MongoDB-protocol side store (FerretDB) of the native stack, through pymongo."""

from __future__ import annotations

import hashlib
import os

import gridfs
import pymongo
import pytest

pytestmark = pytest.mark.stack


@pytest.fixture
def mongo(stack):
    settings = stack.settings
    uri = f"mongodb://{settings.require('stack.host')}:{int(settings.require('stack.ferretdb.port'))}/"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
    db = client[f"stacktest_{os.getpid()}"]
    yield db
    client.drop_database(db.name)
    client.close()


def test_insert_query_and_index(mongo):
    images = mongo.images
    images.insert_many(
        [
            {"kind": "menu_item", "restaurant": "r1", "width": 640, "height": 480, "format": "jpeg"},
            {"kind": "menu_item", "restaurant": "r2", "width": 1024, "height": 768, "format": "png"},
            {"kind": "proof_of_delivery", "order": "o9", "width": 800, "height": 600, "format": "jpeg"},
        ]
    )
    found = list(images.find({"kind": "menu_item", "width": {"$gte": 800}}, {"_id": 0, "restaurant": 1}))
    assert found == [{"restaurant": "r2"}]
    name = images.create_index([("kind", pymongo.ASCENDING), ("restaurant", pymongo.ASCENDING)])
    assert name in images.index_information()
    assert images.count_documents({"format": "jpeg"}) == 2


def test_gridfs_round_trip_of_5_mb(mongo):
    payload = os.urandom(5 * 1024 * 1024)
    fs = gridfs.GridFS(mongo)
    file_id = fs.put(payload, filename="menu.jpg", contentType="image/jpeg")
    back = fs.get(file_id).read()
    assert len(back) == len(payload)
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(payload).hexdigest()
