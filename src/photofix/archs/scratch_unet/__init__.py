"""spandrel architecture for the scratch detector of "Bringing Old Photos Back to Life".

The release (``checkpoints/detection/FT_Epoch_latest.pt``) is a training checkpoint
whose ``model_state`` (unwrapped by ``photofix.engine.models``) holds the UNet's state dict
with the upstream key names, which ``ScratchUNet`` reproduces: no renaming.

The network wants grey in [-1, 1] and returns logits; the descriptor's ``call_fn``
converts from and to photofix's contract, so a call maps (1, 1, H, W) in [0, 1] to
the scratch probability (1, 1, H, W) in [0, 1] (upstream thresholds it at 0.4).
"""

from __future__ import annotations

import torch
from spandrel import Architecture, ImageModelDescriptor, ModelTiling, SizeRequirements, StateDict

from photofix.errors import ModelLoadError
from photofix.archs.scratch_unet.network import ScratchUNet

# Keys every variant of the upstream UNet has, whatever its depth, width or options.
_SIGNATURE = (
    "first.1.weight",
    "down_sample.0.1.weight",
    "down_path.0.block.1.weight",
    "up_path.0.conv_block.block.1.weight",
    "last.1.weight",
)


def _detect(state_dict: StateDict) -> bool:
    """The upstream UNet's key layout, a 7x7 first conv, and one plane in and out.

    The same UNet class is used with 3 channels elsewhere; only the 1-in/1-out
    scratch detector gets this architecture's [-1, 1] input and sigmoid output.
    """
    if not all(key in state_dict for key in _SIGNATURE):
        return False
    first, last = state_dict["first.1.weight"], state_dict["last.1.weight"]
    return (
        first.ndim == 4
        and tuple(first.shape[1:]) == (1, 7, 7)
        and last.ndim == 4
        and tuple(last.shape[1:]) == (first.shape[0], 3, 3)
        and last.shape[0] == 1
    )


def _count(state_dict: StateDict, prefix: str) -> int:
    """How many consecutive ``{prefix}{i}.`` indices exist, from 0."""
    n = 0
    while any(key.startswith(f"{prefix}{n}.") for key in state_dict):
        n += 1
    return n


def _config(state_dict: StateDict) -> dict:
    """ScratchUNet's constructor arguments, read from the keys and shapes."""
    block = "down_path.0.block."
    conv_num = sum(1 for k, v in state_dict.items() if k.startswith(block) and k.endswith(".weight") and v.ndim == 4)
    up_mode = "upsample" if "up_path.0.up.2.weight" in state_dict else "upconv"
    return {
        "in_channels": state_dict["first.1.weight"].shape[1],
        "out_channels": state_dict["last.1.weight"].shape[0],
        "depth": _count(state_dict, "down_path."),
        "width": state_dict["first.1.weight"].shape[0],
        "conv_num": conv_num,
        "batch_norm": f"{block}2.running_mean" in state_dict,
        "antialias": "down_sample.0.4.filt" in state_dict,
        "up_mode": up_mode,
    }


class ScratchUNetArch(Architecture[ScratchUNet]):
    def __init__(self) -> None:
        super().__init__(id="BOPBScratchUNet", name="BOPB scratch detector", detect=_detect)

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[ScratchUNet]:
        if not _detect(state_dict):  # load() may be called without detect()
            raise ModelLoadError(
                "not a Bringing-Old-Photos-Back-to-Life scratch-detector state dict; "
                "check that the file is detection/FT_Epoch_latest.pt"
            )
        config = _config(state_dict)
        model = ScratchUNet(**config)
        depth = config["depth"]
        return ImageModelDescriptor(
            model,
            state_dict,  # loaded strictly by the descriptor: the key names are upstream's
            architecture=self,
            purpose="Restoration",  # spandrel has no "segmentation"; this is the nearest
            tags=[f"{config['width']}nf", f"depth{depth}"],
            # fp16/bf16 were not checked against the real weights: stay in fp32.
            supports_half=False,
            supports_bfloat16=False,
            scale=1,
            input_channels=1,
            output_channels=1,
            # 2**depth for the pooling; the bottleneck's reflection pad needs ≥ 2 pixels.
            size_requirements=SizeRequirements(minimum=2 ** (depth + 1), multiple_of=2**depth),
            # The receptive field spans hundreds of pixels and upstream runs the whole
            # photo at once (short side 256), so tiles would see less context than it
            # was trained with and disagree at the seams.
            tiling=ModelTiling.DISCOURAGED,
            call_fn=_probability,
        )


def _probability(model: ScratchUNet, x: torch.Tensor) -> torch.Tensor:
    """[0, 1] grey → upstream's normalisation to [-1, 1] → logits → scratch probability in [0, 1]."""
    return torch.sigmoid(model((x - 0.5) / 0.5))


__all__ = ["ScratchUNet", "ScratchUNetArch"]
