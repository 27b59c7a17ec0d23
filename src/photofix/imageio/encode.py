"""Float pixels to file bytes: depth, channels and options chosen per output format."""

from __future__ import annotations

import io
from typing import Any, BinaryIO

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from photofix.errors import UsageError

from photofix.imageio import jpeg_xmp
from photofix.imageio.containers import write_png16, write_tiff
from photofix.imageio.image import Image, ImageMeta
from photofix.imageio.metadata import Extras, extras_for_output

SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP", "AVIF"})
DEFAULT_JPEG_QUALITY = 95
DEFAULT_AVIF_QUALITY = 90  # Pillow's own default (75) visibly softens restored detail


def check_quality(quality: int | None) -> None:
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)
                                or not 1 <= quality <= 100):
        raise UsageError(f"quality must be a whole number from 1 to 100, not {quality!r}")


def check_image(image: Image) -> None:
    """Catch malformed arrays before any file is touched."""
    pixels = image.pixels
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        shape = getattr(pixels, "shape", None)
        raise UsageError(f"{image.meta.source_name}: pixels must be an H x W x 1 or H x W x 3 "
                         f"array, not shape {shape}; fix the producing step")
    if not (np.issubdtype(pixels.dtype, np.floating) or pixels.dtype in (np.uint8, np.uint16)):
        raise UsageError(f"{image.meta.source_name}: pixels must be floats in [0, 1] (or finished "
                         f"uint8/uint16), not {pixels.dtype}; fix the producing step")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise UsageError(f"{image.meta.source_name}: image has no pixels ({pixels.shape}); "
                         "fix the producing step")
    if image.alpha is not None and image.alpha.shape != pixels.shape[:2]:
        raise UsageError(f"{image.meta.source_name}: alpha shape {image.alpha.shape} does not "
                         f"match pixels {pixels.shape[:2]}; fix the producing step")


def encode_to(fp: BinaryIO, image: Image, fmt: str, quality: int | None) -> None:
    """Encode ``image`` as ``fmt`` into a binary file object."""
    depth = 16 if image.meta.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS else 8
    arr = output_array(image, fmt, np.uint16 if depth == 16 else np.uint8)
    extras = extras_for_output(image.meta, image.width, image.height)
    if depth == 16 and fmt == "PNG":
        write_png16(fp, arr, extras)
    elif fmt == "TIFF":
        write_tiff(fp, arr, extras)
    else:
        save_with_pillow(fp, arr, fmt, image.meta, extras, quality)


def quantize(values: np.ndarray, dtype: type) -> np.ndarray:
    """[0, 1] floats to integers, clipped and rounded to nearest (not truncated).

    Integers of ``dtype`` are taken as already quantized (finished pixels, see ``Image``).
    """
    if values.dtype == dtype:
        return values
    if np.issubdtype(values.dtype, np.integer):
        values = values / np.float32(np.iinfo(values.dtype).max)
    maxval = np.iinfo(dtype).max
    out = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0).astype(np.float32, copy=False)
    np.clip(out, 0.0, 1.0, out=out)
    out *= maxval
    np.rint(out, out=out)
    return out.astype(dtype)


def output_array(image: Image, fmt: str, dtype: type) -> np.ndarray:
    """H x W x C integer array as the output will hold it: C is 1 (L), 2 (LA), 3 or 4."""
    colour = quantize(image.pixels, dtype)
    if colour.shape[2] == 3 and image.meta.grayscale and channels_equal(colour):
        colour = colour[..., :1]  # a grey photo processed as RGB goes back to grey
    if image.alpha is None or fmt not in ALPHA_FORMATS:
        return colour
    alpha = quantize(image.alpha, dtype)[..., None]
    if colour.shape[2] == 1 and dtype == np.uint16:
        colour = np.repeat(colour, 3, axis=2)  # no reliable 16-bit grey + alpha reader
    return np.concatenate([colour, alpha], axis=2)


def channels_equal(arr: np.ndarray) -> bool:
    red, green, blue = arr[..., 0], arr[..., 1], arr[..., 2]
    return bool(np.array_equal(red, green) and np.array_equal(green, blue))


def save_with_pillow(fp: BinaryIO, arr: np.ndarray, fmt: str, meta: ImageMeta,
                     extras: Extras, quality: int | None) -> None:
    img = PILImage.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    options: dict[str, Any] = {}
    if fmt != "BMP":
        if extras.icc_profile:
            options["icc_profile"] = extras.icc_profile
        if extras.exif:
            options["exif"] = extras.exif
    if extras.dpi and fmt != "WEBP":  # WebP has no DPI field
        options["dpi"] = extras.dpi
    if fmt == "JPEG":
        options["quality"] = jpeg_output_quality(meta, quality)
        if meta.format == "JPEG" and meta.subsampling is not None and meta.subsampling >= 0:
            options["subsampling"] = meta.subsampling
    elif fmt == "WEBP" and quality is None:
        options.update(lossless=True, exact=True)  # exact: keep colour under transparent pixels
    elif fmt == "WEBP":
        options["quality"] = quality
    elif fmt == "AVIF":
        options["quality"] = DEFAULT_AVIF_QUALITY if quality is None else quality
    split_xmp = fmt == "JPEG" and extras.xmp is not None and len(extras.xmp) > jpeg_xmp.MAX_STANDARD
    if extras.xmp and fmt in ("JPEG", "WEBP", "AVIF") and not split_xmp:
        options["xmp"] = extras.xmp
    elif extras.xmp and fmt == "PNG":
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", extras.xmp.decode("utf-8", "replace"))
        options["pnginfo"] = info
    if split_xmp:  # over one APP1 segment: Extended XMP, added to what Pillow wrote
        buffer = io.BytesIO()
        img.save(buffer, format=fmt, **options)
        fp.write(jpeg_xmp.with_xmp(buffer.getvalue(), extras.xmp))
        return
    img.save(fp, format=fmt, **options)


def jpeg_output_quality(meta: ImageMeta, quality: int | None) -> int:
    if quality is not None:
        return quality
    if meta.format == "JPEG" and meta.quality is not None:
        return min(meta.quality, DEFAULT_JPEG_QUALITY)  # above 95 only bloats the file
    return DEFAULT_JPEG_QUALITY


__all__ = [
    "ALPHA_FORMATS",
    "DEFAULT_AVIF_QUALITY",
    "DEFAULT_JPEG_QUALITY",
    "SIXTEEN_BIT_FORMATS",
    "channels_equal",
    "check_image",
    "check_quality",
    "encode_to",
    "jpeg_output_quality",
    "output_array",
    "quantize",
    "save_with_pillow",
]
