"""Shadow candidates found by pairing regions across their borders, not against a lit window.

The window detector in ``deshadow_mask`` judges each pixel against the light within 15 % of
the photo's side, so a shadow larger than that darkens its own reference and is missed. Here
the working copy is cut into regions (Felzenszwalb's graph segmentation, which follows a
shadow's border like any other edge) and a region is a candidate when a region beside it
(touching, or across a penumbra region up to ``_GAP`` px wide) looks like the same surface in
more light: every channel brighter by about the same log amount (with the skylight allowance
of ``chroma_consistency``), 0.5 to 3 log units, with fine detail of about the same log
contrast (a shadow scales the light, so log-domain texture is kept). At least a quarter of
the region's border must face such a partner. Neighbours of the same colour and brightness as
a candidate join it: a large shadow is often cut into several regions.

Limits (benchmarks/DESHADOW_EVAL.md, round 3): when the segmentation makes the penumbra a
region of its own, wider than ``_GAP``, the two sides never meet and the shadow is not
proposed; a surface that changes colour across the photo can fail the colour test.

The candidates are only proposals: ``detect_shadows`` passes them through the same border
check and photo-level gate as its own (benchmarks/DESHADOW_EVAL.md, round 3).
"""

from __future__ import annotations

import cv2
import numpy as np

from photofix._color import LUMA_709, luma
from photofix.methods.shadow_colour import chroma_consistency

_SEGMENT_SCALE = 300.0  # Felzenszwalb's scale: larger -> larger regions
_SEGMENT_MIN = 0.001  # smallest region, as a fraction of the working copy
_GAP = 6  # px: regions this far apart across a border are compared too (penumbra regions)
_PAIR_STEP = (0.5, 3.0)  # log units of luminance: a lit partner is this much brighter
_PAIR_CHROMA = 0.5  # chroma_consistency of the pair's drop, at least
_TEXTURE_RATIO = 2.5  # the pair's log-domain detail may differ by this factor, at most
_MIN_CONTACT = 0.25  # share of a region's border samples that must face a matching lit partner
_JOIN_STEP = 0.2  # log units: a neighbour this close in every channel joins a candidate
_JOIN_ROUNDS = 3


def paired_candidates(light: np.ndarray, logs: np.ndarray, srgb: np.ndarray, log_floor: float, sensitivity: float = 1.0) -> np.ndarray:
    """Bool H x W: the regions a lit neighbour matches as the same surface in more light.

    ``light``: the working copy in linear light, H x W x 3; ``logs``: its texture-smoothed
    log R, G, B, luminance (H x W x 4); ``srgb``: the working copy as given (the segmentation
    runs on it); ``log_floor``: linear light added before logs; ``sensitivity``: as
    ``detect_shadows``'s, divides the smallest step a lit partner must show.
    """
    from skimage.segmentation import felzenszwalb  # imported here: it brings scipy.ndimage (0.2 s) to start-up otherwise

    h, w = logs.shape[:2]
    labels = felzenszwalb(srgb, scale=_SEGMENT_SCALE, sigma=0.8, min_size=max(16, int(_SEGMENT_MIN * h * w)), channel_axis=-1)
    n = int(labels.max()) + 1
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    means = np.stack([np.bincount(flat, logs[..., c].ravel(), n) for c in range(4)], axis=1) / sizes[:, None]
    detail = np.bincount(flat, _log_detail(light, log_floor).ravel(), n) / sizes

    keys, counts = np.unique(_contacts(labels, n), return_counts=True)
    dark, lit = keys // n, keys % n
    drop = means[lit] - means[dark]  # how much darker the first of each pair is, per channel
    ratio = detail[dark] / np.maximum(detail[lit], 1e-6)
    matches = (
        (drop[:, 3] >= _PAIR_STEP[0] / sensitivity)
        & (drop[:, 3] <= _PAIR_STEP[1])
        & (chroma_consistency(drop) >= _PAIR_CHROMA)
        & (ratio <= _TEXTURE_RATIO)
        & (ratio >= 1.0 / _TEXTURE_RATIO)
    )
    border = np.bincount(dark, counts, n)
    candidate = np.bincount(dark[matches], counts[matches], n) >= _MIN_CONTACT * np.maximum(border, 1)

    alike = np.all(np.abs(drop) <= _JOIN_STEP, axis=1)
    for _ in range(_JOIN_ROUNDS):
        grown = candidate.copy()
        grown[dark[alike & candidate[lit]]] = True
        if np.array_equal(grown, candidate):
            break
        candidate = grown
    return candidate[labels]


def _contacts(labels: np.ndarray, n: int) -> np.ndarray:
    """``region * n + other`` for every two labels 1 px and ``_GAP`` px apart, both ways round."""
    keys = []
    wide = labels.astype(np.int64)
    for d in (1, _GAP):
        for a, b in ((wide[:, :-d], wide[:, d:]), (wide[:-d, :], wide[d:, :])):
            differ = a != b
            a, b = a[differ], b[differ]
            keys += [a * n + b, b * n + a]
    return np.concatenate(keys)


def _log_detail(light: np.ndarray, log_floor: float) -> np.ndarray:
    """Magnitude of fine log-luminance detail: its difference from a 2 px blur."""
    log_luminance = np.log(luma(light, LUMA_709) + np.float32(log_floor)).astype(np.float32)
    return np.abs(log_luminance - cv2.GaussianBlur(log_luminance, (0, 0), 2.0))


__all__ = ["paired_candidates"]
