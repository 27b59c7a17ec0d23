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
    # the detector is not sure of this shadow (an 8-px Gaussian edge, softer than the real cast
    # shadows it was set on): the photo comes back unchanged, the mask empty, and the line says why
    assert not exported.any()
    np.testing.assert_array_equal(auto, before)
    assert "unchanged:" in result.output + result.stderr and "give --mask" in result.output + result.stderr

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


def test_shadowformer_in_released_layout_is_used_once_cached(shadowed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import torch

    from tests.test_model_lineup import use_unverified_manifest
    from tests.test_shadowformer import _random_network

    use_unverified_manifest(tmp_path, monkeypatch)
    path, mask_path, _, shadow = shadowed
    before = _read(path)

    def defaults() -> dict[str, bool]:
        listed = runner.invoke(app, ["models", "list", "--task", "deshadow", "--json"])
        assert listed.exit_code == 0, listed.stderr
        return {r["id"]: r["default"] for r in map(json.loads, listed.stdout.splitlines())}

    assert defaults() == {"shadowformer-istd-plus": False, "classical": True}

    # not cached: the classical method runs, and the user is told how to get the learned one
    result = runner.invoke(app, ["deshadow", str(path), str(tmp_path / "classical.png"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert "models download shadowformer-istd-plus" in result.stderr
    assert json.loads(result.stdout.splitlines()[0])["model"] == "classical"
    # said once: the next run is quiet about it, -v still shows it (issue 16: the note came every run)
    again = runner.invoke(app, ["deshadow", str(path), str(tmp_path / "classical2.png")])
    assert again.exit_code == 0 and "models download shadowformer-istd-plus" not in again.stderr
    verbose = runner.invoke(app, ["deshadow", str(path), str(tmp_path / "classical3.png"), "-v"])
    assert verbose.exit_code == 0 and "models download shadowformer-istd-plus" in verbose.stderr

    net = _random_network()
    checkpoint = tmp_path / "model_best.pth"  # the release's layout: DataParallel keys under state_dict
    torch.save({"epoch": 500, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, checkpoint)
    imported = runner.invoke(app, ["models", "import", "shadowformer-istd-plus", str(checkpoint)])
    assert imported.exit_code == 0, imported.stderr
    assert defaults() == {"shadowformer-istd-plus": True, "classical": False}

    # a folder, masks matched by name from a mask folder, tiles of 160 px (two 80-px grid cells)
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for name in ("coffee.png", "coffee2.png"):
        (photos / name).write_bytes(path.read_bytes())
        (masks / name.replace(".png", "_mask.png")).write_bytes(mask_path.read_bytes())
    out = tmp_path / "learned"
    result = runner.invoke(app, ["deshadow", str(photos), str(out), "--mask", str(masks), "--offline", "--tile", "160", "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if json.loads(line).get("status")]
    assert [r["model"] for r in records] == ["shadowformer-istd-plus"] * 2
    far = cv2.dilate((shadow > 0.01).astype(np.uint8), np.ones((41, 41), np.uint8)) == 0
    for name in ("coffee.png", "coffee2.png"):
        after = _read(out / name)
        assert after.shape == before.shape
        np.testing.assert_array_equal(after[far], before[far])  # nothing away from the shadow moves
        assert np.abs(after - before)[shadow > 0.5].mean() > 1e-3  # the network changed the shadow

    # --model classical still chooses the classical method with the model cached
    result = runner.invoke(app, ["deshadow", str(path), str(tmp_path / "c2.png"), "--model", "classical", "--json"])
    assert json.loads(result.stdout.splitlines()[0])["model"] == "classical"


def _fdrnet_marking(path: Path, share: float, tmp_path: Path) -> Path:
    """A random FDRNet in the release's layout whose last layer is shifted and scaled so that about
    ``share`` of ``path``'s probability map is clearly shadow (random weights detect nothing in particular)."""
    import torch

    from photofix.tasks.processors import SHADOW_DETECT_SIDE
    from tests.test_fdrnet import random_network, save_release_layout

    net = random_network()
    small = cv2.resize(_read(path), (SHADOW_DETECT_SIDE, SHADOW_DETECT_SIDE), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        logits = net(torch.from_numpy(small).permute(2, 0, 1)[None])
        conv, gain = net.pred_conv[0], 4 / logits.std()
        conv.bias.copy_(gain * (conv.bias - torch.quantile(logits.flatten(), 1 - share)))
        conv.weight.mul_(gain)
    return save_release_layout(net, tmp_path / "sbu_epoch_010.pt")


def test_fdrnet_in_released_layout_gives_the_mask_once_cached(shadowed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from tests.test_model_lineup import use_unverified_manifest

    use_unverified_manifest(tmp_path, monkeypatch)
    path, mask_path, _, _ = shadowed
    before = _read(path)

    def run(*args: str) -> tuple[dict, str]:
        result = runner.invoke(app, ["deshadow", str(path), *args, "--json", "-v"])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout.splitlines()[0]), result.stderr

    record, _ = run(str(tmp_path / "classical.png"))  # not cached: the classical detector, unchanged here
    assert record["details"]["mask_source"] == "detected"

    imported = runner.invoke(app, ["models", "import", "fdrnet-sbu", str(_fdrnet_marking(path, 0.2, tmp_path))])
    assert imported.exit_code == 0, imported.stderr
    listed = runner.invoke(app, ["models", "list", "--task", "deshadow", "--json"])
    assert "fdrnet-sbu" not in listed.stdout  # a helper of deshadow, not a deshadow model

    out, masks = tmp_path / "learned.png", tmp_path / "masks"
    record, stderr = run(str(out), "--mask-out", str(masks))
    assert record["model"] == "classical" and record["details"]["mask_source"] == "fdrnet"
    assert 10 < record["details"]["shadow_percent"] < 30 and "note" not in record["details"]
    assert "shadow mask from fdrnet-sbu" in stderr
    exported = np.asarray(PILImage.open(masks / "coffee_mask.png"))
    assert exported.shape == before.shape[:2] and 0.1 < (exported > 127).mean() < 0.3
    assert np.abs(_read(out) - before).max() > 0.01  # relit where the detector marked shadow
    np.testing.assert_array_equal(_read(out)[exported == 0], before[exported == 0])  # and nowhere else

    record, stderr = run(str(tmp_path / "given.png"), "--mask", str(mask_path))  # --mask still wins
    assert record["details"]["mask_source"] == "given" and "fdrnet" not in stderr
    assert record["details"]["shadow_percent"] == pytest.approx(100 * float(np.mean(_read(mask_path) >= 0.5)), abs=0.5)
