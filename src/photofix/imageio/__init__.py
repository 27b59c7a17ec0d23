"""Read and write photos as float arrays, keeping what makes them the same photo.

Pixels come in as float32 H x W x C in [0, 1] (C is 1 for grey, 3 for RGB) with alpha
kept apart, already turned upright by the EXIF Orientation. Metadata (EXIF with every
tag, ICC profile, XMP, DPI) rides along in ``ImageMeta`` and is written back when the
output format can hold it, so date taken, GPS and colour stay with the restored photo.

Pillow reads and writes files; OpenCV is used only on bytes in memory, for the one thing
Pillow cannot do losslessly: 16-bit colour (and 16-bit grey + alpha) pixels. 16-bit PNG
metadata is written as PNG chunks by hand, and TIFFs by a small writer built on Pillow's
own TIFF directory serializer (which, unlike tifffile, writes EXIF and GPS sub-IFDs).

The work is split by stage: ``memory`` (will restoring it fit? asked of the header,
before decoding), ``decode`` (bytes to upright pixels), ``metadata`` (EXIF, XMP, ICC,
DPI, JPEG quality), ``encode`` (pixels to a format's bytes), ``containers`` (the 16-bit
PNG and TIFF writers) and ``jpeg_xmp`` (XMP over 64 KB as the JPEG Extended XMP). The
output file is replaced whole by ``write_file`` (photofix's one atomic writer, re-exported here).

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
from pathlib import Path

from photofix._files import write_file
from photofix.errors import OutputWriteError, UnsupportedImage, UsageError

from photofix.imageio import decode, encode, memory, metadata
from photofix.imageio.image import Image, ImageMeta
from photofix.imageio.memory import MemoryLimit

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "READ_ONLY_OUTPUT_EXTENSION",
    "SUPPORTED_EXTENSIONS",
    "WRITABLE_EXTENSIONS",
    "lost_on_write",
    "writable_format",
    "output_extension",
    "Image",
    "ImageMeta",
    "MemoryLimit",
    "decode_image",
    "encode_image",
    "format_for_path",
    "read_bytes",
    "read_image",
    "write_file",
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
    ".avif": "AVIF",
}
# Phone photos (HEIC/HEIF) are read through pi-heif (libheif's decoder); nothing here writes
# them, so their outputs are JPEG (``output_extension``).
_READ_ONLY_EXTENSIONS = {".heic": "HEIF", ".heif": "HEIF", ".hif": "HEIF"}
WRITABLE_EXTENSIONS: frozenset[str] = frozenset(_EXTENSION_FORMATS)
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_EXTENSION_FORMATS) | frozenset(_READ_ONLY_EXTENSIONS)
READ_ONLY_OUTPUT_EXTENSION = ".jpg"

_FORMATS = frozenset(_EXTENSION_FORMATS.values())


def output_extension(source: str | os.PathLike) -> str:
    """The extension an output keeps by default: the source's, or ``.jpg`` for a format only read (HEIC)."""
    suffix = Path(source).suffix
    return suffix if suffix.lower() in WRITABLE_EXTENSIONS else READ_ONLY_OUTPUT_EXTENSION
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}


def format_for_path(path: str | os.PathLike) -> str:
    """Pillow format name for a path's extension; UsageError for anything else."""
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSION_FORMATS[suffix]
    except KeyError:
        known = ", ".join(sorted(WRITABLE_EXTENSIONS))
        what = f"extension {suffix!r}" if suffix else "no extension"
        raise UsageError(f"{os.fspath(path)}: {what} is not an image format photofix writes; "
                         f"use one of {known}") from None


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               memory_limit: MemoryLimit = None, output_scale: float = 1.0) -> Image:
    """Read a photo file, upright, with its metadata.

    Refused before any pixel is decoded (ImageTooLarge): over ``max_pixels`` (None: no
    limit), the decompression-bomb guard; or, when ``memory_limit`` is given, if restoring
    it would need more memory than that ("auto": what this process may still allocate;
    bytes, or a size like "8G"), estimated from the pixel size for a task whose output is
    ``output_scale`` times wider (4 for a x4 upscale). A file with several frames or pages
    gives its first, and says so in ``meta.note``.
    """
    return decode_image(read_bytes(path), name=os.fspath(path), max_pixels=max_pixels,
                        memory_limit=memory_limit, output_scale=output_scale)


def read_bytes(path: str | os.PathLike) -> bytes:
    """A photo file's bytes, or UnsupportedImage saying why it cannot be read."""
    try:
        with open(path, "rb") as fp:
            return fp.read()
    except OSError as err:
        reason = err.strerror or str(err)
        raise UnsupportedImage(f"{os.fspath(path)}: cannot read the file ({reason}); "
                               "check the path and its permissions") from err


def decode_image(data: bytes, *, name: str = "<stdin>",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 memory_limit: MemoryLimit = None, output_scale: float = 1.0) -> Image:
    """Decode an image held in memory (e.g. read from stdin); see ``read_image``."""
    if not data:
        raise UnsupportedImage(f"{name}: file is empty (0 bytes); re-export or re-download it")
    with decode.pillow_quiet(), \
            decode.open_checked(data, name, max_pixels, memory_limit, output_scale) as img:
        try:
            note = decode.frames_note(img)
            orientation = decode.load_upright(img, name)
            bit_depth = 16 if decode.is_high_depth(img, data) else 8
            pixels, alpha, grayscale = decode.upright_pixels(img, data, name, bit_depth, orientation)
            meta = metadata.read_meta(img, orientation, name, bit_depth, grayscale)
        except MemoryError:  # the estimate was too low for this file, or memory ran short meanwhile
            raise decode.out_of_memory(name, img.size) from None
    meta.note = note
    return Image(pixels=pixels, alpha=alpha, meta=meta)


def write_image(image: Image, path: str | os.PathLike, *, format: str | None = None,
                quality: int | None = None) -> Path:
    """Write ``image`` to ``path`` atomically (temp file in the same folder, then rename).

    The format comes from ``format`` or else the extension. Returns the path written.
    """
    target = Path(path)
    fmt = _normalise_format(format) if format is not None else format_for_path(target)
    encode.check_quality(quality)
    encode.check_image(image)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or err
        raise OutputWriteError(f"{target}: cannot create the folder {target.parent} ({reason}); "
                               "check the path and its permissions") from err
    write_file(target, lambda fp: encode.encode_to(fp, image, fmt, quality))
    return target


def writable_format(source_format: str) -> str:
    """The format an output takes from its source's: the same, or JPEG for a format only read (HEIF)."""
    return source_format if source_format in _FORMATS else _EXTENSION_FORMATS[READ_ONLY_OUTPUT_EXTENSION]


def lost_on_write(image: Image, format: str) -> str | None:
    """What writing ``image`` as ``format`` leaves out, said in one line (None: nothing)."""
    fmt = _normalise_format(format)
    if image.alpha is not None and fmt not in encode.ALPHA_FORMATS and bool((image.alpha < 1).any()):
        return (f"transparency dropped: {fmt} has none (write PNG, TIFF, WebP or AVIF to keep it, "
                "e.g. --format png)")
    if image.meta.bit_depth == 16 and fmt not in encode.SIXTEEN_BIT_FORMATS:
        return f"16-bit source written as 8-bit {fmt} (PNG or TIFF keep 16 bits)"
    return None


def encode_image(image: Image, *, format: str, quality: int | None = None) -> bytes:
    """The bytes ``write_image`` would write (e.g. for stdout)."""
    fmt = _normalise_format(format)
    encode.check_quality(quality)
    encode.check_image(image)
    buffer = io.BytesIO()
    try:
        encode.encode_to(buffer, image, fmt, quality)
    except Exception as err:
        raise OutputWriteError(f"<stdout>: could not encode the image as {fmt} ({err}); "
                               "try another output format") from err
    return buffer.getvalue()


def _normalise_format(format: str) -> str:
    fmt = format.upper().lstrip(".")
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in _FORMATS:
        raise UsageError(f"output format {format!r} is not supported; "
                         "use JPEG, PNG, TIFF, WEBP, AVIF or BMP")
    return fmt
