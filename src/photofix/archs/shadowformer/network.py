"""ShadowFormer (Guo et al., AAAI 2023): mask-guided transformer U-Net for shadow removal.

Re-implemented from the paper ("ShadowFormer: Global Context Helps Image Shadow
Removal") and the authors' MIT-licensed release (GuoLanqing/ShadowFormer,
``model.py``). Attribute names reproduce the release's state-dict keys, which is
a file-format fact: ``input_proj.proj.0``, ``encoderlayer_{0,1,2}``,
``dowsample_{0,1,2}`` (sic), ``conv`` (bottleneck), ``upsample_{0,1,2}``,
``decoderlayer_{0,1,2}``, ``output_proj.proj.0``; inside a stage
``blocks.N.{norm1,norm2,mlp,CAB,attn}``.

Shape of the network (embed dim ``C``)::

    [RGB | mask] -conv3x3+LeakyReLU-> C
    enc0 (C, CA)   -> down -> enc1 (2C, CA) -> down -> enc2 (4C, SIM) -> down
    bottleneck (8C, SIM)
    up -> cat enc2 -> dec0 (8C, SIM) -> up -> cat enc1 -> dec1 (4C, CA)
    up -> cat enc0 -> dec2 (2C, CA) -conv3x3-> RGB, plus the input image

* CA block ("channel attention"): LayerNorm -> residual channel-attention conv
  block (CAB) -> residual; LayerNorm -> LeFF -> residual. No self-attention.
* SIM block ("shadow-interaction module"): LayerNorm -> (shifted) window
  self-attention whose logits are re-weighted by the shadow mask (SIA) -> CAB
  -> residual; LayerNorm -> LeFF -> residual. Every odd block is shifted by
  half a window, Swin-style.

The mask enters twice: as a fourth input channel, and through the
shadow-interaction attention at the three coarsest levels, where it is
max-pooled to each level's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Logit added between tokens that a shifted window brings together from
# different image regions (upstream's value; large enough to vanish in softmax).
_SHIFT_MASK_LOGIT = -100.0
# SIA: logits between a shadow and a non-shadow token are kept (x1), logits
# within the same kind are damped (x0.2), so shadow pixels attend to lit ones.
_SAME_KIND_WEIGHT = 0.2
# Mask values at or above this count as shadow in the attention.
_SHADOW_THRESHOLD = 0.1


def _to_image(tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W) feature map."""
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, *size)


def _to_tokens(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) feature map -> (B, H*W, C) tokens."""
    return image.flatten(2).transpose(1, 2)


def window_partition(x: torch.Tensor, win: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, win*win, C), windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // win, win, w // win, win, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, win * win, c)


def window_merge(windows: torch.Tensor, win: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, win*win, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // win, w // win, win, win, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_attention_mask(h: int, w: int, win: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, N, N) additive mask that keeps a rolled window from mixing unrelated regions.

    After rolling by ``-shift`` the last row/column band of windows holds pixels
    from opposite image edges; each of the 3x3 bands gets a label and pairs with
    different labels get a large negative logit.
    """
    labels = torch.zeros(1, h, w, 1, device=device)
    bands = (slice(0, -win), slice(-win, -shift), slice(-shift, None))
    for i, rows in enumerate(bands):
        for j, cols in enumerate(bands):
            labels[:, rows, cols, :] = 3 * i + j
    labels = window_partition(labels, win).squeeze(-1)  # nW, N
    different = labels.unsqueeze(1) != labels.unsqueeze(2)
    return torch.zeros_like(different, dtype=torch.float32).masked_fill(different, _SHIFT_MASK_LOGIT)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate on a (B, C, H, W) map (upstream ``CALayer``)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class ChannelAttentionBlock(nn.Module):
    """conv3x3 -> PReLU -> conv3x3 -> channel gate, plus the input (upstream ``CAB``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.PReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        )
        self.CA = ChannelAttention(channels, reduction=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.CA(self.body(x)) + x


class LeFF(nn.Module):
    """Locally-enhanced feed-forward: Linear -> GELU -> depthwise 3x3 -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Sequential(nn.Linear(dim, hidden), nn.GELU())
        self.dwconv = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.GELU())
        self.linear2 = nn.Sequential(nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = _to_tokens(self.dwconv(_to_image(self.linear1(x), size)))
        return self.linear2(x)


class FeedForward(nn.Module):
    """Plain token MLP (upstream ``Mlp``, the ``token_mlp='ffn'`` option)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LinearProjection(nn.Module):
    """Per-head q from ``to_q`` and k, v from one ``to_kv`` Linear."""

    def __init__(self, dim: int, heads: int, bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, c = x.shape
        q = self.to_q(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        k, v = self.to_kv(x).view(b, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v


class ShadowInteractionAttention(nn.Module):
    """Window self-attention with relative position bias and mask-weighted logits (SIA).

    ``forward`` takes windows of tokens (B*nW, N, C) and of mask values
    (B*nW, N, 1), plus an optional additive (nW, N, N) mask for shifted windows.
    """

    def __init__(self, dim: int, win_size: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.win_size = win_size
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * win_size - 1) ** 2, heads))
        # Persistent: the release's files hold it (as int64), so strict loading needs it.
        self.register_buffer("relative_position_index", self._relative_position_index(win_size))
        self.qkv = LinearProjection(dim, heads, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    @staticmethod
    def _relative_position_index(win: int) -> torch.Tensor:
        """(N, N) index into the bias table for every (query, key) offset in a window."""
        rows, cols = torch.meshgrid(torch.arange(win), torch.arange(win), indexing="ij")
        coords = torch.stack([rows.flatten(), cols.flatten()])  # 2, N
        offset = coords[:, :, None] - coords[:, None, :] + (win - 1)  # 2, N, N, each in [0, 2win-2]
        return offset[0] * (2 * win - 1) + offset[1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, shift_mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x)
        logits = (q * self.scale) @ k.transpose(-2, -1)  # B*nW, heads, N, N

        shadow = ~(mask < _SHADOW_THRESHOLD)  # B*nW, N, 1; written so NaN counts as shadow, as upstream
        cross = shadow != shadow.transpose(1, 2)  # B*nW, N, N
        weight = torch.where(cross, 1.0, _SAME_KIND_WEIGHT).to(logits.dtype)
        logits = logits * weight.unsqueeze(1)

        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        logits = logits + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if shift_mask is not None:
            nw = shift_mask.shape[0]
            logits = logits.view(bw // nw, nw, self.heads, n, n) + shift_mask.to(logits.dtype)[None, :, None]
            logits = logits.view(bw, self.heads, n, n)

        out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class CATransformerBlock(nn.Module):
    """Convolutional block: norm -> CAB -> residual, norm -> token MLP -> residual."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, token_mlp: str = "leff") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.CAB = ChannelAttentionBlock(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _token_mlp(dim, mlp_ratio, token_mlp)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = x + _to_tokens(self.CAB(_to_image(self.norm1(x), size)))
        return x + self.mlp(self.norm2(x), size)


class SIMTransformerBlock(nn.Module):
    """Shadow-interaction block: norm -> window SIA -> CAB -> residual, norm -> MLP -> residual."""

    def __init__(
        self,
        dim: int,
        heads: int,
        win_size: int,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        token_mlp: str = "leff",
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.win_size = win_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShadowInteractionAttention(dim, win_size, heads, qkv_bias=qkv_bias)
        self.CAB = ChannelAttentionBlock(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _token_mlp(dim, mlp_ratio, token_mlp)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        win, shift = self.win_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        m = mask.permute(0, 2, 3, 1)  # B, H, W, 1
        shift_mask = None
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
            m = torch.roll(m, shifts=(-shift, -shift), dims=(1, 2))
            shift_mask = shift_attention_mask(h, w, win, shift, x.device)
        y = self.attn(window_partition(y, win), window_partition(m, win), shift_mask)
        y = window_merge(y, win, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        y = self.CAB(y.permute(0, 3, 1, 2))
        x = x + _to_tokens(y)
        return x + self.mlp(self.norm2(x), size)


def _token_mlp(dim: int, mlp_ratio: float, kind: str) -> nn.Module:
    hidden = int(dim * mlp_ratio)
    if kind == "leff":
        return LeFF(dim, hidden)
    if kind == "ffn":
        return FeedForward(dim, hidden)
    raise ValueError(f"token_mlp must be 'leff' or 'ffn', not {kind!r}")


class ShadowFormerStage(nn.Module):
    """A run of blocks at one resolution (upstream ``BasicShadowFormer``)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        win_size: int,
        interaction: bool,
        mlp_ratio: float = 4.0,
        token_mlp: str = "leff",
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if interaction:
            self.blocks = nn.ModuleList(
                SIMTransformerBlock(
                    dim,
                    heads,
                    win_size,
                    shift_size=0 if i % 2 == 0 else win_size // 2,
                    mlp_ratio=mlp_ratio,
                    token_mlp=token_mlp,
                    qkv_bias=qkv_bias,
                )
                for i in range(depth)
            )
        else:
            self.blocks = nn.ModuleList(CATransformerBlock(dim, mlp_ratio, token_mlp) for _ in range(depth))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask, size)
        return x


class _ConvWrap(nn.Module):
    """Holds one conv under a ``Sequential`` named ``attr`` so keys read ``<attr>.0.*``."""

    def __init__(self, attr: str, *layers: nn.Module) -> None:
        super().__init__()
        self.attr = attr
        setattr(self, attr, nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.attr)(x)


class ShadowFormer(nn.Module):
    """ShadowFormer shadow-removal network.

    Args:
        in_chans: image channels (3); the mask adds one more at the input.
        embed_dim: width ``C`` of the first level (released: 32).
        depths: blocks per stage, in the order (enc0, enc1, enc2, bottleneck,
            dec0, dec1, dec2). Upstream passes a 9-list whose entries 3 and 5
            are unused; released: all 2.
        num_heads: attention heads per stage, same order. Only the SIM stages
            (enc2, bottleneck, dec0) have attention; released (1, 2, 4, 16, 8, 4, 2).
        win_size: attention window side (released code defaults: 10 in
            ``test.py``/``options.py``, 8 in the model's signature; the file's
            bias-table shape says which).
        mlp_ratio: token-MLP hidden width over the stage width (4).
        token_mlp: ``"leff"`` (released) or ``"ffn"``.
        qkv_bias: biases on the q/kv projections (True).

    ``forward(image, mask)``: image (B, 3, H, W) in [0, 1] (RGB, ``/255``, no
    mean/std), mask (B, 1, H, W) in [0, 1] with 1 = shadow. Returns the
    shadow-free image (B, 3, H, W), not clamped. Sizes that are not a multiple
    of :attr:`multiple_of` (8 x win_size: three 2x downsamplings, then windows)
    are reflect-padded at the bottom/right, as upstream ``test.py`` does, and
    the output is cropped back.
    """

    def __init__(
        self,
        in_chans: int = 3,
        embed_dim: int = 32,
        depths: Sequence[int] = (2, 2, 2, 2, 2, 2, 2),
        num_heads: Sequence[int] = (1, 2, 4, 16, 8, 4, 2),
        win_size: int = 10,
        mlp_ratio: float = 4.0,
        token_mlp: str = "leff",
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if len(depths) != 7 or len(num_heads) != 7:
            raise ValueError("depths and num_heads need 7 entries: enc0, enc1, enc2, bottleneck, dec0, dec1, dec2")
        self.win_size = win_size
        self.multiple_of = 8 * win_size
        c = embed_dim

        def stage(i: int, dim: int, interaction: bool) -> ShadowFormerStage:
            return ShadowFormerStage(
                dim, depths[i], num_heads[i], win_size, interaction, mlp_ratio, token_mlp, qkv_bias
            )

        self.input_proj = _ConvWrap("proj", nn.Conv2d(in_chans + 1, c, 3, padding=1), nn.LeakyReLU(inplace=True))
        self.output_proj = _ConvWrap("proj", nn.Conv2d(2 * c, in_chans, 3, padding=1))
        self.encoderlayer_0 = stage(0, c, False)
        self.dowsample_0 = _ConvWrap("conv", nn.Conv2d(c, 2 * c, 4, stride=2, padding=1))
        self.encoderlayer_1 = stage(1, 2 * c, False)
        self.dowsample_1 = _ConvWrap("conv", nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1))
        self.encoderlayer_2 = stage(2, 4 * c, True)
        self.dowsample_2 = _ConvWrap("conv", nn.Conv2d(4 * c, 8 * c, 4, stride=2, padding=1))
        self.conv = stage(3, 8 * c, True)
        self.upsample_0 = _ConvWrap("deconv", nn.ConvTranspose2d(8 * c, 4 * c, 2, stride=2))
        self.decoderlayer_0 = stage(4, 8 * c, True)
        self.upsample_1 = _ConvWrap("deconv", nn.ConvTranspose2d(8 * c, 2 * c, 2, stride=2))
        self.decoderlayer_1 = stage(5, 4 * c, False)
        self.upsample_2 = _ConvWrap("deconv", nn.ConvTranspose2d(4 * c, c, 2, stride=2))
        self.decoderlayer_2 = stage(6, 2 * c, False)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        pad_h, pad_w = -h % self.multiple_of, -w % self.multiple_of
        if pad_h or pad_w:
            # Reflect needs pad < size; upstream test.py uses plain reflect (images are large).
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
            mask = F.pad(mask, (0, pad_w, 0, pad_h), mode=mode)
        return self._forward_padded(image, mask)[..., :h, :w]

    def _forward_padded(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        size0 = tuple(image.shape[-2:])
        size1, size2, size3 = ((size0[0] >> i, size0[1] >> i) for i in (1, 2, 3))
        # The mask follows the features down with 2x2 max pooling: a window counts
        # a pixel as shadow if any of the pixels it covers is.
        mask1 = F.max_pool2d(mask, 2)
        mask2 = F.max_pool2d(mask1, 2)
        mask3 = F.max_pool2d(mask2, 2)

        x = _to_tokens(self.input_proj(torch.cat([image, mask], dim=1)))
        enc0 = self.encoderlayer_0(x, mask, size0)
        enc1 = self.encoderlayer_1(self._resample(self.dowsample_0, enc0, size0), mask1, size1)
        enc2 = self.encoderlayer_2(self._resample(self.dowsample_1, enc1, size1), mask2, size2)
        x = self.conv(self._resample(self.dowsample_2, enc2, size2), mask3, size3)

        x = self.decoderlayer_0(torch.cat([self._resample(self.upsample_0, x, size3), enc2], -1), mask2, size2)
        x = self.decoderlayer_1(torch.cat([self._resample(self.upsample_1, x, size2), enc1], -1), mask1, size1)
        x = self.decoderlayer_2(torch.cat([self._resample(self.upsample_2, x, size1), enc0], -1), mask, size0)
        # Global residual: the network predicts a correction to the input image.
        return self.output_proj(_to_image(x, size0)) + image

    @staticmethod
    def _resample(resample: nn.Module, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Apply a strided conv (down) or transposed conv (up) to tokens at ``size``; return tokens."""
        return _to_tokens(resample(_to_image(tokens, size)))


__all__ = [
    "CATransformerBlock",
    "ChannelAttention",
    "ChannelAttentionBlock",
    "FeedForward",
    "LeFF",
    "LinearProjection",
    "SIMTransformerBlock",
    "ShadowFormer",
    "ShadowFormerStage",
    "ShadowInteractionAttention",
    "shift_attention_mask",
    "window_merge",
    "window_partition",
]
