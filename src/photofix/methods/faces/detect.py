"""Find faces and their five landmarks: YuNet (OpenCV's FaceDetectorYN) or a built-in cascade.

Detectors see an 8-bit RGB view of the photo at a few sizes (YuNet finds faces of about
10-300 px, so a portrait scan and a group photo need different scales) and report faces
in the photo's own pixel coordinates. Landmarks are ordered as the alignment template
wants them: the eye on the image's left, the eye on its right, the nose tip, the mouth
corner on the left, the mouth corner on the right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from photofix.errors import ModelLoadError
from photofix.methods.faces.align import FFHQ_TEMPLATE_512


@dataclass(frozen=True)
class Face:
    """One face in photo pixels: box (x, y, width, height), 5 x 2 landmarks, detector score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    landmarks_estimated: bool = False  # placed from the box by an average layout, not found

    @property
    def side(self) -> float:
        return max(self.box[2], self.box[3])

    def record(self) -> list[int]:
        """The box as whole pixels, for --json and the provenance record."""
        return [round(v) for v in self.box]


class FaceDetector(Protocol):
    name: str

    def find(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an H x W x 3 uint8 RGB image, in its pixel coordinates."""
        ...


def detect_faces(pixels: np.ndarray, detector: FaceDetector, *, min_face: int = 0) -> list[Face]:
    """Faces of at least ``min_face`` px (box side) in float H x W x C pixels, largest first."""
    faces = [f for f in detector.find(eight_bit_rgb(pixels)) if f.side >= min_face]
    return sorted(faces, key=lambda f: -f.box[2] * f.box[3])


def eight_bit_rgb(pixels: np.ndarray) -> np.ndarray:
    """What detectors look at: 8-bit RGB (grey repeated), whatever the photo's depth."""
    values = pixels if np.issubdtype(pixels.dtype, np.floating) else pixels / np.float32(np.iinfo(pixels.dtype).max)
    rgb = np.clip(np.rint(np.asarray(values, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else np.ascontiguousarray(rgb[..., :3])


# --- scales and merging ---------------------------------------------------------------------


def scan_scales(height: int, width: int, long_sides: Sequence[int]) -> list[float]:
    """Resize factors (never above 1) that bring the long side to each of ``long_sides``, near-duplicates dropped."""
    factors: list[float] = []
    for side in sorted(long_sides, reverse=True):
        factor = min(1.0, side / max(height, width))
        if not factors or factors[-1] / factor > 1.5:
            factors.append(factor)
    return factors


def scaled_runs(rgb: np.ndarray, factors: Sequence[float], find: Callable[[np.ndarray], list[Face]]) -> list[Face]:
    """``find`` at each resize factor, faces mapped back to ``rgb``'s pixels."""
    import cv2

    height, width = rgb.shape[:2]
    found: list[Face] = []
    for factor in factors:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = rgb if size == (width, height) else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        fx, fy = width / size[0], height / size[1]
        for face in find(small):
            x, y, w, h = face.box
            points = face.landmarks * np.array([fx, fy], dtype=np.float32)
            found.append(Face((x * fx, y * fy, w * fx, h * fy), points, face.score, face.landmarks_estimated))
    return merge_overlapping(found)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def merge_overlapping(faces: list[Face], iou: float = 0.4) -> list[Face]:
    """One face per place: the best-scoring of boxes overlapping by more than ``iou`` (the same
    face seen at two scales). Two people's faces overlap far less than that."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(box_iou(face.box, other.box) <= iou for other in kept):
            kept.append(face)
    return kept


# --- YuNet ----------------------------------------------------------------------------------

# YuNet is trained on faces of about 10 to 300 px: look at the photo with its long side at each
# of these, so a face filling a portrait and a face in a crowd both fall in that range.
YUNET_LONG_SIDES = (320, 960, 2400)


class YuNetDetector:
    """OpenCV's ``FaceDetectorYN`` with YuNet weights from the store (an ONNX file)."""

    name = "yunet"

    def __init__(self, onnx_path: str | Path, *, score_threshold: float = 0.75, nms_threshold: float = 0.3) -> None:
        import cv2

        try:
            self._net = cv2.FaceDetectorYN.create(str(onnx_path), "", (320, 320), score_threshold, nms_threshold, 5000)
        except cv2.error as error:
            raise ModelLoadError(
                f"{onnx_path}: OpenCV cannot load it as a YuNet face detector ({str(error).strip().splitlines()[-1]}); "
                "remove it and run 'photofix models download yunet-2023mar', or use --detector builtin"
            ) from error

    def find(self, rgb: np.ndarray) -> list[Face]:
        return scaled_runs(rgb, scan_scales(*rgb.shape[:2], YUNET_LONG_SIDES), self._find_once)

    def _find_once(self, rgb: np.ndarray) -> list[Face]:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        return [] if rows is None else [yunet_face(row) for row in np.asarray(rows, dtype=np.float32)]


def yunet_face(row: np.ndarray) -> Face:
    """One row of FaceDetectorYN's output: box x, y, w, h; five (x, y) landmarks; score."""
    return Face(tuple(float(v) for v in row[:4]), row[4:14].reshape(5, 2).copy(), float(row[14]))  # type: ignore[arg-type]


# --- built-in cascade (no download) ------------------------------------------------------------

# Where the five landmarks sit in a frontal-face cascade box, as fractions of its side: the FFHQ
# template's points placed so its eyes fall 40 % of the box apart at 38 % of its height (the usual
# frame of a frontal-face cascade: brows to chin). Only a stand-in: the box says nothing of tilt.
_EYES_MID = (FFHQ_TEMPLATE_512[0] + FFHQ_TEMPLATE_512[1]) / 2
_EYE_SPAN = FFHQ_TEMPLATE_512[1, 0] - FFHQ_TEMPLATE_512[0, 0]
CASCADE_LAYOUT = np.array([0.5, 0.38], dtype=np.float32) + (FFHQ_TEMPLATE_512 - _EYES_MID) * (0.4 / _EYE_SPAN)

# The cascade's 24-px window at these long sides: faces down to ~24 px in a 1280-px view.
CASCADE_LONG_SIDES = (640, 1280)


class CascadeDetector:
    """scikit-image's LBP frontal-face cascade (it ships with the cascade file): no download, no
    landmarks (they are placed from the box), frontal faces only."""

    name = "builtin-lbp"

    def __init__(self, *, min_neighbours: int = 4) -> None:
        try:
            from skimage.data import lbp_frontal_face_cascade_filename
            from skimage.feature import Cascade
        except ImportError as error:
            raise ModelLoadError(
                "the built-in face detector needs scikit-image ('pip install scikit-image'); "
                "or let photofix download YuNet (232 KB): 'photofix models download yunet-2023mar'"
            ) from error
        self._cascade = Cascade(lbp_frontal_face_cascade_filename())
        self._min_neighbours = min_neighbours

    def find(self, rgb: np.ndarray) -> list[Face]:
        return scaled_runs(rgb, scan_scales(*rgb.shape[:2], CASCADE_LONG_SIDES), self._find_once)

    def _find_once(self, rgb: np.ndarray) -> list[Face]:
        grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0
        side = min(grey.shape)
        if side < 24:
            return []
        found = self._cascade.detect_multi_scale(img=grey, scale_factor=1.2, step_ratio=1, min_size=(24, 24),
                                                 max_size=(side, side), min_neighbor_number=self._min_neighbours)
        faces = []
        for hit in found:
            x, y, w, h = float(hit["c"]), float(hit["r"]), float(hit["width"]), float(hit["height"])
            points = np.array([x, y], dtype=np.float32) + CASCADE_LAYOUT * np.array([w, h], dtype=np.float32)
            faces.append(Face((x, y, w, h), points, 1.0, landmarks_estimated=True))
        return faces


__all__ = ["CascadeDetector", "Face", "FaceDetector", "YuNetDetector", "box_iou", "detect_faces", "eight_bit_rgb",
           "merge_overlapping", "scan_scales", "yunet_face"]
