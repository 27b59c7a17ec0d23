"""spandrel architecture for ShadowFormer (Guo et al., AAAI 2023; MIT, GuoLanqing/ShadowFormer).

Released files (``model_best.pth``-style training checkpoints, on Google Drive)
are ``{"epoch", "state_dict", "optimizer"}`` where ``state_dict`` was taken
from a ``torch.nn.DataParallel`` wrapper, so every key starts with
``module.``. ``photofix.engine.models.read_state_dict`` (spandrel's canonicaliser)
unwraps ``state_dict`` and strips ``module.``; what remains has the upstream
key names, which :class:`ShadowFormer` reproduces: no renaming.

The descriptor is a :class:`spandrel.MaskedImageModelDescriptor`: call it with
the image (1, 3, H, W) in [0, 1] and the shadow mask (1, 1, H, W) in [0, 1]
(1 = shadow; pixels >= 0.1 count as shadow in the attention). spandrel pads
both to a multiple of ``8 * win_size`` (reflect at bottom/right, as upstream
``test.py``) and clamps the output to [0, 1], as upstream does.
"""

from __future__ import annotations

import math

from spandrel import Architecture, MaskedImageModelDescriptor, ModelTiling, SizeRequirements, StateDict
from spandrel.util import get_seq_len

from photofix.errors import ModelLoadError
from photofix.archs.shadowformer.network import ShadowFormer

# Keys every released ShadowFormer has, whatever its width, depth or window;
# the CAB and SIA keys set it apart from Uformer, whose stage names it shares.
_SIGNATURE = (
    "input_proj.proj.0.weight",
    "encoderlayer_0.blocks.0.CAB.body.0.weight",
    "dowsample_0.conv.0.weight",
    "encoderlayer_2.blocks.0.attn.relative_position_bias_table",
    "conv.blocks.0.attn.relative_position_bias_table",
    "upsample_2.deconv.0.weight",
    "decoderlayer_2.blocks.0.CAB.CA.conv_du.0.weight",
    "output_proj.proj.0.weight",
)

# State-dict prefixes of the seven stages, in ShadowFormer's ``depths`` order.
_STAGES = (
    "encoderlayer_0",
    "encoderlayer_1",
    "encoderlayer_2",
    "conv",
    "decoderlayer_0",
    "decoderlayer_1",
    "decoderlayer_2",
)
_ATTENTION_STAGES = (2, 3, 4)  # enc2, bottleneck, dec0 are SIM stages
# Heads of the convolution-only stages: unused (they have no attention), upstream's defaults.
_DEFAULT_HEADS = (1, 2, 4, 16, 8, 4, 2)


def _detect(state_dict: StateDict) -> bool:
    """The upstream key layout, with one mask channel more in than out."""
    if not all(key in state_dict for key in _SIGNATURE):
        return False
    first, last = state_dict["input_proj.proj.0.weight"], state_dict["output_proj.proj.0.weight"]
    return first.ndim == 4 and last.ndim == 4 and first.shape[1] == last.shape[0] + 1


def _config(state_dict: StateDict) -> dict:
    """ShadowFormer's constructor arguments, read from the keys and shapes."""
    if not _detect(state_dict):
        raise ModelLoadError(
            "not a ShadowFormer state dict; expected the keys of GuoLanqing/ShadowFormer's "
            "model.py (input_proj, encoderlayer_N, conv, decoderlayer_N, output_proj)"
        )
    attn = "conv.blocks.0.attn."
    if f"{attn}qkv.to_q.depthwise.weight" in state_dict or f"{attn}qkv.to_qkv.weight" in state_dict:
        raise ModelLoadError(
            "this ShadowFormer uses the 'conv' or 'linear_concat' token projection; "
            "only the released 'linear' projection is supported"
        )
    embed_dim = state_dict["input_proj.proj.0.weight"].shape[0]
    table_rows = state_dict[f"{attn}relative_position_bias_table"].shape[0]
    win_size = (math.isqrt(table_rows) + 1) // 2  # the table holds (2w - 1)^2 offsets
    heads = list(_DEFAULT_HEADS)
    for i in _ATTENTION_STAGES:
        heads[i] = state_dict[f"{_STAGES[i]}.blocks.0.attn.relative_position_bias_table"].shape[1]
    mlp = "encoderlayer_0.blocks.0.mlp."
    token_mlp = "ffn" if f"{mlp}fc1.weight" in state_dict else "leff"
    hidden = state_dict[f"{mlp}fc1.weight" if token_mlp == "ffn" else f"{mlp}linear1.0.weight"].shape[0]
    return {
        "in_chans": state_dict["output_proj.proj.0.weight"].shape[0],
        "embed_dim": embed_dim,
        "depths": tuple(get_seq_len(state_dict, f"{stage}.blocks") for stage in _STAGES),
        "num_heads": tuple(heads),
        "win_size": win_size,
        "mlp_ratio": hidden / embed_dim,
        "token_mlp": token_mlp,
        "qkv_bias": f"{attn}qkv.to_q.bias" in state_dict,
    }


class ShadowFormerArch(Architecture[ShadowFormer]):
    def __init__(self) -> None:
        super().__init__(id="ShadowFormer", name="ShadowFormer", detect=_detect)

    def load(self, state_dict: StateDict) -> MaskedImageModelDescriptor[ShadowFormer]:
        config = _config(state_dict)  # checks the layout: load() may be called without detect()
        model = ShadowFormer(**config)
        return MaskedImageModelDescriptor(
            model,
            state_dict,  # loaded strictly by the descriptor: the key names are upstream's
            architecture=self,
            purpose="Restoration",  # type: ignore[arg-type]  # spandrel types this as "Inpainting" only
            tags=[f"{config['embed_dim']}nf", f"win{config['win_size']}"],
            # fp16/bf16 were not checked against real weights: stay in fp32.
            supports_half=False,
            supports_bfloat16=False,
            input_channels=config["in_chans"],
            output_channels=config["in_chans"],
            # Three 2x downsamplings, then windows of win_size at the coarser levels.
            size_requirements=SizeRequirements(minimum=model.multiple_of, multiple_of=model.multiple_of),
            # Channel attention pools over the whole map and SIA relates shadow to lit
            # regions; upstream runs the whole image (its --tile option is off by default).
            tiling=ModelTiling.DISCOURAGED,
        )


__all__ = ["ShadowFormer", "ShadowFormerArch"]
