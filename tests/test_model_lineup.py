"""Every architecture in the manifest: a checkpoint in its real file layout goes through the
manifest path (``models import`` + ``--model``) and through ``--weights``, and runs on a folder
with a small forced tile.

The published files cannot be downloaded here, so each model is randomly initialised in a
small configuration with the same key pattern and wrapper as the release, and the manifest is
a copy of the packaged one with hashes marked unverified (random files cannot match them).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from photofix.cli import app
from photofix.store.manifest import load_manifest
from tests.helpers import kair_ffdnet_state_dict

runner = CliRunner()


def _nafnet() -> dict:
    from spandrel.architectures.NAFNet import NAFNet

    net = NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 2], dec_blk_nums=[1, 1, 1, 1])
    return {"params": net.state_dict()}  # the NAFNet release wraps weights in "params"


def _restormer() -> dict:
    from spandrel_extra_arches.architectures.Restormer import Restormer

    net = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8])
    return {"params": net.state_dict()}


def _drunet() -> dict:
    from spandrel.architectures.DRUNet import DRUNet

    return DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=2).state_dict()  # KAIR: a bare state dict


def _scunet() -> dict:
    from spandrel.architectures.SCUNet import SCUNet

    return SCUNet(in_nc=3, config=[1, 1, 1, 1, 1, 1, 1], dim=64).state_dict()


def _esrgan() -> dict:
    """Real-ESRGAN x4plus's layout (BasicSR RRDBNet names, under "params_ema"), one block, 16 features."""
    nf, gc = 16, 32  # growth channels are 32 in every release
    state = {"conv_first.weight": torch.randn(nf, 3, 3, 3) * 0.1, "conv_first.bias": torch.zeros(nf)}
    for r in (1, 2, 3):
        for c in range(1, 6):
            out_c, in_c = (nf if c == 5 else gc), nf + (c - 1) * gc
            state[f"body.0.rdb{r}.conv{c}.weight"] = torch.randn(out_c, in_c, 3, 3) * 0.02
            state[f"body.0.rdb{r}.conv{c}.bias"] = torch.zeros(out_c)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        state[f"{name}.weight"] = torch.randn(nf, nf, 3, 3) * 0.05
        state[f"{name}.bias"] = torch.zeros(nf)
    state["conv_last.weight"] = torch.randn(3, nf, 3, 3) * 0.05
    state["conv_last.bias"] = torch.zeros(3)
    return {"params_ema": state}


def _compact() -> dict:
    from spandrel.architectures.Compact import Compact

    return {"params": Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4).state_dict()}


def _dat() -> dict:
    from spandrel.architectures.DAT import DAT

    net = DAT(upscale=4, embed_dim=48, depth=[1], num_heads=[4], split_size=[8, 16], expansion_factor=2, resi_connection="1conv", upsampler="pixelshuffledirect")
    return net.state_dict()  # DAT_x4.safetensors holds the bare state dict


@functools.lru_cache(maxsize=1)
def _ddcolor() -> dict:
    """DDColor's release layout ({"params": ...}) with the real ConvNeXt-T encoder and a small decoder."""
    from spandrel_extra_arches.architectures.DDColor.__arch.ddcolor import DDColor

    net = DDColor(encoder_name="convnext-t", decoder_name="MultiScaleColorDecoder", num_input_channels=3, nf=512,
                  num_output_channels=2, last_norm="Spectral", do_normalize=False, num_queries=10, num_scales=3,
                  dec_layers=1, input_size=(64, 64))
    return {"params": net.state_dict()}


def _ffdnet() -> dict:
    return kair_ffdnet_state_dict()


BUILDERS: dict[str, Callable[[], dict]] = {
    "NAFNet": _nafnet,
    "Restormer": _restormer,
    "DRUNet": _drunet,
    "SCUNet": _scunet,
    "ESRGAN": _esrgan,
    "Compact": _compact,
    "DAT": _dat,
    "FFDNet": _ffdnet,
    "DDColor": _ddcolor,
}


def _save(state: dict, path: Path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)


def unverified_manifest_text() -> str:
    """The packaged manifest with hashes unverified and sizes dropped: random test files match neither."""
    from importlib.resources import files

    text = (files("photofix") / "weights_manifest.toml").read_text()
    text = re.sub(r'sha256 = "[0-9a-f]{64}"', 'sha256 = "unverified"', text)
    return re.sub(r"size_bytes = \d+\n", "", text)


def use_unverified_manifest(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PHOTOFIX_HOME and the unverified manifest in ``folder``: random files import as released models."""
    monkeypatch.setenv("PHOTOFIX_HOME", str(folder / "home"))
    manifest = folder / "manifest.toml"
    manifest.write_text(unverified_manifest_text())
    monkeypatch.setenv("PHOTOFIX_MANIFEST", str(manifest))
    return manifest


@pytest.fixture(scope="module")
def unverified_manifest(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("manifest") / "weights_manifest.toml"
    path.write_text(unverified_manifest_text())
    return path


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory) -> Path:
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    PILImage.fromarray(data.astronaut()[100:180, 180:276]).save(folder / "a.png")  # 80 x 96
    PILImage.fromarray(data.coffee()[50:122, 200:290]).save(folder / "b.jpg")  # 72 x 90
    return folder


# The scratch-repair pair (detector + inpainter) runs as one command: tests/test_scratch_cli.py;
# deshadow needs a mask next to its model: tests/test_deshadow_cli.py; face models run on aligned
# faces, not tiles, beside a face detector: tests/test_faces_cli.py; the shadow detector gives
# deshadow its mask: tests/test_fdrnet.py and tests/test_deshadow_cli.py.
ENTRIES = [e for e in load_manifest().entries
           if e.task not in ("scratch-detect", "inpaint", "deshadow", "faces", "face-detect", "shadow-detect")]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_checkpoint_in_real_layout_runs_through_manifest_and_weights(entry, unverified_manifest: Path, small_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PHOTOFIX_MANIFEST", str(unverified_manifest))
    torch.manual_seed(0)
    checkpoint = tmp_path / entry.source.filename
    _save(BUILDERS[entry.arch](), checkpoint)
    scale = int(entry.params.get("scale", 1))
    task_args = ["--sigma", "10"] if entry.params.get("blind") is False else []

    imported = runner.invoke(app, ["models", "import", entry.id, str(checkpoint)])
    assert imported.exit_code == 0, imported.stderr

    out_manifest = tmp_path / "via-manifest"
    via_manifest = runner.invoke(app, [entry.task, str(small_photos), str(out_manifest), "--model", entry.id, "--offline", "--tile", "48", *task_args])
    assert via_manifest.exit_code == 0, via_manifest.stderr
    if not entry.commercial_use:
        assert "non-commercial" in via_manifest.stderr
    if entry.task == "colorize":  # the photos are colour: the user is told they were made grey first
        assert "converted_to_grey=True" in via_manifest.stderr

    out_weights = tmp_path / "via-weights"
    via_weights = runner.invoke(app, [entry.task, str(small_photos), str(out_weights), "--weights", str(checkpoint), "--tile", "48", *task_args])
    assert via_weights.exit_code == 0, via_weights.stderr

    for name, (h, w) in (("a.png", (80, 96)), ("b.jpg", (72, 90))):
        for folder in (out_manifest, out_weights):
            assert PILImage.open(folder / name).size == (w * scale, h * scale)
    np.testing.assert_array_equal(np.asarray(PILImage.open(out_manifest / "a.png")), np.asarray(PILImage.open(out_weights / "a.png")))
