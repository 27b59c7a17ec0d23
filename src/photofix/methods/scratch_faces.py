"""Keep a scratch mask off faces' features: eyes, brows, nostrils and mouth are not damage.

A classical scratch detector looks for thin structures that stand out of their surroundings,
and an eye, a brow, a nostril or the line between the lips is exactly that: on a portrait it
flags them, and inpainting then erases them (issue 16: both eyes of an old-style astronaut
scan). Detection alone cannot tell them apart; where they are can. Each face found (box and
five landmarks, ``methods.faces.detect``) gives a *feature region*: an ellipse over each eye
and its brow, one over the nose's tip and nostrils, one over the mouth, placed and turned by
the landmarks. A mask piece (pieces less than ``_LINK`` px apart count as one: a scratch is
often found in stretches) that touches a feature region is refused unless it is a *stroke*:

* longer than ``stroke_length`` times the face's side (measured along its main axis): a
  feature is at most about a third of the face across, a scratch over the face is longer;
* or at least ``_SLANT_LENGTH`` of the face's side, ``_SLANT_ELONGATION`` times longer than
  wide and turned more than ``_SLANT_DEGREES`` from the eye line: brows, eyelids and lips run
  along the eye line, a scratch crossing the face at a slant does not.

A stroke is repaired whole, the features it crosses included.
Short damage on a feature (a speck on an eye) stays: erasing an eye to remove a speck is the
worse outcome. Pieces away from the features (dust on a cheek) are untouched.

Masks are bool H x W; faces are ``methods.faces.Face`` in the same pixel coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from photofix.methods.faces.detect import Face
from photofix.methods.scratch import as_image

# Sizes of the feature ellipses in eye distances (the landmark that scales with the face).
_EYE_HALF_WIDTH = 0.42  # an eye and its brow across
_EYE_HALF_HEIGHT = 0.42
_EYE_RAISE = 0.18  # the ellipse's centre sits this far above the eye: the brow is inside
_NOSE_HALF_WIDTH = 0.42  # nostrils and the tip's shading
_NOSE_HALF_HEIGHT = 0.3
_MOUTH_MARGIN = 0.22  # beyond the mouth corners
_MOUTH_HALF_HEIGHT = 0.3
STROKE_LENGTH = 0.6  # x face side: a piece at least this long crossing a face is a scratch, not a feature
_SLANT_LENGTH = 0.25  # x face side
_SLANT_ELONGATION = 4.0
_SLANT_DEGREES = 30.0
_LINK = 2  # px: mask pieces this close are one piece
_PRESMOOTH = 3  # px median before looking for faces: thin scratches do not hide a face


@dataclass(frozen=True)
class FaceProtection:
    """What ``protect_face_features`` did: faces it used, pieces and pixels it took out of the mask."""

    faces: int
    pieces_refused: int
    pixels_refused: int


def feature_region(faces: Sequence[Face], shape: tuple[int, int]) -> np.ndarray:
    """Bool H x W: the eyes with their brows, the nose's tip and nostrils, and the mouth of each face."""
    height, width = shape[:2]
    region = np.zeros((height, width), np.uint8)
    for face in faces:
        points = np.asarray(face.landmarks, dtype=np.float64).reshape(5, 2)
        left_eye, right_eye, nose, mouth_left, mouth_right = points
        across = right_eye - left_eye
        span = float(np.hypot(*across))
        if span < 1.0:
            continue
        angle = float(np.degrees(np.arctan2(across[1], across[0])))
        up = np.array([across[1], -across[0]]) / span  # perpendicular to the eye line, toward the brows
        for eye in (left_eye, right_eye):
            _ellipse(region, eye + _EYE_RAISE * span * up, _EYE_HALF_WIDTH * span, _EYE_HALF_HEIGHT * span, angle)
        _ellipse(region, nose, _NOSE_HALF_WIDTH * span, _NOSE_HALF_HEIGHT * span, angle)
        mouth_half = float(np.hypot(*(mouth_right - mouth_left))) / 2 + _MOUTH_MARGIN * span
        _ellipse(region, (mouth_left + mouth_right) / 2, mouth_half, _MOUTH_HALF_HEIGHT * span, angle)
    return region.astype(bool)


def protect_face_features(mask: np.ndarray, faces: Sequence[Face], *,
                          stroke_length: float = STROKE_LENGTH) -> tuple[np.ndarray, FaceProtection]:
    """The mask without the pieces that sit on a face's features and are too short to be a scratch across it.

    Returns the new bool mask (a copy) and what was refused. See the module's description.
    """
    mask = np.asarray(mask, dtype=bool)
    kept = mask.copy()
    if not faces or not mask.any():
        return kept, FaceProtection(len(faces), 0, 0)
    linked = cv2.dilate(mask.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _LINK + 1,) * 2))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(linked, connectivity=8, ltype=cv2.CV_32S)
    labels[~mask] = 0
    refused = 0
    pixels = 0
    for face in faces:
        region = feature_region([face], mask.shape)
        touching = np.unique(labels[region & mask])
        for label in touching[touching > 0]:
            x, y, w, h = stats[label, :4]
            ys, xs = np.nonzero(labels[y:y + h, x:x + w] == label)
            ys, xs = ys + y, xs + x
            if _is_stroke(xs, ys, face, stroke_length):
                continue
            if not kept[ys[0], xs[0]]:  # refused already for another face
                continue
            kept[ys, xs] = False
            refused += 1
            pixels += len(xs)
    return kept, FaceProtection(len(faces), refused, pixels)


def faces_for_protection(pixels: np.ndarray, detector: object, *, min_face: int = 16) -> list[Face]:
    """Faces (box side >= ``min_face`` px) found by ``detector`` on a lightly median-smoothed copy.

    A 3-px median removes thin scratches and specks that could hide a face from the detector,
    and keeps the face's broad shapes. ``detector`` is a ``methods.faces.FaceDetector``.
    """
    from photofix.methods.faces.detect import detect_faces

    image = as_image(pixels)
    smoothed = cv2.medianBlur(np.ascontiguousarray(image), _PRESMOOTH)
    return detect_faces(smoothed.reshape(image.shape), detector, min_face=min_face)  # type: ignore[arg-type]


# --- internals --------------------------------------------------------------


def _ellipse(canvas: np.ndarray, centre: np.ndarray, half_width: float, half_height: float, angle: float) -> None:
    shift = 4  # sub-pixel placement: cv2 takes fixed-point coordinates with this many fraction bits
    scale = 1 << shift
    cv2.ellipse(canvas, (round(centre[0] * scale), round(centre[1] * scale)),
                (max(1, round(half_width * scale)), max(1, round(half_height * scale))),
                angle, 0, 360, 1, -1, cv2.LINE_8, shift)


def _is_stroke(xs: np.ndarray, ys: np.ndarray, face: Face, stroke_length: float) -> bool:
    """Whether a piece (its pixels' columns and rows) is a scratch over ``face`` rather than one of its features."""
    if len(xs) < 2:
        return False
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    points -= points.mean(axis=0)
    _, vectors = np.linalg.eigh(points.T @ points)
    main, across = vectors[:, 1], vectors[:, 0]
    length = float(np.ptp(points @ main)) + 1.0
    width = float(np.ptp(points @ across)) + 1.0
    if length >= stroke_length * face.side:
        return True
    eye_line = np.asarray(face.landmarks[1], np.float64) - np.asarray(face.landmarks[0], np.float64)
    cosine = abs(float(main @ eye_line)) / max(float(np.hypot(*eye_line)), 1e-9)
    slant = float(np.degrees(np.arccos(min(1.0, cosine))))
    return length >= _SLANT_LENGTH * face.side and length >= _SLANT_ELONGATION * width and slant > _SLANT_DEGREES


__all__ = ["STROKE_LENGTH", "FaceProtection", "faces_for_protection", "feature_region", "protect_face_features"]
