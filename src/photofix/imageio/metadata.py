"""EXIF, XMP, ICC and DPI: read from the source, adjusted for upright output pixels.

Also estimates a JPEG source's quality and chroma subsampling, so a JPEG output can
match them.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np
from PIL import ExifTags, JpegImagePlugin
from PIL import Image as PILImage

from photofix.imageio.image import ImageMeta

ORIENTATION = ExifTags.Base.Orientation
EXIF_IFD = ExifTags.IFD.Exif
GPS_IFD = ExifTags.IFD.GPSInfo
INTEROP_IFD = ExifTags.IFD.Interop
PIXEL_X_DIMENSION = ExifTags.Base.ExifImageWidth
PIXEL_Y_DIMENSION = ExifTags.Base.ExifImageHeight

# A TIFF's own IFD mixes photo metadata with pixel layout; only these describe the photo
# and may travel to another file's EXIF.
TIFF_DESCRIPTIVE_TAGS = frozenset({
    269, 270, 271, 272, 274, 285, 305, 306, 315, 316, 33432, EXIF_IFD, GPS_IFD,
})


class Extras(NamedTuple):
    """Metadata to write, already adjusted to the output."""

    exif: bytes | None
    icc_profile: bytes | None
    xmp: bytes | None
    dpi: tuple[float, float] | None


# --- reading -----------------------------------------------------------------


def read_meta(img: PILImage.Image, orientation: int | None, name: str, bit_depth: int,
              grayscale: bool) -> ImageMeta:
    """Metadata of an image already turned upright by ``decode.load_upright``."""
    fmt = "JPEG" if img.format == "MPO" else str(img.format)
    is_jpeg = fmt == "JPEG"
    return ImageMeta(
        format=fmt,
        mode=img.mode,
        bit_depth=bit_depth,
        grayscale=grayscale,
        exif=read_exif(img, fmt, orientation),
        # A CMYK profile no longer describes the RGB pixels we make from it.
        icc_profile=None if img.mode == "CMYK" else img.info.get("icc_profile") or None,
        xmp=reset_xmp_orientation(img.info.get("xmp")),
        dpi=read_dpi(img.info.get("dpi"), orientation),
        quality=jpeg_quality(img) if is_jpeg else None,
        subsampling=jpeg_subsampling(img) if is_jpeg else None,
        source_name=name,
    )


def read_exif(img: PILImage.Image, fmt: str, orientation: int | None) -> bytes | None:
    """EXIF bytes with Orientation 1 (exif_transpose removed the tag; 1 says "upright").

    A TIFF's own IFD holds its EXIF tags mixed with pixel-layout tags that must not travel.
    """
    exif = img.getexif()
    if fmt == "TIFF":
        exif = exif_with(resolved_exif_tags(exif), TIFF_DESCRIPTIVE_TAGS)
    if orientation is not None:
        exif[ORIENTATION] = 1
    if not len(exif) and not exif.get_ifd(EXIF_IFD) and not exif.get_ifd(GPS_IFD):
        return None
    return exif.tobytes()


def resolved_exif_tags(exif: PILImage.Exif) -> dict[int, Any]:
    """IFD0 tags with the Exif, GPS and Interop pointers replaced by their tag dicts.

    Pointers are file offsets that mean nothing in another file; dicts are what Pillow's
    TIFF serializer writes as fresh sub-IFDs.
    """
    tags = dict(exif.items())
    for pointer in (EXIF_IFD, GPS_IFD):
        sub = dict(exif.get_ifd(pointer))
        if sub:
            tags[pointer] = sub
        else:
            tags.pop(pointer, None)
    exif_ifd = tags.get(EXIF_IFD)
    if exif_ifd and INTEROP_IFD in exif_ifd and not isinstance(exif_ifd[INTEROP_IFD], dict):
        interop = dict(exif.get_ifd(INTEROP_IFD))
        if interop:
            exif_ifd[INTEROP_IFD] = interop
        else:
            del exif_ifd[INTEROP_IFD]
    return tags


def exif_with(tags: dict[int, Any], allowed: frozenset[int]) -> PILImage.Exif:
    exif = PILImage.Exif()
    for tag, value in tags.items():
        if tag in allowed:
            exif[tag] = value
    return exif


def reset_xmp_orientation(xmp: bytes | str | None) -> bytes | None:
    """XMP may repeat the orientation (tiff:Orientation); the pixels are upright now."""
    if not xmp:
        return None
    data = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    data = re.sub(rb'tiff:Orientation="[0-9]"', b'tiff:Orientation="1"', data)
    return re.sub(rb"<tiff:Orientation>[0-9]</tiff:Orientation>",
                  b"<tiff:Orientation>1</tiff:Orientation>", data)


def read_dpi(dpi: Any, orientation: int | None) -> tuple[float, float] | None:
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    if x <= 0 or y <= 0:
        return None
    return (y, x) if orientation in (5, 6, 7, 8) else (x, y)  # those orientations swap axes


# --- JPEG quality ------------------------------------------------------------

# JPEG standard (ITU-T T.81 Annex K) quantization tables that libjpeg scales by quality.
STD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])
STD_CHROMINANCE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32)


def libjpeg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(np.clip((base * scale + 50) // 100, 1, 255)
                 for base in (STD_LUMINANCE, STD_CHROMINANCE))  # type: ignore[return-value]


def jpeg_quality(img: PILImage.Image) -> int | None:
    """Closest libjpeg quality for the file's quantization tables (exact for libjpeg files)."""
    tables = getattr(img, "quantization", None) or {}
    actual = [np.asarray(tables[i]) for i in (0, 1) if i in tables and len(tables[i]) == 64]
    if not actual:
        return None

    def error(quality: int) -> int:
        expected = libjpeg_tables(quality)
        pairs = zip(actual, expected, strict=False)  # a grey JPEG has no chrominance table
        return sum(int(np.abs(a - e).sum()) for a, e in pairs)

    return min(range(1, 101), key=error)


def jpeg_subsampling(img: PILImage.Image) -> int | None:
    try:
        return int(JpegImagePlugin.get_sampling(img))
    except (AttributeError, TypeError, ValueError):
        return None


# --- writing -----------------------------------------------------------------


def extras_for_output(meta: ImageMeta, width: int, height: int) -> Extras:
    """The source's metadata as the output should carry it (its pixels are upright)."""
    return Extras(
        exif=exif_for_output(meta.exif, width, height),
        icc_profile=meta.icc_profile or None,
        xmp=reset_xmp_orientation(meta.xmp),  # the pixels are upright
        dpi=meta.dpi,
    )


def exif_for_output(exif_bytes: bytes | None, width: int, height: int) -> bytes | None:
    """EXIF for the output: Orientation 1, pixel dimensions of the output.

    Re-serializing writes IFD0 and its sub-IFDs but not IFD1, so the stale EXIF
    thumbnail of the source is dropped.
    """
    if not exif_bytes:
        return None
    exif = PILImage.Exif()
    exif.load(exif_bytes)
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    for tag, size in ((256, width), (257, height)):
        if tag in exif:
            exif[tag] = size
    sub = exif.get_ifd(EXIF_IFD)
    for tag, size in ((PIXEL_X_DIMENSION, width), (PIXEL_Y_DIMENSION, height)):
        if tag in sub:
            sub[tag] = size
    return exif.tobytes()


__all__ = [
    "EXIF_IFD",
    "Extras",
    "GPS_IFD",
    "INTEROP_IFD",
    "ORIENTATION",
    "PIXEL_X_DIMENSION",
    "PIXEL_Y_DIMENSION",
    "STD_CHROMINANCE",
    "STD_LUMINANCE",
    "TIFF_DESCRIPTIVE_TAGS",
    "exif_for_output",
    "exif_with",
    "extras_for_output",
    "jpeg_quality",
    "jpeg_subsampling",
    "libjpeg_tables",
    "read_dpi",
    "read_exif",
    "read_meta",
    "reset_xmp_orientation",
    "resolved_exif_tags",
]
