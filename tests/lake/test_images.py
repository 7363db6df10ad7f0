"""Image validation and metadata (lake/images.py): every fault of the photo source is rejected with its own reason,
and the metadata of good images is right."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from airlake.lake.images import (
    CORRUPT,
    EMPTY,
    FORMAT_NOT_ALLOWED,
    NOT_AN_IMAGE,
    REASONS,
    TOO_MANY_BYTES,
    TOO_MANY_PIXELS,
    TRUNCATED,
    ImageLimits,
    ImageMeta,
    Rejection,
    dhash,
    hamming,
    validate,
)
from airlake.settings import load_settings
from airlake.sources import photos

SEED = 42
MENU_JPEG = "dish.pizza.margherita.0"


def photo_of_format(fmt: str) -> tuple[str, bytes]:
    for photo_id in (f"pod.ord-london-201803071616-{i:04d}.20180307T161617Z" for i in range(200)):
        if photos.photo_format(SEED, photo_id) == fmt:
            return photo_id, photos.render_photo(SEED, photo_id)[1]
    raise AssertionError(f"no {fmt} photo")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def rejected(data: bytes, limits: ImageLimits | None = None) -> Rejection:
    result = validate(data, limits)
    assert isinstance(result, Rejection), result
    assert result.reason in REASONS
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.byte_size == len(data)
    return result


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_every_fault_of_the_source_has_its_own_reason(fmt: str) -> None:
    photo_id, good = photo_of_format(fmt)
    assert isinstance(validate(good), ImageMeta)
    assert rejected(photos.truncate(good, SEED, photo_id)).reason == TRUNCATED
    assert rejected(good[: len(good) // 2]).reason == TRUNCATED
    assert rejected(photos.not_an_image(photo_id)).reason == NOT_AN_IMAGE
    bomb = photos.decompression_bomb()
    assert len(bomb) < 200_000
    assert rejected(bomb).reason == TOO_MANY_PIXELS
    oversized = photos.oversized_jpeg(SEED, photo_id)
    assert rejected(oversized).reason == TOO_MANY_BYTES
    # ... and only its size was wrong: with a larger bound it is a valid JPEG.
    assert isinstance(validate(oversized, ImageLimits(max_bytes=len(oversized))), ImageMeta)


def test_the_other_reasons() -> None:
    assert rejected(b"").reason == EMPTY
    gif = encode(Image.new("RGB", (40, 30), "red"), "GIF")
    rejection = rejected(gif)
    assert (rejection.reason, rejection.format) == (FORMAT_NOT_ALLOWED, "GIF")
    assert isinstance(validate(gif, ImageLimits(allowed_formats=("GIF",))), ImageMeta)
    # Our own pixel bound, below Pillow's: read from the header, nothing decoded.
    big = encode(Image.new("L", (3000, 2000)), "PNG")
    assert rejected(big, ImageLimits(max_pixels=5_000_000)).reason == TOO_MANY_PIXELS
    assert isinstance(validate(big, ImageLimits(max_pixels=6_000_000)), ImageMeta)
    # Bytes flipped inside the compressed data of a PNG: the CRC check of verify() fails.
    png = bytearray(encode(Image.new("RGB", (64, 64), "blue"), "PNG"))
    idat = png.index(b"IDAT")
    png[idat + 10] ^= 0xFF
    assert rejected(bytes(png)).reason == CORRUPT


def test_limits_come_from_the_settings(tmp_path) -> None:
    (tmp_path / "airlake.toml").write_text('[images]\nallowed_formats = ["png"]\n')
    settings = load_settings({"profile": "embedded"}, environ={"AIRLAKE__IMAGES__MAX_BYTES": "1000"}, cwd=tmp_path)
    limits = ImageLimits.from_settings(settings)
    assert limits == ImageLimits(allowed_formats=("PNG",), max_bytes=1000, max_pixels=40_000_000)


def test_metadata_of_a_known_image() -> None:
    image = Image.new("RGB", (321, 123), (200, 30, 40))
    image.paste((10, 20, 30), (0, 0, 40, 40))  # a small dark corner: the dominant colour stays the red
    exif = Image.Exif()
    exif[photos.EXIF_DATETIME] = "2026:12:03 14:15:16"
    data = encode(image, "PNG", exif=exif)
    meta = validate(data)
    assert isinstance(meta, ImageMeta)
    assert (meta.width, meta.height, meta.format, meta.mode) == (321, 123, "PNG", "RGB")
    assert meta.sha256 == hashlib.sha256(data).hexdigest() and meta.byte_size == len(data)
    assert meta.dominant_colour == "#c81e28"
    assert meta.exif_time == "2026-12-03T14:15:16"
    assert meta.content_type == "image/png"
    assert validate(encode(image, "PNG")).exif_time is None


def test_perceptual_hash_is_stable_across_formats_and_tells_photos_apart() -> None:
    fmt, data = photos.render_photo(SEED, MENU_JPEG)
    meta = validate(data)
    assert isinstance(meta, ImageMeta) and meta.format == fmt == "JPEG"
    assert len(meta.phash) == 16 and validate(data).phash == meta.phash
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        as_png = encode(image, "PNG")
        half = encode(image.resize((image.width // 2, image.height // 2)), "WEBP", quality=60)
    assert validate(as_png).sha256 != meta.sha256
    assert hamming(validate(as_png).phash, meta.phash) <= 2
    assert hamming(validate(half).phash, meta.phash) <= 6
    others = [photos.render_photo(SEED, f"dish.sushi.tuna-maki.{v}")[1] for v in range(2)]
    for other in others:
        assert hamming(validate(other).phash, meta.phash) > 12
    flat = Image.new("RGB", (90, 80), "white")
    assert dhash(flat) == "0" * 16
