"""What the engine must know about an architecture beyond spandrel's descriptor, declared once.

spandrel's descriptor gives scale, channels, size requirements, a tiling hint and precision
support. These traits add what photofix measured or needs: the grid tiles must start on,
how a non-blind denoiser takes its noise level, and whether the measured CPU rewrites apply.
In-house architectures declare theirs beside their code (``archs/ffdnet``); spandrel's are
declared here. The engine reads only ``traits_of``, never a name-keyed table of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

NoiseLevelCall = Callable[[torch.nn.Module, torch.Tensor, float], torch.Tensor]
# Face restorers: (model, aligned 512-px faces in [0, 1], fidelity in [0, 1]) -> restored faces in [0, 1].
FaceCall = Callable[[torch.nn.Module, torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class ArchTraits:
    # Tiles start on multiples of this. NAFNet pads to 2**stages = 16 and SCUNet to 64 (three 2x
    # downsamplings of 8-px windows): off that grid a tile sees a shifted grid and its output
    # departs from the whole image's (benchmarks/TILE_DEPARTURE.md: NAFNet 48-53 dB on the
    # grid, 20-30 dB at offsets 1-8).
    grid: int = 1
    # Non-blind denoisers: how to pass the noise level (std on the [0, 1] scale); None: blind.
    noise_level: NoiseLevelCall | None = None
    # cpu_rewrite's channels-last / fused LayerNorm / folded BatchNorm, measured equal within 1e-4.
    cpu_rewrites: bool = False
    # Precision support where photofix measured otherwise than spandrel's descriptor says (None: as it says).
    half: bool | None = None
    bf16: bool | None = None
    # OpenVINO (the optional extra) measured clearly faster than torch on a CPU in fp32, and
    # equivalent: ``--backend auto`` uses it there (benchmarks/PRECISION.md).
    openvino: bool = False
    # Face restorers: how to run one on aligned faces. spandrel's own call feeds GFPGAN and
    # CodeFormer [0, 1] pixels, but they were trained on [-1, 1] and give [-1, 1] back.
    face_call: FaceCall | None = None


def _plane_input(model: torch.nn.Module, x: torch.Tensor, level: float) -> torch.Tensor:
    # DRUNet takes the noise level as a constant extra input plane (spandrel fixes it at 15).
    return model(torch.cat([x, torch.full_like(x[:, :1], level)], dim=1))


def _gfpgan(model: torch.nn.Module, x: torch.Tensor, fidelity: float) -> torch.Tensor:
    # The stored noise maps instead of fresh random ones: the same photo gives the same face.
    return (model(x * 2 - 1, return_rgb=False, randomize_noise=False)[0] + 1) / 2


def _codeformer(model: torch.nn.Module, x: torch.Tensor, fidelity: float) -> torch.Tensor:
    # CodeFormer's weight w: 0 = the codebook's face (most restored), 1 = closest to the input.
    return (model(x * 2 - 1, weight=fidelity)[0] + 1) / 2


def _restoreformer(model: torch.nn.Module, x: torch.Tensor, fidelity: float) -> torch.Tensor:
    return (model(x * 2 - 1)[0] + 1) / 2


_SPANDREL_TRAITS: dict[str, ArchTraits] = {
    # OpenVINO fp32 took 0.54x of torch's CPU time for Compact x4, outputs within 1.2e-7.
    "Compact": ArchTraits(openvino=True),
    "NAFNet": ArchTraits(grid=16, cpu_rewrites=True),
    "SCUNet": ArchTraits(grid=64, cpu_rewrites=True),
    "Restormer": ArchTraits(cpu_rewrites=True),
    "DRUNet": ArchTraits(noise_level=_plane_input, cpu_rewrites=True),
    # The raw network photofix calls builds its query embeddings in float32: bf16 weights fail to
    # multiply with them (tests/test_model_protocol.py), although the descriptor declares bf16.
    "DDColor": ArchTraits(bf16=False),
    "GFPGAN": ArchTraits(face_call=_gfpgan),
    "CodeFormer": ArchTraits(face_call=_codeformer),
    "RestoreFormer": ArchTraits(face_call=_restoreformer),
}


def traits_of(arch_id: str) -> ArchTraits:
    """The traits of ``arch_id`` (defaults for an architecture that needs none)."""
    from photofix.archs.ffdnet import TRAITS as FFDNET_TRAITS

    return {"FFDNet": FFDNET_TRAITS, **_SPANDREL_TRAITS}.get(arch_id, ArchTraits())


__all__ = ["ArchTraits", "FaceCall", "NoiseLevelCall", "traits_of"]
