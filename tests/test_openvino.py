"""The optional OpenVINO backend: where ``auto`` uses it, equivalence, the export cache, fallback.

Tests that run OpenVINO need the ``openvino`` extra: without it they skip, unless
``PHOTOFIX_REQUIRE_TOOLS=1`` (CI) makes it mandatory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from photofix.engine import openvino_backend
from photofix.engine.models import load_model
from photofix.errors import DeviceError
from photofix.imageio import Image, ImageMeta
from photofix.tasks.restore import Restorer, TaskParams
from tests.helpers import kair_ffdnet_state_dict, psnr
from tests.test_model_lineup import BUILDERS


def _require_openvino() -> None:
    if openvino_backend.runtime_version() is not None:
        return
    reason = 'openvino not installed: pip install "photofix[openvino]"'
    if os.environ.get("PHOTOFIX_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason} (PHOTOFIX_REQUIRE_TOOLS=1 makes it mandatory)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _weights(folder: Path, arch: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path = folder / f"{arch}-{seed}.pth"
    torch.save(BUILDERS[arch](), path)
    return path


def _photo(astronaut: np.ndarray) -> torch.Tensor:
    crop = astronaut[100:148, 180:236].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None]


def _no_export(*args, **kwargs):  # noqa: ANN002, ANN003
    raise RuntimeError("export attempted")


def test_auto_runs_compact_with_openvino_equivalent_to_torch(tmp_path: Path, home: Path, astronaut: np.ndarray) -> None:
    _require_openvino()
    path = _weights(tmp_path, "Compact")
    fast = load_model(path, device="cpu", sha256="a" * 64)
    plain = load_model(path, device="cpu", backend="torch")
    assert (fast.backend, plain.backend) == ("openvino", "torch") and fast.backend_note is None
    x = _photo(astronaut)
    ours, theirs = fast(x), plain(x)
    assert ours.shape == theirs.shape == (1, 3, 192, 224)
    assert float((ours - theirs).abs().max()) < 1e-5 and psnr(ours.numpy(), theirs.numpy()) > 90
    meta = ImageMeta(format="PNG", mode="RGB", bit_depth=8, grayscale=False)
    image = Image(x[0].permute(1, 2, 0).numpy().copy(), None, meta)
    _, details = Restorer("upscale", fast, params=TaskParams(), tile=32).restore(image)
    assert details["backend"] == "openvino" and details["precision"] == "fp32"


def test_auto_keeps_torch_where_openvino_did_not_win(tmp_path: Path, home: Path) -> None:
    _require_openvino()
    assert load_model(_weights(tmp_path, "NAFNet"), device="cpu").backend == "torch"  # 1.27x slower there


def test_forced_openvino_runs_a_blind_model_but_not_a_noise_level_one(tmp_path: Path, home: Path,
                                                                      astronaut: np.ndarray) -> None:
    _require_openvino()
    path = _weights(tmp_path, "NAFNet")
    forced = load_model(path, device="cpu", backend="openvino")
    assert forced.backend == "openvino"
    x = _photo(astronaut)
    assert float((forced(x) - load_model(path, device="cpu", backend="torch")(x)).abs().max()) < 1e-4
    ffdnet = tmp_path / "ffdnet.pth"
    torch.save(kair_ffdnet_state_dict(features=16, layers=3), ffdnet)
    model = load_model(ffdnet, device="cpu", backend="openvino")
    assert model.backend == "torch" and "blind models" in model.backend_note


def test_export_is_cached_and_made_again_when_weights_or_runtime_change(tmp_path: Path, home: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _require_openvino()
    path = _weights(tmp_path, "Compact")
    first = load_model(path, device="cpu", sha256="b" * 64)
    assert first.backend == "openvino" and (first._openvino.folder / "network.xml").is_file()
    monkeypatch.setattr(openvino_backend, "_convert", _no_export)
    again = load_model(path, device="cpu", sha256="b" * 64)
    assert again.backend == "openvino"  # read from the cache: no export
    other_weights = load_model(_weights(tmp_path, "Compact", seed=1), device="cpu", sha256="c" * 64)
    assert other_weights.backend == "torch" and "export attempted" in other_weights.backend_note
    monkeypatch.setattr(openvino_backend, "runtime_version", lambda: "2099.1.0")
    other_runtime = load_model(path, device="cpu", sha256="b" * 64)
    assert other_runtime.backend == "torch" and "export attempted" in other_runtime.backend_note


def test_failed_export_falls_back_to_exactly_the_torch_path(tmp_path: Path, home: Path, astronaut: np.ndarray,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _require_openvino()
    monkeypatch.setattr(openvino_backend, "_convert", _no_export)
    path = _weights(tmp_path, "Compact")
    model = load_model(path, device="cpu", sha256="d" * 64)
    assert model.backend == "torch"
    assert model.backend_note.startswith("OpenVINO could not export Compact (RuntimeError: export attempted)")
    x = _photo(astronaut)
    assert torch.equal(model(x), load_model(path, device="cpu", backend="torch")(x))
    assert not (home / "openvino").exists() or not any((home / "openvino").rglob("network.xml"))


def test_without_the_extra_auto_is_torch_and_openvino_is_refused(tmp_path: Path, home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openvino_backend, "runtime_version", lambda: None)
    path = _weights(tmp_path, "Compact")
    assert load_model(path, device="cpu").backend == "torch"
    with pytest.raises(DeviceError, match=r"photofix\[openvino\]"):
        load_model(path, device="cpu", backend="openvino")
    with pytest.raises(DeviceError, match="unknown backend"):
        load_model(path, device="cpu", backend="tensorrt")


def test_an_export_that_does_not_generalise_across_sizes_is_not_used(dat_weights, home: Path) -> None:
    # DAT-light's trace freezes its attention masks to the traced size: it failed at other sizes.
    _require_openvino()
    model = load_model(dat_weights[4], device="cpu", backend="openvino", sha256="e" * 64)
    assert model.backend == "torch" and "OpenVINO could not export DAT" in model.backend_note
    assert not any((home / "openvino").rglob("network.xml"))  # a failed check saves nothing


def test_a_failure_while_running_switches_to_torch_for_good(tmp_path: Path, home: Path, astronaut: np.ndarray) -> None:
    _require_openvino()
    path = _weights(tmp_path, "Compact")
    model = load_model(path, device="cpu", sha256="f" * 64)
    assert model.backend == "openvino"

    def broken(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("Exception from src/plugins/intel_cpu: reshape failed")

    model._openvino = broken
    x = _photo(astronaut)
    assert torch.equal(model(x), load_model(path, device="cpu", backend="torch")(x))
    assert model.backend == "torch" and "reshape failed" in model.backend_note
