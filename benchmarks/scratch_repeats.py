"""Round 4's experiment, NOT shipped: tell damage from texture by repetition (SCRATCH_EVAL.md).

It removed most false alarms on regular texture (brick 7.2 % -> 0.5 % flagged) and raised the
synthetic tuning sets' mean gain, but on the real scans it refused damage rather than texture
(recall against the README figure's reference mask 0.72 -> 0.52, precision 0.29 -> 0.25): real
emulsion cracks and dust are as self-similar as texture. Kept so the tables can be re-run.

The idea: a scratch is unique where it lies, texture repeats.

The classical detector flags what is thin and stands out of its block's level; the thin
detail of a brick wall's mortar, printed letters, grass blades or a fence does that too, and
inpainting it costs several dB. What such detail has and damage lacks is *company*: the same
small thin shape recurs a few px away (the next mortar joint, the next letter stroke).
A scratch or a speck of dust falls on the photo at random and has no twin nearby.

For each small piece of the mask, its patch of the thin-structure response (the top-hat the
detector measured) is compared by normalised cross-correlation with every position within a
few times its size around it. The piece is refused as texture when at least ``repeats`` other
places, apart from it and from each other, correlate at ``similarity`` or more and stand out
at least half as much: grain weaker than the piece does not count as its twin. A long piece
is judged stretch by stretch (``tile`` px), so a mortar joint goes where the joints beside it
look alike and a scratch crossing the wall stays where it differs from them.
"""

from __future__ import annotations

import cv2
import numpy as np

SIMILARITY = 0.7  # normalised cross-correlation a twin must reach
REPEATS = 2  # twins needed to call a piece texture
TILE = 32  # px: a piece is judged in stretches this large
_PAD = 2  # px of context around a piece in its template
_REACH = (3.0, 16, 48)  # search this many times the piece's size around it, within (min, max) px
_AMPLITUDE = 0.5  # a twin's peak response must reach this share of the piece's
_SELF_OVERLAP = 0.3  # a placement covering this share of the stretch's own piece is that piece


def drop_repeated(
    mask: np.ndarray,
    response: np.ndarray,
    *,
    similarity: float = SIMILARITY,
    repeats: int = REPEATS,
    tile: int = TILE,
) -> np.ndarray:
    """``mask`` (bool H x W) without the stretches whose shape recurs nearby in ``response`` (H x W float32).

    Each piece is judged in stretches at most ``tile`` px a side, so a long line of texture
    (a mortar joint) goes where its neighbours are alike, and a scratch stays where it is alone.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    response = np.ascontiguousarray(response, dtype=np.float32)
    keep = mask.copy()
    for k in range(1, count):
        x, y, w, h = (int(v) for v in stats[k, :4])
        for ty in range(y, y + h, tile):
            for tx in range(x, x + w, tile):
                window = labels[ty : min(y + h, ty + tile), tx : min(x + w, tx + tile)] == k
                rows, cols = np.nonzero(window)
                if rows.size == 0:
                    continue
                box = (tx + int(cols.min()), ty + int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1)
                if _twins(response, box, similarity, repeats, labels == k) >= repeats:
                    keep[ty : ty + window.shape[0], tx : tx + window.shape[1]][window] = False
    return keep


def _twins(response: np.ndarray, box: tuple[int, int, int, int], similarity: float, enough: int, own: np.ndarray) -> int:
    """How many places near ``box`` (x, y, w, h) look like it, up to ``enough``."""
    H, W = response.shape
    x, y, w, h = box
    tx0, ty0, tx1, ty1 = max(0, x - _PAD), max(0, y - _PAD), min(W, x + w + _PAD), min(H, y + h + _PAD)
    template = response[ty0:ty1, tx0:tx1]
    if template.std() < 1e-6:
        return 0
    factor, low, high = _REACH
    reach = int(np.clip(factor * max(w, h), low, high))
    sx0, sy0, sx1, sy1 = max(0, tx0 - reach), max(0, ty0 - reach), min(W, tx1 + reach), min(H, ty1 + reach)
    area = response[sy0:sy1, sx0:sx1]
    th, tw = template.shape
    if area.shape[0] < th + 2 or area.shape[1] < tw + 2:
        return 0
    ncc = cv2.matchTemplate(area, template, cv2.TM_CCOEFF_NORMED)
    # peak response under each placement, so weaker grain of the same shape is no twin
    peak = cv2.dilate(area, np.ones((th, tw), np.uint8), anchor=(0, 0))[: ncc.shape[0], : ncc.shape[1]]
    ncc[peak < _AMPLITUDE * float(template.max())] = -1.0
    _suppress(ncc, ty0 - sy0, tx0 - sx0, th, tw)  # the piece itself
    # placements landing on the same piece are the piece again (a line shifted along itself), not a twin
    piece = own[ty0:ty1, tx0:tx1].astype(np.float32)
    overlap = cv2.matchTemplate(own[sy0:sy1, sx0:sx1].astype(np.float32), piece, cv2.TM_CCORR) / max(float(piece.sum()), 1.0)
    ncc[overlap > _SELF_OVERLAP] = -1.0
    found = 0
    while found < enough:
        row, col = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
        if ncc[row, col] < similarity:
            break
        found += 1
        _suppress(ncc, row, col, th, tw)
    return found


def _suppress(ncc: np.ndarray, row: int, col: int, th: int, tw: int) -> None:
    """Rule out placements overlapping the one at (row, col) by more than half the template."""
    r0, r1 = max(0, row - th // 2), min(ncc.shape[0], row + th // 2 + 1)
    c0, c1 = max(0, col - tw // 2), min(ncc.shape[1], col + tw // 2 + 1)
    ncc[r0:r1, c0:c1] = -1.0




def detect_without_repeats(pixels: np.ndarray) -> np.ndarray:
    """The shipped ``detect_scratches`` (default settings), then ``drop_repeated`` on its top-hat."""
    from photofix.methods.scratch import detect_scratches, luminance, thin_response

    return drop_repeated(detect_scratches(pixels), thin_response(luminance(pixels), 2, "both"))
