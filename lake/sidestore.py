"""The image side store: one MongoDB document per image, keyed by its content hash, its bytes in GridFS.

Works against FerretDB 1.24 (the native stack) and MongoDB (compose); uses nothing FerretDB 1.x lacks (no
``$lookup``, no nested arrays, no collation, no transactions). Collections of the database
``stack.ferretdb.database``:

- ``images``: ``{_id: sha256, kind, width, height, format, content_type, byte_size, phash, dominant_colour,
  exif_time (only when present), file_id, created_at, photo_ids: [...], source_urls: [...],
  owners: [{order_id, menu_item_id, restaurant_id, courier_id, market}], order_ids, menu_item_ids, restaurant_ids,
  courier_ids, markets}``;
  the flat ``*_ids`` lists are indexed (an order's photo by ``order_ids``).
- ``fs.files`` / ``fs.chunks``: GridFS, one file per image (``filename`` is the SHA-256).
- ``rejects``: ``{_id, reason, detail, kind, photo_ids, source_urls, owners..., created_at}``; ``_id`` is the
  SHA-256, or ``photo:<photo id>`` (else ``url:<url>``) for a reject without bytes.

:meth:`SideStore.put` is idempotent: the same bytes twice are one document and one GridFS file, and owner keys are
added with ``$addToSet``. The bytes are written before the document (a document always has its bytes); a file left
by a crash before its document is reused by the next put of the same bytes.

Imports :mod:`lake.images` and :mod:`settings`; pymongo (and its ``gridfs``) lazily.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airlake.lake.images import ImageMeta, Rejection

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

IMAGES = "images"
REJECTS = "rejects"
BUCKET = "fs"
KINDS = ("menu", "proof_of_delivery")
OWNER_KEYS = ("order_id", "menu_item_id", "restaurant_id", "courier_id", "market")
"""The owner keys of an image; each has a flat indexed list ``<key>s`` in the document (``order_ids``)."""
NOT_FOUND = "not_found"
FETCH_FAILED = "fetch_failed"
"""Reasons of rejects that never had bytes (a 404, a fetch that failed for good), besides the validator's."""


class UnknownImage(LookupError):
    """No image with that id in the side store."""


def mongo_uri(settings: Any) -> str:
    """The side store's URI: the stack's FerretDB (``stack.host``, ``stack.ferretdb.port``)."""
    return f"mongodb://{settings.stack.host}:{settings.stack.ferretdb.port}/"


COLLATION_NOT_IMPLEMENTED = 238
"""The error code FerretDB 1.24 answers a ``find`` with ``collation`` (MongoDB's ``NotImplemented``)."""


def supports_collation(uri: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Whether the store at ``uri`` answers a ``find`` with a (simple) ``collation``, as Trino's MongoDB connector
    sends on every read: MongoDB does, FerretDB 1.24 does not (error 238). Returns the answer and why.
    """
    import pymongo
    from pymongo.errors import OperationFailure, PyMongoError

    client: MongoClient = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        client["admin"].command("ping")
        client["airlake_probe"].command({"find": "probe", "filter": {}, "limit": 1, "collation": {"locale": "simple"}})
        return True, "find with collation works"
    except OperationFailure as exc:
        return False, f"find with collation fails: error {exc.code} ({str(exc).splitlines()[0][:160]})"
    except PyMongoError as exc:
        return False, f"the store can't be reached: {type(exc).__name__}"
    finally:
        client.close()


def _owner_lists(owners: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    docs: list[dict[str, Any]] = []
    flat: dict[str, list[str]] = {f"{key}s": [] for key in OWNER_KEYS}
    for owner in owners:
        unknown = set(owner) - set(OWNER_KEYS)
        if unknown:
            raise ValueError(f"unknown owner keys {sorted(unknown)}; owner keys are {', '.join(OWNER_KEYS)}")
        doc = {key: str(owner[key]) for key in OWNER_KEYS if owner.get(key) not in (None, "")}
        if not doc:
            continue
        docs.append(doc)
        for key, value in doc.items():
            if value not in flat[f"{key}s"]:
                flat[f"{key}s"].append(value)
    return docs, {name: values for name, values in flat.items() if values}


def _add_to_sets(lists: Mapping[str, list[Any]]) -> dict[str, Any]:
    return {name: {"$each": values} for name, values in lists.items() if values}


@dataclass(frozen=True)
class PutResult:
    """What :meth:`SideStore.put` did: the image's id, whether its document and its GridFS file are new."""

    sha256: str
    created: bool
    file_created: bool


class SideStore:
    """The image documents, their bytes and the rejects in one database.

    Args:
        client: a connected :class:`pymongo.MongoClient` (closed by :meth:`close`).
        database: the database name.
    """

    def __init__(self, client: MongoClient, database: str) -> None:
        import gridfs

        self.client = client
        self.db: Database = client[database]
        self.images = self.db[IMAGES]
        self.rejects = self.db[REJECTS]
        self.files = self.db[f"{BUCKET}.files"]
        self.bucket = gridfs.GridFSBucket(self.db, bucket_name=BUCKET)

    @classmethod
    def from_settings(cls, settings: Any, *, timeout: float = 10.0) -> SideStore:
        """The side store of the settings (``stack.host``, ``stack.ferretdb.port``, ``stack.ferretdb.database``)."""
        import pymongo

        client: MongoClient = pymongo.MongoClient(
            mongo_uri(settings),
            serverSelectionTimeoutMS=int(timeout * 1000),
            connectTimeoutMS=int(timeout * 1000),
            tz_aware=True,
        )
        return cls(client, settings.stack.ferretdb.database)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SideStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_indexes(self) -> None:
        """Indexes on the owner lists, kind and format (idempotent)."""
        import pymongo

        for key in OWNER_KEYS:
            self.images.create_index([(f"{key}s", pymongo.ASCENDING)])
        self.images.create_index([("kind", pymongo.ASCENDING), ("format", pymongo.ASCENDING)])
        self.images.create_index([("photo_ids", pymongo.ASCENDING)])
        self.files.create_index([("filename", pymongo.ASCENDING)])
        self.rejects.create_index([("reason", pymongo.ASCENDING)])

    # -- writing -----------------------------------------------------------------------------------

    def put(
        self,
        data: bytes,
        meta: ImageMeta,
        *,
        kind: str,
        owners: Iterable[Mapping[str, Any]] = (),
        photo_id: str | None = None,
        source_url: str | None = None,
    ) -> PutResult:
        """Stores an image once (keyed by its SHA-256) and adds its owners.

        Args:
            data: the image's bytes (validated: ``meta`` is their :func:`lake.images.validate` result).
            meta: the metadata.
            kind: ``menu`` or ``proof_of_delivery``.
            owners: owner keys (:data:`OWNER_KEYS`), one mapping per owner.
            photo_id: the source's id of the photo.
            source_url: where it was fetched from.

        Returns:
            The :class:`PutResult`.

        Raises:
            ValueError: an unknown kind or owner key, or ``meta`` is not of ``data``.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != meta.sha256 or len(data) != meta.byte_size:
            raise ValueError(f"the metadata is of {meta.sha256}, the bytes are {digest}")
        owner_docs, flat = _owner_lists(owners)
        additions = _add_to_sets(
            {
                "owners": owner_docs,
                **flat,
                "photo_ids": [photo_id] if photo_id else [],
                "source_urls": [source_url] if source_url else [],
            }
        )
        if self.images.find_one({"_id": digest}, {"_id": 1}) is not None:
            if additions:
                self.images.update_one({"_id": digest}, {"$addToSet": additions})
            return PutResult(digest, created=False, file_created=False)
        file_id, file_created = self._file_for(digest, data, meta)
        document = {
            **{k: v for k, v in meta.as_dict().items() if k != "sha256" and v is not None},
            "kind": kind,
            "content_type": meta.content_type,
            "file_id": file_id,
            "created_at": datetime.now(UTC),
        }
        update: dict[str, Any] = {"$setOnInsert": document}
        if additions:
            update["$addToSet"] = additions
        result = self.images.update_one({"_id": digest}, update, upsert=True)
        created = result.upserted_id is not None
        if not created and file_created:
            # Another writer stored the same image meanwhile with its own file: keep one file.
            kept = self.images.find_one({"_id": digest}, {"file_id": 1})
            if kept is not None and kept.get("file_id") != file_id:
                self.bucket.delete(file_id)
                file_created = False
        return PutResult(digest, created=created, file_created=file_created)

    def _file_for(self, digest: str, data: bytes, meta: ImageMeta) -> tuple[Any, bool]:
        """The GridFS file of these bytes: one left complete by an earlier put (a crash before its document), or a
        new one. A file's ``fs.files`` entry is written after all its chunks, so a listed file is complete."""
        existing = self.files.find_one({"filename": digest, "length": len(data)}, {"_id": 1}, sort=[("_id", 1)])
        if existing is not None:
            return existing["_id"], False
        file_id = self.bucket.upload_from_stream(
            digest, data, metadata={"content_type": meta.content_type, "format": meta.format}
        )
        return file_id, True

    def reject(
        self,
        rejection: Rejection | None = None,
        *,
        reason: str | None = None,
        detail: str = "",
        kind: str | None = None,
        owners: Iterable[Mapping[str, Any]] = (),
        photo_id: str | None = None,
        source_url: str | None = None,
    ) -> str:
        """Records a rejected image (from :func:`lake.images.validate`, or a fetch ``reason`` such as
        :data:`NOT_FOUND`), once per content hash, or when there were no bytes once per photo id (else URL); returns
        its ``_id``."""
        if rejection is not None:
            reason, detail, key = rejection.reason, rejection.detail, rejection.sha256
        elif reason is None:
            raise ValueError("a rejection or a reason is needed")
        elif photo_id:
            key = f"photo:{photo_id}"
        elif source_url:
            key = f"url:{source_url}"
        else:
            raise ValueError("a reject without bytes needs a photo_id or a source_url")
        owner_docs, flat = _owner_lists(owners)
        additions = _add_to_sets(
            {
                "owners": owner_docs,
                **flat,
                "photo_ids": [photo_id] if photo_id else [],
                "source_urls": [source_url] if source_url else [],
            }
        )
        document: dict[str, Any] = {"reason": reason, "detail": detail, "created_at": datetime.now(UTC)}
        if kind is not None:
            document["kind"] = kind
        if rejection is not None:
            document.update(byte_size=rejection.byte_size, format=rejection.format)
        update: dict[str, Any] = {"$setOnInsert": document}
        if additions:
            update["$addToSet"] = additions
        self.rejects.update_one({"_id": key}, update, upsert=True)
        return key

    # -- reading -----------------------------------------------------------------------------------

    def document(self, image_id: str) -> dict[str, Any] | None:
        """The document of an image by its SHA-256 or by the source's photo id."""
        found = self.images.find_one({"_id": image_id})
        if found is None:
            found = self.images.find_one({"photo_ids": image_id})
        return found

    def read(self, image_id: str) -> tuple[dict[str, Any], bytes]:
        """The document and the bytes of an image (by SHA-256 or photo id).

        Raises:
            UnknownImage: no such image.
        """
        document = self.document(image_id)
        if document is None:
            raise UnknownImage(f"no image {image_id!r} in the side store")
        data = self.bucket.open_download_stream(document["file_id"]).read()
        return document, data

    def for_order(self, order_id: str) -> list[dict[str, Any]]:
        """The documents of an order's images."""
        return list(self.images.find({"order_ids": order_id}))

    def stats(self) -> dict[str, Any]:
        """Counts and bytes per kind and format, the GridFS files, and rejects by reason."""
        per: dict[tuple[str, str], dict[str, int]] = {}
        for doc in self.images.find({}, {"kind": 1, "format": 1, "byte_size": 1}):
            entry = per.setdefault((doc.get("kind", "?"), doc.get("format", "?")), {"images": 0, "bytes": 0})
            entry["images"] += 1
            entry["bytes"] += int(doc.get("byte_size", 0))
        reasons: dict[str, int] = {}
        for doc in self.rejects.find({}, {"reason": 1}):
            reasons[doc.get("reason", "?")] = reasons.get(doc.get("reason", "?"), 0) + 1
        file_bytes = sum(int(f.get("length", 0)) for f in self.files.find({}, {"length": 1}))
        return {
            "images": [{"kind": k, "format": f, **v} for (k, f), v in sorted(per.items())],
            "total_images": sum(v["images"] for v in per.values()),
            "total_bytes": sum(v["bytes"] for v in per.values()),
            "gridfs_files": self.files.count_documents({}),
            "gridfs_bytes": file_bytes,
            "rejects": dict(sorted(reasons.items())),
        }
