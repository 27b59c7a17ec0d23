"""--mask-out never overwrites one photo's mask with another's (issue 16): a.jpg and a.png in one run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.methods.masks import find_mask, mask_name

runner = CliRunner()


def test_names_step_aside_only_when_taken() -> None:
    assert mask_name("/x/a.jpg") == "a_mask.png"
    assert mask_name("/x/a.png", {"a_mask.png"}) == "a.png_mask.png"
    assert mask_name("/y/a.png", {"a_mask.png", "a.png_mask.png"}) == "a.png_mask-2.png"


def test_two_photos_with_one_stem_get_their_own_masks_and_find_them_again(tmp_path: Path) -> None:
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    base = data.astronaut()[:160, :160].copy()
    left, right = base.copy(), base.copy()
    left[40:44, 10:150] = 255  # a bright horizontal scratch
    right[10:150, 100:104] = 255  # a vertical one elsewhere
    PILImage.fromarray(left).save(photos / "a.png")
    PILImage.fromarray(right).save(photos / "a.tif")
    masks = tmp_path / "masks"
    done = runner.invoke(app, ["scratch-repair", str(photos), str(tmp_path / "out"), "--model", "classical",
                               "--mask-out", str(masks), "--jobs", "2", "--json"])
    assert done.exit_code == 0, done.stderr
    assert [r["status"] for r in map(json.loads, done.stdout.splitlines()) if "status" in r] == ["done", "done"]
    written = sorted(p.name for p in masks.iterdir())
    assert len(written) == 2 and "a_mask.png" in written
    mask_of = {name: np.asarray(PILImage.open(find_mask(masks, str(photos / name)))) > 127 for name in ("a.png", "a.tif")}
    horizontal = {name: m[40:44, 20:140].mean() for name, m in mask_of.items()}
    vertical = {name: m[20:140, 100:104].mean() for name, m in mask_of.items()}
    assert horizontal["a.png"] > 0.5 > horizontal["a.tif"]  # each photo finds its own mask back
    assert vertical["a.tif"] > 0.5 > vertical["a.png"]
