"""Architectures photofix adds to spandrel's, and the registry that holds both.

The registry is a copy of spandrel's main registry plus an explicit list, so
nothing global is mutated and no folder is scanned.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from spandrel import MAIN_REGISTRY, ArchRegistry, ArchSupport

from .ffdnet import FFDNetArch
from .scratch_unet import ScratchUNetArch
from .shadowformer import ShadowFormerArch


@lru_cache(maxsize=1)
def registry() -> ArchRegistry:
    """spandrel's architectures, spandrel-extra-arches', and photofix's own."""
    reg = MAIN_REGISTRY.copy()
    try:
        from spandrel_extra_arches import EXTRA_REGISTRY
    except ImportError:  # optional: only needed by non-commercial extra models
        pass
    else:
        reg.add(*EXTRA_REGISTRY)
    # KAIR's FFDNet shares DnCNN's key names; look for FFDNet first.
    reg.add(ArchSupport.from_architecture(FFDNetArch(), before=("DnCNN",)))
    reg.add(ArchSupport.from_architecture(ScratchUNetArch()))
    # spandrel's Uformer detector also matches ShadowFormer's keys (and then fails to load).
    reg.add(ArchSupport.from_architecture(ShadowFormerArch(), before=("Uformer",)))
    return reg


NoiseLevelCall = Callable[[torch.nn.Module, torch.Tensor, float], torch.Tensor]

# Non-blind denoisers: how to pass the noise level (std on the [0, 1] scale).
_NOISE_LEVEL_CALLS: dict[str, NoiseLevelCall] = {
    "FFDNet": lambda model, x, level: model(x, level),
    # DRUNet takes the noise level as a constant extra input plane (spandrel fixes it at 15).
    "DRUNet": lambda model, x, level: model(torch.cat([x, torch.full_like(x[:, :1], level)], dim=1)),
}


# Architectures that pad to, and downsample on, a coarser grid than spandrel reports
# (multiple_of 1): NAFNet pads to 2**stages = 16, SCUNet to 64 (three 2x downsamplings
# of 8-px attention windows). A tile that starts off that grid sees a shifted grid and
# its output departs from the whole image's (benchmarks/TILE_DEPARTURE.md: NAFNet
# interior departure 48-53 dB on the grid, 20-30 dB at offsets 1-8).
_INTERNAL_GRID = {"NAFNet": 16, "SCUNet": 64}


def internal_grid(arch_id: str) -> int:
    """The pixel grid tiles of ``arch_id`` should start on (1: any pixel)."""
    return _INTERNAL_GRID.get(arch_id, 1)


def noise_level_call(arch_id: str) -> NoiseLevelCall | None:
    """The call that feeds a noise level to ``arch_id``, or None for blind models."""
    return _NOISE_LEVEL_CALLS.get(arch_id)


__all__ = ["internal_grid", "noise_level_call", "registry"]
