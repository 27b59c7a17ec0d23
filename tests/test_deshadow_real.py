"""deshadow on shadows and photos its detector was not tuned on: it helps or leaves the photo alone.

The detector's constants were set on real shadow photos (benchmarks/DESHADOW_EVAL.md; those
files are not committed: their licences are not stated). Here a generator written after that
work casts the shadow of a sign board on its post, as the sun does: straight edges, a 1-3 px
penumbra, skylight fill (R 0.30, G 0.36, B 0.48 of the light, +-0.04, seeded), in linear
light, rounded to 8 bits. Photos without shadows must come back bit for bit, with the reason.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from skimage import data
from typer.testing import CliRunner

from photofix.cli import app
from photofix.methods.deshadow import deshadow
from tests.helpers import psnr
from tests.test_deshadow import cast_shadow

CROPS = {"coffee": (400, 600), "astronaut": (512, 512), "chelsea": (300, 451), "rocket": (427, 640)}
SEEDS = (0, 1, 2)


def sun_shadow(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A board on a post, its shadow cast on the photo: soft H x W mask, 1-3 px penumbra."""
    rng = np.random.default_rng(seed)
    h, w = shape
    hard = np.zeros(shape, np.float32)
    x0, lean, top = rng.uniform(0.2, 0.6) * w, rng.uniform(-0.3, 0.3) * w, rng.uniform(0.05, 0.3) * h
    bw, bh = rng.uniform(0.25, 0.4) * w, rng.uniform(0.2, 0.35) * h
    board = np.array([[x0, top], [x0 + bw, top + 0.1 * bh], [x0 + bw + 0.1 * lean, top + bh], [x0 + 0.1 * lean, top + 0.9 * bh]])
    cv2.fillPoly(hard, [board.round().astype(np.int32)], 1.0)
    post = x0 + bw / 2
    cv2.line(hard, (int(post), int(top + bh)), (int(post + lean), h), 1.0, int(rng.integers(10, 20)))
    soft = cv2.GaussianBlur(hard, (0, 0), rng.uniform(1.0, 3.0))
    soft[soft < 1e-3] = 0.0
    return soft


def crop(name: str) -> np.ndarray:
    h, w = CROPS[name]
    return np.ascontiguousarray(getattr(data, name)()[:h, :w], dtype=np.float32) / 255


@functools.lru_cache(maxsize=None)
def case(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, shadowed, true soft mask) for one photo and seed."""
    clean = crop(name)
    soft = sun_shadow(clean.shape[:2], seed)
    attenuation = np.array([0.30, 0.36, 0.48]) + np.random.default_rng(seed + 50).uniform(-0.04, 0.04, 3)
    return clean, cast_shadow(clean, soft, attenuation), soft


def relit_gain(clean: np.ndarray, shadowed: np.ndarray, case_name: tuple[str, int]) -> float:
    """dB the automatic path gains on ``shadowed``; a photo it leaves alone must come back bit for bit."""
    result = deshadow(shadowed)
    if result.details.get("left_alone"):
        assert np.array_equal(result.pixels, shadowed), case_name
    return psnr(result.pixels, clean) - psnr(shadowed, clean)


# Measured (gain in dB, "-" = left alone; before the region pairing chelsea was +7.5 +3.7 -):
#   coffee     -     -     -        astronaut  -     -     -
#   chelsea   +5.5  +2.3  +4.7      rocket    -0.4  -0.1  +3.0
GAIN_MEAN_MIN = 1.0  # dB over the 12 cases (measured +1.25)
GAIN_WORST = -0.6  # dB: no photo made worse than this (measured -0.42, the night-time rocket)


def test_unseen_shadows_are_relit_or_left_alone() -> None:
    gains = [relit_gain(*case(name, seed)[:2], (name, seed)) for name in CROPS for seed in SEEDS]
    assert min(gains) >= GAIN_WORST, gains
    assert np.mean(gains) >= GAIN_MEAN_MIN, gains
    assert sum(g > 2.0 for g in gains) >= 3, gains  # it does find some: not a detector that never acts


@functools.lru_cache(maxsize=None)
def shadow_set_module():
    """benchmarks/make_shadow_set.py, whose ``building`` family was written after the detector's
    constants (pairing's included) were set: DESHADOW_EVAL.md, round 3."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "make_shadow_set.py"
    spec = importlib.util.spec_from_file_location("make_shadow_set", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Measured (gain in dB, "-" = left alone), seeds 0-2 each; before the region pairing rocket's
# seed 2 gained +3.36 (a paired region beside that shadow is relit with it now):
#   coffee     -  -  -          astronaut  -  -  -
#   chelsea    -  -  +0.47      rocket     -  -  +1.18
BUILDING_MEAN_MIN = 0.05  # dB over the 12 cases (measured +0.14)
BUILDING_WORST = -0.5  # dB (measured 0.00: none made worse)


def test_building_shadows_over_half_the_photo_are_relit_or_left_alone() -> None:
    """Shadows of buildings, 30-70 % of the photo: mostly left alone, never made worse."""
    shadow_set = shadow_set_module()
    gains = []
    for name in CROPS:
        clean = crop(name)
        for seed in SEEDS:
            rng = np.random.default_rng([seed, 7])
            shape = shadow_set.building_shape(rng, *clean.shape[:2])
            shadowed = (np.round(shadow_set.cast(clean, shape, rng) * 255) / 255).astype(np.float32)
            gains.append(relit_gain(clean, shadowed, (name, seed)))
    assert min(gains) >= BUILDING_WORST, gains
    assert np.mean(gains) >= BUILDING_MEAN_MIN, gains


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera", "coins"])
def test_photos_without_shadows_come_back_bit_for_bit(name: str) -> None:
    photo = np.asarray(getattr(data, name)(), np.float32) / 255
    result = deshadow(photo)
    assert np.array_equal(result.pixels, photo)
    assert result.details["left_alone"]  # the reason, one sentence
    if photo.ndim == 2:
        assert result.details["left_alone"].startswith("grey photo")


def test_cli_says_when_it_leaves_a_photo_alone(tmp_path) -> None:
    photo = tmp_path / "chelsea.png"
    PILImage.fromarray(data.chelsea()).save(photo)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(app, ["deshadow", str(photo), str(out), "--model", "classical"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.asarray(PILImage.open(out)), data.chelsea())
    said = result.output + (result.stderr or "")
    assert "unchanged:" in said and "give --mask" in said  # the reason is on the photo's line
