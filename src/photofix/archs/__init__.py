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
    return reg


NoiseLevelCall = Callable[[torch.nn.Module, torch.Tensor, float], torch.Tensor]

# Non-blind denoisers: how to pass the noise level (std on the [0, 1] scale).
_NOISE_LEVEL_CALLS: dict[str, NoiseLevelCall] = {
    "FFDNet": lambda model, x, level: model(x, level),
    # DRUNet takes the noise level as a constant extra input plane (spandrel fixes it at 15).
    "DRUNet": lambda model, x, level: model(torch.cat([x, torch.full_like(x[:, :1], level)], dim=1)),
}


def noise_level_call(arch_id: str) -> NoiseLevelCall | None:
    """The call that feeds a noise level to ``arch_id``, or None for blind models."""
    return _NOISE_LEVEL_CALLS.get(arch_id)


__all__ = ["noise_level_call", "registry"]
