"""In-house FFDNet: both weight layouts load, detect before DnCNN, and are wired right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photofix.errors import ArchitectureMismatch, ModelLoadError
from photofix.engine.models import load_model, read_state_dict
from tests.helpers import kair_ffdnet_state_dict


def test_ipol_weights_match_reference_network_exactly(ffdnet_weights, ffdnet_reference) -> None:
    for name, channels in (("rgb", 3), ("gray", 1)):
        # Exact equality holds for the network as published; the CPU rewrites (BatchNorm folded
        # into the convs) are checked separately to 1e-4 in test_cpu_rewrite.py and below.
        model = load_model(ffdnet_weights[name], expected_arch="FFDNet", device="cpu", cpu_rewrites=False)
        rewritten = load_model(ffdnet_weights[name], expected_arch="FFDNet", device="cpu")
        assert (model.arch, model.in_channels, model.scale) == ("FFDNet", channels, 1)
        reference = ffdnet_reference.FFDNet(num_input_channels=channels)
        reference.load()
        reference.eval()
        x = torch.rand(1, channels, 37, 50)  # odd height: both pad by reflection
        with torch.no_grad():
            expected = reference(x, torch.tensor([30 / 255])).clamp(0, 1)
        got = model(x, sigma=30)
        assert torch.equal(got, expected)
        assert (rewritten(x, sigma=30) - expected).abs().max() <= 1e-4


def test_kair_layout_is_ffdnet_not_dncnn(tmp_path: Path) -> None:
    path = tmp_path / "ffdnet_color.pth"
    torch.save(kair_ffdnet_state_dict(identity=True), path)
    model = load_model(path, expected_arch="FFDNet", device="cpu")
    assert model.takes_noise_level and model.in_channels == 3
    x = torch.rand(1, 3, 20, 30)
    assert torch.allclose(model(x, sigma=10), x, atol=1e-6)


def test_kair_grey_layout(tmp_path: Path) -> None:
    path = tmp_path / "ffdnet_gray.pth"
    torch.save(kair_ffdnet_state_dict(channels=1, features=64, layers=15, identity=True), path)
    model = load_model(path, device="cpu")
    x = torch.rand(1, 1, 21, 16)
    assert model.in_channels == 1
    assert torch.allclose(model(x, sigma=5), x, atol=1e-6)


def test_dncnn_layout_is_still_dncnn(tmp_path: Path) -> None:
    state = {}
    for i in range(17):  # KAIR DnCNN: same key names, but C input channels
        in_c = 3 if i == 0 else 64
        out_c = 3 if i == 16 else 64
        state[f"model.{2 * i}.weight"] = torch.randn(out_c, in_c, 3, 3) * 0.01
        state[f"model.{2 * i}.bias"] = torch.zeros(out_c)
    path = tmp_path / "dncnn_color_blind.pth"
    torch.save(state, path)
    assert load_model(path, device="cpu").arch == "DnCNN"
    with pytest.raises(ArchitectureMismatch, match="expected a FFDNet model but the file holds DnCNN"):
        load_model(path, expected_arch="FFDNet", device="cpu")


def test_wrappers_are_unwrapped(tmp_path: Path) -> None:
    state = kair_ffdnet_state_dict()
    for wrapper in ("params", "model_state", "state_dict"):
        path = tmp_path / f"{wrapper}.pth"
        torch.save({wrapper: state, "epoch": 3}, path)
        assert set(read_state_dict(path)) == set(state)


def test_safetensors_checkpoints_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "ffdnet.safetensors"
    save_file(kair_ffdnet_state_dict(), str(path))
    assert load_model(path, device="cpu").arch == "FFDNet"


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a readable"), (b"this is not a checkpoint", "not a readable")],
)
def test_unreadable_checkpoints_raise_model_load_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path, device="cpu")


def test_unknown_architecture_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ModelLoadError, match="unknown model architecture"):
        load_model(path, device="cpu")


def test_pickled_code_is_never_executed(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (Path("/tmp/photofix-pwned").touch, ())

    path = tmp_path / "evil.pth"
    torch.save({"model.0.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(ModelLoadError):
        load_model(path, device="cpu")
    assert not Path("/tmp/photofix-pwned").exists()


def test_noise_level_reaches_the_network(ffdnet_weights) -> None:
    model = load_model(ffdnet_weights["rgb"], device="cpu")
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((1, 3, 48, 48), dtype=np.float32))
    assert not torch.allclose(model(x, sigma=5), model(x, sigma=50))


def test_blind_spandrel_model_equals_its_network(tmp_path: Path) -> None:
    """Odd sizes are padded and cropped back; output equals the bare network's, clamped."""
    from spandrel.architectures.DnCNN import DnCNN

    net = DnCNN(in_nc=3, out_nc=3, nc=16, nb=8, act_mode="R")
    path = tmp_path / "dncnn.pth"
    torch.save(net.state_dict(), path)
    model = load_model(path, device="cpu")
    x = torch.rand(1, 3, 21, 19)
    with torch.no_grad():
        expected = net.eval()(x).clamp(0, 1)
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_drunet_gets_the_requested_noise_level(tmp_path: Path) -> None:
    from spandrel.architectures.DRUNet import DRUNet

    torch.manual_seed(0)
    net = DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=2)
    path = tmp_path / "drunet_color.pth"
    torch.save(net.state_dict(), path)
    model = load_model(path, device="cpu")
    assert model.arch == "DRUNet" and model.takes_noise_level and model.in_channels == 3
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = net.eval()(torch.cat([x, torch.full((1, 1, 32, 32), 30 / 255)], 1)).clamp(0, 1)
    assert torch.allclose(model(x, sigma=30), expected, atol=1e-6)
