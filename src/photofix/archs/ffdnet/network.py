"""FFDNet: a fast, flexible CNN denoiser conditioned on a noise-level map.

Zhang, Zuo, Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN based
Image Denoising", IEEE TIP 2018. The image is folded into four half-resolution
sub-images (2x2 space-to-depth), a constant map of the noise level σ is
concatenated, a plain conv/ReLU stack runs at half resolution, and the result is
unfolded back. Two public weight layouts exist and differ only in details this
module takes as constructor arguments:

* IPOL re-training (Tassano et al.): noise map first (one plane per colour
  channel), bias-free convs with batch norm in the middle layers, and the network
  predicts the *noise*, which is subtracted from the input.
* KAIR (the authors' release): noise map last (a single plane), convs with bias,
  no batch norm, and the network predicts the clean image directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FFDNet(nn.Module):
    """FFDNet for ``in_channels`` 1 (grey) or 3 (colour).

    Args:
        in_channels: image channels C.
        features: width of the hidden conv layers (64 grey / 96 colour in both releases).
        num_layers: number of conv layers, first and last included.
        batch_norm: batch norm after every middle conv (IPOL layout).
        bias: convs carry a bias (KAIR layout).
        noise_first: the noise map precedes the folded image in the channel order (IPOL).
        noise_planes: planes in the noise map: C (IPOL) or 1 (KAIR).
        residual: the network predicts noise to subtract (IPOL) instead of the image (KAIR).
    """

    def __init__(
        self,
        in_channels: int = 3,
        features: int = 96,
        num_layers: int = 12,
        *,
        batch_norm: bool = False,
        bias: bool = True,
        noise_first: bool = False,
        noise_planes: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.noise_first = noise_first
        self.noise_planes = noise_planes
        self.residual = residual

        folded = 4 * in_channels
        layers: list[nn.Module] = [
            nn.Conv2d(folded + noise_planes, features, 3, padding=1, bias=bias),
            nn.ReLU(inplace=True),
        ]
        for _ in range(num_layers - 2):
            layers.append(nn.Conv2d(features, features, 3, padding=1, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm2d(features))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(features, folded, 3, padding=1, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """Denoise ``x`` (N, C, H, W) in [0, 1]; ``sigma`` is the noise std on the same [0, 1] scale.

        Odd sizes are padded by reflection on the bottom/right and cropped back,
        because the 2x2 fold needs even dimensions.
        """
        h, w = x.shape[-2:]
        pad_h, pad_w = h % 2, w % 2
        if pad_h or pad_w:
            mode = "reflect" if min(h, w) > 1 else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

        folded = F.pixel_unshuffle(x, 2)
        n, _, fh, fw = folded.shape
        sigma_t = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        noise_map = sigma_t.expand(n, self.noise_planes, fh, fw)
        parts = (noise_map, folded) if self.noise_first else (folded, noise_map)
        out = F.pixel_shuffle(self.layers(torch.cat(parts, dim=1)), 2)
        if self.residual:
            out = x - out
        return out[..., :h, :w]


__all__ = [
    "FFDNet",
]
