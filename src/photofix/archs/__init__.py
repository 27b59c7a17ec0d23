"""Architectures photofix adds to spandrel's, and the registry that holds both.

The registry is a copy of spandrel's main registry plus an explicit list, so
nothing global is mutated and no folder is scanned.
"""

from __future__ import annotations

from functools import lru_cache

from photofix.archs._deferred_import import import_spandrel

import_spandrel()  # before any spandrel name: keeps torchvision out of start-up (see the module)

from spandrel import MAIN_REGISTRY, ArchRegistry, ArchSupport  # noqa: E402

from photofix.archs.fdrnet import FDRNetArch  # noqa: E402
from photofix.archs.ffdnet import FFDNetArch  # noqa: E402
from photofix.archs.scratch_unet import ScratchUNetArch  # noqa: E402
from photofix.archs.shadowformer import ShadowFormerArch  # noqa: E402
from photofix.archs.traits import ArchTraits, NoiseLevelCall, traits_of  # noqa: E402


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
    reg.add(ArchSupport.from_architecture(FDRNetArch()))
    return reg


def internal_grid(arch_id: str) -> int:
    """The pixel grid tiles of ``arch_id`` should start on (1: any pixel)."""
    return traits_of(arch_id).grid


def noise_level_call(arch_id: str) -> NoiseLevelCall | None:
    """The call that feeds a noise level to ``arch_id``, or None for blind models."""
    return traits_of(arch_id).noise_level


__all__ = ["ArchTraits", "internal_grid", "noise_level_call", "registry", "traits_of"]
