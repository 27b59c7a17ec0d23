"""deshadow's classical path (no download): shadow detection, relighting, mask helpers.

Synthetic shadows on real scikit-image photos (crops <= 512 px): a seeded random polygon,
its edge Gaussian-blurred by 5-15 px (the penumbra), darkens the photo in *linear* light by
R 0.35, G 0.40, B 0.50 (+- 0.03 each, seeded): a shadow lit by blue sky keeps more blue.
The result is rounded to 8 bits like a real file. Its soft mask is cut to exactly 0 below
1e-3, so "far from the shadow" is well defined.

Each photo's shadow falls where a cast shadow would: on a wall, a table, fur, the sky. The
figures in the comments were measured with these seeds; each bound sits a little below.
Where a shadow crosses objects much darker or of another colour than their surroundings the
detector misses those parts (deshadow_mask's docstring): that is why the automatic path gains
far less than the true mask does.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from skimage import data

from photofix._color import linear_to_srgb, srgb_to_linear
from photofix.methods.deshadow import deshadow, detect_shadows, estimate_shadow_mask, feather_mask, mask_from_array, refine_mask_edges, remove_shadow
from photofix.errors import ImageError, UsageError
from tests.helpers import psnr

# photo: (crop top, left), box the shadow's centre falls in (fractions: y0, y1, x0, x1)
SCENES = {
    "astronaut": ((0, 0), (0.1, 0.3, 0.6, 0.85)),  # the wall and the model shuttle right of her head
    "coffee": ((0, 44), (0.1, 0.3, 0.7, 0.9)),  # the wooden table, top right
    "chelsea": ((0, 0), (0.2, 0.4, 0.2, 0.4)),  # the forehead's fur and the left eye
    "rocket": ((0, 64), (0.2, 0.4, 0.2, 0.4)),  # the dusk sky left of the rocket: a night scene
}
SEEDS = (0, 1, 2)
ATTENUATION = np.array([0.35, 0.40, 0.50])
FAR = 30  # px: pixels farther than this from the mask must come back bit for bit


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    (top, left), _ = SCENES[name]
    image = getattr(data, name)()[top : top + 512, left : left + 512]
    return np.ascontiguousarray(image, dtype=np.float32) / 255


def polygon_mask(shape: tuple[int, int], box: tuple[float, float, float, float], seed: int, area: float = 0.2) -> np.ndarray:
    """A seeded random polygon of about ``area`` of the photo, centred in ``box``, edge blurred 5-15 px."""
    rng = np.random.default_rng(seed)
    h, w = shape
    cy, cx = rng.uniform(box[0], box[1]) * h, rng.uniform(box[2], box[3]) * w
    corners = int(rng.integers(6, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = np.sqrt(area * h * w / np.pi) * rng.uniform(0.6, 1.4, corners)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).round().astype(np.int32)
    hard = np.zeros(shape, np.float32)
    cv2.fillPoly(hard, [points], 1.0)
    soft = cv2.GaussianBlur(hard, (0, 0), rng.uniform(5, 15))
    soft[soft < 1e-3] = 0.0
    return soft


def cast_shadow(clean: np.ndarray, soft: np.ndarray, attenuation: np.ndarray) -> np.ndarray:
    """Darken in linear light by ``1 - soft (1 - attenuation)``, back to sRGB, rounded to 8 bits."""
    light = srgb_to_linear(clean).astype(np.float64)
    shaded = light * (1.0 - soft[..., None] * (1.0 - attenuation))
    return (np.round(linear_to_srgb(shaded) * 255) / 255).astype(np.float32)


def jittered(seed: int) -> np.ndarray:
    return ATTENUATION + np.random.default_rng(seed + 1000).uniform(-0.03, 0.03, 3)


@functools.lru_cache(maxsize=None)
def scene(name: str, seed: int) -> dict:
    """The clean photo, its shadowed copy, the true soft mask and every path's output."""
    clean = photo(name)
    seed = list(SCENES).index(name) + 10 * seed
    soft = polygon_mask(clean.shape[:2], SCENES[name][1], seed)
    shadowed = cast_shadow(clean, soft, jittered(seed))
    auto = deshadow(shadowed)
    true_soft, _ = remove_shadow(shadowed, soft)
    true_hard, hard_details = remove_shadow(shadowed, soft >= 0.5)  # as if painted by hand
    return {"clean": clean, "shadowed": shadowed, "soft": soft, "auto": auto, "true_soft": true_soft, "true_hard": true_hard, "hard_details": hard_details}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b)) / max(1, np.count_nonzero(a | b))


def gain(case: dict, key: str) -> float:
    """dB of PSNR to the clean photo won over the shadowed input."""
    output = case[key].pixels if key == "auto" else case[key]
    return psnr(output, case["clean"]) - psnr(case["shadowed"], case["clean"])


def far_from(mask: np.ndarray, distance: int) -> np.ndarray:
    near = cv2.dilate((mask > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * distance + 1, 2 * distance + 1)))
    return near == 0


# --- the classical path on the four photos --------------------------------------------------
# Measured (3 seeds each; PSNR of the shadowed inputs 21-32 dB). The detector keeps only
# regions whose border looks like a real cast shadow's (deshadow_mask._is_sure, set on real
# photos whose penumbrae are 3-9 px) and leaves a photo alone when unsure; these shadows'
# 5-15 px Gaussian penumbrae are wider than that, so several are now left alone ("-"):
#   photo      IoU auto mask        dB auto path          dB true soft mask    dB true mask painted hard
#   astronaut  0.36 -    0.32 (.23) +1.3  -   +2.0 (1.1)  +24.6 +18.3 +19.5    +10.8  +9.9 +14.4
#   coffee     0.64 -    0.52 (.38) +4.9  -   +3.4 (2.8)  +17.4 +16.5 +18.1    +19.3 +24.0 +11.3
#   chelsea    -    -    0.71 (.24)  -    -   +6.5 (2.2)  +19.8 +25.2  +6.7    +21.4  +8.9  +9.5
#   rocket     -    0.58 0.59 (.39)  -   +0.9 +0.6 (.5)   +23.0 +16.4 +15.1    +11.7 +15.0  +9.1
# (mean in brackets; a photo left alone counts 0). Astronaut's seed 1 falls across her hair,
# face and the shuttle. The rocket is a night scene: the dusk sky is flagged too. Before the
# region pairing (shadow_pairs, DESHADOW_EVAL.md round 3) astronaut gained +4.0 - +2.3 (2.1):
# a paired region beside the shadow is relit with it now; rocket's seed 0 lost 2.6 dB (the sky
# marked, not the shadow) and is left alone now.
IOU_MIN = {"astronaut": 0.2, "coffee": 0.35, "chelsea": 0.2, "rocket": 0.33}  # mean over seeds
AUTO_GAIN_MIN = {"astronaut": 0.9, "coffee": 2.3, "chelsea": 1.8, "rocket": 0.3}  # mean dB
TRUE_GAIN_MIN = {"astronaut": 16.5, "coffee": 15.5, "chelsea": 6.0, "rocket": 14.0}  # every seed, dB
HARD_GAIN_MIN = {"astronaut": 9.0, "coffee": 10.0, "chelsea": 8.0, "rocket": 8.0}  # every seed, dB


@pytest.mark.parametrize("name", SCENES)
def test_automatic_mask_overlaps_the_true_shadow(name: str) -> None:
    overlaps = [iou(scene(name, s)["auto"].mask >= 0.5, scene(name, s)["soft"] >= 0.5) for s in SEEDS]
    assert np.mean(overlaps) >= IOU_MIN[name], overlaps


@pytest.mark.parametrize("name", SCENES)
def test_classical_path_raises_psnr(name: str) -> None:
    gains = [gain(scene(name, s), "auto") for s in SEEDS]
    assert np.mean(gains) >= AUTO_GAIN_MIN[name], gains
    assert all(scene(name, s)["auto"].details["mask_source"] == "detected" for s in SEEDS)


@pytest.mark.parametrize("name", SCENES)
def test_true_mask_gains_more(name: str) -> None:
    soft = [gain(scene(name, s), "true_soft") for s in SEEDS]
    hard = [gain(scene(name, s), "true_hard") for s in SEEDS]
    assert min(soft) >= TRUE_GAIN_MIN[name], soft
    assert min(hard) >= HARD_GAIN_MIN[name], hard
    assert np.mean(soft) > np.mean([gain(scene(name, s), "auto") for s in SEEDS]) + 5.0
    # a hard mask gets the penumbra measured on the photo, not a guessed feather
    assert all(scene(name, s)["hard_details"]["edges"] == "measured" for s in SEEDS)


@pytest.mark.parametrize("name", SCENES)
def test_pixels_far_from_the_shadow_are_untouched(name: str) -> None:
    for s in SEEDS:
        case = scene(name, s)
        far = far_from(case["soft"], FAR)
        assert far.mean() > 0.2  # the check has pixels to check
        assert np.array_equal(case["true_soft"][far], case["shadowed"][far])
        unmasked = case["auto"].mask == 0
        assert np.array_equal(case["auto"].pixels[unmasked], case["shadowed"][unmasked])
        assert not np.array_equal(case["true_soft"], case["shadowed"])  # and something did change


# Measured on the clean photos (no shadow added): before the confidence gate the detector
# flagged 0.5 %, 1.8 %, 2.8 % and 19.6 % of astronaut, coffee, chelsea and rocket (38.9, 42.2,
# 33.3 and 30.5 dB); now every one is left alone, bit for bit, with the reason in ``left_alone``.


@pytest.mark.parametrize("name", SCENES)
def test_photo_without_shadow_is_left_alone(name: str) -> None:
    clean = photo(name)
    result = deshadow(clean)
    assert result.details["mask_area"] == 0.0
    assert np.array_equal(result.pixels, clean)
    assert isinstance(result.details["left_alone"], str) and result.details["left_alone"]


# --- relighting on its own --------------------------------------------------------------------


def sky_disc(centre: tuple[int, int], axes: tuple[int, int]) -> np.ndarray:
    """A soft elliptic shadow mask (edge blurred 6 px) on the rocket photo's clear sky."""
    hard = np.zeros(photo("rocket").shape[:2], np.float32)
    cv2.ellipse(hard, centre, axes, 0, 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(hard, (0, 0), 6.0)
    soft[soft < 1e-3] = 0.0
    return soft


def test_each_shadow_gets_its_own_gains() -> None:
    # Measured: neutral 3.33 -> 2.91 2.97 3.02, bluish 2.00 1.82 1.54 -> 1.85 1.72 1.50 (the
    # sky brightens downwards, which biases the pairs across each border low); +19.4 dB.
    clean = photo("rocket")
    neutral, bluish = sky_disc((110, 70), (60, 40)), sky_disc((330, 70), (60, 40))
    truth = {0: np.full(3, 1 / 0.3), 1: 1 / np.array([0.5, 0.55, 0.65])}
    light = srgb_to_linear(clean).astype(np.float64) * (1 - neutral[..., None] * 0.7) * (1 - bluish[..., None] * (1 - 1 / truth[1]))
    shadowed = (np.round(linear_to_srgb(light) * 255) / 255).astype(np.float32)
    relit, details = remove_shadow(shadowed, np.maximum(neutral, bluish))
    assert (details["regions"], details["fallback_regions"]) == (2, 0)
    # connected regions are numbered in raster order: the left (neutral) shadow first
    for k, gains in enumerate(details["region_gains"]):
        assert np.allclose(gains, truth[k], rtol=0.18), (k, gains)
    assert details["region_gains"][1][0] > details["region_gains"][1][1] > details["region_gains"][1][2]
    assert psnr(relit, clean) - psnr(shadowed, clean) >= 17.0


def test_a_region_too_small_to_measure_takes_the_photo_wide_gains() -> None:
    case = scene("coffee", 0)
    mask = case["soft"].copy()
    mask[380:383, 20:23] = 1.0  # 9 px far from the shadow: no band to measure
    _, details = remove_shadow(case["shadowed"], mask)
    assert (details["regions"], details["fallback_regions"]) == (2, 1)
    big, small = details["region_gains"]
    assert np.allclose(small, big, rtol=0.02)  # the photo-wide median is almost all the big region's


def test_match_texture_evens_out_amplified_noise() -> None:
    # Sensor noise is the same in light and shadow, so relighting by 3.3x amplifies it in the
    # shadow. Measured detail spread (log domain, 3 px), R G B: lit surroundings .138 .079 .042,
    # relit .345 .180 .072, relit with match_texture .174 .091 .041; PSNR 41.3 -> 42.1 dB.
    clean = photo("rocket")
    soft = sky_disc((110, 80), (70, 50))
    light = srgb_to_linear(clean).astype(np.float64) * (1 - soft[..., None] * 0.7)
    light += np.random.default_rng(3).normal(0, 0.002, light.shape)
    shadowed = (np.round(linear_to_srgb(light) * 255) / 255).astype(np.float32)

    def spread(image: np.ndarray, where: np.ndarray) -> np.ndarray:
        logs = np.log(srgb_to_linear(image) + 1e-4)
        detail = (logs - cv2.GaussianBlur(logs, (0, 0), 3.0))[where]
        return 1.4826 * np.median(np.abs(detail - np.median(detail, axis=0)), axis=0)

    core, ring = soft >= 0.99, far_from(soft, 5) & ~far_from(soft, 25)
    plain, _ = remove_shadow(shadowed, soft)
    matched, _ = remove_shadow(shadowed, soft, match_texture=True)
    lit = spread(shadowed, ring)
    assert np.all(spread(plain, core) > 1.6 * lit)
    assert np.all(spread(matched, core) < 1.35 * lit)
    assert psnr(matched, clean) > psnr(plain, clean) + 0.4
    far = far_from(soft, FAR)
    assert np.array_equal(matched[far], shadowed[far])


def test_grey_photo() -> None:
    # Relighting works the same on one channel: measured +18.9 dB with the true mask. The
    # detector has only darkness and edges to go on there, so it keeps only clear-edged
    # regions: it found none of this shadow, and flags 0 %, 5.9 %, 6.6 % and 20.8 % of the
    # clean grey astronaut, coffee, chelsea and (night-time) rocket.
    clean = photo("chelsea")
    grey = (np.round(linear_to_srgb(srgb_to_linear(clean) @ np.array([0.2126, 0.7152, 0.0722], np.float32)) * 255) / 255)[..., None]
    soft = polygon_mask(grey.shape[:2], SCENES["chelsea"][1], 2)
    shadowed = cast_shadow(grey, soft, np.array([0.4]))
    relit, details = remove_shadow(shadowed, soft)
    assert relit.shape == grey.shape and len(details["gains"]) == 1
    assert psnr(relit, grey) - psnr(shadowed, grey) >= 16.0
    flat, _ = remove_shadow(shadowed[..., 0], soft)  # H x W in, H x W out
    assert flat.shape == grey.shape[:2] and np.array_equal(flat, relit[..., 0])
    assert detect_shadows(grey).area_fraction <= 0.08
    auto = deshadow(shadowed)
    assert np.array_equal(auto.pixels[auto.mask == 0], shadowed[auto.mask == 0])


def test_float16_photo_keeps_its_type() -> None:
    case = scene("astronaut", 0)  # measured +24.5 dB in float16
    relit, _ = remove_shadow(case["shadowed"].astype(np.float16), case["soft"])
    assert relit.dtype == np.float16
    far = far_from(case["soft"], FAR)
    assert np.array_equal(relit[far], case["shadowed"].astype(np.float16)[far])
    assert psnr(relit.astype(np.float32), case["clean"]) - psnr(case["shadowed"], case["clean"]) >= 22.0


def test_16_bit_precision_is_kept() -> None:
    # A 16-bit ramp under an exact shadow (no 8-bit rounding anywhere): measured gains
    # 2.855 2.498 1.999 for 2.857 2.5 2.0, largest error 3.4e-4 (an 8-bit step is 3.9e-3).
    h, w = 256, 1024
    ramp = np.linspace(0.15, 0.85, w)
    clean = np.broadcast_to(np.stack([ramp, 0.9 * ramp + 0.05, 0.8 * ramp + 0.1], -1), (h, w, 3))
    clean = (np.round(clean * 65535) / 65535).astype(np.float32)
    hard = np.zeros((h, w), np.float32)
    hard[96:160] = 1.0
    soft = cv2.GaussianBlur(hard, (0, 0), 6.0)
    soft[soft < 1e-3] = 0.0
    light = srgb_to_linear(clean).astype(np.float64) * (1 - soft[..., None] * (1 - ATTENUATION))
    shadowed = (np.round(linear_to_srgb(light) * 65535) / 65535).astype(np.float32)
    relit, details = remove_shadow(shadowed, soft)
    assert np.allclose(details["gains"], 1 / ATTENUATION, rtol=0.005)
    assert np.abs(relit - clean).max() < 1e-3
    assert len(np.unique(relit[128, :, 1])) > 900  # 8-bit output would have at most 256 levels


def test_loosely_painted_mask_still_relights() -> None:
    # A hand-painted mask 8 px too large or too small: its edge is re-measured on the photo.
    # Measured: coffee +15.2 / +16.2 dB, chelsea +11.7 / +18.1 dB (loose / tight).
    for name, floor in (("coffee", 13.0), ("chelsea", 10.0)):
        case = scene(name, 0)
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
        true = (case["soft"] >= 0.5).astype(np.uint8)
        for painted in (cv2.dilate(true, disk), cv2.erode(true, disk)):
            relit, details = remove_shadow(case["shadowed"], painted.astype(bool))
            assert details["edges"] == "measured"
            assert psnr(relit, case["clean"]) - psnr(case["shadowed"], case["clean"]) >= floor


def test_explicit_feather_and_unchanged_cases() -> None:
    case = scene("coffee", 0)
    hard = case["soft"] >= 0.5
    relit, details = remove_shadow(case["shadowed"], hard, feather=12)
    assert details["edges"] == "feathered 12 px"
    far = far_from(hard, 7)  # a 12 px feather reaches 6 px out
    assert np.array_equal(relit[far], case["shadowed"][far])
    same, details = remove_shadow(case["shadowed"], np.zeros(hard.shape, np.float32))
    assert np.array_equal(same, case["shadowed"]) and details["regions"] == 0
    assert same is not case["shadowed"]


def test_remove_shadow_refuses_what_it_cannot_do() -> None:
    shadowed = scene("coffee", 0)["shadowed"]
    with pytest.raises(ImageError, match="does not match"):  # about this photo's mask: it fails alone
        remove_shadow(shadowed, np.zeros((10, 10), np.float32))
    with pytest.raises(ImageError, match="no unshadowed pixels"):
        remove_shadow(shadowed, np.ones(shadowed.shape[:2], np.float32))
    with pytest.raises(UsageError, match="float pixels"):
        remove_shadow((shadowed * 255).astype(np.uint8), np.zeros(shadowed.shape[:2], np.float32))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        remove_shadow(shadowed, np.full(shadowed.shape[:2], 2.0, np.float32))
    with pytest.raises(UsageError, match="sensitivity"):
        estimate_shadow_mask(shadowed, sensitivity=0)


# --- mask helpers -------------------------------------------------------------------------------


def test_mask_from_array_reads_every_kind_of_mask() -> None:
    shape = (60, 80, 3)
    grey = np.zeros((60, 80), np.uint8)
    grey[10:30, 20:50] = 255
    expected = grey.astype(np.float32) / 255
    assert np.array_equal(mask_from_array(grey, shape), expected)
    assert np.array_equal(mask_from_array(grey[..., None], shape), expected)
    assert np.allclose(mask_from_array(np.repeat(grey[..., None], 3, 2), shape), expected, atol=1e-6)  # RGB: luminance
    assert np.array_equal(mask_from_array(grey > 0, shape), expected)
    assert np.array_equal(mask_from_array(grey.astype(np.uint16) * 257, shape), expected)
    assert np.array_equal(mask_from_array(expected, shape[:2]), expected)
    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[..., 3] = grey  # black paint, the shadow drawn as opacity
    assert np.array_equal(mask_from_array(rgba, shape), expected)
    rgba[..., :3], rgba[..., 3] = grey[..., None], 255  # opaque: the colour is the mask
    assert np.allclose(mask_from_array(rgba, shape), expected, atol=1e-6)
    la = np.stack([grey, np.full_like(grey, 255)], -1)
    assert np.array_equal(mask_from_array(la, shape), expected)


def test_mask_from_array_resizes_to_the_photo() -> None:
    small = np.zeros((30, 40), np.uint8)
    small[5:15, 10:25] = 255
    big = mask_from_array(small, (60, 80, 3))
    assert big.shape == (60, 80) and big.dtype == np.float32
    assert big[20, 35] == 1.0 and big[50, 70] == 0.0
    assert mask_from_array(np.zeros((601, 800), np.uint8), (600, 800)).shape == (600, 800)  # 0.2 % off: fine
    large = mask_from_array(np.kron(small, np.ones((4, 4), np.uint8)), (30, 40))  # shrinking averages
    assert np.array_equal(large, small.astype(np.float32) / 255)


def test_mask_from_array_refuses_bad_masks() -> None:
    """A bad mask is this photo's problem (ImageError: it fails alone), never the command's."""
    with pytest.raises(ImageError, match="aspect ratio"):
        mask_from_array(np.zeros((60, 60), np.uint8), (60, 80))
    with pytest.raises(ImageError, match="aspect ratio"):
        mask_from_array(np.zeros((600, 809), np.uint8), (600, 800))  # 1.1 % off
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        mask_from_array(np.full((6, 8), 3.0), (6, 8))
    with pytest.raises(ImageError, match="H x W"):
        mask_from_array(np.zeros((6, 8, 5)), (6, 8))
    with pytest.raises(ImageError, match="H x W"):
        mask_from_array(np.zeros(8), (6, 8))


def test_feather_mask_ramps_across_the_edge() -> None:
    hard = np.zeros((80, 80), bool)
    hard[20:60, 20:60] = True
    soft = feather_mask(hard, 10)
    assert soft[40, 40] == 1.0 and soft[40, 20] == pytest.approx(0.5, abs=0.1)
    assert np.all(soft[far_from(hard, 6)] == 0.0)
    row = soft[40, :40]
    assert np.all(np.diff(row) >= 0)  # rises monotonically into the mask
    assert np.array_equal(feather_mask(hard, 0), hard.astype(np.float32))


def test_refine_mask_edges_finds_the_penumbra() -> None:
    # the true shadow's 0.5 contour, painted hard, gets back a ramp close to the true one
    case = scene("chelsea", 0)
    refined = refine_mask_edges(case["shadowed"], case["soft"] >= 0.5)
    band = (case["soft"] > 0.05) & (case["soft"] < 0.95)
    assert np.median(np.abs(refined[band] - case["soft"][band])) < 0.15
    assert np.all(refined[far_from(case["soft"], FAR)] == 0.0)
