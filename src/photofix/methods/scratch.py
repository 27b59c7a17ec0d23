"""Find scratches and dust on a photo: a classical detector and the mask helpers detection needs.

The detector needs no download. A scratch or a speck of dust is *thin*: at most a few pixels
across, brighter (emulsion scraped off, paper showing) or darker (dust, hair) than what
surrounds it. Grey-level morphology measures exactly that on the luminance:

* an **opening** with a short line removes every bright structure narrower than the line
  across it, and leaves broad shapes and step edges alone (a line fits inside them in every
  direction). Taking the smallest of the openings along eight directions removes a thin curve
  whatever its direction, and a small spot too; what the openings removed (the *white
  top-hat*) is the height of thin bright things above their surroundings. The *black top-hat*
  (closings) does the same for thin dark things.
* photos are full of genuine thin detail (hair, rims, fabric), so the top-hat is measured
  against its own local level: the 75th percentile of the response in 32-pixel blocks is
  subtracted. Damage stands out of smooth and textured surroundings alike, texture does not
  stand out of itself.
* the threshold adapts to the photo: median + ``sensitivity`` x MAD of that score (robust to
  the few damaged pixels). It is applied with hysteresis, like Canny's: pixels above the low
  threshold are kept where their connected piece also reaches 1.5x it, so a scratch is kept
  whole along its faint stretches while isolated texture specks are dropped; pieces smaller
  than ``min_area`` are noise.
* damage crosses the scene's edges at random; thin highlights and gaps run *along* them, so
  stretches of the mask that follow a strong edge of the scene are dropped
  (``scratch_edges``; ``keep_along_edges=True`` keeps them).

Measured on scikit-image's astronaut, coffee and chelsea with drawn strokes and spots (see
tests/test_scratch_repair.py), default settings: 67-89 % of the visible damage is found, and
up to ~0.9 % of a busy photo's clean pixels are flagged (rims, eyes, wood grain: real thin
detail; 0.1 % on the cat; benchmarks/SCRATCH_EVAL.md has the broad evaluation). On portraits,
``methods.scratch_faces`` keeps the faces' eyes, brows, nose and mouth out of this mask. The
learned detector is the accurate one; this one needs no weights.

Images are float32 H x W x C in [0, 1] (C = 1 or 3); masks are bool H x W.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from photofix._color import LUMA_601, luma
from photofix.errors import UsageError
from photofix.methods.scratch_edges import drop_along_edges

_DIRECTIONS = 8  # line orientations, 22.5 degrees apart
_LEVEL_BLOCK = 32  # px: blocks over which the local response level is measured
_LEVEL_QUANTILE = 0.75
_LEVEL_WEIGHT = 1.5  # how many times the local level a response must exceed to count
_HYSTERESIS = 1.5  # a kept piece must reach this multiple of the low threshold somewhere
_MIN_CONTRAST = 0.03  # ~8/255: below this a thin line is not visible, whatever the statistics say
_MAX_STAT_SAMPLES = 4_000_000  # median/MAD on a strided subsample of larger images
POLARITIES = ("both", "bright", "dark")


def luminance(pixels: np.ndarray) -> np.ndarray:
    """H x W float32 luma of an H x W x C image (C = 1 is returned as is)."""
    pixels = as_image(pixels)
    if pixels.shape[2] == 1:
        return np.ascontiguousarray(pixels[..., 0], dtype=np.float32)
    return np.ascontiguousarray(luma(pixels, LUMA_601), dtype=np.float32)


def scratch_score(pixels: np.ndarray, *, max_width: int = 2, polarity: str = "both") -> np.ndarray:
    """H x W float32: how far each pixel's thin structure stands out of its surroundings.

    ``max_width`` (px) is the widest scratch core to find; the structuring lines are
    ``2 * max_width + 1`` px long, so antialiased rims of such scratches are caught too and
    wider shapes are left alone. ``polarity`` restricts to ``bright`` or ``dark`` damage.
    """
    return _score(luminance(pixels), max_width, polarity)


def _score(y: np.ndarray, max_width: int, polarity: str) -> np.ndarray:
    """``scratch_score`` of a luminance plane."""
    if polarity not in POLARITIES:
        raise UsageError(f"polarity must be one of {', '.join(POLARITIES)}, not {polarity!r}")
    if max_width < 1:
        raise UsageError(f"max_width must be at least 1 px, not {max_width}")
    response = thin_response(y, max_width, polarity)
    return response - _LEVEL_WEIGHT * _local_level(response)


def thin_response(y: np.ndarray, max_width: int, polarity: str) -> np.ndarray:
    """H x W float32 top-hat of a luminance plane: the height of thin bright and/or dark structure."""
    length = 2 * max_width + 1
    lines = [_line_kernel(length, 180.0 * i / _DIRECTIONS) for i in range(_DIRECTIONS)]
    response = np.zeros(y.shape, dtype=np.float32)
    if polarity in ("both", "bright"):
        opened = _extreme_over_lines(y, lines, cv2.MORPH_OPEN, np.minimum)
        np.maximum(response, y - opened, out=response)
    if polarity in ("both", "dark"):
        closed = _extreme_over_lines(y, lines, cv2.MORPH_CLOSE, np.maximum)
        np.maximum(response, closed - y, out=response)
    return response


def detect_scratches(
    pixels: np.ndarray,
    *,
    sensitivity: float = 5.0,
    threshold: float | None = None,
    max_width: int = 2,
    polarity: str = "both",
    min_area: int = 3,
    dilate: int = 0,
    keep_along_edges: bool = False,
) -> np.ndarray:
    """Bool H x W mask of thin scratches and small spots, bright and dark.

    sensitivity: the low threshold is median + ``sensitivity`` x MAD (x 1.4826) of the score,
        i.e. how many robust standard deviations damage must stand out; lower finds fainter
        scratches and flags more texture. The default 5 gave the best repair (PSNR) on busy test
        photos: lower values flag enough genuine detail that inpainting it costs more than the
        scratches found gain.
    threshold: an absolute low threshold on the score instead (luminance units, 0-1); use it
        to treat a batch of similar scans alike.
    max_width: widest scratch core in px (see ``scratch_score``). Scale it with the scan:
        a 3 px scratch at 600 dpi is 6 px at 1200 dpi.
    polarity: ``both``, ``bright`` (prints: scraped emulsion is white) or ``dark`` (dust).
    min_area: connected pieces smaller than this many px are dropped as noise.
    dilate: grow the mask by this many px, so inpainting also replaces antialiased rims.
    keep_along_edges: keep the stretches that lie along the scene's strong edges; by default
        they are dropped (``scratch_edges``): damage crosses edges, the thin highlights and
        gaps beside them are the photo's own.
    """
    found = _detect(luminance(pixels), sensitivity, threshold, max_width, polarity, min_area, keep_along_edges)
    return dilate_mask(found.mask, dilate)


@dataclass(frozen=True)
class ScratchDetection:
    """``mask``: what ``detect_scratches`` flags (not grown). ``confidence``: H x W float32, each
    pixel's score over the low threshold (1 at the threshold; higher stands out more).
    ``threshold``: that low threshold, in luminance (``confidence * threshold`` is the contrast)."""

    mask: np.ndarray
    confidence: np.ndarray
    threshold: float


def scratch_detection(pixels: np.ndarray, **options: Any) -> ScratchDetection:
    """``detect_scratches``' mask with how far each pixel stands out; ``options`` are its keyword
    arguments (``sensitivity``, ``threshold``, ``max_width``, ``polarity``, ``min_area``,
    ``keep_along_edges``; not ``dilate``: the mask comes back as detected)."""
    unknown = set(options) - set(_DETECT_DEFAULTS)
    if unknown:
        raise UsageError(f"scratch_detection takes {', '.join(_DETECT_DEFAULTS)}; not {', '.join(sorted(unknown))}")
    return _detect(luminance(pixels), **{**_DETECT_DEFAULTS, **options})


_DETECT_DEFAULTS = {"sensitivity": 5.0, "threshold": None, "max_width": 2, "polarity": "both", "min_area": 3,
                    "keep_along_edges": False}


def _detect(y: np.ndarray, sensitivity: float, threshold: float | None, max_width: int, polarity: str,
            min_area: int, keep_along_edges: bool) -> ScratchDetection:
    score = _score(y, max_width, polarity)
    low = max(_robust_threshold(score, sensitivity), _MIN_CONTRAST) if threshold is None else float(threshold)
    mask = _hysteresis(score, low, _HYSTERESIS * low, min_area)
    if not keep_along_edges:
        mask = drop_along_edges(mask, y)
    score /= np.float32(max(low, 1e-6))  # an absolute threshold of 0 flags everything: keep it finite
    return ScratchDetection(mask, score, low)


def threshold_probability(prob: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    """Bool H x W mask where a detector's probability map (H x W or H x W x 1) reaches ``threshold``.

    0.4 rather than 0.5: a missed scratch pixel stays visible, an extra one is only
    inpainted, so the cut leans toward coverage.
    """
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"threshold must be in (0, 1], not {threshold}")
    return _as_plane(prob) >= threshold


def dilate_mask(mask: np.ndarray, n: int) -> np.ndarray:
    """Grow a bool H x W mask by ``n`` px (round structuring element); ``n = 0`` copies it."""
    if n < 0:
        raise UsageError(f"dilation must be 0 or more px, not {n}")
    mask = _as_plane(mask).astype(bool)
    if n == 0:
        return mask.copy()
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * n + 1, 2 * n + 1))
    return cv2.dilate(mask.view(np.uint8), disk).view(bool)


def upsample_mask(mask_or_prob: np.ndarray, size: tuple[int, int], *, threshold: float = 0.5) -> np.ndarray:
    """Bring a mask or probability map computed at a working resolution to ``size`` (h, w).

    The values are resized **bilinearly and thresholded afterwards** (a bool mask counts as
    0/1). Thresholding at full size puts the mask's edge on the sub-pixel contour the
    detector saw, so a thin diagonal scratch stays a thin smooth band. Nearest-neighbour
    resizing would turn each working pixel into an s x s block: a staircase that misses the
    scratch between steps and has to be dilated by ~s px to cover it, inflating the area
    (and the inpainting time) by several times. Lower ``threshold`` to lean toward coverage.
    """
    h, w = size
    values = _as_plane(mask_or_prob).astype(np.float32)
    if values.shape != (h, w):
        values = cv2.resize(values, (w, h), interpolation=cv2.INTER_LINEAR)
    return values >= threshold


# --- internals --------------------------------------------------------------


def as_image(pixels: np.ndarray) -> np.ndarray:
    """The pixels as float32 H x W x C (C = 1 or 3; an H x W array gets one channel), no copy if possible."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise UsageError(f"expected an H x W x C image with C = 1 or 3, got shape {pixels.shape}")
    return pixels.astype(np.float32, copy=False)


def _as_plane(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim != 2:
        raise UsageError(f"expected an H x W mask or probability map, got shape {values.shape}")
    return values


def _line_kernel(length: int, degrees: float) -> np.ndarray:
    """A one-pixel line of ``length`` px through the centre of a square kernel."""
    kernel = np.zeros((length, length), np.uint8)
    half = (length - 1) / 2
    dx, dy = half * np.cos(np.radians(degrees)), -half * np.sin(np.radians(degrees))
    start = (round(half - dx), round(half - dy))
    end = (round(half + dx), round(half + dy))
    cv2.line(kernel, start, end, 1, 1, cv2.LINE_8)
    return kernel


def _extreme_over_lines(y: np.ndarray, lines: list[np.ndarray], operation: int, combine) -> np.ndarray:
    result = cv2.morphologyEx(y, operation, lines[0])
    for line in lines[1:]:
        combine(result, cv2.morphologyEx(y, operation, line), out=result)
    return result


def _local_level(response: np.ndarray) -> np.ndarray:
    """A high percentile of the response over blocks, interpolated to every pixel."""
    h, w = response.shape
    block = _LEVEL_BLOCK
    rows, cols = -(-h // block), -(-w // block)
    padded = np.pad(response, ((0, rows * block - h), (0, cols * block - w)), mode="symmetric")
    blocks = padded.reshape(rows, block, cols, block).swapaxes(1, 2).reshape(rows, cols, block * block)
    k = int(_LEVEL_QUANTILE * (block * block - 1))
    level = np.partition(blocks, k, axis=2)[..., k]
    return cv2.resize(np.ascontiguousarray(level), (w, h), interpolation=cv2.INTER_LINEAR)


def _robust_threshold(score: np.ndarray, sensitivity: float) -> float:
    if sensitivity <= 0:
        raise UsageError(f"sensitivity must be positive, not {sensitivity}")
    stride = max(1, int(np.ceil(np.sqrt(score.size / _MAX_STAT_SAMPLES))))
    sample = score[::stride, ::stride]
    median = float(np.median(sample))
    mad = 1.4826 * float(np.median(np.abs(sample - median)))
    return median + sensitivity * mad


def _hysteresis(score: np.ndarray, low: float, high: float, min_area: int) -> np.ndarray:
    """Pixels above ``low`` in connected pieces that reach ``high`` and hold ``min_area`` px."""
    candidates = (score > low).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8, ltype=cv2.CV_32S)
    keep = np.zeros(count, bool)
    keep[labels[score > high]] = True
    keep &= stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # background
    return keep[labels]


__all__ = [
    "POLARITIES",
    "ScratchDetection",
    "as_image",
    "detect_scratches",
    "dilate_mask",
    "luminance",
    "scratch_detection",
    "scratch_score",
    "thin_response",
    "threshold_probability",
    "upsample_mask",
]
