"""An experiment, not shipped: verify each piece the classical scratch detector finds.

Round 2 of issue 11's scratch work. A piece is kept when a small logistic model over seven
features (departure from its own Telea fill, one-sided polarity, area, the thin-structure level
and roughness of its surroundings, the mask's local density, the share of the photo flagged)
says filling it helps, or when it departs from its fill far more than its surroundings are
rough. Fitted with ``bench_scratch_eval.py --fit-verifier`` on synthetic damage, it raised every
synthetic generator's worst photo and cut false alarms on clean photos about 6x, but on real
scratched scans it refused nearly all the damage (recall 0.72 -> 0.03 against the reference
mask of Bringing Old Photos Back to Life's figure; 0 % flagged on a scan covered in bright
cracks), even at a cut of probability 0.3 (0.21-0.29). So the CLI does not use it; the harness
scores it as the ``verified`` detector. See SCRATCH_EVAL.md.
"""

from __future__ import annotations

import cv2
import numpy as np

from photofix.methods.scratch import _as_plane, dilate_mask, luminance, thin_response

# Piece verification (``verify_pieces``): a logistic model over ``piece_features``, fitted by
# ``bench_scratch_eval.py --fit-verifier`` on the tuning generators' candidate pieces
# (label: filling the piece lowers the error, weighted by how much). The cut is probability 0.7:
# a missed scratch stays as it was, a wrongly filled piece of texture costs more.
_VERIFY_WEIGHTS = np.array([1.743, 2.486, 1.454, 0.915, -1.975, -1.157, -0.688])
_VERIFY_BIAS = -17.597
_VERIFY_CUT = float(np.log(0.7 / 0.3))
# A piece that departs from its fill 30x more than its surroundings are rough is kept whatever its
# size: on smooth ground a fleck is damage, and a fill there costs nothing (the model alone,
# fitted mostly on busy photos, dropped small flecks on the cat: +13.6 -> +7.9 dB).
_CERTAIN_RATIO = 30.0
_SURROUND = 15  # px: window of a piece's surroundings
_DENSITY_WINDOW = 41  # px: window over which the mask's density is measured


def piece_features(pixels: np.ndarray, mask: np.ndarray, *, max_width: int = 2,
                   polarity: str = "both") -> tuple[np.ndarray, np.ndarray]:
    """(labels H x W int32, features P x 7 float64) of a mask's 8-connected pieces (row p = label p + 1).

    Features, all logs but the polarity: how far the piece departs from its own fill (luminance
    filled by Telea over the whole mask), how consistently it departs in one direction (|mean| /
    mean |departure|, 1 for a clean scratch), its area, the thin-structure level and the
    roughness (|luma - 5 px median|) of its unmasked surroundings (15 px), the share of the mask
    within 20 px, and the share of the photo flagged (one value for all pieces).
    """
    mask = _as_plane(mask).astype(bool)
    y = luminance(pixels)
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    flat = labels.ravel()

    def mean_over_pieces(values: np.ndarray) -> np.ndarray:
        sums = np.bincount(flat, np.asarray(values, np.float64).ravel(), count)
        return (sums / np.maximum(area, 1))[1:]

    area = np.bincount(flat, minlength=count).astype(np.float64)
    departure = y.astype(np.float64) - _fill_luminance(y, mask)
    polarity_share = np.abs(mean_over_pieces(departure)) / np.maximum(mean_over_pieces(np.abs(departure)), 1e-9)
    free = ~dilate_mask(mask, 1)
    texture = _mean_outside(thin_response(y, max_width, polarity), free, _SURROUND)
    roughness = _mean_outside(np.abs(y - cv2.medianBlur(y, 5)), free, _SURROUND)
    density = cv2.boxFilter(mask.astype(np.float32), -1, (_DENSITY_WINDOW,) * 2)
    features = np.stack([
        np.log(mean_over_pieces(np.abs(departure)) + 1e-4),
        polarity_share,
        np.log(area[1:]),
        np.log(mean_over_pieces(texture) + 1e-4),
        np.log(mean_over_pieces(roughness) + 1e-4),
        np.log(mean_over_pieces(density) + 1e-4),
        np.full(count - 1, np.log(mask.mean() + 1e-5)),
    ], axis=1)
    return labels, features


def verify_pieces(pixels: np.ndarray, mask: np.ndarray, *, max_width: int = 2, polarity: str = "both") -> np.ndarray:
    """The mask without the pieces that look like the photo's own thin texture rather than damage.

    A piece is kept when ``_VERIFY_WEIGHTS`` . ``piece_features`` + ``_VERIFY_BIAS`` reaches
    ``_VERIFY_CUT`` (a logistic model: departure from the fill, one-sided polarity and size speak
    for damage; rough or busy surroundings and a heavily flagged photo against it), or when it
    departs from its fill ``_CERTAIN_RATIO`` times more than its surroundings are rough.
    """
    mask = _as_plane(mask).astype(bool)
    if not mask.any():
        return mask.copy()
    labels, features = piece_features(pixels, mask, max_width=max_width, polarity=polarity)
    likely = features @ _VERIFY_WEIGHTS + _VERIFY_BIAS >= _VERIFY_CUT
    certain = features[:, 0] - features[:, 4] >= np.log(_CERTAIN_RATIO)  # log departure - log roughness
    keep = np.concatenate([[False], likely | certain])
    return keep[labels]


def _fill_luminance(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Telea fill of a luminance plane (at a 0-65535 scale: see ``methods.inpaint``), float64."""
    filled = cv2.inpaint(np.ascontiguousarray(y * np.float32(65535)), mask.view(np.uint8), 3.0, cv2.INPAINT_TELEA)
    return filled.astype(np.float64) / 65535


def _mean_outside(values: np.ndarray, free: np.ndarray, window: int) -> np.ndarray:
    """Mean of ``values`` over the ``free`` pixels of a window x window box around each pixel."""
    weight = free.astype(np.float32)
    total = cv2.boxFilter(values * weight, -1, (window, window), normalize=False)
    return total / np.maximum(cv2.boxFilter(weight, -1, (window, window), normalize=False), 1.0)
