"""spandrel architecture for FDRNet (Zhu et al., ICCV 2021; MIT, rayleizhu/FDRNet): a shadow detector.

The release (``sbu_epoch_010.pt``, ``istd_epoch_010.pt``) is ``{"net": state_dict}``, which
spandrel's canonicaliser unwraps; the keys are upstream's (EfficientNet-B3 under ``feat_net.``,
then ``proj_convs``, ``stem_conv``, ``fr``, ``fc``, ``pred_conv``), which :class:`FDRNet`
reproduces: no renaming.

The network normalises its input itself and returns logits; the descriptor's ``call_fn`` turns
them into the shadow probability, so a call maps (1, 3, H, W) in [0, 1] to (1, 1, H, W) in
[0, 1]. It was trained on photos resized to 400 x 400; deshadow runs it at that size
(``tasks.processors.SHADOW_DETECT_SIDE``).
"""

from __future__ import annotations

import torch
from spandrel import Architecture, ImageModelDescriptor, ModelTiling, SizeRequirements, StateDict

from photofix.archs.fdrnet.network import B3_BLOCKS, B3_STAGES, FDRNet
from photofix.errors import ModelLoadError

# Keys of the release that no other photofix or spandrel architecture has together.
_SIGNATURE = (
    "feat_net._conv_stem.weight",
    "feat_net._blocks.0._depthwise_conv.weight",
    "feat_net._conv_head.weight",
    "norm.mean",
    "proj_convs.0.0.weight",
    "stem_conv.0.weight",
    "fr.inv_conv.conv1.weight",
    "fr.var_conv.conv1.weight",
    "pred_conv.0.weight",
)


def _detect(state_dict: StateDict) -> bool:
    """The upstream key layout around an EfficientNet-B3 backbone (the only one released)."""
    if not all(key in state_dict for key in _SIGNATURE):
        return False
    stem, last = state_dict["feat_net._conv_stem.weight"], f"feat_net._blocks.{B3_BLOCKS - 1}._bn2.weight"
    return (
        stem.ndim == 4
        and tuple(stem.shape) == (B3_STAGES[0][4], 3, 3, 3)
        and last in state_dict
        and f"feat_net._blocks.{B3_BLOCKS}._bn2.weight" not in state_dict
    )


class FDRNetArch(Architecture[FDRNet]):
    def __init__(self) -> None:
        super().__init__(id="FDRNet", name="FDRNet shadow detector", detect=_detect)

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[FDRNet]:
        if not _detect(state_dict):  # load() may be called without detect()
            raise ModelLoadError(
                "not an FDRNet state dict; expected rayleizhu/FDRNet's keys around an EfficientNet-B3 "
                "(feat_net, proj_convs, stem_conv, fr, pred_conv)"
            )
        proj = state_dict["proj_convs.0.0.weight"].shape[0]
        pred = state_dict["stem_conv.0.weight"].shape[0]
        model = FDRNet(proj_planes=proj, pred_planes=pred)
        return ImageModelDescriptor(
            model,
            state_dict,  # loaded strictly by the descriptor: the key names are upstream's
            architecture=self,
            purpose="Restoration",  # spandrel has no "segmentation"; this is the nearest
            tags=["efficientnet-b3", f"{pred}nf"],
            # fp16/bf16 were not checked against the real weights: stay in fp32.
            supports_half=False,
            supports_bfloat16=False,
            scale=1,
            input_channels=3,
            output_channels=1,
            # Five stride-2 stages; below 32 px the deepest maps would be empty.
            size_requirements=SizeRequirements(minimum=32),
            # Squeeze-excitation pools whole maps and the photo is seen at one small size.
            tiling=ModelTiling.DISCOURAGED,
            call_fn=_probability,
        )


def _probability(model: FDRNet, x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB → logits → shadow probability in [0, 1] (upstream's sigmoid)."""
    return torch.sigmoid(model(x))


__all__ = ["FDRNet", "FDRNetArch"]
