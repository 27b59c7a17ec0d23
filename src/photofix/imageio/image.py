"""The in-memory photo: float pixels plus what is known about the file they came from.

Kept apart from the package's ``__init__`` so the reading and writing modules can use
these types without importing the package that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    note: str | None = None  # what the user should know about the read, e.g. frames left out


@dataclass
class Image:
    """Pixels as float32 H x W x C in [0, 1], alpha apart (H x W) or None.

    A step whose result goes straight to the encoder may instead hand back *finished*
    pixels: uint8 (or uint16) holding exactly what ``encode.quantize`` makes of its
    floats at the depth the output will be written with (an x4 upscale's float32 canvas
    is 4x its 8-bit file). The encoder writes them as they are; steps that compute on
    pixels need floats, so finished pixels only ever end a pipeline.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    meta: ImageMeta

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


__all__ = [
    "Image",
    "ImageMeta",
]
