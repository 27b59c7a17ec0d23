"""The classical scratch mask keeps out thin structure that runs along the scene's edges.

Drawn scenes, so the answer is known: a thin highlight hugging a step edge (what a helmet's rim
or a sleeve's fold gives the detector) must go; a scratch crossing that edge, and a scratch
across a busy pattern whose edges run every way but its own, must stay.
"""

from __future__ import annotations

import cv2
import numpy as np

from photofix.methods.scratch import detect_scratches
from photofix.methods.scratch_edges import drop_along_edges

SIZE = 200


def _line(image: np.ndarray, a: tuple[int, int], b: tuple[int, int], value: float) -> np.ndarray:
    """Draw a 1-px anti-aliased line of ``value`` on a float image; return its coverage (bool)."""
    layer = np.zeros(image.shape[:2], np.uint8)
    cv2.line(layer, a, b, 255, 1, cv2.LINE_AA)
    alpha = layer.astype(np.float32) / 255
    image[...] = (1 - alpha[..., None]) * image + alpha[..., None] * value
    return alpha >= 0.5


def _step_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dark-left / light-right step, a highlight hugging it, a scratch crossing it."""
    image = np.full((SIZE, SIZE, 3), 0.3, np.float32)
    image[:, 100:] = 0.7
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    rim = _line(image, (96, 110), (96, 190), 0.6)  # 4 px left of the edge, along it (apart from the scratch)
    scratch = _line(image, (40, 40), (170, 150), 0.95)  # crosses it at about 50 degrees
    return image, rim, scratch


def test_a_highlight_along_an_edge_goes_and_a_scratch_across_it_stays() -> None:
    image, rim, scratch = _step_scene()
    raw = detect_scratches(image, keep_along_edges=True)
    mask = detect_scratches(image)
    assert raw[rim].mean() > 0.8  # the detector alone takes the highlight for damage
    assert mask[rim].mean() < 0.1
    assert raw[scratch].mean() > 0.8
    assert mask[scratch].mean() > 0.8


def test_a_scratch_across_a_busy_pattern_stays() -> None:
    rng = np.random.default_rng(1)
    image = np.zeros((SIZE, SIZE, 3), np.float32)
    for y in range(0, SIZE, 20):  # blocks of random grey: edges along both axes everywhere
        for x in range(0, SIZE, 20):
            image[y : y + 20, x : x + 20] = rng.uniform(0.2, 0.6)
    scratch = _line(image, (10, 10), (190, 190), 0.95)
    raw = detect_scratches(image, keep_along_edges=True)
    mask = detect_scratches(image)
    assert raw[scratch].mean() > 0.8
    assert mask[scratch].mean() >= raw[scratch].mean() - 0.1


def test_an_empty_mask_stays_empty_and_is_a_copy() -> None:
    image, _, _ = _step_scene()
    empty = np.zeros(image.shape[:2], bool)
    out = drop_along_edges(empty, image[..., 0])
    assert not out.any() and out is not empty


def test_bands_give_the_whole_photos_answer(monkeypatch) -> None:
    # the edge field is computed in bands of rows (bounded memory on large scans); their margins
    # must cover every filter's reach, so the mask cannot depend on where the bands fall
    import photofix.methods.scratch_edges as scratch_edges
    from skimage import data

    from photofix.methods.scratch import luminance

    photo = cv2.resize(data.astronaut(), (900, 700)).astype(np.float32) / 255
    raw = detect_scratches(photo, keep_along_edges=True)
    monkeypatch.setattr(scratch_edges, "_BAND", 10_000)
    whole = drop_along_edges(raw, luminance(photo))
    monkeypatch.setattr(scratch_edges, "_BAND", 97)
    banded = drop_along_edges(raw, luminance(photo))
    assert whole.sum() < raw.sum()  # something was dropped, so the comparison means something
    assert np.array_equal(banded, whole)
