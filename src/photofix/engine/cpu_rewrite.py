"""Numerically equivalent rewrites that make models faster on CPU.

Measured in ``benchmarks/CPU_SPEED.md``: on this project's 2-core CPU,
channels_last memory plus a single ``F.layer_norm`` in place of the hand-written
channel LayerNorms made NAFNet 1.2-2.1x and Restormer 1.3-1.7x faster, folding
FFDNet's BatchNorms into its convolutions 1.4-1.6x, and channels_last alone
SCUNet/DRUNet 1.1-1.4x, with max abs differences of at most 1.7e-5. GPUs were
not measured, so the rewrites are applied on CPU only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Hand-written channel LayerNorms and their epsilons, by (module name suffix, class name).
# NAFNet's LayerNorm2d stores weight/bias/eps itself; Restormer's LayerNorm wraps a
# WithBias_LayerNorm body whose eps is fixed at 1e-5. Restormer's BiasFree variant
# (x / std, no mean subtraction in the numerator) has no fused equivalent and is left alone.
_NAFNET_NORM = ("NAFNet", "LayerNorm2d")
_RESTORMER_NORM = ("Restormer", "LayerNorm")
_RESTORMER_EPS = 1e-5


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor as one ``F.layer_norm`` call.

    On a channels_last tensor both permutes are free views, so the whole norm is one
    vectorised kernel instead of five elementwise passes.
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter, eps: float) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class CpuRewrites:
    """What ``rewrite_for_cpu`` changed in a model."""

    layer_norms: int = 0
    batch_norms: int = 0
    channels_last: bool = False


def _is(module: nn.Module, family_and_class: tuple[str, str]) -> bool:
    family, cls = family_and_class
    kind = type(module)
    return kind.__name__ == cls and family in kind.__module__


def _replacement_norm(module: nn.Module) -> nn.Module | None:
    if _is(module, _NAFNET_NORM):
        return ChannelLayerNorm(module.weight, module.bias, float(module.eps))
    if _is(module, _RESTORMER_NORM):
        body = getattr(module, "body", None)
        if body is not None and type(body).__name__ == "WithBias_LayerNorm":
            return ChannelLayerNorm(body.weight, body.bias, _RESTORMER_EPS)
    return None


def fuse_channel_layer_norms(model: nn.Module) -> int:
    """Swap NAFNet's and Restormer's (WithBias) channel LayerNorms for ``ChannelLayerNorm``."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            replacement = _replacement_norm(child)
            if replacement is not None:
                setattr(parent, name, replacement)
                swapped += 1
    return swapped


def fold_batch_norms(model: nn.Module) -> int:
    """Fold each eval-mode BatchNorm2d that directly follows a Conv2d inside an ``nn.Sequential``."""
    folded = 0
    for parent in list(model.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        layers = list(parent)
        kept: list[nn.Module] = []
        i = 0
        while i < len(layers):
            layer, following = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
                kept.append(fuse_conv_bn_eval(layer, following))
                folded += 1
                i += 2
            else:
                kept.append(layer)
                i += 1
        if len(kept) != len(layers):
            # Rebuild in place so references to the Sequential (e.g. ``self.layers``) stay valid.
            for index in range(len(layers) - 1, -1, -1):
                del parent[index]
            for index, layer in enumerate(kept):
                parent.add_module(str(index), layer)
    return folded


def rewrite_for_cpu(model: nn.Module) -> CpuRewrites:
    """Apply the CPU rewrites to an eval-mode model in place; inputs should then be channels_last."""
    if model.training:
        raise ValueError("rewrite_for_cpu needs an eval-mode model (BatchNorm folding uses running stats)")
    norms = fuse_channel_layer_norms(model)
    folded = fold_batch_norms(model)
    model.to(memory_format=torch.channels_last)
    return CpuRewrites(layer_norms=norms, batch_norms=folded, channels_last=True)


__all__ = ["ChannelLayerNorm", "CpuRewrites", "fold_batch_norms", "fuse_channel_layer_norms", "rewrite_for_cpu"]
