"""How much of the fill each flagged pixel takes: all of it where the detector is sure, less where not.

A flagged pixel is either damage, where the fill is the better estimate of the photo, or the
photo's own thin detail, where the original is exact. With p the chance it is damage, the blend
``p * fill + (1 - p) * original`` has the least expected squared error. The detector's
confidence (its score over the threshold, ``scratch.ScratchDetection``) stands in for p: the
weight rises linearly from ``floor`` at the threshold to 1 at ``full_at`` times it. Damage that stands
well out is replaced outright; a faint detection is only toned down, so a false alarm on an
eyelash or a brick's mortar costs little. Chosen on the evaluation's twelve tuning generators
(mean gain +1.38 -> +1.82 dB, photos worse by over 1 dB 32 -> 8 of 216) and then run once on
its held-out one (+1.00 -> +1.41 dB, worst photo -5.79 -> -1.70 dB); the price: a third of the
contrast of the damage found is left on average, mostly of its faint parts
(benchmarks/SCRATCH_EVAL.md, round 9). On real scratched scans only 0-32 % of the flagged
pixels reached the full fill, and cracks stayed faintly visible, so it is opt-in
(``--blend-faint``): for lightly damaged photos of fine texture, not for cracked prints.
"""

from __future__ import annotations

import cv2
import numpy as np

from photofix.errors import UsageError

FULL_AT = 4.0  # confidence (score over threshold) from which a pixel takes all of the fill
FLOOR = 0.3  # the share of the fill a pixel right at the threshold takes


def fill_weights(confidence: np.ndarray, mask: np.ndarray, *, full_at: float = FULL_AT, floor: float = FLOOR,
                 reach: int = 1) -> np.ndarray:
    """H x W float32 in [0, 1]: the share of the fill each pixel takes.

    On ``mask``: ``floor`` at the threshold (confidence 1), rising linearly to 1 at ``full_at``. Off it, within ``reach``
    px (the grown and feathered rim the inpainting also writes), the largest weight of the mask
    pixels nearby, so a rim is blended as much as the scratch it belongs to; 0 beyond.
    """
    if full_at <= 1:
        raise UsageError(f"full_at must be above 1 (the threshold), not {full_at}")
    if not 0 <= floor <= 1:
        raise UsageError(f"floor must be between 0 and 1, not {floor}")
    if reach < 0:
        raise UsageError(f"reach must be 0 or more px, not {reach}")
    mask = np.asarray(mask, dtype=bool)
    weight = np.zeros(mask.shape, np.float32)
    rise = np.clip((confidence[mask] - 1) / np.float32(full_at - 1), 0, 1)
    weight[mask] = floor + (1 - floor) * rise
    if reach == 0:
        return weight
    grown = cv2.dilate(weight, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    grown[mask] = weight[mask]
    return grown


__all__ = ["FULL_AT", "fill_weights"]
