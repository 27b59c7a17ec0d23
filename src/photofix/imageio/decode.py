"""Bytes to upright float pixels: Pillow for the file, OpenCV only for 16-bit colour."""

from __future__ import annotations

import ctypes
import functools
import io
import struct
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, ImageOps, TiffImagePlugin, UnidentifiedImageError
from PIL import Image as PILImage

from photofix.errors import ImageTooLarge, NotEnoughMemory, UnsupportedImage

from photofix.imageio import memory

# Pillow's JPEG opener also returns "MPO" images: the JPEGs many phones write (extra frames).
PILLOW_OPENERS = ["JPEG", "PNG", "TIFF", "WEBP", "BMP", "AVIF", "HEIF"]
PILLOW_HIGH_DEPTH_MODES = ("I;16", "I", "F")  # prefixes: also I;16B, I;16L, I;16N

# Pillow's bomb guard is a process-wide setting; it is lifted only while a header is
# parsed (no pixels are allocated then), and our own explicit limit is checked right after.
PILLOW_LIMIT_LOCK = threading.Lock()

# Pillow warns on stderr about odd files (corrupt EXIF, odd TIFF tags, palette quirks); a
# file it cannot read fails with our own one-line error anyway, so the warnings are noise.
# Before Python 3.14 catch_warnings swaps process-wide state: the lock keeps reader threads
# from restoring each other's filters.
PILLOW_QUIET_LOCK = threading.Lock()
FRAME_KINDS = {"WEBP": ("animated WebP", "frames"), "PNG": ("animated PNG", "frames"),
               "TIFF": ("multi-page TIFF", "pages")}


@contextmanager
def pillow_quiet() -> Iterator[None]:
    silence_libtiff_errors()
    with PILLOW_QUIET_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        warnings.filterwarnings("ignore", category=PILImage.DecompressionBombWarning)
        yield


@functools.cache
def silence_libtiff_errors() -> None:
    """Stop the libtiff that Pillow uses from printing its errors on stderr, once per process.

    Pillow already silences libtiff's warnings, and a failed TIFF decode reaches us as an
    exception that becomes the file's one-line error; libtiff's "TIFFFillStrip: Read error
    ..." on fd 2 only repeats it. Pillow has no setting for libtiff's (process-wide) error
    handler, so it is cleared through ctypes on the library Pillow loaded. Where libtiff is
    linked statically (Windows wheels) it cannot be found, and its messages stay.
    """
    for path in _pillow_libtiffs():
        try:
            set_handler = ctypes.CDLL(path).TIFFSetErrorHandler
        except (OSError, AttributeError):
            continue
        set_handler.argtypes, set_handler.restype = [ctypes.c_void_p], ctypes.c_void_p
        set_handler(None)


def _pillow_libtiffs() -> list[str]:
    """Paths of the libtiff copies loaded in this process (Linux), or bundled with Pillow (macOS)."""
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split(None, 5)[5].strip() for line in maps
                           if "libtiff" in line and line.count(" ") >= 5 and "/" in line})
    except OSError:
        pass
    if sys.platform == "darwin":
        return [str(p) for p in (Path(PILImage.__file__).parent / ".dylibs").glob("libtiff*.dylib")]
    return []


def open_checked(data: bytes, name: str, max_pixels: int | None,
                 memory_limit: memory.MemoryLimit = None,
                 output_scale: float = 1.0) -> PILImage.Image:
    """Open the header only; refuse unsupported formats, oversized images and what cannot fit."""
    _register_heif()
    with PILLOW_LIMIT_LOCK:
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            img = PILImage.open(io.BytesIO(data), formats=PILLOW_OPENERS)
        except UnidentifiedImageError:
            raise UnsupportedImage(f"{name}: not an image photofix can read (supported: JPEG, "
                                   "PNG, TIFF, WebP, AVIF, HEIC/HEIF, BMP); check the file or convert it") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
            raise corrupt(name, err) from err
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        img.close()
        raise ImageTooLarge(
            f"{name}: image is {width}x{height} ({width * height / 1e6:.1f} megapixels), over "
            f"the limit of {max_pixels / 1e6:g} megapixels that guards against decompression "
            "bombs; if you trust the file, raise the limit with --max-pixels")
    try:
        memory.check_fits(name, width, height, memory_limit, output_scale)
    except NotEnoughMemory:
        img.close()
        raise
    return img


_HEIF_REGISTERED = False


def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF once (pi-heif: libheif's decoder; it applies the file's rotation
    and mirroring and leaves EXIF orientation at 1, so nothing is turned twice)."""
    global _HEIF_REGISTERED
    if not _HEIF_REGISTERED:
        import pi_heif

        pi_heif.register_heif_opener()
        _HEIF_REGISTERED = True


def frames_note(img: PILImage.Image) -> str | None:
    """Say that only the first frame of an animation or page of a TIFF is restored, or None."""
    kind = FRAME_KINDS.get(str(img.format))  # not MPO: a phone JPEG's extra frames are previews
    if kind is None:
        return None
    try:
        frames = int(getattr(img, "n_frames", 1))
    except MemoryError:
        raise
    except Exception:  # a broken chain of TIFF pages; the first page is checked when loaded
        return None
    return f"{kind[0]}: {frames} {kind[1]}, only the first was restored" if frames > 1 else None


def out_of_memory(name: str, size: tuple[int, int]) -> NotEnoughMemory:
    width, height = size
    return NotEnoughMemory(f"{name}: ran out of memory decoding this {width}x{height} image; "
                           "close other programs (or use --jobs 1) and run it again")


def corrupt(name: str, err: BaseException) -> UnsupportedImage:
    return UnsupportedImage(f"{name}: file is truncated or corrupt ({err}); "
                            "re-export or re-download it")


def load_upright(img: PILImage.Image, name: str) -> int | None:
    """Decode every pixel now (so truncation fails here), then apply EXIF Orientation.

    Returns the Orientation tag the image had (None if absent), read after load() from
    the same cached EXIF that exif_transpose reads (for a TIFF, Pillow's answer can differ
    before and after loading). The transpose is done in place: the one image then holds
    both upright pixels and the metadata Pillow updated (Orientation removed, so nothing
    rotates twice), and a large photo is not copied when it needs no turning.
    """
    try:
        img.load()
        orientation = img.getexif().get(ExifTags.Base.Orientation)
        ImageOps.exif_transpose(img, in_place=True)
        return orientation
    except MemoryError:
        raise
    except Exception as err:  # Pillow's decoders raise many types on corrupt data
        raise corrupt(name, err) from err


def is_high_depth(img: PILImage.Image, data: bytes) -> bool:
    """True for 16-bit (or deeper) sources; Pillow's mode hides this for 16-bit colour."""
    if img.mode.startswith(PILLOW_HIGH_DEPTH_MODES):
        return True
    if img.format == "PNG":
        return png_ihdr(data)[0] == 16
    if isinstance(img, TiffImagePlugin.TiffImageFile):
        bits = img.tag_v2.get(258, 8)
        return max(bits if isinstance(bits, tuple) else (bits,)) >= 16
    return False


def upright_pixels(img: PILImage.Image, data: bytes, name: str, bit_depth: int,
                   orientation: int | None) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(colour, alpha or None, grayscale) of an image ``load_upright`` has turned."""
    if bit_depth == 16 and not img.mode.startswith(PILLOW_HIGH_DEPTH_MODES):
        pixels, alpha = decode_16bit(data, name, orientation or 1, img.size)
        grayscale = header_says_grey(img, data)
        if grayscale:
            pixels = np.ascontiguousarray(pixels[..., :1])
        return pixels, alpha, grayscale
    return pillow_pixels(img, name)


def png_ihdr(data: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR, which the PNG spec puts first."""
    return data[24], data[25]


def header_says_grey(img: PILImage.Image, data: bytes) -> bool:
    if isinstance(img, TiffImagePlugin.TiffImageFile):
        return img.tag_v2.get(262, 2) in (0, 1)  # WhiteIsZero / BlackIsZero
    return png_ihdr(data)[1] in (0, 4)  # PNG grey, grey + alpha


def decode_16bit(data: bytes, name: str, orientation: int,
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
    arr = orient(arr, orientation)
    if arr.shape[1::-1] != upright_size:
        raise UnsupportedImage(f"{name}: its 16-bit pixels do not match its header size; "
                               "re-export the file")
    colour, alpha = (arr[..., :3], arr[..., 3]) if arr.shape[2] == 4 else (arr, None)
    return to_float(colour, 65535), None if alpha is None else to_float(alpha, 65535)


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
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


def to_float(arr: np.ndarray, maxval: int) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.float32)
    out /= maxval
    return out


def pillow_pixels(img: PILImage.Image, name: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Pixels of an upright Pillow image: (colour, alpha or None, grayscale)."""
    source_mode = img.mode
    try:
        img = normalise_mode(img)
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
        return float_mode_pixels(colour), None, grayscale
    if img.mode == "I":  # 32-bit integers: taken as 16-bit values, the common case
        return to_float(np.clip(colour, 0, 65535), 65535), None, grayscale
    maxval = 65535 if img.mode.startswith("I;16") else 255
    return to_float(colour, maxval), None if alpha is None else to_float(alpha, 255), grayscale


def normalise_mode(img: PILImage.Image) -> PILImage.Image:
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


def float_mode_pixels(arr: np.ndarray) -> np.ndarray:
    """Float images are usually [0, 1]; some tools store 0..255 or 0..65535 instead."""
    peak = float(np.nanmax(arr)) if arr.size else 0.0
    scale = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    out = np.clip(np.nan_to_num(arr.astype(np.float32) / scale), 0.0, 1.0)
    return np.ascontiguousarray(out, dtype=np.float32)


__all__ = [
    "FRAME_KINDS",
    "PILLOW_HIGH_DEPTH_MODES",
    "PILLOW_LIMIT_LOCK",
    "PILLOW_OPENERS",
    "PILLOW_QUIET_LOCK",
    "corrupt",
    "decode_16bit",
    "float_mode_pixels",
    "frames_note",
    "header_says_grey",
    "is_high_depth",
    "load_upright",
    "normalise_mode",
    "open_checked",
    "orient",
    "out_of_memory",
    "pillow_pixels",
    "pillow_quiet",
    "png_ihdr",
    "silence_libtiff_errors",
    "to_float",
    "upright_pixels",
]
