"""What a shadow does to colour: light is taken away, not colour changed (skylight aside).

Shared by the window detector (``deshadow_mask``) and the region pairing (``shadow_pairs``).
"""

from __future__ import annotations

import numpy as np

_CHROMA_TOLERANCE = 0.10  # log units a channel may drop more or less than the luminance
_SKY_RED = 0.30  # under skylight red may drop this fraction of the luminance drop more...
_SKY_BLUE = 0.50  # ...and blue this fraction less


def chroma_consistency(drop: np.ndarray) -> np.ndarray:
    """How shadow-like a colour change is: 1 for a pure (or skylit) darkening, to 0.

    ``drop``: (..., 4) log drops of R, G, B and the luminance (positive = darker).
    """
    drop = np.asarray(drop, dtype=np.float32)
    luminance = drop[..., 3]
    darker = np.maximum(luminance, 0.0)
    excess = drop[..., :3] - luminance[..., None]  # how much more each channel dropped
    tol = _CHROMA_TOLERANCE
    red = np.maximum(-tol - excess[..., 0], 0) + np.maximum(excess[..., 0] - _SKY_RED * darker - tol, 0)
    green = np.maximum(np.abs(excess[..., 1]) - tol, 0)
    blue = np.maximum(-_SKY_BLUE * darker - tol - excess[..., 2], 0) + np.maximum(excess[..., 2] - tol, 0)
    return np.exp(-0.5 * (red**2 + green**2 + blue**2) / tol**2)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, a smooth cubic between."""
    t = np.clip((np.asarray(x, np.float32) - lo) / np.float32(hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


__all__ = ["chroma_consistency", "smoothstep"]
