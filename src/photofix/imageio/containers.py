"""File writers for what Pillow cannot write: 16-bit PNG with metadata, and TIFF.

Pixels for a 16-bit PNG come from OpenCV, with metadata chunks added by hand; TIFFs are
built on Pillow's own TIFF directory serializer, which (unlike tifffile) writes EXIF and
GPS sub-IFDs.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage
from PIL import TiffImagePlugin

from photofix.imageio.metadata import Extras, resolved_exif_tags

# Tags that describe a file's pixel layout: EXIF must never override the writer's own.
TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 282, 283, 284, 296,
    317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 513, 514, 529, 530, 531, 532,
    700, 34675,
})

TIFF_STRIP_BYTES = 256 * 1024


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png16(fp: BinaryIO, arr: np.ndarray, extras: Extras) -> None:
    """16-bit PNG: pixels by OpenCV, metadata chunks added by hand right after IHDR."""
    import cv2

    order = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[arr.shape[2]]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(arr[..., order]))
    png = encoded.reshape(-1).data if ok else None
    if png is None or bytes(png[12:16]) != b"IHDR":
        raise ValueError("OpenCV could not encode the 16-bit PNG")
    chunks = []
    if extras.icc_profile:  # iCCP must come before IDAT
        chunks.append(png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(extras.icc_profile)))
    if extras.dpi:
        per_metre = [round(d / 0.0254) for d in extras.dpi]
        chunks.append(png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    if extras.exif:
        chunks.append(png_chunk(b"eXIf", extras.exif.removeprefix(b"Exif\0\0")))
    if extras.xmp:
        chunks.append(png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + extras.xmp))
    ihdr_end = 8 + 8 + 13 + 4  # signature, length + type, IHDR body, CRC
    fp.write(png[:ihdr_end])
    fp.write(b"".join(chunks))
    fp.write(png[ihdr_end:])


def write_tiff(fp: BinaryIO, arr: np.ndarray, extras: Extras) -> None:
    """8- or 16-bit TIFF: deflate with horizontal predictor, EXIF/GPS sub-IFDs, ICC, XMP, DPI.

    Pillow cannot write 16-bit colour, and with compression it hands EXIF to libtiff,
    which refuses the EXIF sub-IFD; this writer uses Pillow's own IFD serializer instead.
    """
    height, width, channels = arr.shape
    samples = arr.reshape(height, width * channels)
    rows = samples.astype(samples.dtype.newbyteorder("<"))
    rows[:, channels:] -= samples[:, :-channels]  # predictor 2: difference to the left pixel
    per_strip = max(1, TIFF_STRIP_BYTES // rows[0].nbytes)
    strips = [zlib.compress(rows[y:y + per_strip].tobytes(), 6)
              for y in range(0, height, per_strip)]
    if sum(map(len, strips)) > 0xFFFF0000:
        raise ValueError("over 4 GB compressed, more than a TIFF can hold; write PNG instead")

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if extras.exif:
        exif = PILImage.Exif()
        exif.load(extras.exif)
        for tag, value in resolved_exif_tags(exif).items():
            if tag not in TIFF_LAYOUT_TAGS:
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


__all__ = [
    "TIFF_LAYOUT_TAGS",
    "TIFF_STRIP_BYTES",
    "png_chunk",
    "write_png16",
    "write_tiff",
]
