"""FDRNet (Zhu et al., ICCV 2021): shadow detection by feature decomposition and reweighting.

Written for photofix from the paper and the released checkpoint's key layout; attribute names
follow that layout so ``sbu_epoch_010.pt`` loads strictly with no renaming.

The backbone is an EfficientNet-B3 laid out as lukemelas/EfficientNet-PyTorch 0.6.3 lays it
out (``feat_net._conv_stem``, ``feat_net._blocks.N._depthwise_conv``...). Every 2nd block's
output (blocks 0, 2, ..., 24) is projected to ``proj_planes`` channels, upsampled to the first
one's size and fused; the fused map is split into an intensity-invariant and an
intensity-variant part (two residual branches, L2-normalised over channels) that are mixed
with a fixed weight ``mu`` before the 1x1 prediction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# efficientnet-b3: B0's stages widened 1.2x and deepened 1.4x, channels rounded to multiples of
# 8 as the library rounds them. (repeats, kernel, stride, expand ratio, in, out) per stage.
B3_STAGES = (
    (2, 3, 1, 1, 40, 24),
    (3, 3, 2, 6, 24, 32),
    (3, 5, 2, 6, 32, 48),
    (5, 3, 2, 6, 48, 96),
    (5, 5, 1, 6, 96, 136),
    (6, 5, 2, 6, 136, 232),
    (2, 3, 1, 6, 232, 384),
)
B3_STEM, B3_HEAD = 40, 1536
B3_BLOCKS = sum(stage[0] for stage in B3_STAGES)  # 26
# The library built every convolution with "same" padding computed once for this input size
# (efficientnet-b3's 300 px), not for the actual input: stride-2 convolutions therefore pad
# (k - 2) pixels, less before than after, whatever size the photo is.
_PADDING_SIZE = 300
_BN_EPS = 1e-3  # TensorFlow's, kept by the library (torch's default is 1e-5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow-style "same" padding, fixed for a ``_PADDING_SIZE`` input."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=bias)
        out = -(-_PADDING_SIZE // stride)
        total = max((out - 1) * stride + kernel - _PADDING_SIZE, 0)
        self.pads = (total // 2, total - total // 2) * 2  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads) if any(self.pads) else x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise conv, squeeze-excitation, 1x1 projection."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        squeezed = max(1, int(cin * 0.25))
        self._se_reduce = SameConv(mid, squeezed, 1, bias=True)
        self._se_expand = SameConv(squeezed, mid, 1, bias=True)
        self._project_conv = SameConv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = F.silu(self._bn1(self._depthwise_conv(y)))
        gate = self._se_expand(F.silu(self._se_reduce(F.adaptive_avg_pool2d(y, 1))))
        y = self._bn2(self._project_conv(torch.sigmoid(gate) * y))
        return y + x if self.residual else y  # drop-connect is training-only


class EfficientNetB3(nn.Module):
    """The backbone; returns the outputs of blocks 0, 2, 4, ... (FDRNet's multi-level features)."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, B3_STEM, 3, 2)
        self._bn0 = _bn(B3_STEM)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in B3_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        # In the checkpoint but unused: FDRNet reads block outputs only, so the head never runs.
        self._conv_head = SameConv(B3_STAGES[-1][5], B3_HEAD, 1)
        self._bn1 = _bn(B3_HEAD)

    @property
    def feature_channels(self) -> list[int]:
        return [block._bn2.num_features for block in self._blocks[::2]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.silu(self._bn0(self._conv_stem(x)))
        features = []
        last = len(self._blocks) - 1 - (len(self._blocks) - 1) % 2  # the last block whose output is used
        for i, block in enumerate(self._blocks[: last + 1]):
            x = block(x)
            if i % 2 == 0:
                features.append(x)
        return features


class Normalize(nn.Module):
    """ImageNet normalisation inside the network; the statistics are buffers in the checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (self.std + 1e-5)  # the release was trained with this epsilon


def _conv1x1(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ResBlock(nn.Module):
    """Two 3x3 conv + BN with an identity shortcut: one branch of the decomposition."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + x)


class Decomposition(nn.Module):
    """The paper's FR unit: intensity-invariant and intensity-variant features, each unit-length."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.inv_conv = ResBlock(channels)
        self.var_conv = ResBlock(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.inv_conv(x), dim=1), F.normalize(self.var_conv(x), dim=1)


class FDRNet(nn.Module):
    """(1, 3, H, W) RGB in [0, 1] -> (1, 1, H, W) shadow logits."""

    def __init__(self, proj_planes: int = 16, pred_planes: int = 32, mu: float = 0.4) -> None:
        super().__init__()
        self.mu = mu  # the release's test-time mix of the variant part (not in the checkpoint)
        self.feat_net = EfficientNetB3()
        self.norm = Normalize()
        levels = self.feat_net.feature_channels
        self.proj_convs = nn.ModuleList(_conv1x1(c, proj_planes) for c in levels)
        self.stem_conv = _conv1x1(proj_planes * len(levels), pred_planes)
        self.fr = Decomposition(pred_planes)
        # Trained to predict the brightness shift from the variant part (training only); kept for the keys.
        self.fc = nn.Linear(pred_planes, 1)
        self.pred_conv = nn.Sequential(nn.Conv2d(pred_planes, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.feat_net(self.norm(x))
        size = features[0].shape[-2:]
        fused = torch.cat([F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False)
                           for proj, f in zip(self.proj_convs, features)], dim=1)
        invariant, variant = self.fr(self.stem_conv(fused))
        mixed = self.mu * variant + (1 - self.mu) * invariant
        return F.interpolate(self.pred_conv(mixed), size=x.shape[-2:], mode="bilinear", align_corners=False)


__all__ = ["B3_BLOCKS", "B3_STAGES", "FDRNet"]
