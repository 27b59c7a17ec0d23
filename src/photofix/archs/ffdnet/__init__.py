"""spandrel architecture for FFDNet: detects and loads the IPOL and KAIR weight layouts."""

from __future__ import annotations

from spandrel import Architecture, ImageModelDescriptor, SizeRequirements, StateDict

from photofix.archs.traits import ArchTraits
from photofix.archs.ffdnet.network import FFDNet

# Non-blind: the noise level is the forward's second argument; the CPU rewrites (BatchNorms
# folded into the convolutions, channels-last) were measured equal within 1e-4.
TRAITS = ArchTraits(noise_level=lambda model, x, level: model(x, level), cpu_rewrites=True)

# IPOL checkpoints keep the net under this prefix (after spandrel strips "module.").
_IPOL_PREFIX = "intermediate_dncnn.itermediate_dncnn."
_KAIR_PREFIX = "model."


def _conv_indices(state_dict: StateDict, prefix: str) -> list[int]:
    """Sequential indices of the 4-D conv weights under ``prefix``, in order."""
    found = []
    for key, value in state_dict.items():
        if key.startswith(prefix) and key.endswith(".weight") and value.ndim == 4:
            index = key[len(prefix) : -len(".weight")]
            if index.isdigit():
                found.append(int(index))
    return sorted(found)


def _layout(state_dict: StateDict) -> str | None:
    """"ipol", "kair" or None, from the keys and the first/last conv shapes.

    The channel check matters: KAIR's DnCNN uses the same ``model.N`` keys, but
    its first conv sees C channels where FFDNet's sees 4·C + noise planes.
    """
    for layout, prefix in (("ipol", _IPOL_PREFIX), ("kair", _KAIR_PREFIX)):
        convs = _conv_indices(state_dict, prefix)
        if len(convs) < 3:
            continue
        first = state_dict[f"{prefix}{convs[0]}.weight"]
        last = state_dict[f"{prefix}{convs[-1]}.weight"]
        out_folded = last.shape[0]
        if out_folded not in (4, 12):
            continue
        channels = out_folded // 4
        noise_planes = channels if layout == "ipol" else 1
        if first.shape[1] == out_folded + noise_planes:
            return layout
    return None


class FFDNetArch(Architecture[FFDNet]):
    def __init__(self) -> None:
        super().__init__(id="FFDNet", detect=lambda sd: _layout(sd) is not None)

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[FFDNet]:
        layout = _layout(state_dict)
        if layout is None:  # load() may be called without detect()
            raise ValueError("not an FFDNet state dict (neither IPOL nor KAIR layout)")
        prefix = _IPOL_PREFIX if layout == "ipol" else _KAIR_PREFIX
        convs = _conv_indices(state_dict, prefix)
        first = state_dict[f"{prefix}{convs[0]}.weight"]
        channels = state_dict[f"{prefix}{convs[-1]}.weight"].shape[0] // 4
        ipol = layout == "ipol"
        model = FFDNet(
            in_channels=channels,
            features=first.shape[0],
            num_layers=len(convs),
            batch_norm=ipol,
            bias=f"{prefix}{convs[0]}.bias" in state_dict,
            noise_first=ipol,
            noise_planes=channels if ipol else 1,
            residual=ipol,
        )
        renamed = {
            "layers." + key[len(prefix) :]: value
            for key, value in state_dict.items()
            if key.startswith(prefix)
        }
        # The descriptor loads the (renamed) weights into the model itself.
        return ImageModelDescriptor(
            model,
            renamed,
            architecture=self,
            purpose="Restoration",
            tags=[layout, f"{first.shape[0]}nf", f"{len(convs)}l"],
            supports_half=True,
            supports_bfloat16=True,
            scale=1,
            input_channels=channels,
            output_channels=channels,
            size_requirements=SizeRequirements(multiple_of=2),
            call_fn=lambda m, x: m(x, 25 / 255),
        )


__all__ = ["FFDNet", "FFDNetArch", "TRAITS"]
