"""The noise level handed to non-blind denoisers (FFDNet) when the user gives none.

Measured on photos as people have them (``benchmarks/NOISE_ESTIMATE.md``): the finest
diagonal wavelet band, the textbook place to read noise, is where JPEG quantises hardest and
where correlated noise (demosaiced sensor noise, film grain, scanner noise) has least of its
energy, and 4:2:0 JPEG removes the colour part of the noise from each channel. So the level
is read one octave down, on luma, in the flattest parts of the photo:

* **luma**: JPEG keeps luma at full resolution, whatever the chroma subsampling;
* **level-2 diagonal Haar band** (the diagonal band of the 2x2-averaged image, scaled back):
  JPEG keeps it at usual qualities, and it holds more of a correlated noise;
* **flattest blocks**: the band's median absolute deviation per 32x32-pixel block, and a low
  percentile over blocks, so texture (fur, foliage) is not taken for noise; the constant
  that makes this unbiased for white Gaussian noise is a property of the statistic, not of
  any photo.

The result is the per-channel standard deviation, 0-255 scale, of independent RGB noise with
that much luma noise: the level FFDNet and similar denoisers are trained to be told.
"""

from __future__ import annotations

import numpy as np

# Luma of independent, equal noise in R, G and B has this share of its standard deviation
# (the norm of the BT.601 weights 0.299, 0.587, 0.114).
LUMA_NOISE_SHARE = float(np.sqrt(0.299**2 + 0.587**2 + 0.114**2))
BLOCK = 8  # level-2 coefficients per block side: 32 x 32 pixels
PERCENTILE = 20.0  # of the per-block levels: the flattest fifth of the photo
# 20th percentile over blocks of (median |z| of 64 N(0, 1) samples / 0.6745): the low
# percentile's bias on pure white noise (simulated; tests/test_noise_estimate.py re-derives it).
FLAT_BLOCK_BIAS = 0.882
MAD_TO_SIGMA = 1 / 0.6745  # median |N(0, s)| = 0.6745 s


def estimate_noise_sigma(pixels: np.ndarray) -> float:
    """Noise standard deviation on the 0-255 scale of an H x W x C image in [0, 1] (C = 1 or 3)."""
    band = _level2_diagonal(_luma(pixels))
    if band.size == 0:
        return 0.0
    levels = _block_levels(band)
    sigma = np.percentile(levels, PERCENTILE) / FLAT_BLOCK_BIAS if levels.size else _mad_sigma(band)
    share = LUMA_NOISE_SHARE if pixels.shape[2] == 3 else 1.0
    return float(sigma / share * 255.0)


def _luma(pixels: np.ndarray) -> np.ndarray:
    if pixels.shape[2] == 1:
        return np.asarray(pixels[..., 0], np.float32)
    return np.asarray(pixels[..., :3], np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _level2_diagonal(y: np.ndarray) -> np.ndarray:
    """Orthonormal Haar diagonal band of the second level: twice the diagonal band of the 2x2 means."""
    h, w = y.shape[0] // 4 * 4, y.shape[1] // 4 * 4
    y = y[:h, :w]
    means = (y[0::2, 0::2] + y[0::2, 1::2] + y[1::2, 0::2] + y[1::2, 1::2]) / 4.0
    return means[0::2, 0::2] - means[0::2, 1::2] - means[1::2, 0::2] + means[1::2, 1::2]


def _mad_sigma(band: np.ndarray) -> float:
    return float(np.median(np.abs(band)) * MAD_TO_SIGMA)


def _block_levels(band: np.ndarray) -> np.ndarray:
    """The noise level read from each whole BLOCK x BLOCK block of the band (empty if none fits)."""
    rows, cols = band.shape[0] // BLOCK, band.shape[1] // BLOCK
    blocks = np.abs(band[: rows * BLOCK, : cols * BLOCK]).reshape(rows, BLOCK, cols, BLOCK)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(rows * cols, BLOCK * BLOCK)
    return np.median(blocks, axis=1) * MAD_TO_SIGMA


__all__ = ["estimate_noise_sigma"]
