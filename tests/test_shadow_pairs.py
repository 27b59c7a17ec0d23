"""Region pairing (methods/shadow_pairs): shadows larger than the lit window, and what it refuses.

The window detector compares each pixel with the light within 15 % of the photo's side, so a
shadow over nearly half a photo darkens its own reference and is missed. Pairing compares the
shadow with the same surface across its border instead. The scene is a crop of real wood
(scikit-image's coffee table, enlarged) with a shadow cast in linear light (skylit: R 0.30,
G 0.36, B 0.48 of the light, a 2 px penumbra). Pairing is far from general: a neutral shadow
on this crop is not proposed (the table itself yellows to the left), nor one on a uniform
grain (the penumbra becomes a region of its own); benchmarks/DESHADOW_EVAL.md, round 3, has
the table of where it fails. The refusals are stains on it (the grain kept, the colour or depth
unlike a shadow's).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from skimage import data

from photofix._color import srgb_to_linear
from photofix.methods import deshadow_mask
from photofix.methods.deshadow import deshadow, detect_shadows
from photofix.methods.shadow_pairs import paired_candidates
from tests.helpers import psnr
from tests.test_deshadow import cast_shadow

SKYLIT = np.array([0.30, 0.36, 0.48])


@functools.lru_cache(maxsize=None)
def wood() -> np.ndarray:
    crop = np.ascontiguousarray(data.coffee()[0:110, 440:600], np.float32) / 255  # table only
    return cv2.resize(crop, (440, 320), interpolation=cv2.INTER_LINEAR)


def quadrilateral(shape: tuple[int, int], top: float, bottom: float) -> np.ndarray:
    """Soft mask of the photo left of a slanted edge (at ``top``/``bottom`` of the width), 2 px penumbra."""
    h, w = shape
    hard = np.zeros(shape, np.float32)
    cv2.fillPoly(hard, [np.array([[0, 0], [int(top * w), 0], [int(bottom * w), h], [0, h]], np.int32)], 1.0)
    return cv2.GaussianBlur(hard, (0, 0), 2.0)


def pairing_alone(image: np.ndarray) -> np.ndarray:
    """``paired_candidates`` on a photo already at the working size, as detect_shadows calls it."""
    light = srgb_to_linear(image)
    logs = deshadow_mask._log_channels(light)
    return paired_candidates(light, logs, image, deshadow_mask._LOG_FLOOR)


def test_a_shadow_over_nearly_half_the_photo_is_found_by_pairing(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = wood()
    soft = quadrilateral(clean.shape[:2], 0.5, 0.38)  # 44 % of the photo
    photo = cast_shadow(clean, soft, SKYLIT)
    found = detect_shadows(photo).mask >= 0.5
    truth = soft >= 0.5
    assert np.count_nonzero(found & truth) / np.count_nonzero(found | truth) >= 0.9  # measured 0.99
    result = deshadow(photo)
    assert psnr(result.pixels, clean) - psnr(photo, clean) >= 15.0  # measured +20.4 dB
    assert result.details["found_by_pairing"] == result.details["detected_regions"] == 1

    # The window detector alone: the shadow darkens its own lit reference, and is not found.
    monkeypatch.setattr(deshadow_mask, "paired_candidates", lambda light, logs, *rest: np.zeros(logs.shape[:2], bool))
    alone = deshadow(photo)
    assert alone.details.get("left_alone") and np.array_equal(alone.pixels, photo)


@pytest.mark.parametrize(
    "stain",
    [
        pytest.param((0.15, 0.60, 0.15), id="green stain: the colour changes, not the light"),
        pytest.param((0.02, 0.02, 0.02), id="black stain: darker than skylight leaves a shadow"),
    ],
)
def test_a_stain_is_not_paired_with_the_wood_around_it(stain: tuple[float, float, float]) -> None:
    """Stains multiply the light like a shadow (the grain stays) but fail its colour or depth."""
    clean = wood()
    patch = quadrilateral(clean.shape[:2], 0.5, 0.38)
    marked = pairing_alone(cast_shadow(clean, patch, np.array(stain)))
    inside = patch >= 0.5
    assert np.count_nonzero(marked & inside) <= 0.02 * np.count_nonzero(inside)  # measured 0 % for both


def test_the_same_shadow_is_paired() -> None:
    """The positive control of the paint test: the same shape as a shadow is marked."""
    clean = wood()
    soft = quadrilateral(clean.shape[:2], 0.5, 0.38)
    marked = pairing_alone(cast_shadow(clean, soft, SKYLIT))
    inside = soft >= 0.5
    assert np.count_nonzero(marked & inside) >= 0.9 * np.count_nonzero(inside)  # measured 99 %
    assert np.count_nonzero(marked & (soft < 0.01)) <= 0.02 * np.count_nonzero(soft < 0.01)
