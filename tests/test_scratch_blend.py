"""Faint detections take part of the fill (methods.scratch_blend): weights, the blend, and what it buys.

The quality tests use tests/test_scratch_generalise.py's damage (elliptic arcs and square
flecks), which neither the detector nor the blend's two constants were tuned on, and a clean
brick crop, the evaluation's worst texture.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from skimage import data
from typer.testing import CliRunner
from PIL import Image as PILImage

from photofix.cli import app
from photofix.errors import UsageError
from photofix.methods.inpaint import inpaint_classical, inpaint_masked
from photofix.methods.scratch import _DETECT_DEFAULTS, detect_scratches, scratch_detection, scratch_score
from photofix.methods.scratch_blend import fill_weights
from tests.helpers import psnr
from tests.test_scratch_generalise import arcs_and_flecks


def test_weights_rise_from_the_floor_at_the_threshold_to_one_and_rims_follow_their_pixel() -> None:
    confidence = np.array([[1.0, 2.5, 4.0, 9.0, 0.0]], np.float32)
    mask = np.array([[True, True, True, True, False]])
    w = fill_weights(confidence, mask, full_at=4.0, floor=0.3, reach=1)
    np.testing.assert_allclose(w[0, :4], [0.3, 0.65, 1.0, 1.0], atol=1e-6)
    assert w[0, 4] == pytest.approx(1.0)  # the rim pixel takes its neighbour's weight, not its own confidence
    assert fill_weights(confidence, mask, reach=0)[0, 4] == 0.0
    with pytest.raises(UsageError):
        fill_weights(confidence, mask, full_at=1.0)
    with pytest.raises(UsageError):
        fill_weights(confidence, mask, floor=1.5)


def test_strength_scales_the_fill_and_leaves_the_rest_bit_identical() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((60, 80, 3), dtype=np.float32)
    mask = np.zeros((60, 80), bool)
    mask[30, 10:70] = True
    full = inpaint_masked(image, mask, inpaint_classical).pixels
    np.testing.assert_array_equal(inpaint_masked(image, mask, inpaint_classical, strength=np.ones((60, 80), np.float32)).pixels, full)
    np.testing.assert_array_equal(inpaint_masked(image, mask, inpaint_classical, strength=np.zeros((60, 80), np.float32)).pixels, image)
    half = inpaint_masked(image, mask, inpaint_classical, strength=np.full((60, 80), 0.5, np.float32)).pixels
    np.testing.assert_allclose(half, (image + full) / 2, atol=1e-6)
    with pytest.raises(Exception, match="strength shape"):
        inpaint_masked(image, mask, inpaint_classical, strength=np.ones((10, 10), np.float32))


def test_the_detection_with_confidence_flags_what_detect_scratches_flags() -> None:
    photo = data.coffee()[:200, :300].astype(np.float32) / 255
    damaged, _ = arcs_and_flecks(photo, 3)
    found = scratch_detection(damaged)
    np.testing.assert_array_equal(found.mask, detect_scratches(damaged))
    assert found.confidence[found.mask].min() >= 1.0  # every flagged pixel passed the low threshold
    np.testing.assert_array_equal(scratch_detection(damaged, sensitivity=3.0).mask, detect_scratches(damaged, sensitivity=3.0))
    defaults = {k: p.default for k, p in inspect.signature(detect_scratches).parameters.items() if k in _DETECT_DEFAULTS}
    assert defaults == _DETECT_DEFAULTS  # the two entry points cannot drift apart
    with pytest.raises(UsageError, match="dilate"):
        scratch_detection(damaged, dilate=2)
    # confidence x threshold is the stroke's contrast, whichever threshold was used
    score = scratch_score(damaged)
    assert found.threshold >= 0.03  # the adaptive cut never goes below a visible contrast
    np.testing.assert_allclose(found.confidence * found.threshold, score, rtol=1e-5, atol=1e-7)
    given = scratch_detection(damaged, threshold=0.2)
    assert given.threshold == 0.2 and given.mask.sum() < found.mask.sum()
    np.testing.assert_allclose(given.confidence * 0.2, score, rtol=1e-5, atol=1e-7)


def _fills(damaged: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(filled outright, blended) for the classical mask of ``damaged``."""
    found = scratch_detection(damaged)
    hard = inpaint_masked(damaged, found.mask, inpaint_classical).pixels
    soft = inpaint_masked(damaged, found.mask, inpaint_classical, strength=fill_weights(found.confidence, found.mask)).pixels
    return hard, soft


def _gains(clean: np.ndarray, damaged: np.ndarray) -> tuple[float, float]:
    """(hard fill gain, blended gain) in dB for the classical mask."""
    before = psnr(damaged, clean)
    return tuple(psnr(repaired, clean) - before for repaired in _fills(damaged))


def test_on_a_clean_brick_wall_the_false_alarms_cost_less() -> None:
    # measured on this 256 px crop of a wall without damage (4.94 % flagged): the output stays at
    # 28.86 dB PSNR from the input with the hard fill, 35.79 dB blended (Telea fill: 25.14 / 32.42)
    clean = data.brick()[:256, :256].astype(np.float32)[..., None] / 255
    hard, soft = _fills(clean)
    assert detect_scratches(clean).mean() > 0.02  # the false alarms are there to be softened
    assert psnr(soft, clean) > psnr(hard, clean) + 5.0, (psnr(hard, clean), psnr(soft, clean))


def test_on_unseen_damage_the_blend_gains_at_least_as_much_as_the_hard_fill() -> None:
    # measured (hard / blended, dB): rocket +12.34 / +13.97 and +8.03 / +8.58, coffee +3.69 / +4.24
    # and +5.25 / +6.24 (with the Telea fill: +12.04 / +13.65, +7.90 / +8.48, +3.31 / +3.99, +4.43 / +5.65)
    results = []
    for crop in (data.rocket()[50:350, 100:400], data.coffee()[:300, 200:500]):
        clean = crop.astype(np.float32) / 255
        for seed in (1, 2):
            results.append(_gains(clean, arcs_and_flecks(clean, seed)[0]))
    assert all(soft > hard + 0.3 for hard, soft in results), results


def test_the_default_fills_outright_and_blend_faint_blends(tmp_path) -> None:
    clean = data.brick()[:200, :200]
    path = tmp_path / "brick.png"
    PILImage.fromarray(clean).save(path)
    runner = CliRunner()
    outputs = {}
    for flag in ([], ["--blend-faint"]):
        out = tmp_path / f"out{len(flag)}.png"
        result = runner.invoke(app, ["scratch-repair", str(path), str(out), "--model", "classical", "--json", *flag])
        assert result.exit_code == 0, result.stderr
        outputs[bool(flag)] = np.asarray(PILImage.open(out)).astype(np.float32) / 255
        assert ("blended_percent" in result.stdout) == bool(flag)
    reference = clean.astype(np.float32) / 255
    assert psnr(outputs[True], reference) > psnr(outputs[False], reference)


def test_blend_faint_with_a_given_mask_fills_it_outright_and_says_so(tmp_path) -> None:
    clean = data.brick()[:120, :120]
    photo, mask = tmp_path / "brick.png", tmp_path / "mask.png"
    PILImage.fromarray(clean).save(photo)
    hole = np.zeros((120, 120), np.uint8)
    hole[50:56, 10:110] = 255
    PILImage.fromarray(hole).save(mask)
    runner = CliRunner()
    outputs = []
    for flag in ([], ["--blend-faint"]):
        out = tmp_path / f"out{len(flag)}.png"
        result = runner.invoke(app, ["scratch-repair", str(photo), str(out), "--model", "classical", "--mask", str(mask), *flag])
        assert result.exit_code == 0, result.stderr
        assert ("filled outright" in result.stderr) == bool(flag)
        outputs.append(np.asarray(PILImage.open(out)))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], clean)
