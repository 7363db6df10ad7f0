"""Validating an image before it is stored, and the metadata stored with it.

:func:`validate` takes the bytes of a file and returns either its :class:`ImageMeta` (width, height, format, byte
size, SHA-256, a 64-bit perceptual hash, dominant colour, EXIF time when present) or a :class:`Rejection` whose
reason is one of :data:`REASONS`. The checks, in order: not empty, at most ``max_bytes`` (unread beyond that),
Pillow recognizes it, its format is allowed, width times height at most ``max_pixels`` (read from the header, before
anything is decoded: a decompression bomb never reaches the decoder), ``verify()``, then a full decode.

Imports :mod:`settings` (the limits); Pillow and numpy.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

EMPTY = "empty"
TOO_MANY_BYTES = "too_many_bytes"
NOT_AN_IMAGE = "not_an_image"
FORMAT_NOT_ALLOWED = "format_not_allowed"
TOO_MANY_PIXELS = "too_many_pixels"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
REASONS = (EMPTY, TOO_MANY_BYTES, NOT_AN_IMAGE, FORMAT_NOT_ALLOWED, TOO_MANY_PIXELS, TRUNCATED, CORRUPT)
"""Why an image is rejected, in the order the checks run."""

EXIF_DATETIME = 0x0132
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 0x9003
HASH_SIZE = 8
"""The perceptual hash is a dHash of a ``HASH_SIZE + 1`` x ``HASH_SIZE`` greyscale thumbnail: 64 bits."""


@dataclass(frozen=True)
class ImageLimits:
    """What an image may be (the ``images`` settings)."""

    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    max_bytes: int = 4_000_000
    max_pixels: int = 40_000_000

    @classmethod
    def from_settings(cls, settings: Any) -> ImageLimits:
        images = settings.images
        return cls(tuple(f.upper() for f in images.allowed_formats), images.max_bytes, images.max_pixels)


@dataclass(frozen=True)
class ImageMeta:
    """The metadata of a valid image.

    Attributes:
        sha256: hex SHA-256 of the bytes (the image's key in the side store).
        byte_size: length of the file.
        format: Pillow's format name (``JPEG``, ``PNG``, ``WEBP``).
        width: pixels.
        height: pixels.
        mode: Pillow's mode (``RGB``, ``L``, ...).
        phash: 64-bit difference hash as 16 hex digits; near-identical pictures differ in few bits.
        dominant_colour: ``#rrggbb``, the mean colour of the most common 4-bit-per-channel colour bin.
        exif_time: EXIF ``DateTimeOriginal`` (else ``DateTime``) as ``YYYY-mm-ddTHH:MM:SS``, the camera's local
            time; ``None`` without EXIF.
    """

    sha256: str
    byte_size: int
    format: str
    width: int
    height: int
    mode: str
    phash: str
    dominant_colour: str
    exif_time: str | None = None

    @property
    def content_type(self) -> str:
        return f"image/{self.format.lower()}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rejection:
    """Why bytes are not a storable image: ``reason`` (one of :data:`REASONS`) and a human ``detail``."""

    reason: str
    detail: str
    sha256: str
    byte_size: int
    format: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def dhash(image: Any) -> str:
    """The 64-bit difference hash of a PIL image, as 16 hex digits (stable across formats and small changes)."""
    from PIL import Image

    grey = image.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hamming(a: str, b: str) -> int:
    """Bits that differ between two :func:`dhash` values."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def dominant_colour(image: Any) -> str:
    """``#rrggbb``: the mean of the most common colour bin (4 bits per channel) of a 64 x 64 thumbnail."""
    from PIL import Image

    small = np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.int32)
    pixels = small.reshape(-1, 3)
    bins = (pixels[:, 0] >> 4) << 8 | (pixels[:, 1] >> 4) << 4 | (pixels[:, 2] >> 4)
    top = np.bincount(bins).argmax()
    r, g, b = (int(round(v)) for v in pixels[bins == top].mean(axis=0))
    return f"#{r:02x}{g:02x}{b:02x}"


def exif_time(image: Any) -> str | None:
    """The EXIF ``DateTimeOriginal`` (else ``DateTime``) as ``YYYY-mm-ddTHH:MM:SS``, or ``None``."""
    try:
        exif = image.getexif()
        value = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
    except (OSError, SyntaxError, ValueError, struct.error):
        return None
    if not isinstance(value, str) or len(value) < 19:
        return None
    text = value.strip("\x00").strip()
    date, _, clock = text.partition(" ")
    parts = date.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(clock) != 8:
        return None
    return f"{parts[0]}-{parts[1]}-{parts[2]}T{clock}"


def riff_length(data: bytes) -> int | None:
    """The length a RIFF/WebP file declares in its header (``None`` for other files)."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return 8 + int.from_bytes(data[4:8], "little")
    return None


def _decode_failure(exc: BaseException) -> str:
    message = str(exc).lower()
    if isinstance(exc, EOFError) or "truncat" in message or "premature end" in message or "not enough" in message:
        return TRUNCATED
    return CORRUPT


def validate(data: bytes, limits: ImageLimits | None = None) -> ImageMeta | Rejection:
    """Checks an image and extracts its metadata.

    Args:
        data: the file's bytes.
        limits: what is allowed (default :class:`ImageLimits`).

    Returns:
        The :class:`ImageMeta`, or a :class:`Rejection` with its reason.
    """
    from PIL import Image, UnidentifiedImageError

    limits = limits or ImageLimits()
    digest = hashlib.sha256(data).hexdigest()
    size = len(data)

    def reject(reason: str, detail: str, fmt: str | None = None) -> Rejection:
        return Rejection(reason, detail, digest, size, fmt)

    if not data:
        return reject(EMPTY, "no bytes")
    if size > limits.max_bytes:
        return reject(TOO_MANY_BYTES, f"{size:,} bytes, more than the {limits.max_bytes:,} allowed")
    declared = riff_length(data)
    if declared is not None and size < declared:  # WebP: Pillow's decoder names no reason for a short file
        return reject(TRUNCATED, f"{size:,} bytes of a RIFF container that declares {declared:,}", "WEBP")
    try:
        # open() reads the header only; Pillow's own bomb check may fire here first (its limit is larger).
        with Image.open(io.BytesIO(data)) as image:
            fmt = str(image.format)
            width, height = image.size
    except Image.DecompressionBombError as exc:
        return reject(TOO_MANY_PIXELS, f"decompression bomb: {exc}")
    except UnidentifiedImageError:
        return reject(NOT_AN_IMAGE, f"not an image Pillow recognizes (starts with {data[:16]!r})")
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        return reject(_decode_failure(exc), f"unreadable header: {exc}")
    if fmt not in limits.allowed_formats:
        return reject(FORMAT_NOT_ALLOWED, f"{fmt} is not one of {', '.join(limits.allowed_formats)}", fmt)
    if width * height > limits.max_pixels:
        return reject(
            TOO_MANY_PIXELS,
            f"{width} x {height} = {width * height:,} pixels, more than the {limits.max_pixels:,} allowed",
            fmt,
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # the full decode: verify() does not decode every format
            meta = ImageMeta(
                sha256=digest,
                byte_size=size,
                format=fmt,
                width=width,
                height=height,
                mode=image.mode,
                phash=dhash(image),
                dominant_colour=dominant_colour(image),
                exif_time=exif_time(image),
            )
    except Image.DecompressionBombError as exc:
        return reject(TOO_MANY_PIXELS, f"decompression bomb: {exc}", fmt)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error) as exc:
        return reject(_decode_failure(exc), f"{type(exc).__name__}: {exc}", fmt)
    return meta
