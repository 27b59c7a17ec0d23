"""Rename checkpoint keys from other projects' layouts to the layout the detectors know.

Restormer as written by deepinv (``deepinv.models.Restormer``)
---------------------------------------------------------------
deepinv's module is a port of the original release (swz30/Restormer,
``basicsr/models/archs/restormer_arch.py``) that keeps every attribute name:
``patch_embed.proj``, ``encoder_level{1,2,3}.N``, ``latent.N``, ``down1_2``,
``down2_3``, ``down3_4`` and ``up4_3``, ``up3_2``, ``up2_1`` (``.body.0``),
``reduce_chan_level{3,2}``, ``decoder_level{3,2,1}.N``, ``refinement.N``,
``skip_conv`` (dual-pixel only) and ``output``; inside a block ``norm1.body``,
``attn.{temperature,qkv,qkv_dwconv,project_out}``, ``norm2.body`` and
``ffn.{project_in,dwconv,project_out}``. Its pretrained files on the Hub are
read with ``load_state_dict(ckpt["params"], strict=True)``, i.e. they are the
original ``{"params": state_dict}`` files, which load without any help.

So there are no per-parameter renames. What differs is how deepinv *saves* a
fine-tuned network: ``deepinv.Trainer.save_model`` writes
``{"epoch", "state_dict": model.state_dict(), "loss", "optimizer", ...}`` where
``model`` is usually the Restormer inside a deepinv wrapper module, so every
key carries that wrapper's attribute name in front: ``backbone_net.``
(``ArtifactRemoval`` and the other reconstructors built around a backbone),
``denoiser.`` (``EquivariantDenoiser``, priors, samplers) or ``model.``.
spandrel's canonicaliser unwraps ``state_dict`` and strips ``module.``/``netG.``
but not these, so the Restormer detector would not see its keys.

``to_canonical_layout`` strips those wrapper prefixes (nested ones too, e.g.
``backbone_net.denoiser.``), and only when what remains is a Restormer:
anything else is returned unchanged.
"""

from __future__ import annotations

from typing import Any

StateDict = dict[str, Any]

# Attribute names under which deepinv's wrapper modules hold the network they wrap.
DEEPINV_WRAPPER_PREFIXES: tuple[str, ...] = ("backbone_net.", "denoiser.", "model.")

# Keys every original-layout Restormer has, whatever its depth or width
# (a subset of what spandrel-extra-arches' detector requires).
RESTORMER_SIGNATURE: tuple[str, ...] = (
    "patch_embed.proj.weight",
    "encoder_level1.0.attn.temperature",
    "down1_2.body.0.weight",
    "latent.0.attn.temperature",
    "up2_1.body.0.weight",
    "decoder_level1.0.attn.temperature",
    "refinement.0.attn.temperature",
    "output.weight",
)


def is_restormer(state_dict: StateDict) -> bool:
    """True when ``state_dict`` has the original Restormer key layout."""
    return all(key in state_dict for key in RESTORMER_SIGNATURE)


def _wrapper_prefix(state_dict: StateDict) -> str:
    """The chain of deepinv wrapper prefixes every key starts with ('' if none)."""
    prefix = ""
    while True:
        for candidate in DEEPINV_WRAPPER_PREFIXES:
            longer = prefix + candidate
            if all(isinstance(key, str) and key.startswith(longer) for key in state_dict):
                prefix = longer
                break
        else:
            return prefix


def to_canonical_layout(state_dict: StateDict) -> StateDict:
    """Return ``state_dict`` with a deepinv-saved Restormer's keys in the original layout.

    Recognised: every key starts with deepinv wrapper prefixes and, without
    them, the keys are a Restormer's. Anything else (already original, other
    architectures, wrappers around something else) comes back unchanged.
    """
    if not state_dict or is_restormer(state_dict):
        return state_dict
    prefix = _wrapper_prefix(state_dict)
    if not prefix:
        return state_dict
    stripped = {key[len(prefix) :]: value for key, value in state_dict.items()}
    return stripped if is_restormer(stripped) else state_dict


__all__ = ["DEEPINV_WRAPPER_PREFIXES", "RESTORMER_SIGNATURE", "is_restormer", "to_canonical_layout"]
