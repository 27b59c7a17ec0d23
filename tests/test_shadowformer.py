"""ShadowFormer: file layout, key names, detection, padding and block wiring.

The network is random (no released weights are downloaded); a width-reduced
config keeps this fast. Files are written the way upstream ``train.py`` writes
them: ``{"epoch", "state_dict", "optimizer"}`` with ``DataParallel``'s
``module.`` in front of every key.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from photofix.archs.shadowformer import ShadowFormerArch
from photofix.archs.shadowformer.network import ShadowFormer, SIMTransformerBlock
from photofix.errors import ModelLoadError
from photofix.engine.models import read_state_dict

# Small config: width 8, window 2 (multiple of 16), two blocks in the bottleneck
# so that a shifted block exists.
CONFIG = {
    "in_chans": 3,
    "embed_dim": 8,
    "depths": (1, 1, 1, 2, 1, 1, 1),
    "num_heads": (1, 2, 4, 16, 8, 4, 2),
    "win_size": 2,
    "mlp_ratio": 4.0,
    "token_mlp": "leff",
    "qkv_bias": True,
}

# Upstream (GuoLanqing/ShadowFormer model.py) key names, written out so a rename fails.
_CA_BLOCK_KEYS = (
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.linear1.0.weight",
    "mlp.linear1.0.bias",
    "mlp.dwconv.0.weight",
    "mlp.dwconv.0.bias",
    "mlp.linear2.0.weight",
    "mlp.linear2.0.bias",
    "CAB.body.0.weight",
    "CAB.body.1.weight",
    "CAB.body.2.weight",
    "CAB.CA.conv_du.0.weight",
    "CAB.CA.conv_du.2.weight",
)
_SIM_BLOCK_KEYS = _CA_BLOCK_KEYS + (
    "attn.relative_position_bias_table",
    "attn.relative_position_index",
    "attn.qkv.to_q.weight",
    "attn.qkv.to_q.bias",
    "attn.qkv.to_kv.weight",
    "attn.qkv.to_kv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
)
_BLOCKS = {
    "encoderlayer_0.blocks.0.": _CA_BLOCK_KEYS,
    "encoderlayer_1.blocks.0.": _CA_BLOCK_KEYS,
    "encoderlayer_2.blocks.0.": _SIM_BLOCK_KEYS,
    "conv.blocks.0.": _SIM_BLOCK_KEYS,
    "conv.blocks.1.": _SIM_BLOCK_KEYS,
    "decoderlayer_0.blocks.0.": _SIM_BLOCK_KEYS,
    "decoderlayer_1.blocks.0.": _CA_BLOCK_KEYS,
    "decoderlayer_2.blocks.0.": _CA_BLOCK_KEYS,
}
_OTHER_KEYS = (
    "input_proj.proj.0.weight",
    "input_proj.proj.0.bias",
    "output_proj.proj.0.weight",
    "output_proj.proj.0.bias",
    "dowsample_0.conv.0.weight",
    "dowsample_0.conv.0.bias",
    "dowsample_1.conv.0.weight",
    "dowsample_1.conv.0.bias",
    "dowsample_2.conv.0.weight",
    "dowsample_2.conv.0.bias",
    "upsample_0.deconv.0.weight",
    "upsample_0.deconv.0.bias",
    "upsample_1.deconv.0.weight",
    "upsample_1.deconv.0.bias",
    "upsample_2.deconv.0.weight",
    "upsample_2.deconv.0.bias",
)
UPSTREAM_KEYS = set(_OTHER_KEYS) | {prefix + key for prefix, keys in _BLOCKS.items() for key in keys}


def _random_network() -> ShadowFormer:
    torch.manual_seed(0)
    net = ShadowFormer(**CONFIG).eval()
    with torch.no_grad():  # non-trivial values everywhere (LayerNorms start at 1/0, the bias tables at 0)
        for name, p in net.named_parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith(("norm1.weight", "norm2.weight")) else 0.0))
    return net


def _inputs(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, h, w, generator=g)
    mask = (torch.rand(1, 1, h, w, generator=g) > 0.6).float()
    return image, mask


@pytest.fixture(scope="module")
def net() -> ShadowFormer:
    return _random_network()


def test_keys_match_upstream(net: ShadowFormer) -> None:
    assert set(net.state_dict()) == UPSTREAM_KEYS
    sd = net.state_dict()
    assert sd["input_proj.proj.0.weight"].shape == (8, 4, 3, 3)  # RGB + mask in
    assert sd["output_proj.proj.0.weight"].shape == (3, 16, 3, 3)
    assert sd["conv.blocks.0.attn.relative_position_bias_table"].shape == (9, 16)  # (2*win - 1)^2 x heads
    assert sd["conv.blocks.0.attn.relative_position_index"].dtype == torch.int64
    assert sd["decoderlayer_0.blocks.0.attn.qkv.to_kv.weight"].shape == (128, 64)


def test_released_file_layout_loads_through_spandrel(net: ShadowFormer, tmp_path) -> None:
    path = tmp_path / "model_best.pth"
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4)
    torch.save(
        {
            "epoch": 500,
            "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()},
            "optimizer": optimizer.state_dict(),
        },
        path,
    )
    state_dict = read_state_dict(path)
    assert set(state_dict) == UPSTREAM_KEYS  # wrapper and module. prefix gone

    arch = ShadowFormerArch()
    assert arch.detect(state_dict)
    descriptor = arch.load(state_dict)
    assert descriptor.architecture.id == "ShadowFormer"
    assert descriptor.purpose == "Restoration"
    assert descriptor.size_requirements.multiple_of == 16  # 8 * win_size
    model = descriptor.model
    assert (model.win_size, model.multiple_of) == (2, 16)
    assert [len(getattr(model, s).blocks) for s in ("encoderlayer_0", "conv", "decoderlayer_2")] == [1, 2, 1]

    image, mask = _inputs(32, 48)
    with torch.no_grad():
        assert torch.equal(model(image, mask), net(image, mask))
        out = descriptor(image[..., :29, :45], mask[..., :29, :45])  # spandrel pads, then crops
    assert out.shape == (1, 3, 29, 45)


def test_other_networks_are_not_detected(net: ShadowFormer) -> None:
    sd = dict(net.state_dict())
    sd.pop("conv.blocks.0.attn.relative_position_bias_table")  # a Uformer-like layout
    assert not ShadowFormerArch().detect(sd)
    with pytest.raises(ModelLoadError, match="not a ShadowFormer"):
        ShadowFormerArch().load(sd)


def test_non_multiple_size_is_padded_and_cropped(net: ShadowFormer) -> None:
    image, mask = _inputs(37, 51)
    with torch.no_grad():
        out = net(image, mask)
        # Upstream test.py: reflect-pad bottom/right to the multiple, run, crop.
        padded = net(F.pad(image, (0, 13, 0, 11), mode="reflect"), F.pad(mask, (0, 13, 0, 11), mode="reflect"))
    assert out.shape == image.shape
    torch.testing.assert_close(out, padded[..., :37, :51])


def test_global_residual(net: ShadowFormer) -> None:
    """With the output conv zeroed, the network returns its input exactly."""
    zeroed = _random_network()
    with torch.no_grad():
        zeroed.output_proj.proj[0].weight.zero_()
        zeroed.output_proj.proj[0].bias.zero_()
        image, mask = _inputs(32, 32)
        assert torch.equal(zeroed(image, mask), image)
        assert not torch.allclose(net(image, mask), image)  # and the real path does change it


def _reference_sim_block(block: SIMTransformerBlock, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's SIM block written token by token, sharing no code with the network.

    ``x`` is (H, W, C), ``mask`` (H, W). Windows are taken on the image rolled by
    ``-shift``; two tokens of a window may attend to each other only if they are
    neighbours in the unrolled image; logits between a shadow and a lit token
    keep weight 1, others get 0.2.
    """
    p = dict(block.named_parameters())
    h, w, c = x.shape
    win, shift, heads = block.win_size, block.shift_size, block.attn.heads
    d = c // heads
    y = F.layer_norm(x, (c,), p["norm1.weight"], p["norm1.bias"])
    q = F.linear(y, p["attn.qkv.to_q.weight"], p["attn.qkv.to_q.bias"])
    kv = F.linear(y, p["attn.qkv.to_kv.weight"], p["attn.qkv.to_kv.bias"])
    k, v = kv[..., :c], kv[..., c:]
    table = p["attn.relative_position_bias_table"]
    attended = torch.zeros_like(x)
    for top, left in itertools.product(range(0, h, win), range(0, w, win)):
        # Original (unrolled) coordinates of the window's tokens, row-major.
        pos = [((top + i + shift) % h, (left + j + shift) % w) for i in range(win) for j in range(win)]
        for a, (ra, ca) in enumerate(pos):
            for head in range(heads):
                hs = slice(head * d, (head + 1) * d)
                logits = []
                for b, (rb, cb) in enumerate(pos):
                    ia, ja, ib, jb = divmod(a, win) + divmod(b, win)
                    logit = (q[ra, ca, hs] @ k[rb, cb, hs]) * d**-0.5
                    cross = bool(mask[ra, ca] >= 0.1) != bool(mask[rb, cb] >= 0.1)
                    logit = logit * (1.0 if cross else 0.2)
                    logit = logit + table[(ia - ib + win - 1) * (2 * win - 1) + (ja - jb + win - 1), head]
                    if abs(ra - rb) >= win or abs(ca - cb) >= win:  # wrapped round by the roll
                        logit = logit - 100.0
                    logits.append(logit)
                weights = torch.stack(logits).softmax(0)
                attended[ra, ca, hs] = sum(wt * v[rb, cb, hs] for wt, (rb, cb) in zip(weights, pos))
    attended = F.linear(attended, p["attn.proj.weight"], p["attn.proj.bias"])

    # Residual channel-attention conv block, then the LeFF.
    img = attended.permute(2, 0, 1)[None]
    body = F.conv2d(F.prelu(F.conv2d(img, p["CAB.body.0.weight"], padding=1), p["CAB.body.1.weight"]),
                    p["CAB.body.2.weight"], padding=1)
    gate = torch.sigmoid(F.conv2d(F.relu(F.conv2d(body.mean((2, 3), keepdim=True), p["CAB.CA.conv_du.0.weight"])),
                                  p["CAB.CA.conv_du.2.weight"]))
    x = x + (body * gate + img)[0].permute(1, 2, 0)
    z = F.gelu(F.linear(F.layer_norm(x, (c,), p["norm2.weight"], p["norm2.bias"]),
                        p["mlp.linear1.0.weight"], p["mlp.linear1.0.bias"]))
    z = F.gelu(F.conv2d(z.permute(2, 0, 1)[None], p["mlp.dwconv.0.weight"], p["mlp.dwconv.0.bias"],
                        padding=1, groups=z.shape[-1]))[0].permute(1, 2, 0)
    return x + F.linear(z, p["mlp.linear2.0.weight"], p["mlp.linear2.0.bias"])


@pytest.mark.parametrize("shifted", [False, True])
def test_sim_block_matches_token_by_token_reference(net: ShadowFormer, shifted: bool) -> None:
    block = net.conv.blocks[1 if shifted else 0]
    assert block.shift_size == (1 if shifted else 0)
    h, w, c = 4, 6, 64
    g = torch.Generator().manual_seed(2)
    x = torch.randn(h, w, c, generator=g)
    mask = (torch.rand(h, w, generator=g) > 0.5).float()
    with torch.no_grad():
        got = block(x.reshape(1, h * w, c), mask[None, None], (h, w)).reshape(h, w, c)
        want = _reference_sim_block(block, x, mask)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_registered_before_uformer_wins(net: ShadowFormer) -> None:
    """spandrel's Uformer detector also matches ShadowFormer keys, so ShadowFormer must come first."""
    from spandrel import MAIN_REGISTRY, ArchSupport

    registry = MAIN_REGISTRY.copy()
    registry.add(ArchSupport.from_architecture(ShadowFormerArch(), before=("Uformer",)))
    assert registry.load(net.state_dict()).architecture.id == "ShadowFormer"
