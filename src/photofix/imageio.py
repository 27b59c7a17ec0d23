"""Read and write photos as float arrays, keeping what makes them the same photo.

Pixels come in as float32 H x W x C in [0, 1] (C is 1 for grey, 3 for RGB) with alpha
kept apart, already turned upright by the EXIF Orientation. Metadata (EXIF with every
tag, ICC profile, XMP, DPI) rides along in ``ImageMeta`` and is written back when the
output format can hold it, so date taken, GPS and colour stay with the restored photo.

Pillow reads and writes files; OpenCV is used only on bytes in memory, for the one thing
Pillow cannot do losslessly: 16-bit colour (and 16-bit grey + alpha) pixels. 16-bit PNG
metadata is written as PNG chunks by hand, and TIFFs by a small writer built on Pillow's
own TIFF directory serializer (which, unlike tifffile, writes EXIF and GPS sub-IFDs).

Format rules when writing:

* 16 bits per channel only to PNG and TIFF, and only when the source was 16-bit.
* Alpha only to PNG, TIFF and WebP; JPEG and BMP outputs drop it (no compositing).
* 16-bit grey + alpha is written as RGBA (grey repeated), because neither Pillow nor
  OpenCV reads a 16-bit grey + alpha TIFF correctly.
* JPEG quality: the ``quality`` argument, else the JPEG source's estimated quality
  (capped at 95), else 95; the source's chroma subsampling is kept.
* WebP: lossless unless a ``quality`` is given. BMP holds DPI but no other metadata.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from PIL import ExifTags, ImageOps, JpegImagePlugin, TiffImagePlugin, UnidentifiedImageError
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from photofix.errors import ImageTooLarge, OutputWriteError, UnsupportedImage, UsageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "Image",
    "ImageMeta",
    "decode_image",
    "encode_image",
    "format_for_path",
    "read_image",
    "write_image",
]

DEFAULT_MAX_PIXELS: int = 1_000_000_000

_EXTENSION_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_EXTENSION_FORMATS)

_FORMATS = frozenset(_EXTENSION_FORMATS.values())
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
# Pillow's JPEG opener also returns "MPO" images: the JPEGs many phones write (extra frames).
_PILLOW_OPENERS = ["JPEG", "PNG", "TIFF", "WEBP", "BMP"]
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
_DEFAULT_JPEG_QUALITY = 95

_ORIENTATION = ExifTags.Base.Orientation
_EXIF_IFD = ExifTags.IFD.Exif
_GPS_IFD = ExifTags.IFD.GPSInfo
_INTEROP_IFD = ExifTags.IFD.Interop
_PIXEL_X_DIMENSION = ExifTags.Base.ExifImageWidth
_PIXEL_Y_DIMENSION = ExifTags.Base.ExifImageHeight

# A TIFF's own IFD mixes photo metadata with pixel layout; only these describe the photo
# and may travel to another file's EXIF.
_TIFF_DESCRIPTIVE_TAGS = frozenset({
    269, 270, 271, 272, 274, 285, 305, 306, 315, 316, 33432, _EXIF_IFD, _GPS_IFD,
})
# Tags that describe a file's pixel layout: EXIF must never override the writer's own.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 282, 283, 284, 296,
    317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 513, 514, 529, 530, 531, 532,
    700, 34675,
})

_PILLOW_HIGH_DEPTH_MODES = ("I;16", "I", "F")  # prefixes: also I;16B, I;16L, I;16N


# --- data --------------------------------------------------------------------


@dataclass
class ImageMeta:
    """What is known about the source file, used to write the output like it."""

    format: str  # Pillow name of the source format: JPEG, PNG, TIFF, WEBP, BMP
    mode: str  # source Pillow mode before conversion (RGB, L, I;16, RGBA, CMYK, P, ...)
    bit_depth: int  # 8 or 16 per channel; 16 is written back to PNG and TIFF
    grayscale: bool  # the source had one colour channel
    exif: bytes | None = None  # b"Exif\0\0" + TIFF-structured EXIF, Orientation 1
    icc_profile: bytes | None = None  # None for CMYK sources (converted to RGB)
    xmp: bytes | None = None  # XMP packet, tiff:Orientation reset to 1
    dpi: tuple[float, float] | None = None
    quality: int | None = None  # estimated JPEG quality of a JPEG source
    subsampling: int | None = None  # JPEG source's subsampling, Pillow's -1/0/1/2
    source_name: str = "<memory>"  # path or "<stdin>", for error messages


@dataclass
class Image:
    """Pixels as float32 H x W x C in [0, 1], alpha apart (H x W) or None."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    meta: ImageMeta

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


# --- public API --------------------------------------------------------------


def format_for_path(path: str | os.PathLike) -> str:
    """Pillow format name for a path's extension; UsageError for anything else."""
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSION_FORMATS[suffix]
    except KeyError:
        known = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        what = f"extension {suffix!r}" if suffix else "no extension"
        raise UsageError(f"{os.fspath(path)}: {what} is not an image format photofix writes; "
                         f"use one of {known}") from None


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Read a photo file, upright, with its metadata.

    ``max_pixels`` (None: no limit) guards against decompression bombs.
    """
    name = os.fspath(path)
    try:
        with open(path, "rb") as fp:
            data = fp.read()
    except OSError as err:
        reason = err.strerror or str(err)
        raise UnsupportedImage(f"{name}: cannot read the file ({reason}); "
                               "check the path and its permissions") from err
    return decode_image(data, name=name, max_pixels=max_pixels)


def decode_image(data: bytes, *, name: str = "<stdin>",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Decode an image held in memory (e.g. read from stdin); see ``read_image``."""
    if not data:
        raise UnsupportedImage(f"{name}: file is empty (0 bytes); re-export or re-download it")
    with _open_checked(data, name, max_pixels) as img:
        orientation = _load_upright(img, name)
        bit_depth = 16 if _is_high_depth(img, data) else 8
        if bit_depth == 16 and not img.mode.startswith(_PILLOW_HIGH_DEPTH_MODES):
            pixels, alpha = _decode_16bit(data, name, orientation or 1, img.size)
            grayscale = _header_says_grey(img, data)
            if grayscale:
                pixels = np.ascontiguousarray(pixels[..., :1])
        else:
            pixels, alpha, grayscale = _pillow_pixels(img, name)
        meta = _read_meta(img, orientation, name, bit_depth, grayscale)
    return Image(pixels=pixels, alpha=alpha, meta=meta)


def write_image(image: Image, path: str | os.PathLike, *, format: str | None = None,
                quality: int | None = None) -> Path:
    """Write ``image`` to ``path`` atomically (temp file in the same folder, then rename).

    The format comes from ``format`` or else the extension. Returns the path written.
    """
    target = Path(path)
    fmt = _normalise_format(format) if format is not None else format_for_path(target)
    _check_quality(quality)
    _check_image(image)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or err
        raise OutputWriteError(f"{target}: cannot create the folder {target.parent} ({reason}); "
                               "check the path and its permissions") from err
    _atomic_write(target, lambda fp: _encode_to(fp, image, fmt, quality))
    return target


def encode_image(image: Image, *, format: str, quality: int | None = None) -> bytes:
    """The bytes ``write_image`` would write (e.g. for stdout)."""
    fmt = _normalise_format(format)
    _check_quality(quality)
    _check_image(image)
    buffer = io.BytesIO()
    try:
        _encode_to(buffer, image, fmt, quality)
    except Exception as err:
        raise OutputWriteError(f"<stdout>: could not encode the image as {fmt} ({err}); "
                               "try another output format") from err
    return buffer.getvalue()


# --- reading -----------------------------------------------------------------

# Pillow's bomb guard is a process-wide setting; it is lifted only while a header is
# parsed (no pixels are allocated then), and our own explicit limit is checked right after.
_PILLOW_LIMIT_LOCK = threading.Lock()


def _open_checked(data: bytes, name: str, max_pixels: int | None) -> PILImage.Image:
    """Open the header only, and refuse unsupported formats and oversized images."""
    with _PILLOW_LIMIT_LOCK:
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            img = PILImage.open(io.BytesIO(data), formats=_PILLOW_OPENERS)
        except UnidentifiedImageError:
            raise UnsupportedImage(f"{name}: not an image photofix can read (supported: JPEG, "
                                   "PNG, TIFF, WebP, BMP); check the file or convert it") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
            raise _corrupt(name, err) from err
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        img.close()
        raise ImageTooLarge(
            f"{name}: image is {width}x{height} ({width * height / 1e6:.1f} megapixels), over "
            f"the limit of {max_pixels / 1e6:g} megapixels that guards against decompression "
            "bombs; if you trust the file, raise the limit with --max-pixels")
    return img


def _corrupt(name: str, err: BaseException) -> UnsupportedImage:
    return UnsupportedImage(f"{name}: file is truncated or corrupt ({err}); "
                            "re-export or re-download it")


def _load_upright(img: PILImage.Image, name: str) -> int | None:
    """Decode every pixel now (so truncation fails here), then apply EXIF Orientation.

    Returns the Orientation tag the image had (None if absent), read after load() from
    the same cached EXIF that exif_transpose reads (for a TIFF, Pillow's answer can differ
    before and after loading). The transpose is done in place: the one image then holds
    both upright pixels and the metadata Pillow updated (Orientation removed, so nothing
    rotates twice), and a large photo is not copied when it needs no turning.
    """
    try:
        img.load()
        orientation = img.getexif().get(_ORIENTATION)
        ImageOps.exif_transpose(img, in_place=True)
        return orientation
    except MemoryError:
        raise
    except Exception as err:  # Pillow's decoders raise many types on corrupt data
        raise _corrupt(name, err) from err


def _is_high_depth(img: PILImage.Image, data: bytes) -> bool:
    """True for 16-bit (or deeper) sources; Pillow's mode hides this for 16-bit colour."""
    if img.mode.startswith(_PILLOW_HIGH_DEPTH_MODES):
        return True
    if img.format == "PNG":
        return _png_ihdr(data)[0] == 16
    if isinstance(img, TiffImagePlugin.TiffImageFile):
        bits = img.tag_v2.get(258, 8)
        return max(bits if isinstance(bits, tuple) else (bits,)) >= 16
    return False


def _png_ihdr(data: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR, which the PNG spec puts first."""
    return data[24], data[25]


def _header_says_grey(img: PILImage.Image, data: bytes) -> bool:
    if isinstance(img, TiffImagePlugin.TiffImageFile):
        return img.tag_v2.get(262, 2) in (0, 1)  # WhiteIsZero / BlackIsZero
    return _png_ihdr(data)[1] in (0, 4)  # PNG grey, grey + alpha


def _decode_16bit(data: bytes, name: str, orientation: int,
                  upright_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Lossless 16-bit colour pixels via OpenCV (Pillow reduces them to 8 bits)."""
    import cv2  # heavy import, only needed for 16-bit colour

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        raise UnsupportedImage(f"{name}: cannot decode its 16-bit pixels; "
                               "re-save it as 8-bit or as a standard 16-bit PNG or TIFF")
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.shape[2] in (3, 4):  # OpenCV orders channels BGR(A)
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    arr = _orient(arr, orientation)
    if arr.shape[1::-1] != upright_size:
        raise UnsupportedImage(f"{name}: its 16-bit pixels do not match its header size; "
                               "re-export the file")
    colour, alpha = (arr[..., :3], arr[..., 3]) if arr.shape[2] == 4 else (arr, None)
    return _to_float(colour, 65535), None if alpha is None else _to_float(alpha, 65535)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF Orientation to an H x W x C array, as ImageOps.exif_transpose would."""
    transforms: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return arr if transform is None else transform(arr)


def _to_float(arr: np.ndarray, maxval: int) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.float32)
    out /= maxval
    return out


def _pillow_pixels(img: PILImage.Image, name: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Pixels of an upright Pillow image: (colour, alpha or None, grayscale)."""
    source_mode = img.mode
    try:
        img = _normalise_mode(img)
    except ValueError as err:
        raise UnsupportedImage(f"{name}: colour mode {source_mode} is not supported ({err}); "
                               "convert the image to RGB first") from err
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    if img.mode in ("LA", "RGBA"):
        colour, alpha = arr[..., :-1], arr[..., -1]
    else:
        colour, alpha = arr, None
    grayscale = colour.shape[2] == 1
    if img.mode == "F":
        return _float_mode_pixels(colour), None, grayscale
    if img.mode == "I":  # 32-bit integers: taken as 16-bit values, the common case
        return _to_float(np.clip(colour, 0, 65535), 65535), None, grayscale
    maxval = 65535 if img.mode.startswith("I;16") else 255
    return _to_float(colour, maxval), None if alpha is None else _to_float(alpha, 255), grayscale


def _normalise_mode(img: PILImage.Image) -> PILImage.Image:
    """Bring any Pillow mode to L, LA, RGB, RGBA or a high-depth grey mode."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" in img.info:
        return img.convert(mode + "A" if mode == "RGB" else "LA")
    if mode in ("L", "LA", "RGB", "RGBA", "I", "F") or mode.startswith("I;16"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("P", "PA"):
        return img.convert("RGBA" if img.has_transparency_data else "RGB")
    if mode == "La":
        return img.convert("LA")
    if mode == "RGBa":
        return img.convert("RGBA")
    return img.convert("RGB")  # CMYK (naive, profile dropped), YCbCr, RGBX, ...


def _float_mode_pixels(arr: np.ndarray) -> np.ndarray:
    """Float images are usually [0, 1]; some tools store 0..255 or 0..65535 instead."""
    peak = float(np.nanmax(arr)) if arr.size else 0.0
    scale = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    out = np.clip(np.nan_to_num(arr.astype(np.float32) / scale), 0.0, 1.0)
    return np.ascontiguousarray(out, dtype=np.float32)


# --- metadata on read --------------------------------------------------------


def _read_meta(img: PILImage.Image, orientation: int | None, name: str, bit_depth: int,
               grayscale: bool) -> ImageMeta:
    """Metadata of an image already turned upright by ``_load_upright``."""
    fmt = "JPEG" if img.format == "MPO" else str(img.format)
    is_jpeg = fmt == "JPEG"
    return ImageMeta(
        format=fmt,
        mode=img.mode,
        bit_depth=bit_depth,
        grayscale=grayscale,
        exif=_read_exif(img, fmt, orientation),
        # A CMYK profile no longer describes the RGB pixels we make from it.
        icc_profile=None if img.mode == "CMYK" else img.info.get("icc_profile") or None,
        xmp=_reset_xmp_orientation(img.info.get("xmp")),
        dpi=_read_dpi(img.info.get("dpi"), orientation),
        quality=_jpeg_quality(img) if is_jpeg else None,
        subsampling=_jpeg_subsampling(img) if is_jpeg else None,
        source_name=name,
    )


def _read_exif(img: PILImage.Image, fmt: str, orientation: int | None) -> bytes | None:
    """EXIF bytes with Orientation 1 (exif_transpose removed the tag; 1 says "upright").

    A TIFF's own IFD holds its EXIF tags mixed with pixel-layout tags that must not travel.
    """
    exif = img.getexif()
    if fmt == "TIFF":
        exif = _exif_with(_resolved_exif_tags(exif), _TIFF_DESCRIPTIVE_TAGS)
    if orientation is not None:
        exif[_ORIENTATION] = 1
    if not len(exif) and not exif.get_ifd(_EXIF_IFD) and not exif.get_ifd(_GPS_IFD):
        return None
    return exif.tobytes()


def _resolved_exif_tags(exif: PILImage.Exif) -> dict[int, Any]:
    """IFD0 tags with the Exif, GPS and Interop pointers replaced by their tag dicts.

    Pointers are file offsets that mean nothing in another file; dicts are what Pillow's
    TIFF serializer writes as fresh sub-IFDs.
    """
    tags = dict(exif.items())
    for pointer in (_EXIF_IFD, _GPS_IFD):
        sub = dict(exif.get_ifd(pointer))
        if sub:
            tags[pointer] = sub
        else:
            tags.pop(pointer, None)
    exif_ifd = tags.get(_EXIF_IFD)
    if exif_ifd and _INTEROP_IFD in exif_ifd and not isinstance(exif_ifd[_INTEROP_IFD], dict):
        interop = dict(exif.get_ifd(_INTEROP_IFD))
        if interop:
            exif_ifd[_INTEROP_IFD] = interop
        else:
            del exif_ifd[_INTEROP_IFD]
    return tags


def _exif_with(tags: dict[int, Any], allowed: frozenset[int]) -> PILImage.Exif:
    exif = PILImage.Exif()
    for tag, value in tags.items():
        if tag in allowed:
            exif[tag] = value
    return exif


def _reset_xmp_orientation(xmp: bytes | str | None) -> bytes | None:
    """XMP may repeat the orientation (tiff:Orientation); the pixels are upright now."""
    if not xmp:
        return None
    data = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    data = re.sub(rb'tiff:Orientation="[0-9]"', b'tiff:Orientation="1"', data)
    return re.sub(rb"<tiff:Orientation>[0-9]</tiff:Orientation>",
                  b"<tiff:Orientation>1</tiff:Orientation>", data)


def _read_dpi(dpi: Any, orientation: int | None) -> tuple[float, float] | None:
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    if x <= 0 or y <= 0:
        return None
    return (y, x) if orientation in (5, 6, 7, 8) else (x, y)  # those orientations swap axes


# JPEG standard (ITU-T T.81 Annex K) quantization tables that libjpeg scales by quality.
_STD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
])
_STD_CHROMINANCE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32)


def _libjpeg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(np.clip((base * scale + 50) // 100, 1, 255)
                 for base in (_STD_LUMINANCE, _STD_CHROMINANCE))  # type: ignore[return-value]


def _jpeg_quality(img: PILImage.Image) -> int | None:
    """Closest libjpeg quality for the file's quantization tables (exact for libjpeg files)."""
    tables = getattr(img, "quantization", None) or {}
    actual = [np.asarray(tables[i]) for i in (0, 1) if i in tables and len(tables[i]) == 64]
    if not actual:
        return None

    def error(quality: int) -> int:
        expected = _libjpeg_tables(quality)
        pairs = zip(actual, expected, strict=False)  # a grey JPEG has no chrominance table
        return sum(int(np.abs(a - e).sum()) for a, e in pairs)

    return min(range(1, 101), key=error)


def _jpeg_subsampling(img: PILImage.Image) -> int | None:
    try:
        return int(JpegImagePlugin.get_sampling(img))
    except (AttributeError, TypeError, ValueError):
        return None


# --- writing -----------------------------------------------------------------


class _Extras(NamedTuple):
    """Metadata to write, already adjusted to the output."""

    exif: bytes | None
    icc_profile: bytes | None
    xmp: bytes | None
    dpi: tuple[float, float] | None


def _normalise_format(format: str) -> str:
    fmt = format.upper().lstrip(".")
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in _FORMATS:
        raise UsageError(f"output format {format!r} is not supported; "
                         "use JPEG, PNG, TIFF, WEBP or BMP")
    return fmt


def _check_quality(quality: int | None) -> None:
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)
                                or not 1 <= quality <= 100):
        raise UsageError(f"quality must be a whole number from 1 to 100, not {quality!r}")


def _check_image(image: Image) -> None:
    """Catch malformed arrays before any file is touched."""
    pixels = image.pixels
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        shape = getattr(pixels, "shape", None)
        raise UsageError(f"{image.meta.source_name}: pixels must be an H x W x 1 or H x W x 3 "
                         f"array, not shape {shape}; fix the producing step")
    if not np.issubdtype(pixels.dtype, np.floating):
        raise UsageError(f"{image.meta.source_name}: pixels must be floats in [0, 1], not "
                         f"{pixels.dtype}; fix the producing step")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise UsageError(f"{image.meta.source_name}: image has no pixels ({pixels.shape}); "
                         "fix the producing step")
    if image.alpha is not None and image.alpha.shape != pixels.shape[:2]:
        raise UsageError(f"{image.meta.source_name}: alpha shape {image.alpha.shape} does not "
                         f"match pixels {pixels.shape[:2]}; fix the producing step")


def _encode_to(fp: BinaryIO, image: Image, fmt: str, quality: int | None) -> None:
    """Encode ``image`` as ``fmt`` into a binary file object."""
    depth = 16 if image.meta.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS else 8
    arr = _output_array(image, fmt, np.uint16 if depth == 16 else np.uint8)
    extras = _Extras(
        exif=_exif_for_output(image.meta.exif, image.width, image.height),
        icc_profile=image.meta.icc_profile or None,
        xmp=_reset_xmp_orientation(image.meta.xmp),  # the pixels are upright
        dpi=image.meta.dpi,
    )
    if depth == 16 and fmt == "PNG":
        _write_png16(fp, arr, extras)
    elif fmt == "TIFF":
        _write_tiff(fp, arr, extras)
    else:
        _save_with_pillow(fp, arr, fmt, image.meta, extras, quality)


def _quantize(values: np.ndarray, dtype: type) -> np.ndarray:
    """[0, 1] floats to integers, clipped and rounded to nearest (not truncated)."""
    maxval = np.iinfo(dtype).max
    out = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0).astype(np.float32, copy=False)
    np.clip(out, 0.0, 1.0, out=out)
    out *= maxval
    np.rint(out, out=out)
    return out.astype(dtype)


def _output_array(image: Image, fmt: str, dtype: type) -> np.ndarray:
    """H x W x C integer array as the output will hold it: C is 1 (L), 2 (LA), 3 or 4."""
    colour = _quantize(image.pixels, dtype)
    if colour.shape[2] == 3 and image.meta.grayscale and _channels_equal(colour):
        colour = colour[..., :1]  # a grey photo processed as RGB goes back to grey
    if image.alpha is None or fmt not in _ALPHA_FORMATS:
        return colour
    alpha = _quantize(image.alpha, dtype)[..., None]
    if colour.shape[2] == 1 and dtype == np.uint16:
        colour = np.repeat(colour, 3, axis=2)  # no reliable 16-bit grey + alpha reader
    return np.concatenate([colour, alpha], axis=2)


def _channels_equal(arr: np.ndarray) -> bool:
    red, green, blue = arr[..., 0], arr[..., 1], arr[..., 2]
    return bool(np.array_equal(red, green) and np.array_equal(green, blue))


def _exif_for_output(exif_bytes: bytes | None, width: int, height: int) -> bytes | None:
    """EXIF for the output: Orientation 1, pixel dimensions of the output.

    Re-serializing writes IFD0 and its sub-IFDs but not IFD1, so the stale EXIF
    thumbnail of the source is dropped.
    """
    if not exif_bytes:
        return None
    exif = PILImage.Exif()
    exif.load(exif_bytes)
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    for tag, size in ((256, width), (257, height)):
        if tag in exif:
            exif[tag] = size
    sub = exif.get_ifd(_EXIF_IFD)
    for tag, size in ((_PIXEL_X_DIMENSION, width), (_PIXEL_Y_DIMENSION, height)):
        if tag in sub:
            sub[tag] = size
    return exif.tobytes()


def _save_with_pillow(fp: BinaryIO, arr: np.ndarray, fmt: str, meta: ImageMeta,
                      extras: _Extras, quality: int | None) -> None:
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
        options["quality"] = _jpeg_output_quality(meta, quality)
        if meta.format == "JPEG" and meta.subsampling is not None and meta.subsampling >= 0:
            options["subsampling"] = meta.subsampling
    elif fmt == "WEBP" and quality is None:
        options.update(lossless=True, exact=True)  # exact: keep colour under transparent pixels
    elif fmt == "WEBP":
        options["quality"] = quality
    if extras.xmp and fmt in ("JPEG", "WEBP"):
        options["xmp"] = extras.xmp
    elif extras.xmp and fmt == "PNG":
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", extras.xmp.decode("utf-8", "replace"))
        options["pnginfo"] = info
    img.save(fp, format=fmt, **options)


def _jpeg_output_quality(meta: ImageMeta, quality: int | None) -> int:
    if quality is not None:
        return quality
    if meta.format == "JPEG" and meta.quality is not None:
        return min(meta.quality, _DEFAULT_JPEG_QUALITY)  # above 95 only bloats the file
    return _DEFAULT_JPEG_QUALITY


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _write_png16(fp: BinaryIO, arr: np.ndarray, extras: _Extras) -> None:
    """16-bit PNG: pixels by OpenCV, metadata chunks added by hand right after IHDR."""
    import cv2

    order = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[arr.shape[2]]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(arr[..., order]))
    png = encoded.reshape(-1).data if ok else None
    if png is None or bytes(png[12:16]) != b"IHDR":
        raise ValueError("OpenCV could not encode the 16-bit PNG")
    chunks = []
    if extras.icc_profile:  # iCCP must come before IDAT
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(extras.icc_profile)))
    if extras.dpi:
        per_metre = [round(d / 0.0254) for d in extras.dpi]
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    if extras.exif:
        chunks.append(_png_chunk(b"eXIf", extras.exif.removeprefix(b"Exif\0\0")))
    if extras.xmp:
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + extras.xmp))
    ihdr_end = 8 + 8 + 13 + 4  # signature, length + type, IHDR body, CRC
    fp.write(png[:ihdr_end])
    fp.write(b"".join(chunks))
    fp.write(png[ihdr_end:])


_TIFF_STRIP_BYTES = 256 * 1024


def _write_tiff(fp: BinaryIO, arr: np.ndarray, extras: _Extras) -> None:
    """8- or 16-bit TIFF: deflate with horizontal predictor, EXIF/GPS sub-IFDs, ICC, XMP, DPI.

    Pillow cannot write 16-bit colour, and with compression it hands EXIF to libtiff,
    which refuses the EXIF sub-IFD; this writer uses Pillow's own IFD serializer instead.
    """
    height, width, channels = arr.shape
    samples = arr.reshape(height, width * channels)
    rows = samples.astype(samples.dtype.newbyteorder("<"))
    rows[:, channels:] -= samples[:, :-channels]  # predictor 2: difference to the left pixel
    per_strip = max(1, _TIFF_STRIP_BYTES // rows[0].nbytes)
    strips = [zlib.compress(rows[y:y + per_strip].tobytes(), 6)
              for y in range(0, height, per_strip)]
    if sum(map(len, strips)) > 0xFFFF0000:
        raise ValueError("over 4 GB compressed, more than a TIFF can hold; write PNG instead")

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if extras.exif:
        exif = PILImage.Exif()
        exif.load(extras.exif)
        for tag, value in _resolved_exif_tags(exif).items():
            if tag not in _TIFF_LAYOUT_TAGS:
                ifd[tag] = value
    ifd[256], ifd[257] = width, height
    ifd[258] = (arr.dtype.itemsize * 8,) * channels
    ifd[259] = 8  # Adobe deflate
    ifd[262] = 2 if channels >= 3 else 1  # RGB or BlackIsZero
    ifd[277] = channels
    ifd[278] = per_strip
    sizes = [len(strip) for strip in strips]
    ifd[279] = tuple(sizes)
    # Pillow's serializer counts strip offsets from the end of the IFD, where the strips go.
    ifd[273] = tuple(int(offset) for offset in np.cumsum([0] + sizes[:-1]))
    ifd[284] = 1  # chunky
    ifd[317] = 2  # horizontal predictor
    ifd[339] = (1,) * channels  # unsigned integers
    if channels in (2, 4):
        ifd[338] = (2,)  # unassociated alpha
    if extras.icc_profile:
        ifd[34675] = extras.icc_profile
    if extras.xmp:
        ifd[700] = extras.xmp
    if extras.dpi:
        ifd[282], ifd[283], ifd[296] = float(extras.dpi[0]), float(extras.dpi[1]), 2
    ifd.save(fp)
    for strip in strips:
        fp.write(strip)


def _atomic_write(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write via a temp file beside ``target``, fsync, rename; remove it on any failure."""
    tmp: Path | None = None
    try:
        tmp, fd = _create_temp(target)
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, target)
        tmp = None
    except BaseException as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            reason = err.strerror or err
            raise OutputWriteError(f"{target}: could not write the file ({reason}); check that "
                                   "the folder is writable and the disk has space") from err
        if isinstance(err, Exception):  # the encoder refused (EXIF too long, size limits, ...)
            raise OutputWriteError(f"{target}: could not encode the image ({err}); "
                                   "try another output format") from err
        raise  # KeyboardInterrupt and friends, after cleaning up
    _sync_folder(target.parent)


def _create_temp(target: Path) -> tuple[Path, int]:
    """A new hidden file beside the target; os.open applies the user's umask to 0o666."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; some systems cannot fsync folders, and the file is in place."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
