"""In-house BOPB scratch-detection UNet: the release's file layout loads strictly, the call
contract holds, the key names are upstream's, and other architectures are not mistaken for it.

The release (``FT_Epoch_latest.pt``) cannot be downloaded here, so a randomly initialised
network in a small configuration is saved the way the release is.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from photofix.archs.scratch_unet import ScratchUNet, ScratchUNetArch
from photofix.errors import ModelLoadError
from photofix.engine.models import load_model, read_state_dict
from tests.helpers import assert_stray_and_missing_keys_refused, randomize_batch_norm
from tests.test_model_lineup import BUILDERS

ARCH = "BOPBScratchUNet"


def _random_net(seed: int = 0, **config) -> ScratchUNet:
    """A ScratchUNet with random weights *and* batch-norm statistics (so BN is not a no-op)."""
    torch.manual_seed(seed)
    return randomize_batch_norm(ScratchUNet(**config))


def _training_checkpoint(net: ScratchUNet) -> dict:
    """The release's top level: ``model_state`` is what upstream's detection.py reads.

    The other entries are illustrative: the release is 451,663,663 bytes, about three times
    its 150.5 MB of fp32 weights, which suggests two Adam moments per weight as well, but the
    training code is unpublished and the names of those entries are not known.
    """
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    net.train()
    net(torch.rand(1, 1, 32, 32)).mean().backward()
    optimizer.step()
    net.eval()
    return {"model_state": net.state_dict(), "optimizer_state": optimizer.state_dict(), "epoch": 30}


@pytest.fixture(scope="module")
def release_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScratchUNet]:
    net = _random_net(depth=4, width=4)  # the release's depth (multiple of 16), tiny width
    path = tmp_path_factory.mktemp("bopb") / "FT_Epoch_latest.pt"
    torch.save(_training_checkpoint(net), path)
    return path, net


def test_release_layout_loads_strictly_and_keeps_size(release_like) -> None:
    path, net = release_like
    model = load_model(path, expected_arch=ARCH, device="cpu")
    assert (model.arch, model.in_channels, model.out_channels, model.scale) == (ARCH, 1, 1, 1)
    assert (model.multiple_of, model.minimum_size, model.tiling_discouraged) == (16, 32, True)
    loaded = model.descriptor.model.state_dict()
    assert loaded.keys() == net.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())
    for h, w in ((70, 93), (9, 20)):  # not multiples of 16; the second is under the minimum too
        out = model(torch.rand(1, 1, h, w))
        assert out.shape == (1, 1, h, w)
        assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0


def test_extra_or_missing_keys_are_refused(release_like, tmp_path: Path) -> None:
    state = release_like[1].state_dict()
    assert_stray_and_missing_keys_refused(state, "model_state", "up_path.0.up.2.stray", "down_path.1.block.5.bias", tmp_path)


def test_call_is_sigmoid_of_net_on_minus_one_to_one(release_like) -> None:
    path, net = release_like
    descriptor = load_model(path, device="cpu").descriptor
    x = torch.rand(1, 1, 48, 64)  # a multiple of 16: no padding in the way
    with torch.no_grad():
        expected = torch.sigmoid(net((x - 0.5) / 0.5))
        unnormalised = torch.sigmoid(net(x))
    got = descriptor(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(got, unnormalised, atol=1e-3)  # the check can tell them apart


# Upstream's state-dict keys, in order, for UNet(in_channels=1, out_channels=1, depth=1,
# conv_num=2, wf=2, padding=True, batch_norm=True, up_mode="upsample", antialiasing=True).
_EXPECTED_DEPTH1 = """
first.1.weight first.1.bias
down_path.0.block.1.weight down_path.0.block.1.bias
down_path.0.block.2.weight down_path.0.block.2.bias down_path.0.block.2.running_mean
down_path.0.block.2.running_var down_path.0.block.2.num_batches_tracked
down_path.0.block.5.weight down_path.0.block.5.bias
down_path.0.block.6.weight down_path.0.block.6.bias down_path.0.block.6.running_mean
down_path.0.block.6.running_var down_path.0.block.6.num_batches_tracked
down_sample.0.1.weight down_sample.0.1.bias
down_sample.0.2.weight down_sample.0.2.bias down_sample.0.2.running_mean
down_sample.0.2.running_var down_sample.0.2.num_batches_tracked
down_sample.0.4.filt
up_path.0.up.2.weight up_path.0.up.2.bias
up_path.0.conv_block.block.1.weight up_path.0.conv_block.block.1.bias
up_path.0.conv_block.block.2.weight up_path.0.conv_block.block.2.bias
up_path.0.conv_block.block.2.running_mean up_path.0.conv_block.block.2.running_var
up_path.0.conv_block.block.2.num_batches_tracked
up_path.0.conv_block.block.5.weight up_path.0.conv_block.block.5.bias
up_path.0.conv_block.block.6.weight up_path.0.conv_block.block.6.bias
up_path.0.conv_block.block.6.running_mean up_path.0.conv_block.block.6.running_var
up_path.0.conv_block.block.6.num_batches_tracked
last.1.weight last.1.bias
""".split()


def test_key_names_and_order_are_upstreams() -> None:
    state = ScratchUNet(depth=1, width=4).state_dict()
    assert list(state) == _EXPECTED_DEPTH1
    assert tuple(state["up_path.0.up.2.weight"].shape) == (4, 8, 3, 3)


def _patterned_state(net: ScratchUNet) -> dict[str, torch.Tensor]:
    """Deterministic, RNG-free weights (sines) with enough gain that every layer matters."""
    state = net.state_dict()
    for n, (key, value) in enumerate(state.items()):
        if key.endswith(("filt", "num_batches_tracked")):
            continue
        wave = torch.sin(torch.arange(value.numel(), dtype=torch.float64) * 0.7 + n)
        if key.endswith("running_var") or (key.endswith(".weight") and value.ndim == 1):
            wave = 1.0 + 0.5 * wave  # BN scale and variance around 1
        elif value.ndim == 4:
            wave = wave / math.sqrt(value[0].numel())  # conv weights: 1/sqrt(fan-in)
        else:
            wave = 0.05 * wave  # biases, BN shift and mean
        value.copy_(wave.reshape(value.shape))
    return state


def test_logits_match_upstream_reference() -> None:
    """Logits that upstream's own UNet (Global/detection_models/networks.py at commit
    33875ec, depth=2, wf=2, conv_num=2, batch_norm, upsample, antialiasing) gave for
    these weights and this input, sampled every 5th row and 7th column. Swapping the
    skip-concatenation order moves them by ~0.35, a 0.1 LeakyReLU slope by ~0.46."""
    net = ScratchUNet(depth=2, width=4).eval()
    net.load_state_dict(_patterned_state(net))
    yy, xx = torch.meshgrid(torch.arange(16.0, dtype=torch.float64), torch.arange(24.0, dtype=torch.float64), indexing="ij")
    image = (0.5 + 0.5 * torch.sin(0.9 * yy + 0.4 * xx) * torch.cos(0.3 * xx)).float()[None, None]
    expected = torch.tensor(
        [
            [1.10124, 0.09547, -0.07024, -3.47626],
            [1.61946, 0.57897, 0.93628, 0.25188],
            [-0.07694, 0.54438, 1.61369, 1.31938],
            [-0.00808, -0.05255, 0.36507, 0.49884],
        ]
    )
    with torch.no_grad():
        logits = net((image - 0.5) / 0.5)
    torch.testing.assert_close(logits[0, 0, ::5, ::7], expected, rtol=0, atol=1e-4)


def test_release_config_shapes() -> None:
    with torch.device("meta"):  # 37.6 M parameters: shapes only, no memory
        state = ScratchUNet(in_channels=1, out_channels=1, depth=4, width=64).state_dict()
    assert len(state) == 156
    shapes = {
        "first.1.weight": (64, 1, 7, 7),
        "down_sample.0.1.weight": (64, 64, 3, 3),
        "down_sample.0.4.filt": (64, 1, 3, 3),
        "down_sample.3.4.filt": (512, 1, 3, 3),
        "down_path.0.block.1.weight": (128, 64, 3, 3),
        "down_path.3.block.5.weight": (1024, 1024, 3, 3),
        "down_path.3.block.6.running_var": (1024,),
        "up_path.0.up.2.weight": (512, 1024, 3, 3),
        "up_path.0.conv_block.block.1.weight": (512, 1024, 3, 3),
        "up_path.3.conv_block.block.6.num_batches_tracked": (),
        "last.1.weight": (1, 64, 3, 3),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes


def test_blur_filter_is_normalised_binomial() -> None:
    filt = ScratchUNet(depth=1, width=2).state_dict()["down_sample.0.4.filt"]
    expected = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    assert filt.shape == (2, 1, 3, 3)
    assert torch.equal(filt[0, 0], expected) and torch.equal(filt[1, 0], expected)


@pytest.mark.parametrize(
    "config",
    [
        {"depth": 3, "width": 4, "conv_num": 1},
        {"depth": 2, "width": 4, "batch_norm": False, "antialias": False, "up_mode": "upconv"},
    ],
)
def test_load_reads_the_config_from_the_keys(config: dict) -> None:
    net = _random_net(**config)
    descriptor = ScratchUNetArch().load(net.state_dict())  # strict load: wrong config raises
    assert descriptor.size_requirements.multiple_of == 2 ** config["depth"]
    x = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(descriptor(x), torch.sigmoid(net((x - 0.5) / 0.5)), rtol=0, atol=1e-6)


def _dncnn() -> dict:
    """KAIR's DnCNN: ``model.N`` keys, a plain conv stack."""
    state = {}
    for i in range(17):
        in_c, out_c = (1 if i == 0 else 64), (1 if i == 16 else 64)
        state[f"model.{2 * i}.weight"] = torch.randn(out_c, in_c, 3, 3)
        state[f"model.{2 * i}.bias"] = torch.zeros(out_c)
    return state


def _colour_unet() -> dict:
    """Same UNet class with 3 channels: not the scratch detector (no sigmoid semantics)."""
    return ScratchUNet(in_channels=3, out_channels=3, depth=2, width=4).state_dict()


@pytest.mark.parametrize("name", [*BUILDERS, "DnCNN", "3-channel UNet"])
def test_other_checkpoints_are_not_scratch_unets(name: str, tmp_path: Path) -> None:
    builder = {**BUILDERS, "DnCNN": _dncnn, "3-channel UNet": _colour_unet}[name]
    path = tmp_path / "other.pth"
    torch.save(builder(), path)
    state = read_state_dict(path)  # unwrapped as for a real load
    assert ScratchUNetArch().detect(state) is False
    if name == "3-channel UNet":
        with pytest.raises(ModelLoadError, match="not a Bringing-Old-Photos"):
            ScratchUNetArch().load(state)
    elif name in ("DnCNN", "FFDNet", "NAFNet"):
        assert load_model(path, device="cpu").arch == name
