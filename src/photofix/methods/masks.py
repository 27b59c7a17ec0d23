"""User-supplied and exported masks (``--mask`` and ``--mask-out`` of scratch-repair and deshadow).

A mask is an image where white (or any light value) marks the pixels to treat; grey, RGB or
an alpha channel all work, soft values (a penumbra) are kept. Masks are matched to photos by file stem: ``photo.jpg`` takes
``photo.png`` or ``photo_mask.png`` from a mask folder.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from photofix import imageio
from photofix._color import LUMA_709, luma
from photofix._files import write_file
from photofix.errors import ImageError

MASK_SUFFIX = "_mask"
def find_mask(spec: Path, photo_name: str) -> Path | None:
    """The mask for ``photo_name``: ``spec`` itself when it is a file, else a stem match inside the folder."""
    if spec.is_file():
        return spec
    name = Path(photo_name).name
    stem = Path(name).stem
    # the full name first: save_mask uses it when two photos of a run share a stem (a.jpg, a.png)
    candidates = [c for c in sorted(spec.iterdir()) if c.suffix.lower() in imageio.SUPPORTED_EXTENSIONS]
    for wanted in (name + MASK_SUFFIX, stem, stem + MASK_SUFFIX):
        found = next((c for c in candidates if c.stem == wanted), None)
        if found is not None:
            return found
    return None


def load_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The mask in an image file as float32 H x W in [0, 1], fitted to the photo's ``shape``.

    A mask that does not fit (another aspect ratio, an unreadable layout) fails this photo
    only, naming the mask file.
    """
    try:
        return mask_from_array(load_mask_pixels(path), shape)
    except ImageError as error:
        raise ImageError(f"{path}: {error}; give a mask of the photo's shape") from error


def load_mask_pixels(path: Path) -> np.ndarray:
    """A mask image's values as float H x W x C (alpha appended as the last channel when present)."""
    image = imageio.read_image(path)
    if image.alpha is None:
        return image.pixels
    return np.concatenate([image.pixels, image.alpha[..., None]], axis=2)


def mask_name(photo_name: str, taken: set[str] | None = None) -> str:
    """``photo_mask.png``; ``photo.jpg_mask.png`` when another photo of the run took the stem's name,
    then ``photo.jpg_mask-2.png`` and on (two folders' ``a.jpg``): masks never overwrite each other."""
    name = Path(photo_name).name
    taken = taken or set()
    chosen = f"{Path(name).stem}{MASK_SUFFIX}.png"
    if chosen in taken:
        chosen = f"{name}{MASK_SUFFIX}.png"
    count = 2
    while chosen in taken:
        chosen = f"{name}{MASK_SUFFIX}-{count}.png"
        count += 1
    return chosen


def save_mask(mask: np.ndarray, folder: Path, photo_name: str, taken: set[str] | None = None) -> Path:
    """Write a bool or soft [0, 1] ``mask`` as an 8-bit grey PNG (white = treated) named after the photo
    (``mask_name``: ``taken`` holds the names this run already wrote); atomic."""
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / mask_name(photo_name, taken)
    values = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
    picture = PILImage.fromarray(np.round(values * 255).astype(np.uint8), mode="L")
    write_file(target, lambda fp: picture.save(fp, format="PNG"))
    return target


def mask_from_array(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A user's mask as float32 H x W in [0, 1], resized to ``shape`` (the photo's H, W[, C]).

    ``array`` may be bool, 8- or 16-bit integers, or floats in [0, 1]; grey (H x W or
    H x W x 1), RGB (its luminance is used) or with alpha (LA, RGBA: the alpha is the mask
    when it varies, else the colour). White / opaque marks the shadow. A mask whose aspect
    ratio differs from the photo's by more than 1 % is refused (ImageError: that photo fails alone): stretching it
    would put the shadow elsewhere.
    """
    values = np.asarray(array)
    if len(shape) < 2 or shape[0] < 1 or shape[1] < 1:
        raise ImageError(f"the photo's shape must be (H, W[, C]), not {shape}")
    h, w = int(shape[0]), int(shape[1])
    plane = _mask_plane(values)
    mh, mw = plane.shape
    if mh < 1 or mw < 1:
        raise ImageError(f"the mask is empty (shape {values.shape})")
    mismatch = abs((mw / mh) / (w / h) - 1.0)
    if mismatch > 0.01:
        raise ImageError(
            f"the mask is {mw}x{mh} px and the photo {w}x{h}: their aspect ratios differ by {mismatch:.1%}. "
            "Draw the mask on the photo itself (or a copy scaled without cropping)."
        )
    if (mh, mw) != (h, w):
        method = cv2.INTER_AREA if mh > h else cv2.INTER_LINEAR
        plane = cv2.resize(plane, (w, h), interpolation=method)
    return np.clip(plane, 0.0, 1.0).astype(np.float32)


def _mask_plane(values: np.ndarray) -> np.ndarray:
    """Any supported mask array to float32 H x W in [0, 1] at its own size."""
    if values.dtype == bool:
        values = values.astype(np.float32)
    elif np.issubdtype(values.dtype, np.integer):
        top = 65535.0 if values.dtype.itemsize > 1 or values.max(initial=0) > 255 else 255.0
        values = values.astype(np.float32) / np.float32(top)
    elif np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float32)
        if values.size and (np.nanmin(values) < -0.01 or np.nanmax(values) > 1.01):
            raise ImageError(f"a float mask must hold values in [0, 1], not {np.nanmin(values):.3g}..{np.nanmax(values):.3g}")
        values = np.nan_to_num(values, nan=0.0)
    else:
        raise ImageError(f"cannot read a mask from an array of {values.dtype}")
    if values.ndim == 2:
        return values
    if values.ndim != 3 or values.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"a mask must be H x W, or H x W x 1/2/3/4 (grey, LA, RGB, RGBA), not {values.shape}")
    channels = values.shape[2]
    if channels in (2, 4):
        alpha = values[..., -1]
        if alpha.size and float(alpha.max()) - float(alpha.min()) > 1e-6:
            return np.ascontiguousarray(alpha)
        values = values[..., :-1]
    if values.shape[2] == 3:
        return np.ascontiguousarray(luma(values, LUMA_709))  # a colour mask counts by its brightness
    return np.ascontiguousarray(values[..., 0])


__all__ = ["MASK_SUFFIX", "find_mask", "load_mask", "load_mask_pixels", "mask_from_array", "mask_name", "save_mask"]
