"""``photofix faces`` and the ``faces`` step end to end, with face models in their released file layouts.

The published GFPGAN v1.4, CodeFormer and RestoreFormer files cannot be downloaded here, so each
is randomly initialised with the keys and wrapper of its release (``params_ema``): GFPGAN at its
full size (spandrel fixes its configuration), CodeFormer with one transformer layer instead of
nine, RestoreFormer with narrow layers. Faces are found with the built-in detector (YuNet's
weights cannot be had here either). What is checked is what the user relies on: the faces are
found and listed, they change, and every pixel outside the pasted faces is the input's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from skimage import data
from typer.testing import CliRunner

from photofix.cli import app
from tests.test_model_lineup import use_unverified_manifest

runner = CliRunner()

# skimage.data.astronaut() cut to 300 x 300 around the astronaut's face; the point between her eyes.
ASTRONAUT_CROP = (slice(0, 300), slice(80, 380))
FACE_CENTRE = (142, 125)


def restoreformer_state() -> dict:
    from spandrel.architectures.RestoreFormer import RestoreFormer

    net = RestoreFormer(n_embed=64, embed_dim=32, ch=32, out_ch=3, ch_mult=(1, 1, 1, 1, 1, 1), num_res_blocks=1,
                        attn_resolutions=(16,), dropout=0.0, in_channels=3, resolution=512, z_channels=32,
                        double_z=False, enable_mid=True, head_size=8)
    return {"params_ema": net.state_dict()}


def gfpgan_state() -> dict:
    from spandrel.architectures.GFPGAN import GFPGAN

    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                 num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    return {"params_ema": net.state_dict()}


def codeformer_state() -> dict:
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    net = CodeFormer(dim_embd=64, n_head=8, n_layers=1, codebook_size=1024, latent_size=256, connect_list=["32", "64", "128", "256"])
    return {"params_ema": net.state_dict()}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def results(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if '"input"' in line]


def read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def assert_only_faces_changed(before: np.ndarray, after: np.ndarray, mask_png: Path) -> None:
    mask = np.asarray(PILImage.open(mask_png)) > 0
    assert before.shape == after.shape and before.dtype == after.dtype
    np.testing.assert_array_equal(after[~mask], before[~mask])
    assert mask.any() and np.count_nonzero(after[mask] != before[mask]) > 0.3 * np.count_nonzero(mask)


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    PILImage.fromarray(data.astronaut()[ASTRONAUT_CROP]).save(folder / "astronaut.png")
    return folder / "astronaut.png"


@pytest.fixture(scope="module")
def restoreformer_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "RestoreFormer.pth"
    torch.save(restoreformer_state(), path)
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache and the packaged manifest with hashes unverified (random files match none)."""
    use_unverified_manifest(tmp_path, monkeypatch)
    return tmp_path


def test_faces_command_restores_the_face_and_nothing_else(astronaut_png: Path, restoreformer_file: Path, tmp_path: Path) -> None:
    out, masks = tmp_path / "out.png", tmp_path / "masks"
    done = invoke("faces", str(astronaut_png), str(out), "--weights", str(restoreformer_file), "--detector", "builtin",
                  "--json", "--mask-out", str(masks))
    assert done.exit_code == 0, done.stderr
    [record] = results(done.stdout)
    details = record["details"]
    assert details["faces"] == 1 and details["detector"] == "builtin-lbp"
    [[x, y, w, h]] = details["boxes"]
    assert x < FACE_CENTRE[0] < x + w and y < FACE_CENTRE[1] < y + h
    assert_only_faces_changed(read(astronaut_png), read(out), masks / "astronaut_mask.png")


def test_grey_16_bit_and_alpha_are_kept(restoreformer_file: Path, tmp_path: Path) -> None:
    photos = tmp_path / "in"
    photos.mkdir()
    rgb = data.astronaut()[ASTRONAUT_CROP]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    PILImage.fromarray(grey).save(photos / "grey.png")
    deep = np.rint(rgb.astype(np.float64) * 257 + np.linspace(0, 200, 300)[None, :, None]).clip(0, 65535).astype(np.uint16)
    alpha = np.tile(np.linspace(1000, 65535, 300, dtype=np.uint16), (300, 1))
    cv2.imwrite(str(photos / "deep.png"), np.dstack([deep[..., ::-1], alpha]))  # 16-bit BGRA
    out, masks = tmp_path / "out", tmp_path / "masks"
    # --min-face 60: in the grey version the cascade also takes a 27-px patch of hair for a face
    done = invoke("faces", str(photos), str(out), "--weights", str(restoreformer_file), "--detector", "builtin",
                  "--min-face", "60", "--json", "--mask-out", str(masks))
    assert done.exit_code == 0, done.stderr
    assert {Path(r["input"]).name: r["details"]["faces"] for r in results(done.stdout)} == {"grey.png": 1, "deep.png": 1}

    assert PILImage.open(out / "grey.png").mode == "L"
    assert_only_faces_changed(read(photos / "grey.png"), read(out / "grey.png"), masks / "grey_mask.png")

    before, after = read(photos / "deep.png"), read(out / "deep.png")
    assert after.dtype == np.uint16 and after.shape == (300, 300, 4)
    np.testing.assert_array_equal(after[..., 3], before[..., 3])
    assert_only_faces_changed(before[..., :3], after[..., :3], masks / "deep_mask.png")


def test_a_photo_without_faces_comes_back_identical(restoreformer_file: Path, tmp_path: Path) -> None:
    cat = tmp_path / "chelsea.png"
    PILImage.fromarray(data.chelsea()).save(cat)
    done = invoke("faces", str(cat), str(tmp_path / "out.png"), "--weights", str(restoreformer_file), "--detector", "builtin", "--json")
    assert done.exit_code == 0, done.stderr
    [record] = results(done.stdout)
    assert record["details"]["faces"] == 0 and record["details"]["boxes"] == []
    assert "no faces" in record["details"]["note"]
    np.testing.assert_array_equal(read(tmp_path / "out.png"), read(cat))


def _import_random(store: Path, model_id: str, file_name: str, state: Any) -> None:
    """Random weights saved in the release's file layout, imported into the store as ``model_id``."""
    checkpoint = store / file_name
    torch.save(state, checkpoint)
    imported = invoke("models", "import", model_id, str(checkpoint))
    assert imported.exit_code == 0, imported.stderr
    checkpoint.unlink()


def test_gfpgan_v14_layout_is_the_default_through_the_manifest(astronaut_png: Path, store: Path) -> None:
    torch.manual_seed(0)
    _import_random(store, "gfpgan-v1.4", "GFPGANv1.4.pth", gfpgan_state())

    out, masks = store / "out.png", store / "masks"
    done = invoke("faces", str(astronaut_png), str(out), "--offline", "--json", "--mask-out", str(masks))
    assert done.exit_code == 0, done.stderr
    assert "built-in cascade" in done.stderr  # YuNet is not cached and the run is offline
    [record] = results(done.stdout)
    assert record["model"] == "gfpgan-v1.4+builtin-lbp" and record["details"]["faces"] == 1
    assert_only_faces_changed(read(astronaut_png), read(out), masks / "astronaut_mask.png")


def test_codeformer_layout_in_a_chain(astronaut_png: Path, store: Path) -> None:
    torch.manual_seed(0)
    _import_random(store, "codeformer", "codeformer.pth", codeformer_state())

    repaired = store / "repaired.png"
    alone = invoke("scratch-repair", str(astronaut_png), str(repaired), "--model", "classical")
    assert alone.exit_code == 0, alone.stderr
    out, masks = store / "out.png", store / "masks"
    chain = invoke("restore", str(astronaut_png), str(out), "--offline", "--json", "--steps",
                   f"scratch-repair:model=classical,faces:model=codeformer:fidelity=0.7:detector=builtin:mask-out={masks}")
    assert chain.exit_code == 0, chain.stderr
    assert "non-commercial" in chain.stderr
    [record] = results(chain.stdout)
    assert record["details"]["faces.faces"] == 1
    # the chain's output is scratch-repair's, but for the face
    assert_only_faces_changed(read(repaired), read(out), masks / "astronaut_mask.png")


def test_fidelity_is_codeformers_alone(astronaut_png: Path, store: Path) -> None:
    refused = invoke("faces", str(astronaut_png), str(store / "o.png"), "--fidelity", "0.3", "--offline")
    assert refused.exit_code == 2 and "CodeFormer's weight" in refused.stderr


def test_models_list_shows_the_face_models_and_detector_with_licences() -> None:
    listed = invoke("models", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    records = {r["id"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert records["gfpgan-v1.4"]["license"] == "Apache-2.0" and records["gfpgan-v1.4"]["commercial_use"]
    assert records["gfpgan-v1.4"]["default"] and records["yunet-2023mar"]["default"]
    assert records["yunet-2023mar"]["task"] == "face-detect" and records["yunet-2023mar"]["license"] == "MIT"
    assert not records["codeformer"]["commercial_use"] and not records["codeformer"]["default"]
    assert not records["restoreformer"]["commercial_use"]
    assert all(records[i]["verified_hash"] for i in ("gfpgan-v1.4", "codeformer", "restoreformer", "yunet-2023mar"))


def test_a_dry_run_downloads_no_detector(astronaut_png: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the auto detector fetched YuNet while planning, even for --dry-run
    from photofix.store import weights

    def no_download(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("a dry run downloaded a file")

    monkeypatch.setattr(weights, "fetch", no_download)
    monkeypatch.delenv("PHOTOFIX_OFFLINE", raising=False)
    done = invoke("faces", str(astronaut_png), str(store / "out.png"), "--dry-run", "-v")
    assert done.exit_code == 0, done.stderr
    assert "planned" in done.stderr and "yunet-2023mar is not cached: the run will download it" in done.stderr
    assert not (store / "out.png").exists()
