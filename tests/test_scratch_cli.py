"""`photofix scratch-repair` end to end: the classical path on a folder of damaged photos, a
user mask, the learned pair (BOPB detector + big-LaMa) from checkpoints in their released
layouts through the manifest, and the offline fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from tests.helpers import psnr
from tests.test_scratch_repair import _module_tree, _random_big_lama_weights, draw_damage
from tests.test_scratch_unet import _random_net, _training_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def damaged_folder(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray, chelsea: np.ndarray):
    folder = tmp_path_factory.mktemp("damaged")
    clean = {"astro.png": astronaut[100:356, 120:376], "cat.png": chelsea[:256, 100:356]}
    for seed, (name, pixels) in enumerate(clean.items()):
        damaged, _ = draw_damage(pixels.astype(np.float32) / 255.0, seed=seed, strokes=6, spots=10)
        PILImage.fromarray(np.round(damaged * 255).astype(np.uint8)).save(folder / name)
    return folder, clean


def _read(path: Path) -> np.ndarray:
    return np.asarray(PILImage.open(path)).astype(np.float32) / 255.0


def test_classical_path_repairs_a_folder_and_changes_only_masked_pixels(damaged_folder, tmp_path: Path) -> None:
    folder, clean = damaged_folder
    out, masks = tmp_path / "out", tmp_path / "masks"
    result = runner.invoke(app, ["scratch-repair", str(folder), str(out), "--model", "classical", "--mask-out", str(masks)])
    assert result.exit_code == 0, result.stderr
    for name, pixels in clean.items():
        before, after = _read(folder / name), _read(out / name)
        mask = np.asarray(PILImage.open(masks / name.replace(".png", "_mask.png"))) > 127
        assert mask.any() and mask.mean() < 0.2
        np.testing.assert_array_equal(after[~_grown(mask)], before[~_grown(mask)])  # nothing outside the mask (+1 px feather) moves
        reference = pixels.astype(np.float32) / 255.0
        assert psnr(after, reference) > psnr(before, reference) + 1.0


def test_a_user_mask_replaces_detection(damaged_folder, tmp_path: Path) -> None:
    folder, _ = damaged_folder
    mask = np.zeros((256, 256), np.uint8)
    mask[100:110, 40:200] = 255
    mask_file = tmp_path / "mask.png"
    PILImage.fromarray(mask).save(mask_file)
    out = tmp_path / "out.png"
    result = runner.invoke(app, ["scratch-repair", str(folder / "cat.png"), str(out), "--model", "classical", "--mask", str(mask_file), "--dilate", "0"])
    assert result.exit_code == 0, result.stderr
    before, after = _read(folder / "cat.png"), _read(out)
    changed = np.any(after != before, axis=2)
    assert changed[100:110, 40:200].mean() > 0.5
    outside = np.ones_like(changed)
    outside[99:111, 39:201] = False
    assert not changed[outside].any()


def test_a_mask_of_another_shape_is_refused(damaged_folder, tmp_path: Path) -> None:
    folder, _ = damaged_folder
    mask_file = tmp_path / "wide.png"
    PILImage.fromarray(np.zeros((100, 300), np.uint8)).save(mask_file)
    result = runner.invoke(app, ["scratch-repair", str(folder / "cat.png"), str(tmp_path / "o.png"), "--model", "classical", "--mask", str(mask_file)])
    assert result.exit_code == 1
    assert "wide.png" in result.stderr and "shape" in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_offline_without_learned_weights_falls_back_to_classical(damaged_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    folder, _ = damaged_folder
    result = runner.invoke(app, ["scratch-repair", str(folder), str(tmp_path / "out"), "--offline"])
    assert result.exit_code == 0, result.stderr
    assert "classical" in result.stderr and "not cached" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".photofix") == ["astro.png", "cat.png"]


def test_learned_pair_in_released_layouts_runs_through_the_manifest(damaged_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_model_lineup import unverified_manifest_text

    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(unverified_manifest_text())
    monkeypatch.setenv("PHOTOFIX_MANIFEST", str(manifest))
    detector = tmp_path / "FT_Epoch_latest.pt"
    torch.save(_training_checkpoint(_random_net(depth=4, width=4)), detector)
    lama = tmp_path / "lama.pt"
    torch.jit.script(_module_tree(_random_big_lama_weights())).save(str(lama))
    for model_id, path in (("bopb-scratch-detect", detector), ("big-lama", lama)):
        imported = runner.invoke(app, ["models", "import", model_id, str(path)])
        assert imported.exit_code == 0, imported.stderr
    folder, _ = damaged_folder

    # detector + LaMa on the folder: one mask per photo at full size; nothing moves outside it
    out, masks = tmp_path / "out", tmp_path / "masks"
    result = runner.invoke(app, ["scratch-repair", str(folder), str(out), "--offline", "--mask-out", str(masks),
                                 "--threads", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    done = [r for r in records if r.get("status") == "done"]
    assert len(done) == 2 and all(r["model"] == "bopb-scratch-detect+big-lama" for r in done)
    for name in ("astro.png", "cat.png"):
        before, after = _read(folder / name), _read(out / name)
        mask = np.asarray(PILImage.open(masks / name.replace(".png", "_mask.png"))) > 127
        assert mask.shape == before.shape[:2] == after.shape[:2]
        np.testing.assert_array_equal(after[~_grown(mask)], before[~_grown(mask)])

    # LaMa fills a given mask and only it (outright: --blend-faint is the classical detector's)
    hole = np.zeros((256, 256), np.uint8)
    hole[60:72, 30:220] = 255
    PILImage.fromarray(hole).save(tmp_path / "hole.png")
    single = tmp_path / "cat_fixed.png"
    result = runner.invoke(app, ["scratch-repair", str(folder / "cat.png"), str(single), "--offline", "--threads", "1",
                                 "--mask", str(tmp_path / "hole.png"), "--dilate", "0", "--blend-faint"])
    assert result.exit_code == 0, result.stderr
    assert "--blend-faint acts on --model classical only" in result.stderr  # said, not silently dropped
    before, after = _read(folder / "cat.png"), _read(single)
    changed = np.any(after != before, axis=2)
    assert changed[60:72, 30:220].mean() > 0.9
    assert not changed[~_grown(hole > 0)].any()


def _grown(mask: np.ndarray) -> np.ndarray:
    """The mask plus inpainting's 1 px feather rim."""
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
