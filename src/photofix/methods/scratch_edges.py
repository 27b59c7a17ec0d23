"""Keep the scene's own edges out of a scratch mask: damage crosses edges, it does not follow them.

A scratch or a hair falls on a print at random, so it runs across the scene's edges and along
none of them. Much of what the classical detector flags on a clean photo is the other kind of
thin structure: a highlight on a helmet's rim, the gap between two folds of a sleeve, a badge's
border, all lying *beside* an edge of the scene and running its way. So the mask is judged in
stretches (each piece cut by a ``TILE`` px grid), and a stretch is dropped when at least
``SHARE`` of its pixels lie within ``NEAR`` px of a strong edge that runs the stretch's way
(within 30 degrees); a compact stretch (a dot of highlight, a speck) only has to lie beside one.

The scene is the luminance with every thin structure taken out (a grey opening, then a
closing, with a disk wider than the widest scratch core the detector finds), so a scratch's own
sides are not edges; an edge is a step of at least ``EDGE`` over about 2 px there, and its
direction is the structure tensor's over ``NEAR`` px.

Measured (benchmarks/SCRATCH_EVAL.md, round 5): on the real scratched scans precision against
the reference mask rose 0.29 -> 0.42 (0.33 -> 0.47 with faces protected) for recall 0.72 ->
0.69; clean photos flagged 1.25 % -> 0.87 % on average. What it costs: a scratch that runs along
an edge for a stretch is left there, and where a scratch meets a highlight that hugs an edge,
the stretch holding both is judged as one and can go with it.
"""

from __future__ import annotations

import cv2
import numpy as np

EDGE = 0.04  # luminance step over ~2 px: a strong edge of the scene
NEAR = 2  # px: "beside" an edge
SHARE = 0.5  # a stretch with this share of its pixels beside edges follows them
TILE = 32  # px: the grid that cuts pieces into stretches
_SCENE_RADIUS = 4  # px: the disk that takes thin structures out of the scene
_BAND, _MARGIN = 512, 32  # rows: the edge field is computed band by band; the margin covers its filters (~24 px)
_ACROSS = 0.5  # |cos| between an edge's normal and a stretch's direction under which it runs along the edge (> 60 deg)


def drop_along_edges(mask: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``mask`` (bool H x W) without its stretches that lie along strong edges of luminance ``y``."""
    if not mask.any():
        return mask.copy()
    _, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    rows, cols = np.nonzero(mask)
    strength, normal = _edges_at(y, rows, cols)
    across = -(-mask.shape[1] // TILE)
    stretch = labels[rows, cols].astype(np.int64) * (-(-mask.shape[0] // TILE) * across) + (rows // TILE) * across + cols // TILE
    _, index = np.unique(stretch, return_inverse=True)
    direction, elongated = _directions(index, rows.astype(np.float64), cols.astype(np.float64))
    beside = strength > EDGE
    # an elongated stretch follows an edge only where the edge runs its way (the edge's normal
    # across the stretch); a compact one (a speck, a dot of highlight) just sits beside it
    along = np.abs(np.sum(normal * direction[index], axis=1)) < _ACROSS
    follows = beside & (along | ~elongated[index])
    share = np.bincount(index, weights=follows) / np.bincount(index)
    keep = mask.copy()
    drop = share[index] >= SHARE
    keep[rows[drop], cols[drop]] = False
    return keep


def _edge_field(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H x W step of the scene's strongest edge within ``NEAR`` px, H x W x 2 its unit normal (row, col)).

    The scene is ``y`` with thin structures taken out; the step is measured over about 2 px.
    """
    scene = _scene(y)
    # Sobel / 8 is the gradient per px; x 2: the step over about 2 px
    gx, gy = cv2.Sobel(scene, cv2.CV_32F, 1, 0, ksize=3) / 4, cv2.Sobel(scene, cv2.CV_32F, 0, 1, ksize=3) / 4
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * NEAR + 1,) * 2)
    step = np.hypot(gx, gy)
    strength = cv2.dilate(step, near)
    # the orientation of the edges nearby: the structure tensor's main axis, summed over NEAR px
    jxx, jxy, jyy = (cv2.boxFilter(v, -1, (2 * NEAR + 1,) * 2) for v in (gx * gx, gx * gy, gy * gy))
    angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # of the gradient, from the column axis
    normal = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    return strength, normal


def _edges_at(y: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_edge_field`` at the pixels (rows, cols), computed in bands of ``_BAND`` rows holding any.

    The whole field of a 24 MP photo would take about 1 GB; a band's margin covers every filter's reach.
    """
    strength = np.zeros(rows.size, np.float32)
    normal = np.zeros((rows.size, 2), np.float32)
    for top in range(0, y.shape[0], _BAND):
        here = (rows >= top) & (rows < top + _BAND)
        if not here.any():
            continue
        start = max(0, top - _MARGIN)
        band_strength, band_normal = _edge_field(y[start : min(y.shape[0], top + _BAND + _MARGIN)])
        strength[here] = band_strength[rows[here] - start, cols[here]]
        normal[here] = band_normal[rows[here] - start, cols[here]]
    return strength, normal


def _scene(y: np.ndarray) -> np.ndarray:
    """The luminance with thin structures taken out: a grey opening, then a closing, with a disk
    (``2 * _SCENE_RADIUS + 1`` px) wider than the widest scratch core the detector finds."""
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _SCENE_RADIUS + 1,) * 2)
    scene = cv2.morphologyEx(cv2.morphologyEx(y, cv2.MORPH_OPEN, disk), cv2.MORPH_CLOSE, disk)
    return cv2.GaussianBlur(scene, (0, 0), 1.0)


def _directions(index: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stretch: its main direction (unit (row, col)) and whether it is elongated (2:1 or more)."""
    n = np.bincount(index)
    mean_r, mean_c = np.bincount(index, rows) / n, np.bincount(index, cols) / n
    dr, dc = rows - mean_r[index], cols - mean_c[index]
    srr, src, scc = (np.bincount(index, v) / n for v in (dr * dr, dr * dc, dc * dc))
    angle = 0.5 * np.arctan2(2 * src, scc - srr)
    spread = np.sqrt((srr - scc) ** 2 + 4 * src**2)
    major, minor = (srr + scc + spread) / 2, (srr + scc - spread) / 2
    elongated = major >= 4 * np.maximum(minor, 0.25)
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1), elongated


__all__ = ["EDGE", "NEAR", "SHARE", "TILE", "drop_along_edges"]
