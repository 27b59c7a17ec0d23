"""Bring a face to the 512-px five-point frame the face models were trained on, and back.

GFPGAN, CodeFormer and RestoreFormer were trained on FFHQ faces aligned so that the eyes,
nose tip and mouth corners sit at fixed points of a 512 x 512 crop (the published FFHQ
template below). A similarity transform (rotation, uniform scale, shift) fitted to the
detected landmarks maps the photo onto that frame. Only the region around each face is
read or written, so a 100-megapixel scan costs what its faces cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FACE_SIZE = 512

# The FFHQ five-point template at 512 px (x, y): eye on the image's left, eye on its right,
# nose tip, left and right mouth corners.
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Region:
    """A window of the photo: rows y0:y1, columns x0:x1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def face_transform(landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray | None:
    """2 x 3 similarity from photo pixels to the aligned face crop; None if the points are degenerate."""
    import cv2

    template = FFHQ_TEMPLATE_512 * (size / FACE_SIZE)
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, dtype=np.float32), template, method=cv2.LMEDS)
    if matrix is None or not np.all(np.isfinite(matrix)) or crop_scale(matrix) <= 1e-6:
        return None
    return matrix


def crop_scale(matrix: np.ndarray) -> float:
    """Crop pixels per photo pixel."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def covered_region(matrix: np.ndarray, height: int, width: int, size: int = FACE_SIZE, margin: int = 2) -> Region:
    """The photo window the crop square covers (plus ``margin`` px for interpolation), clipped to the photo."""
    import cv2

    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ inverse.T
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin
    return Region(max(0, x0), max(0, y0), min(width, x1), min(height, y1))


def shifted(matrix: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``matrix`` for a source whose origin is at (dx, dy) of the original."""
    moved = matrix.astype(np.float64).copy()
    moved[:, 2] += moved[:, :2] @ np.array([dx, dy])
    return moved


def crop_face(pixels: np.ndarray, matrix: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """The aligned ``size`` x ``size`` x C float32 crop. A face larger than the crop is shrunk by area
    averaging first (no aliasing); parts beyond the photo's edge are mirrored."""
    import cv2

    height, width = pixels.shape[:2]
    region = covered_region(matrix, height, width, size)
    window = np.asarray(pixels[region.slices], dtype=np.float32)
    local = shifted(matrix, region.x0, region.y0)
    scale = crop_scale(matrix)
    if scale < 1.0 and min(window.shape[:2]) > 1:
        shrunk = (max(1, round(window.shape[1] * scale)), max(1, round(window.shape[0] * scale)))
        fx, fy = shrunk[0] / window.shape[1], shrunk[1] / window.shape[0]
        window = cv2.resize(window, shrunk, interpolation=cv2.INTER_AREA)
        local = local @ np.array([[1 / fx, 0, 0], [0, 1 / fy, 0], [0, 0, 1]])
    crop = cv2.warpAffine(window, local, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return crop.reshape(size, size, -1)


def uncrop(face: np.ndarray, matrix: np.ndarray, region: Region) -> np.ndarray:
    """An aligned crop (size x size x C, or a size x size weight map) warped back onto ``region`` of the
    photo; zero where the crop does not reach. A face smaller in the photo than the crop is blurred
    first in proportion, so shrinking it back does not alias."""
    import cv2

    scale = crop_scale(matrix)
    source = np.asarray(face, dtype=np.float32)
    if scale > 1.5:
        source = cv2.GaussianBlur(source, (0, 0), 0.4 * scale)
    back = cv2.invertAffineTransform(shifted(matrix, region.x0, region.y0))
    out = cv2.warpAffine(source, back, (region.x1 - region.x0, region.y1 - region.y0), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(region.y1 - region.y0, region.x1 - region.x0, *face.shape[2:])


__all__ = ["FACE_SIZE", "FFHQ_TEMPLATE_512", "Region", "covered_region", "crop_face", "crop_scale", "face_transform", "shifted", "uncrop"]
