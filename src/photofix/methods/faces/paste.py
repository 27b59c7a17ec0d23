"""Restore each face in its aligned crop and paste it back, changing nothing else.

The restored crop is given the input crop's broad colour and shading (its detail is kept),
then blended into the photo through a feathered oval that covers the face. Outside the
ovals the photo's own pixels are returned untouched, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from photofix._color import LUMA_601, luma
from photofix.methods.faces.align import FACE_SIZE, Region, covered_region, crop_face, face_transform, shifted, uncrop
from photofix.methods.faces.detect import Face

# (512 x 512 x 3 float32 RGB in [0, 1]) -> the same, restored
FaceRestoreFn = Callable[[np.ndarray], np.ndarray]

# The pasted oval in the 512-px frame: around the template's eyes (y 240), nose (314) and mouth
# (371), reaching the hairline and chin, cheek to cheek; its edge fades over FEATHER px.
OVAL_CENTRE = (256.0, 290.0)
OVAL_RADII = (185.0, 225.0)
FEATHER = 32
# Broad colour and shading come from the input crop, at scales above this blur (px in the
# 512 frame; the eyes are 126 px apart): the model's tone and tint never show as a patch.
TONE_SIGMA = 48.0
# Weights below one 8-bit step count as untouched: a paste never nudges pixels by an invisible
# amount, and every changed pixel shows in an 8-bit --mask-out.
LEAST_WEIGHT = 1.0 / 255


@dataclass
class PastedFaces:
    """The photo with its faces restored, and where it changed (per face: region and weights)."""

    pixels: np.ndarray
    pieces: list[tuple[Region, np.ndarray]] = field(default_factory=list)
    skipped: int = 0  # faces whose landmarks gave no usable alignment

    def mask(self, height: int, width: int) -> np.ndarray:
        """H x W float32 weights of the restored faces (0 = the photo's own pixels)."""
        full = np.zeros((height, width), dtype=np.float32)
        for region, weights in self.pieces:
            window = full[region.slices]
            np.maximum(window, weights, out=window)
        return full


@lru_cache(maxsize=4)
def face_oval(size: int = FACE_SIZE) -> np.ndarray:
    """size x size weights: 1 inside the face oval, fading to 0 at its edge."""
    import cv2

    k = size / FACE_SIZE
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    cx, cy = OVAL_CENTRE[0] * k, OVAL_CENTRE[1] * k
    rx, ry = OVAL_RADII[0] * k, OVAL_RADII[1] * k
    inside = (((xs - cx) / (rx - FEATHER * k)) ** 2 + ((ys - cy) / (ry - FEATHER * k)) ** 2 <= 1).astype(np.float32)
    soft = np.clip(cv2.GaussianBlur(inside, (0, 0), FEATHER * k / 3), 0.0, 1.0)
    soft[soft < LEAST_WEIGHT] = 0
    soft.flags.writeable = False
    return soft


def match_tone(restored: np.ndarray, original: np.ndarray, sigma: float = TONE_SIGMA) -> np.ndarray:
    """``restored`` with the broad colour and shading of ``original`` (both aligned crops)."""
    import cv2

    difference = np.asarray(original, dtype=np.float32) - restored
    broad = cv2.GaussianBlur(difference, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101).reshape(restored.shape)
    return np.clip(restored + broad, 0.0, 1.0)


def _is_grey(crop: np.ndarray) -> bool:
    """One channel, or three equal to within half an 8-bit step: a grey photo stored as RGB."""
    return crop.shape[2] == 1 or float(np.max(np.ptp(crop, axis=2))) < 0.5 / 255


def restore_one(crop: np.ndarray, restore_fn: FaceRestoreFn) -> np.ndarray:
    """Run the model on an aligned crop of the photo's channels; the result in the same channels.
    A grey face comes back grey (the model's luma): face models colour skin even in a grey photo."""
    rgb = np.repeat(crop, 3, axis=2) if crop.shape[2] == 1 else crop
    restored = np.asarray(restore_fn(np.ascontiguousarray(rgb, dtype=np.float32)), dtype=np.float32)
    if restored.shape != rgb.shape:
        raise ValueError(f"the face model returned {restored.shape[:2]} for a {rgb.shape[:2]} face")
    restored = np.nan_to_num(np.clip(restored, 0.0, 1.0))
    if _is_grey(crop):
        grey = luma(restored, LUMA_601, keep_channel=True)
        restored = grey if crop.shape[2] == 1 else np.repeat(grey, 3, axis=2)
    return match_tone(restored, crop)


def as_float(values: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: integers (finished 8/16-bit pixels) scaled by their type's maximum."""
    if np.issubdtype(values.dtype, np.floating):
        return np.asarray(values, dtype=np.float32)
    return values.astype(np.float32) / np.float32(np.iinfo(values.dtype).max)


def _stored(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Blended floats as ``dtype`` holds them: integers are rounded to nearest, as the encoder does."""
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype, copy=False)
    top = np.iinfo(dtype).max
    return np.rint(np.clip(values, 0.0, 1.0) * top).astype(dtype)


def restore_faces(pixels: np.ndarray, faces: Sequence[Face], restore_fn: FaceRestoreFn,
                  on_face: Callable[[int, int], None] | None = None) -> PastedFaces:
    """Restore ``faces`` of H x W x C ``pixels`` in a copy; pixels outside the ovals are the input's, bit for bit.

    ``pixels`` are float in [0, 1], or finished 8/16-bit integers (then only the pasted pixels are
    rounded, the way the encoder would). Each face is cut from the input, never from a face pasted
    before it, so overlapping faces are each restored from the original; later ones are blended
    over earlier ones.
    """
    height, width = pixels.shape[:2]
    out = pixels.copy()
    result = PastedFaces(out)
    oval = face_oval()
    for number, face in enumerate(faces, 1):
        matrix = face_transform(face.landmarks)
        if matrix is None:
            result.skipped += 1
            continue
        region = covered_region(matrix, height, width)
        if region.empty:
            result.skipped += 1
            continue
        window = pixels[region.slices]
        restored = restore_one(crop_face(as_float(window), shifted(matrix, region.x0, region.y0)), restore_fn)
        weights = np.clip(uncrop(oval, matrix, region), 0.0, 1.0)
        weights[weights < LEAST_WEIGHT] = 0
        placed = uncrop(restored, matrix, region)
        target = out[region.slices]
        touched = weights > 0
        w = weights[touched][:, None]
        target[touched] = _stored(placed[touched] * w + as_float(target[touched]) * (1 - w), out.dtype)
        result.pieces.append((region, weights))
        if on_face is not None:
            on_face(number, len(faces))
    return result


__all__ = ["FEATHER", "as_float", "FaceRestoreFn", "PastedFaces", "face_oval", "match_tone", "restore_faces", "restore_one"]
