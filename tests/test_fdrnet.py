"""In-house FDRNet shadow detector: the release's file layout loads strictly, the call contract
holds, the logits are upstream's, and other architectures are not mistaken for it.

The release (``sbu_epoch_010.pt``) cannot be downloaded here, so a randomly initialised network
is saved the way the release is: ``{"net": state_dict}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from photofix.archs.fdrnet import FDRNet, FDRNetArch
from photofix.engine.models import load_model, read_state_dict
from photofix.errors import ModelLoadError
from photofix.tasks.processors import SHADOW_DETECT_SIDE
from tests.helpers import assert_stray_and_missing_keys_refused, randomize_batch_norm
from tests.test_model_lineup import BUILDERS
from tests.test_scratch_unet import _patterned_state

ARCH = "FDRNet"


def random_network(seed: int = 0) -> FDRNet:
    """Random weights *and* batch-norm statistics (so BN is not a no-op), ImageNet statistics kept."""
    torch.manual_seed(seed)
    net = randomize_batch_norm(FDRNet())
    with torch.no_grad():
        net.pred_conv[0].weight.mul_(20)  # unit-length features: give the logits some spread
    return net


def save_release_layout(net: FDRNet, path: Path) -> Path:
    torch.save({"net": net.state_dict()}, path)  # what upstream's test.py reads: ckpt['net']
    return path


@pytest.fixture(scope="module")
def release_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FDRNet]:
    net = random_network()
    return save_release_layout(net, tmp_path_factory.mktemp("fdrnet") / "sbu_epoch_010.pt"), net


def test_release_layout_loads_strictly_and_gives_a_probability_map(release_like) -> None:
    path, net = release_like
    model = load_model(path, expected_arch=ARCH, device="cpu")
    assert (model.arch, model.in_channels, model.out_channels, model.scale) == (ARCH, 3, 1, 1)
    assert (model.multiple_of, model.minimum_size, model.tiling_discouraged) == (1, 32, True)
    loaded = model.descriptor.model.state_dict()
    assert loaded.keys() == net.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())
    for h, w in ((SHADOW_DETECT_SIDE, SHADOW_DETECT_SIDE), (75, 121)):  # upstream's test size, and an odd one
        x = torch.rand(1, 3, h, w)
        out = model(x)
        assert out.shape == (1, 1, h, w)
        assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0
        with torch.no_grad():
            torch.testing.assert_close(out, torch.sigmoid(net(x)), rtol=0, atol=1e-6)


def test_extra_or_missing_keys_are_refused(release_like, tmp_path: Path) -> None:
    state = release_like[1].state_dict()
    assert_stray_and_missing_keys_refused(state, "net", "fr.var_conv.stray", "feat_net._blocks.7._se_reduce.bias", tmp_path)


def test_a_shallower_backbone_is_not_taken_for_the_release(release_like) -> None:
    state = {k: v for k, v in release_like[1].state_dict().items() if not k.startswith("feat_net._blocks.25.")}
    assert FDRNetArch().detect(state) is False
    with pytest.raises(ModelLoadError, match="not an FDRNet"):
        FDRNetArch().load(state)


def test_logits_match_upstream_reference() -> None:
    """Logits that upstream's FDRNet (networks/fdrnet.py at ea7e147 on efficientnet-pytorch 0.6.3,
    the version its env.yaml pins; efficientnet-b3, normalize=True, mu_init=0.4, manual) gave for
    these weights and this input, sampled every 15th row and 18th column. Padding stride-2
    convolutions for the actual size instead of the library's fixed 300 px moves them by 0.26;
    leaving out the ImageNet normalisation by 0.17."""
    net = FDRNet().eval()
    state = _patterned_state(net)
    state["norm.mean"].copy_(torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
    state["norm.std"].copy_(torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    state["pred_conv.0.weight"].mul_(20)
    yy, xx = torch.meshgrid(torch.arange(72.0, dtype=torch.float64), torch.arange(90.0, dtype=torch.float64), indexing="ij")
    planes = [0.5 + 0.5 * torch.sin(0.2 * yy + c * xx) * torch.cos(0.05 * xx * (c + 1)) for c in (0.1, 0.2, 0.3)]
    image = torch.stack(planes).float()[None]
    expected = torch.tensor([
        [6.39574, 6.08434, 6.08697, 6.09907, 6.06711],
        [7.67540, 7.71466, 7.70405, 7.60865, 7.74024],
        [7.70689, 7.71959, 7.72942, 7.76553, 7.67933],
        [7.71989, 7.71432, 7.70913, 7.58917, 7.73351],
        [7.71254, 7.72633, 7.72835, 7.74556, 7.68630],
    ])
    with torch.no_grad():
        logits = net(image)
    torch.testing.assert_close(logits[0, 0, ::15, ::18], expected, rtol=0, atol=1e-4)


def test_release_shapes() -> None:
    with torch.device("meta"):  # shapes only
        state = FDRNet().state_dict()
    assert len(state) == 686
    shapes = {
        "feat_net._conv_stem.weight": (40, 3, 3, 3),
        "feat_net._blocks.0._depthwise_conv.weight": (40, 1, 3, 3),
        "feat_net._blocks.0._se_reduce.weight": (10, 40, 1, 1),
        "feat_net._blocks.2._expand_conv.weight": (144, 24, 1, 1),
        "feat_net._blocks.25._project_conv.weight": (384, 2304, 1, 1),
        "feat_net._conv_head.weight": (1536, 384, 1, 1),
        "norm.mean": (1, 3, 1, 1),
        "proj_convs.12.0.weight": (16, 384, 1, 1),
        "stem_conv.0.weight": (32, 208, 1, 1),
        "fr.inv_conv.conv2.weight": (32, 32, 3, 3),
        "fc.weight": (1, 32),
        "pred_conv.0.weight": (1, 32, 1, 1),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert "feat_net._blocks.0._expand_conv.weight" not in state  # expansion 1: no expansion conv
    assert not any(k.startswith(("feat_net._fc", "fr.mu")) for k in state)


@pytest.mark.parametrize("name", [*BUILDERS, "ShadowFormer", "BOPB scratch UNet"])
def test_other_checkpoints_are_not_fdrnet(name: str, tmp_path: Path) -> None:
    from photofix.archs.scratch_unet import ScratchUNet
    from tests.test_shadowformer import _random_network as shadowformer

    builders = {**BUILDERS, "ShadowFormer": lambda: shadowformer().state_dict(),
                "BOPB scratch UNet": lambda: {"model_state": ScratchUNet(depth=2, width=4).state_dict()}}
    path = tmp_path / "other.pth"
    torch.save(builders[name](), path)
    state = read_state_dict(path)  # unwrapped as for a real load
    assert FDRNetArch().detect(state) is False
    with pytest.raises(ModelLoadError):
        load_model(path, expected_arch=ARCH, device="cpu")


# --- as deshadow's mask source (the CLI end to end: tests/test_deshadow_cli.py) --------------


def _photo(height: int = 120, width: int = 160) -> Any:
    from photofix.imageio import Image, ImageMeta

    pixels = np.random.default_rng(0).random((height, width, 3), dtype=np.float32) * 0.5 + 0.25
    return Image(pixels, None, ImageMeta(format="PNG", mode="RGB", bit_depth=8, grayscale=False, source_name="wall.png"))


def _detector(tmp_path: Path, logit: float) -> Any:
    """A loaded FDRNet whose output is ``logit`` everywhere (weights of the last layer zeroed)."""
    net = random_network()
    with torch.no_grad():
        net.pred_conv[0].weight.zero_()
        net.pred_conv[0].bias.fill_(logit)
    return load_model(save_release_layout(net, tmp_path / "sbu_epoch_010.pt"), expected_arch=ARCH, device="cpu")


def test_learned_mask_is_soft_full_size_and_floored(release_like) -> None:
    from photofix.tasks.processors import SHADOW_FLOOR, shadow_mask_with_model

    model = load_model(release_like[0], device="cpu")
    for shape in ((90, 130, 3), (90, 130, 1)):  # colour, and grey given to the RGB network as three planes
        pixels = np.random.default_rng(1).random(shape, dtype=np.float32)
        mask = shadow_mask_with_model(model, pixels)
        assert mask.shape == shape[:2] and mask.dtype == np.float32
        assert 0.0 <= mask.min() and mask.max() <= 1.0
    x = torch.from_numpy(cv2.resize(pixels[..., 0], (400, 400)))[None, None].expand(1, 3, 400, 400)
    probability = cv2.resize(model(x)[0, 0].numpy(), (130, 90), interpolation=cv2.INTER_LINEAR)
    expected = np.clip((probability - SHADOW_FLOOR) / (1 - SHADOW_FLOOR), 0, 1)
    np.testing.assert_allclose(mask, expected, atol=1e-5)


def test_a_nearly_empty_learned_mask_leaves_the_photo_alone(tmp_path: Path) -> None:
    from photofix.tasks.processors import DeshadowProcessor

    image = _photo()
    out, details = DeshadowProcessor(detector=_detector(tmp_path, -8.0)).restore(image)
    assert out.pixels is image.pixels
    assert details["mask_source"] == "fdrnet" and details["shadow_percent"] == 0.0
    assert details["note"].startswith("unchanged: the shadow detector found shadow on under 0.5 %")


def test_the_learned_mask_feeds_shadowformer_and_a_users_mask_wins(tmp_path: Path) -> None:
    from photofix.engine.models import load_masked_model
    from photofix.tasks.processors import DeshadowProcessor
    from tests.test_shadowformer import _random_network as shadowformer

    torch.save({"state_dict": shadowformer().state_dict()}, tmp_path / "model_best.pth")
    relighter = load_masked_model(tmp_path / "model_best.pth", expected_arch="ShadowFormer", device="cpu")
    image, used = _photo(), []
    processor = DeshadowProcessor(model=relighter, model_label="sf", detector=_detector(tmp_path, 8.0),
                                  mask_out=lambda _, mask: used.append(mask))
    out, details = processor.restore(image)
    assert details["mask_source"] == "fdrnet" and details["shadow_percent"] == 100.0
    assert used[-1].min() > 0.99 and not np.array_equal(out.pixels, image.pixels)  # relit by the network
    given = np.zeros(image.pixels.shape[:2], np.float32)
    given[:40] = 1
    processor.user_mask = lambda _: given
    _, details = processor.restore(image)
    assert details["mask_source"] == "given" and np.array_equal(used[-1], given)
