"""User-supplied and exported damage masks (scratch-repair's ``--mask`` and ``--mask-out``).

A mask is an image where white (or any light value) marks pixels to repair; grey, RGB or
an alpha channel all work. Masks are matched to photos by file stem: ``photo.jpg`` takes
``photo.png`` or ``photo_mask.png`` from a mask folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import imageio
from .errors import UnsupportedImage

MASK_SUFFIX = "_mask"


def find_mask(spec: Path, photo_name: str) -> Path | None:
    """The mask for ``photo_name``: ``spec`` itself when it is a file, else a stem match inside the folder."""
    if spec.is_file():
        return spec
    stem = Path(photo_name).stem
    for candidate in sorted(spec.iterdir()):
        if candidate.suffix.lower() in imageio.SUPPORTED_EXTENSIONS and candidate.stem in (stem, stem + MASK_SUFFIX):
            return candidate
    return None


def load_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Bool H x W mask from an image file, resized to ``shape`` (h, w) when needed.

    Light pixels (luminance or alpha above one half) mark damage. A mask whose aspect ratio
    differs from the photo's by more than 1% belongs to another picture and is refused.
    """
    image = imageio.read_image(path)
    values = image.pixels.mean(axis=2) if image.alpha is None else np.maximum(image.pixels.mean(axis=2), image.alpha)
    height, width = shape
    if values.shape != (height, width):
        ratio = (values.shape[1] / values.shape[0]) / (width / height)
        if abs(ratio - 1.0) > 0.01:
            raise UnsupportedImage(
                f"{path}: the mask is {values.shape[1]}x{values.shape[0]} but the photo is {width}x{height}; "
                "give a mask of the photo's shape"
            )
        import cv2

        values = cv2.resize(values.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return values > 0.5


def load_mask_pixels(path: Path) -> np.ndarray:
    """A mask image's values as float H x W x C (alpha appended as the last channel when present)."""
    image = imageio.read_image(path)
    if image.alpha is None:
        return image.pixels
    return np.concatenate([image.pixels, image.alpha[..., None]], axis=2)


def save_mask(mask: np.ndarray, folder: Path, photo_name: str) -> Path:
    """Write a bool or soft [0, 1] ``mask`` as an 8-bit grey PNG (white = treated) named after the photo; atomic."""
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{Path(photo_name).stem}{MASK_SUFFIX}.png"
    values = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
    picture = PILImage.fromarray(np.round(values * 255).astype(np.uint8), mode="L")
    imageio.atomic.write_file(target, lambda fp: picture.save(fp, format="PNG"))
    return target


__all__ = ["MASK_SUFFIX", "find_mask", "load_mask", "load_mask_pixels", "save_mask"]
