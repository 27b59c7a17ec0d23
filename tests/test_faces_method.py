"""The faces method without a network: detection on a real photo, alignment to the FFHQ template,
and paste-back that leaves every pixel outside the face ovals as it was.

The face model is replaced by plain functions of the aligned crop (inverting it, tinting it):
what is checked here is where the result lands, not what a model makes of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import data

from photofix.methods.faces import FFHQ_TEMPLATE_512, CascadeDetector, Face, crop_face, detect_faces, face_transform, restore_faces
from photofix.methods.faces.detect import merge_overlapping, scaled_runs, scan_scales, yunet_face

# Where the astronaut's face is in skimage.data.astronaut() (512 x 512), read off the photo:
# between the eyes, and the face's extent.
ASTRONAUT_FACE_CENTRE = (222, 125)
ASTRONAUT_FACE_SIDE = (60, 130)


def invert(face: np.ndarray) -> np.ndarray:
    return 1.0 - face


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut().astype(np.float32) / 255


@pytest.fixture(scope="module")
def astronaut_faces(astronaut: np.ndarray) -> list[Face]:
    return detect_faces(astronaut, CascadeDetector(), min_face=60)


def similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), shift[0]], [scale * math.sin(a), scale * math.cos(a), shift[1]]])


def landmarks_at(matrix: np.ndarray) -> np.ndarray:
    """The template's five points carried into a photo by ``matrix`` (template -> photo)."""
    return (np.c_[FFHQ_TEMPLATE_512, np.ones(5)] @ matrix.T).astype(np.float32)


def face_at(points: np.ndarray) -> Face:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return Face((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), points, 1.0)


def unchanged_outside(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> None:
    outside = mask == 0
    np.testing.assert_array_equal(after[outside], before[outside])


# --- detection ---------------------------------------------------------------------------------


def test_builtin_detector_finds_the_astronaut(astronaut_faces: list[Face]) -> None:
    assert len(astronaut_faces) == 1
    x, y, w, h = astronaut_faces[0].box
    cx, cy = ASTRONAUT_FACE_CENTRE
    assert x < cx < x + w and y < cy < y + h
    assert ASTRONAUT_FACE_SIDE[0] <= astronaut_faces[0].side <= ASTRONAUT_FACE_SIDE[1]
    assert astronaut_faces[0].landmarks_estimated


def test_min_face_leaves_out_smaller_faces(astronaut: np.ndarray, astronaut_faces: list[Face]) -> None:
    everything = detect_faces(astronaut, CascadeDetector(), min_face=8)
    assert len(everything) >= len(astronaut_faces)
    assert all(face.side >= 200 for face in detect_faces(astronaut, CascadeDetector(), min_face=200))
    assert detect_faces(astronaut, CascadeDetector(), min_face=200) == []


def test_detection_on_grey_and_16_bit_views_of_the_photo(astronaut: np.ndarray) -> None:
    grey = (astronaut @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    sixteen = np.rint(astronaut * 65535).astype(np.uint16)
    for view in (grey, sixteen):
        found = detect_faces(view, CascadeDetector(), min_face=60)
        assert len(found) == 1 and found[0].box[0] < ASTRONAUT_FACE_CENTRE[0] < found[0].box[0] + found[0].box[2]


def test_scales_map_faces_back_to_photo_pixels() -> None:
    photo = np.zeros((2000, 3000, 3), dtype=np.uint8)
    seen: list[tuple[int, int]] = []

    def find(small: np.ndarray) -> list[Face]:
        seen.append(small.shape[:2])
        row = np.array([10, 20, 30, 40, 12, 30, 28, 30, 20, 40, 14, 50, 26, 50, 0.9], dtype=np.float32)
        return [yunet_face(row)]

    factors = scan_scales(2000, 3000, (320, 960, 2400))
    assert factors == pytest.approx([0.8, 0.32, 320 / 3000])
    faces = scaled_runs(photo, factors, find)
    assert seen == [(1600, 2400), (640, 960), (213, 320)]
    # the same box at three scales is three different places in the photo: none merged
    assert sorted(round(f.box[2]) for f in faces) == [38, 94, 281]
    biggest = max(faces, key=lambda f: f.box[2])
    fx = 3000 / 320
    np.testing.assert_allclose(biggest.landmarks[0], [12 * fx, 30 * 2000 / 213], rtol=1e-5)


def test_the_same_face_at_two_scales_is_one_face() -> None:
    points = np.zeros((5, 2), dtype=np.float32)
    near = [Face((100, 100, 50, 50), points, 0.8), Face((104, 98, 52, 55), points, 0.9), Face((300, 100, 50, 50), points, 0.7)]
    kept = merge_overlapping(near)
    assert [f.score for f in kept] == [0.9, 0.7]


# --- alignment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("angle, scale", [(0.0, 0.25), (25.0, 0.4), (-40.0, 3.0)])
def test_alignment_brings_the_landmarks_onto_the_template(angle: float, scale: float) -> None:
    to_photo = similarity(angle, scale, (400.0, 300.0))
    matrix = face_transform(landmarks_at(to_photo))
    assert matrix is not None
    moved = np.c_[landmarks_at(to_photo), np.ones(5)] @ matrix.T
    np.testing.assert_allclose(moved, FFHQ_TEMPLATE_512, atol=1e-2)


def test_crop_puts_the_photo_landmarks_at_the_template_points() -> None:
    photo = np.zeros((600, 800, 1), dtype=np.float32)
    points = landmarks_at(similarity(30.0, 0.5, (300.0, 150.0)))
    for x, y in points:
        photo[round(y) - 2: round(y) + 3, round(x) - 2: round(x) + 3] = 1.0
    crop = crop_face(photo, face_transform(points))[..., 0]
    for tx, ty in FFHQ_TEMPLATE_512:
        near = crop[round(ty) - 8: round(ty) + 9, round(tx) - 8: round(tx) + 9]
        assert near.max() > 0.5, (tx, ty)
    assert crop.mean() < 0.05  # only the five dots, nothing smeared around


# --- paste back --------------------------------------------------------------------------------


def test_only_the_face_oval_changes(astronaut: np.ndarray, astronaut_faces: list[Face]) -> None:
    pasted = restore_faces(astronaut, astronaut_faces, invert)
    mask = pasted.mask(512, 512)
    unchanged_outside(astronaut, pasted.pixels, mask)
    cx, cy = ASTRONAUT_FACE_CENTRE
    assert mask[cy, cx] > 0.999
    assert np.abs(pasted.pixels[cy - 10: cy + 10, cx - 10: cx + 10] - astronaut[cy - 10: cy + 10, cx - 10: cx + 10]).mean() > 0.05
    assert 3000 < np.count_nonzero(mask) < 20000  # the face, not the photo
    assert astronaut.dtype == pasted.pixels.dtype


def test_broad_colour_follows_the_photo(astronaut: np.ndarray, astronaut_faces: list[Face]) -> None:
    def tint(face: np.ndarray) -> np.ndarray:
        return np.clip(face * np.array([0.6, 1.0, 1.3], dtype=np.float32), 0, 1)

    pasted = restore_faces(astronaut, astronaut_faces, tint)
    inside = pasted.mask(512, 512) > 0.999
    shift = np.abs(pasted.pixels[inside].mean(axis=0) - astronaut[inside].mean(axis=0))
    assert shift.max() < 0.02  # the tint's 40 % red cut is taken out by the tone match


def test_grey_photos_stay_grey(astronaut: np.ndarray, astronaut_faces: list[Face]) -> None:
    def colourful(face: np.ndarray) -> np.ndarray:
        out = face.copy()
        out[..., 0] = np.clip(out[..., 0] + 0.3 * (face[..., 1] > 0.5), 0, 1)
        return out

    grey = astronaut @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    one_channel = restore_faces(grey[..., None], astronaut_faces, colourful)
    assert one_channel.pixels.shape == (512, 512, 1)
    unchanged_outside(grey[..., None], one_channel.pixels, one_channel.mask(512, 512))
    three_equal = np.repeat(grey[..., None], 3, axis=2)
    repeated = restore_faces(three_equal, astronaut_faces, colourful).pixels
    assert np.array_equal(repeated[..., 0], repeated[..., 1]) and np.array_equal(repeated[..., 1], repeated[..., 2])
    assert not np.array_equal(repeated, three_equal)


def test_finished_16_bit_pixels_stay_16_bit_and_untouched_outside(astronaut: np.ndarray, astronaut_faces: list[Face]) -> None:
    sixteen = np.rint(astronaut * 65535).astype(np.uint16)
    pasted = restore_faces(sixteen, astronaut_faces, invert)
    assert pasted.pixels.dtype == np.uint16
    mask = pasted.mask(512, 512)
    unchanged_outside(sixteen, pasted.pixels, mask)
    assert np.count_nonzero(pasted.pixels != sixteen) > 3000


def test_faces_at_the_border_and_overlapping_faces() -> None:
    rng = np.random.default_rng(0)
    photo = rng.random((300, 400, 3), dtype=np.float32)
    # a face half out of the left edge, and two faces whose ovals overlap
    left = landmarks_at(similarity(0.0, 0.3, (-60.0, 40.0)))
    first = landmarks_at(similarity(10.0, 0.35, (150.0, 60.0)))
    second = landmarks_at(similarity(-5.0, 0.3, (200.0, 90.0)))
    faces = [face_at(p) for p in (left, first, second)]
    pasted = restore_faces(photo, faces, invert)
    assert pasted.skipped == 0 and len(pasted.pieces) == 3
    mask = pasted.mask(300, 400)
    unchanged_outside(photo, pasted.pixels, mask)
    regions = [region for region, _ in pasted.pieces]
    assert regions[0].x0 == 0  # clipped at the edge, not wrapped around
    a, b = (np.zeros((300, 400), bool) for _ in range(2))
    for target, (region, weights) in zip((a, b), pasted.pieces[1:]):
        target[region.slices] = weights > 0
    assert np.count_nonzero(a & b) > 1000  # the two ovals do overlap
    assert np.count_nonzero(pasted.pixels[a & b] != photo[a & b]) > 0


def test_no_faces_changes_nothing(astronaut: np.ndarray) -> None:
    pasted = restore_faces(astronaut, [], invert)
    np.testing.assert_array_equal(pasted.pixels, astronaut)
    assert not pasted.mask(512, 512).any()


def test_degenerate_landmarks_are_skipped(astronaut: np.ndarray) -> None:
    same_point = np.full((5, 2), 100.0, dtype=np.float32)
    pasted = restore_faces(astronaut, [Face((90, 90, 20, 20), same_point, 1.0)], invert)
    assert pasted.skipped == 1
    np.testing.assert_array_equal(pasted.pixels, astronaut)
