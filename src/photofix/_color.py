"""The sRGB transfer curve and luma weights: one definition for every module that needs them."""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights: grey from a colour network's output, scratch detection, inpainting.
LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# ITU-R BT.709 luminance weights: masks drawn in colour, the shadow detector's luminance.
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Decode sRGB values in [0, 1] to linear light, float32 (the piecewise IEC 61966-2-1 curve)."""
    encoded = np.asarray(values, dtype=np.float32)
    # Negatives are floored only in the branch np.where discards: no NaN warnings, same result.
    light = np.power((np.maximum(encoded, 0.0) + 0.055) / 1.055, 2.4, dtype=np.float32)
    return np.where(encoded > 0.04045, light, encoded / 12.92)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Encode linear light to sRGB, float32, clipped to [0, 1]."""
    light = np.clip(values, 0.0, 1.0, dtype=np.float32)
    # In float32 the curve's top, 1.055 * 1 - 0.055, is just under 1: no clip needed after.
    encoded = 1.055 * np.power(light, 1 / 2.4, dtype=np.float32) - 0.055
    return np.where(light > 0.0031308, encoded, 12.92 * light)


def luma(pixels: np.ndarray, weights: np.ndarray, *, keep_channel: bool = False) -> np.ndarray:
    """Weighted sum of an H x W x 3 image's channels: H x W, or H x W x 1 with ``keep_channel``."""
    grey = pixels @ weights
    return grey[..., None] if keep_channel else grey


__all__ = ["LUMA_601", "LUMA_709", "linear_to_srgb", "luma", "srgb_to_linear"]
