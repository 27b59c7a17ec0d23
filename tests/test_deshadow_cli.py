"""`photofix deshadow` end to end on a real photo with a synthetic sky-lit shadow."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from tests.helpers import psnr

runner = CliRunner()


def _to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.maximum(v, 0) ** (1 / 2.4) - 0.055)


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory):
    """Coffee with a soft round shadow on the wall, darkened in linear light (bluish: R .35, G .40, B .50)."""
    from skimage import data

    clean = data.coffee().astype(np.float32) / 255.0
    shadow = np.zeros(clean.shape[:2], np.float32)
    cv2.circle(shadow, (420, 120), 90, 1.0, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 8)
    attenuation = 1.0 - shadow[..., None] * (1.0 - np.array([0.35, 0.40, 0.50], np.float32))
    damaged = np.clip(_to_srgb(_to_linear(clean) * attenuation), 0, 1)
    folder = tmp_path_factory.mktemp("shadow")
    path = folder / "coffee.png"
    PILImage.fromarray(np.round(damaged * 255).astype(np.uint8)).save(path)
    mask_path = folder / "coffee_mask.png"
    PILImage.fromarray(np.round(shadow * 255).astype(np.uint8)).save(mask_path)
    return path, mask_path, clean, shadow


def _read(path: Path) -> np.ndarray:
    return np.asarray(PILImage.open(path)).astype(np.float32) / 255.0


def test_detected_and_given_masks_relight_the_shadow_and_leave_the_rest(shadowed, tmp_path: Path) -> None:
    path, mask_path, clean, shadow = shadowed
    before = _read(path)
    far = cv2.dilate((shadow > 0.001).astype(np.uint8), np.ones((61, 61), np.uint8)) == 0

    out, masks = tmp_path / "auto.png", tmp_path / "masks"
    result = runner.invoke(app, ["deshadow", str(path), str(out), "--mask-out", str(masks)])
    assert result.exit_code == 0, result.stderr
    auto = _read(out)
    exported = np.asarray(PILImage.open(masks / "coffee_mask.png")) > 127
    iou = np.sum(exported & (shadow > 0.5)) / np.sum(exported | (shadow > 0.5))
    # measured: IoU 0.31 and 23.81 -> 25.23 dB (the detector finds the shadow's core on the wall,
    # not the part over the darker cup rim); with the true mask the gain is much larger (below)
    assert iou > 0.25
    assert psnr(auto, clean) > psnr(before, clean) + 1.0
    np.testing.assert_array_equal(auto[far], before[far])

    given_out = tmp_path / "given.png"
    result = runner.invoke(app, ["deshadow", str(path), str(given_out), "--mask", str(mask_path)])
    assert result.exit_code == 0, result.stderr
    given = _read(given_out)
    assert psnr(given, clean) > psnr(before, clean) + 8.0  # measured 23.81 -> 49.21 dB
    np.testing.assert_array_equal(given[far], before[far])


def test_a_mask_for_another_picture_fails_that_file_only(shadowed, tmp_path: Path) -> None:
    path, _, _, _ = shadowed
    wrong = tmp_path / "wrong.png"
    PILImage.fromarray(np.zeros((100, 400), np.uint8)).save(wrong)
    result = runner.invoke(app, ["deshadow", str(path), str(tmp_path / "o.png"), "--mask", str(wrong)])
    assert result.exit_code == 1
    assert "coffee.png" in result.stderr
    assert not (tmp_path / "o.png").exists()
