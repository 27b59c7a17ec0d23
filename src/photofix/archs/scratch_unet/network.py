"""The scratch-detection UNet of "Bringing Old Photos Back to Life" (Wan et al., CVPR 2020).

A UNet that maps a grey photo (normalised to [-1, 1]) to one plane of logits; a
sigmoid of them is the probability that a pixel is a scratch. The released
detector is ``ScratchUNet(in_channels=1, out_channels=1, depth=4, width=64)``.

Shape of the network, top to bottom:

* ``first``: 7x7 conv behind a 3-pixel reflection pad, LeakyReLU(0.2).
* per level ``i`` (``depth`` of them): ``down_sample[i]`` (3x3 conv, batch norm,
  LeakyReLU(0.2), then a blur-pool that halves the size) and ``down_path[i]``
  (``conv_num`` 3x3 convs that double the channels).
* per level, deepest first: ``up_path`` blocks (bilinear x2, 3x3 conv that halves the
  channels, concatenation *[upsampled, skip]*, ``conv_num`` 3x3 convs).
* ``last``: 3x3 conv to ``out_channels`` (no activation: the caller takes the sigmoid).

Every conv is preceded by a reflection pad, so the output has the input's size when
H and W are multiples of ``2 ** depth``.

The attribute names and the positions inside each ``nn.Sequential`` reproduce the
released checkpoint's key names (``first.1.weight``, ``down_sample.0.4.filt``,
``down_path.0.block.2.running_var``, ``up_path.0.up.2.weight``, ``last.1.bias`` …),
so its ``model_state`` loads strictly without renaming. Parameter-free layers
(pads, activations) are kept as modules only because they hold those positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAK = 0.2  # LeakyReLU slope used throughout the released network


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling (Zhang, "Making CNNs shift-invariant again", 2019).

    Each channel is low-passed with a normalised binomial filter (``[1, 2, 1]`` outer
    itself for size 3) and then subsampled, instead of subsampling raw activations.
    The filter is fixed, but the release stores it as the buffer ``filt`` of shape
    (channels, 1, k, k), so it is a persistent buffer here too.
    """

    def __init__(self, channels: int, filter_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        taps = torch.tensor([math.comb(filter_size - 1, k) for k in range(filter_size)], dtype=torch.float32)
        kernel = torch.outer(taps, taps)
        kernel = kernel / kernel.sum()
        self.register_buffer("filt", kernel.expand(channels, 1, filter_size, filter_size).clone())
        # Odd sizes pad evenly; even sizes put the extra pixel right/bottom.
        before, after = (filter_size - 1) // 2, filter_size // 2
        self.padding = (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.padding, mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=x.shape[1])


def _conv3x3(in_channels: int, out_channels: int) -> list[nn.Module]:
    """Reflection pad + 3x3 conv: the pad keeps the size and avoids zero borders."""
    return [nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, kernel_size=3)]


class ConvBlock(nn.Module):
    """``conv_num`` x (reflection pad, 3x3 conv, [batch norm], LeakyReLU) in ``self.block``."""

    def __init__(self, in_channels: int, out_channels: int, conv_num: int, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(conv_num):
            layers += _conv3x3(in_channels, out_channels)
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(LEAK, inplace=True))
            in_channels = out_channels
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UpBlock(nn.Module):
    """Upsample x2 to ``out_channels``, concatenate the skip after it, then a ConvBlock."""

    def __init__(self, in_channels: int, out_channels: int, conv_num: int, batch_norm: bool, up_mode: str) -> None:
        super().__init__()
        if up_mode == "upsample":
            self.up: nn.Module = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                *_conv3x3(in_channels, out_channels),
            )
        else:  # "upconv": learned transposed convolution
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        # upsampled + skip = 2 * out_channels = in_channels
        self.conv_block = ConvBlock(in_channels, out_channels, conv_num, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Order matters for the trained weights: upsampled features first, skip second.
        return self.conv_block(torch.cat([self.up(x), skip], dim=1))


class ScratchUNet(nn.Module):
    """The BOPB scratch detector's UNet; returns logits (apply a sigmoid for probabilities).

    Args:
        in_channels: input planes (1: the grey image, normalised to [-1, 1]).
        out_channels: output planes (1: scratch logits).
        depth: number of down/up levels; H and W must be multiples of ``2 ** depth``
            (upstream's ``depth``; 4 in the release).
        width: channels after the first conv; level ``i`` has ``width * 2 ** (i + 1)``
            (upstream's ``2 ** wf``; 64 in the release).
        conv_num: 3x3 convs in each down/up ConvBlock (2 in the release).
        batch_norm: batch norm inside the ConvBlocks. The downsampling stages always
            have one, as upstream.
        antialias: blur-pool downsampling (release); otherwise a 4x4 stride-2 conv.
        up_mode: "upsample" (bilinear + 3x3 conv, release) or "upconv" (transposed conv).
        with_tanh: end with tanh (not in the release; invisible in a state dict).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        width: int = 64,
        conv_num: int = 2,
        *,
        batch_norm: bool = True,
        antialias: bool = True,
        up_mode: str = "upsample",
        with_tanh: bool = False,
    ) -> None:
        super().__init__()
        if up_mode not in ("upsample", "upconv"):
            raise ValueError(f"up_mode must be 'upsample' or 'upconv', not {up_mode!r}")
        self.depth = depth
        self.first = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, kernel_size=7), nn.LeakyReLU(LEAK, inplace=True)
        )

        # Registration order (down_path before down_sample) follows the release's key order.
        self.down_path = nn.ModuleList()
        self.down_sample = nn.ModuleList()
        channels = width
        for _ in range(depth):
            self.down_sample.append(_downsampling_stage(channels, antialias))
            self.down_path.append(ConvBlock(channels, channels * 2, conv_num, batch_norm))
            channels *= 2

        self.up_path = nn.ModuleList()
        for _ in range(depth):
            self.up_path.append(UpBlock(channels, channels // 2, conv_num, batch_norm, up_mode))
            channels //= 2

        last: list[nn.Module] = _conv3x3(channels, out_channels)
        if with_tanh:
            last.append(nn.Tanh())
        self.last = nn.Sequential(*last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for down_sample, down_block in zip(self.down_sample, self.down_path):
            skips.append(x)
            x = down_block(down_sample(x))
        for up_block, skip in zip(self.up_path, reversed(skips)):
            x = up_block(x, skip)
        return self.last(x)


def _downsampling_stage(channels: int, antialias: bool) -> nn.Sequential:
    """Halve H and W at constant width; the extra 3x3 conv runs before the blur-pool."""
    if antialias:
        return nn.Sequential(
            *_conv3x3(channels, channels),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(LEAK, inplace=True),
            BlurDownsample(channels),
        )
    return nn.Sequential(
        nn.ReflectionPad2d(1),
        nn.Conv2d(channels, channels, kernel_size=4, stride=2),
        nn.BatchNorm2d(channels),
        nn.LeakyReLU(LEAK, inplace=True),
    )


__all__ = ["BlurDownsample", "ScratchUNet"]
