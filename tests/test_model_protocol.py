"""One model protocol: every loaded kind (image, masked, colorizer) carries frozen traits and origin,
honours the run's precision, and the engine follows the architecture's tiling advice."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from photofix.engine.models import LoadedMaskedModel, load_masked_model
from photofix.engine.tiling import AutoTile
from photofix.errors import DeviceError
from photofix.imageio import Image, ImageMeta
from photofix.methods.colorize import load_colorizer
from photofix.tasks.processors import DeshadowProcessor


@pytest.fixture(scope="module")
def shadowformer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_shadowformer import _random_network

    path = tmp_path_factory.mktemp("sf") / "model_best.pth"
    state = {f"module.{k}": v for k, v in _random_network().state_dict().items()}
    torch.save({"epoch": 500, "state_dict": state}, path)  # the release's layout
    return path


@pytest.fixture(scope="module")
def ddcolor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spandrel_extra_arches.architectures.DDColor import DDColor

    from tests.test_colorize import PAPER_TINY

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ddc") / "ddcolor.pth"
    torch.save({"params": DDColor(**PAPER_TINY, input_size=(64, 64)).state_dict()}, path)
    return path


def test_a_masked_model_has_the_same_frozen_traits_and_origin(shadowformer_file: Path) -> None:
    model = load_masked_model(shadowformer_file, expected_arch="ShadowFormer", model_id="shadowformer-istd-plus",
                              device="cpu", sha256="ab" * 32, hash_recorded_now=True)
    assert isinstance(model, LoadedMaskedModel)
    assert (model.arch, model.model_id, model.sha256, model.hash_recorded_now) == ("ShadowFormer", "shadowformer-istd-plus", "ab" * 32, True)
    assert model.tiling_discouraged and model.precision == "fp32"
    assert model.tile_grid % model.multiple_of == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.traits.scale = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.origin.sha256 = "0" * 64  # type: ignore[misc]


def test_masked_models_refuse_a_precision_the_architecture_lacks(shadowformer_file: Path) -> None:
    with pytest.raises(DeviceError, match="does not support bf16"):
        load_masked_model(shadowformer_file, expected_arch="ShadowFormer", device="cpu", precision="bf16")


def test_the_colorizer_honours_the_precision(ddcolor_file: Path) -> None:
    fp32 = load_colorizer(ddcolor_file, "cpu", precision="fp32", model_id="ddcolor-tiny")
    assert fp32.model.dtype == torch.float32 and (fp32.model_id, fp32.origin.source) == ("ddcolor-tiny", "ddcolor.pth")
    # spandrel's descriptor says bf16 works; the raw network photofix calls fails in it, so the trait says no
    with pytest.raises(RuntimeError, match="same dtype"):
        fp32.network.to(torch.bfloat16)(torch.rand(1, 3, 64, 64, dtype=torch.bfloat16))
    fp32.network.to(torch.float32)
    with pytest.raises(DeviceError, match="does not support bf16"):
        load_colorizer(ddcolor_file, "cpu", precision="bf16")
    with pytest.raises(DeviceError, match="fp16"):
        load_colorizer(ddcolor_file, "cpu", precision="fp16")


def _fake_model(discouraged: bool, grid: int = 8) -> SimpleNamespace:
    return SimpleNamespace(device=torch.device("cpu"), tile_grid=grid, tiling_discouraged=discouraged)


def _cheap(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5


def test_a_model_that_discourages_tiling_runs_whole_when_memory_allows() -> None:
    # 3000 px is over the 2048-px cap that tiles every other model
    assert AutoTile(_fake_model(discouraged=False)).side(_cheap, 3, 3000, 200) <= 2048
    whole = AutoTile(_fake_model(discouraged=True)).side(_cheap, 3, 3000, 200)
    assert whole >= 3000 and whole % 8 == 0


def test_a_discouraged_model_is_still_tiled_beyond_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from photofix.engine import tiling

    monkeypatch.setattr(tiling, "measure_bytes_per_pixel", lambda *a, **k: 4096.0)  # 512 MiB -> a 362-px tile
    side = AutoTile(_fake_model(discouraged=True)).side(_cheap, 3, 3000, 3000)
    assert side < 3000 and side % 8 == 0


def test_deshadow_with_a_network_is_no_longer_cut_into_640_px_tiles(shadowformer_file: Path) -> None:
    model = load_masked_model(shadowformer_file, expected_arch="ShadowFormer", device="cpu")
    rng = np.random.default_rng(0)
    pixels = rng.random((600, 680, 3), dtype=np.float32)  # over the old fixed 640-px tile, inside the memory budget
    mask = np.zeros((600, 680), np.float32)
    mask[200:500, 100:600] = 1
    image = Image(pixels, None, ImageMeta(format="PNG", mode="RGB", bit_depth=8, grayscale=False, source_name="wall.png"))
    ticks: list[tuple[int, int]] = []
    processor = DeshadowProcessor(user_mask=lambda _: mask, model=model, model_label="sf")
    out, details = processor.restore(image, on_tile=lambda done, total: ticks.append((done, total)))
    assert ticks[-1] == (1, 1)  # one pass over the whole photo, as the architecture advises
    assert details["mask_source"] == "given" and out.pixels.shape == pixels.shape
    tiled = DeshadowProcessor(user_mask=lambda _: mask, model=model, model_label="sf", tile=320)
    ticks.clear()
    tiled.restore(image, on_tile=lambda done, total: ticks.append((done, total)))
    assert ticks[-1][1] > 1  # --tile still wins when given


def test_loading_dat_says_nothing_about_meshgrid(tmp_path: Path) -> None:
    # issue 16: every DAT run printed torch's meshgrid warning (DAT's constructor, inside spandrel).
    # torch warns once per process, so the load runs in a fresh one.
    import subprocess
    import sys
    import warnings

    from tests.test_model_lineup import BUILDERS, _save

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = BUILDERS["DAT"]()
    _save(state, tmp_path / "dat.pth")
    code = "from photofix.engine.models import load_model; import sys; print(load_model(sys.argv[1], device='cpu').arch)"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dat.pth")], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "DAT", done.stderr
    assert "meshgrid" not in done.stderr


def test_a_chain_keeps_an_upscale_finished_when_the_next_step_accepts_it() -> None:
    # faces after an x4 upscale: the upscale's 8-bit canvas is kept (4x less memory than floats)
    from photofix.tasks.face_processor import FacesProcessor
    from photofix.tasks.restore import Chain, Restorer

    def restorer() -> Restorer:
        made = object.__new__(Restorer)  # no model needed: only the hand-over flag is looked at
        made.finished_output = True
        return made

    upscale, faces = restorer(), FacesProcessor(detector=None, restore_fn=None, model_label="x")
    Chain([("upscale", upscale), ("faces", faces)])
    assert upscale.finished_output is True
    before_denoise = restorer()
    Chain([("upscale", before_denoise), ("denoise", restorer())])
    assert before_denoise.finished_output is False
