"""Fill masked pixels: classical inpainting (biharmonic, or OpenCV's Telea / Navier-Stokes), a LaMa
adapter, and the crop engine that runs either.

``inpaint_masked`` is what keeps a 40 MP scan with a few thin scratches cheap: the inpainter
only ever sees crops around the damage (each at most ``max_crop`` px a side, with ``margin``
px of context), never the whole image, and only masked pixels (plus a thin feathered rim)
are written back. Time and memory follow the mask's area, not the image's.

Images are float32 H x W x C in [0, 1] (C = 1 or 3); masks are bool H x W, True = fill.
An *inpaint function* takes (crop H x W x C, crop mask H x W) and returns the filled crop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from photofix._color import LUMA_601, luma
from photofix.errors import ImageError, UsageError
from photofix.methods.scratch import as_image, dilate_mask

if TYPE_CHECKING:
    import torch

    from photofix.engine.models import LoadedMaskedModel

InpaintFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

_CV_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
# cv2.inpaint's Telea adds a unit-length gradient term in the image's own units, so [0, 1]
# floats come out wrecked (measured RMSE 245/255 on astronaut). At a 0-65535 scale the term
# is negligible and float32 keeps every input bit (8-bit would round to 1/255).
_CV_FLOAT_SCALE = 65535.0
_MIN_CORE = 16  # px: the smallest crop interior worth running, besides its margins
# Biharmonic's sparse solve grows faster than the hole (a 400 x 400 px hole: 4.3 s and 610 MiB
# against Telea's 0.3 s and 126 MiB) and a wide hole is no scratch: above this many pixels in
# one crop, Telea fills it. Scratch crops held at most 29,682 in the evaluation (median 237).
BIHARMONIC_MAX_HOLE = 65_536


# --- classical ---------------------------------------------------------------


def inpaint_classical(pixels: np.ndarray, mask: np.ndarray, method: str = "biharmonic", radius: int = 3) -> np.ndarray:
    """Fill ``mask`` by biharmonic interpolation (scikit-image), or OpenCV's Telea (fast marching)
    or Navier-Stokes inpainting.

    ``biharmonic`` (the default) solves for the smoothest surface (zero bilaplacian) through the
    pixels around each hole, so a thin hole takes the gradient running into it from both sides;
    on the scratch evaluation it beat Telea on 12 of 13 seen damage generators and on the
    held-out one (benchmarks/SCRATCH_EVAL.md, round 10). It works in float64, so any bit depth
    is kept; an image (crop) whose hole holds over ``BIHARMONIC_MAX_HOLE`` pixels, or that has no
    known pixel at all, is filled by Telea instead. cv2.inpaint takes float32 only with one
    channel (three only as 8-bit), so for
    ``telea`` and ``ns`` each channel is filled on its own at float32, on a 0-65535 scale (see
    ``_CV_FLOAT_SCALE``): no rounding to 8 bits, 16-bit sources keep their precision; ``radius``
    (px) is the neighbourhood each of their filled pixels is estimated from. Pixels outside the
    mask are returned unchanged, bit for bit.
    """
    if method not in (*_CV_METHODS, "biharmonic"):
        raise UsageError(f"inpainting method must be one of biharmonic, {', '.join(_CV_METHODS)}, not {method!r}")
    if radius < 1:
        raise UsageError(f"inpainting radius must be at least 1 px, not {radius}")
    image, hole = _checked(pixels, mask)
    result = image.copy()
    if not hole.any():
        return result.reshape(np.shape(pixels))
    if method == "biharmonic" and not hole.all() and np.count_nonzero(hole) <= BIHARMONIC_MAX_HOLE:
        from skimage.restoration import inpaint_biharmonic

        filled = inpaint_biharmonic(image, hole, channel_axis=-1)
        result[hole] = np.clip(filled[hole], 0.0, 1.0)
        return result.reshape(np.shape(pixels))
    method = "telea" if method == "biharmonic" else method  # no pixel known, or a hole too wide: Telea's fill
    hole8 = hole.view(np.uint8)
    for c in range(image.shape[2]):
        plane = np.ascontiguousarray(image[..., c], dtype=np.float32) * np.float32(_CV_FLOAT_SCALE)
        filled = cv2.inpaint(plane, hole8, float(radius), _CV_METHODS[method])
        result[..., c][hole] = np.clip(filled[hole] / np.float32(_CV_FLOAT_SCALE), 0.0, 1.0)
    return result.reshape(np.shape(pixels))


# --- crop engine -------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """Rows top:bottom, columns left:right (end exclusive)."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def area(self) -> int:
        return self.height * self.width

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    def grown(self, margin: int, height: int, width: int) -> Box:
        """This box with ``margin`` px more on each side, clamped to a height x width image."""
        return Box(max(0, self.top - margin), max(0, self.left - margin), min(height, self.bottom + margin), min(width, self.right + margin))


@dataclass
class CropStats:
    """What ``inpaint_masked`` ran: crops, the pixels they held, and the pixels written."""

    crops: int = 0
    crop_pixels: int = 0
    filled_pixels: int = 0  # mask grown by the feather: the only pixels that may change
    boxes: list[Box] = field(default_factory=list)


@dataclass
class InpaintResult:
    pixels: np.ndarray
    stats: CropStats


@dataclass
class _Job:
    own: Box  # the box whose owned pixels this crop writes
    rows: np.ndarray  # owned pixels, image coordinates
    cols: np.ndarray


def inpaint_masked(
    pixels: np.ndarray,
    mask: np.ndarray,
    inpaint_fn: InpaintFn,
    *,
    margin: int = 32,
    max_crop: int = 512,
    feather: int = 1,
    strength: np.ndarray | None = None,
) -> InpaintResult:
    """Inpaint only around the mask, crop by crop, and paste back only the filled pixels.

    margin: px of context around each damaged region given to ``inpaint_fn`` (LaMa wants
        tens of px; Telea needs only its radius).
    max_crop: no crop is larger than this a side; a region that would be (a long diagonal
        scratch) is cut into cells, each shrunk to the damage inside it.
    feather: the mask is grown by this many px before inpainting, and the grown rim is
        blended from fully filled (at the mask) to untouched (``feather + 1`` px out), so the
        antialiased edge of a scratch the detector missed is softened without a seam.
    strength: H x W weights in [0, 1] multiplying that blend (``scratch_blend.fill_weights``):
        how much of the fill each pixel takes; None takes all of it.

    Damaged regions closer than about ``2 * margin`` share a crop. Each crop's mask holds every
    hole inside it, so no crop takes damage for context; each filled pixel is written by
    exactly one crop. Pixels outside the mask grown by ``feather`` are bit-identical to the
    input. Returns the float32 image (same shape as ``pixels``) and ``CropStats``.
    """
    if margin < feather or feather < 0:
        raise UsageError(f"need 0 <= feather <= margin, got feather {feather} and margin {margin}")
    if max_crop < 2 * margin + _MIN_CORE:
        raise UsageError(f"max_crop {max_crop} leaves no room inside two margins of {margin} px; raise it or lower margin")
    image, hole = _checked(pixels, mask)
    if strength is not None:
        strength = np.asarray(strength, dtype=np.float32)
        if strength.shape != hole.shape:
            raise ImageError(f"strength shape {strength.shape} does not match the image's {hole.shape}")
    result = image.copy()
    work = dilate_mask(hole, feather)
    stats = CropStats()
    for job in _plan_jobs(work, margin, max_crop):
        crop = job.own.grown(margin, *hole.shape)
        filled = np.asarray(inpaint_fn(image[crop.slices].copy(), work[crop.slices].copy()))
        if filled.shape != (crop.height, crop.width, image.shape[2]):
            raise UsageError(f"the inpaint function returned shape {filled.shape} for a crop of {(crop.height, crop.width, image.shape[2])}")
        rows, cols = job.rows - crop.top, job.cols - crop.left
        weight = _feather_weights(hole[crop.slices], feather)[rows, cols, None]
        if strength is not None:
            weight = weight * strength[job.rows, job.cols, None]
        original = image[job.rows, job.cols]
        result[job.rows, job.cols] = weight * filled[rows, cols] + (1.0 - weight) * original
        stats.crops += 1
        stats.crop_pixels += crop.area
        stats.boxes.append(crop)
    stats.filled_pixels = int(np.count_nonzero(work))
    return InpaintResult(result.reshape(np.shape(pixels)), stats)


def _plan_jobs(work: np.ndarray, margin: int, max_crop: int) -> list[_Job]:
    """Group the pixels to fill into crops: near ones together, large groups cut into cells.

    Grouping runs on a grid ``margin // 4`` px coarse, so its cost is a small fraction of the
    image and no full-size label image is made; the rest works on the filled pixels' coordinates.
    """
    rows, cols = np.nonzero(work)
    if rows.size == 0:
        return []
    cell = max(1, margin // 4)
    coarse = np.zeros((-(-work.shape[0] // cell), -(-work.shape[1] // cell)), np.uint8)
    coarse[rows // cell, cols // cell] = 1
    reach = math.ceil(margin / cell)
    if reach:
        coarse = cv2.dilate(coarse, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    _, groups = cv2.connectedComponents(coarse, connectivity=8, ltype=cv2.CV_32S)
    jobs: list[_Job] = []
    for group_rows, group_cols in _split_by(groups[rows // cell, cols // cell], rows, cols):
        jobs.extend(_cut_to_size(group_rows, group_cols, max_crop - 2 * margin))
    return jobs


def _cut_to_size(rows: np.ndarray, cols: np.ndarray, side: int) -> list[_Job]:
    """One job for a group that fits ``side``; else one per ``side``-px cell it touches, shrunk to its pixels."""
    top, left = int(rows.min()), int(cols.min())
    if rows.max() - top < side and cols.max() - left < side:
        return [_job(rows, cols)]
    cells = ((rows - top) // side) * (int(cols.max() - left) // side + 1) + (cols - left) // side
    return [_job(r, c) for r, c in _split_by(cells, rows, cols)]


def _job(rows: np.ndarray, cols: np.ndarray) -> _Job:
    own = Box(int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
    return _Job(own, rows, cols)


def _split_by(keys: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, cols) of each distinct key, in key order."""
    order = np.argsort(keys, kind="stable")
    keys, rows, cols = keys[order], rows[order], cols[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return list(zip(np.split(rows, starts[1:]), np.split(cols, starts[1:])))


def _feather_weights(hole: np.ndarray, feather: int) -> np.ndarray:
    """1 on the hole, falling linearly to 0 at ``feather + 1`` px from it."""
    if feather == 0:
        return hole.astype(np.float32)
    distance = cv2.distanceTransform((~hole).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.clip(1.0 - distance / np.float32(feather + 1), 0.0, 1.0)


def _checked(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image as float32 H x W x C (a view when possible) and the mask as a contiguous bool H x W."""
    image = as_image(pixels)
    hole = np.asarray(mask)
    if hole.ndim == 3 and hole.shape[2] == 1:
        hole = hole[..., 0]
    if hole.shape != image.shape[:2]:
        raise ImageError(f"mask shape {np.shape(mask)} does not match the image's {image.shape[:2]}")
    return image, np.ascontiguousarray(hole, dtype=bool)


# --- LaMa --------------------------------------------------------------------


class LamaInpainter:
    """An inpaint function running a loaded LaMa-type model on one crop at a time.

    Grey crops are run as RGB and brought back to grey with the BT.601 weights; the model
    pads to its size multiple (8 for LaMa) and runs under ``torch.inference_mode``.
    """

    def __init__(self, model: LoadedMaskedModel) -> None:
        self.model = model

    @property
    def origin(self) -> Any:
        return self.model.origin

    def __call__(self, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        grey = crop.shape[2] == 1
        rgb = np.repeat(crop, 3, axis=2) if grey else crop
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]
        hole = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
        filled = _to_numpy(self.model(image, hole))
        return luma(filled, LUMA_601, keep_channel=True) if grey else filled


def _to_numpy(batch: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(batch[0].float().cpu().numpy().transpose(1, 2, 0), dtype=np.float32)


def load_lama(path: str | os.PathLike, device: str | torch.device | None = None, **load: Any) -> LamaInpainter:
    """Load big-LaMa (TorchScript ``.pt`` or a state dict) through photofix's registry.

    ``load`` passes on to ``load_masked_model`` (precision, model id, verified hash).
    Raises ``ArchitectureMismatch`` when the file holds another architecture.
    """
    from photofix.engine.models import load_masked_model

    load.setdefault("expected_arch", "LaMa")
    return LamaInpainter(load_masked_model(path, device=device, **load))


__all__ = [
    "Box",
    "CropStats",
    "InpaintFn",
    "InpaintResult",
    "LamaInpainter",
    "inpaint_classical",
    "inpaint_masked",
    "load_lama",
]
