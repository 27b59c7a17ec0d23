"""Restormer checkpoints load in every layout they are published or saved in.

What deepinv's files look like was read from deepinv's source (deepinv/deepinv at
commit 3f832a7c2a339e0ed91cb16fde554368c362c0d9, and the PyPI wheel deepinv 0.5.0):

* ``deepinv/models/restormer.py``: ``class Restormer`` keeps every attribute name of
  swz30/Restormer's ``basicsr/models/archs/restormer_arch.py`` (``patch_embed.proj``,
  ``encoder_level1..3``, ``latent``, ``down1_2``/``down2_3``/``down3_4``,
  ``up4_3``/``up3_2``/``up2_1``, ``reduce_chan_level3/2``, ``decoder_level3..1``,
  ``refinement``, ``skip_conv``, ``output``; blocks ``norm1.body``, ``attn.temperature``,
  ``attn.qkv``, ``attn.qkv_dwconv``, ``attn.project_out``, ``norm2.body``,
  ``ffn.project_in``, ``ffn.dwconv``, ``ffn.project_out``) and loads its Hub files
  (``gaussian_*_denoising_blind.pth``, ``real_denoising.pth``, ``deraining.pth``,
  ``*_defocus_deblurring.pth``) with ``load_state_dict(ckpt["params"], strict=True)``:
  the Hub files are ``{"params": state_dict}`` in the original layout.
* ``deepinv/training/trainer.py``, ``Trainer.save_model``: ``{"epoch", "state_dict":
  model.state_dict(), "loss", "train_metrics", "eval_loss", "eval_metrics",
  "optimizer", "scheduler"}``; the trained ``model`` is typically the Restormer inside
  ``ArtifactRemoval`` (``deepinv/models/artifactremoval.py``: ``self.backbone_net``) or
  ``EquivariantDenoiser`` (``deepinv/models/equivariant.py``: ``self.denoiser``).

The deepinv layouts below are built from the original state dict by the reverse of
``photofix.archs.keymaps.to_canonical_layout`` (prefix the wrapper attribute names,
wrap like ``Trainer.save_model``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel_extra_arches.architectures.Restormer import Restormer

from photofix.archs.keymaps import is_restormer, to_canonical_layout
from photofix.engine.models import load_model, read_state_dict
from tests.helpers import kair_ffdnet_state_dict

SMALL = dict(dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8])
# The released configuration (motion_deblurring.pth, deraining.pth: WithBias; real_denoising.pth: BiasFree).
RELEASED = dict(dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False)


def _restormer(seed: int = 0, **config) -> Restormer:
    torch.manual_seed(seed)
    net = Restormer(**config).eval()
    with torch.no_grad():  # LayerNorm weights start at 1/0 and temperatures at 1: make every parameter matter
        for name, param in net.named_parameters():
            if name.endswith(("norm1.body.weight", "norm2.body.weight", "attn.temperature")):
                param.add_(0.1 * torch.randn_like(param))
            elif name.endswith(("norm1.body.bias", "norm2.body.bias")):
                param.copy_(0.1 * torch.randn_like(param))
    return net


def _photo_crop(astronaut: np.ndarray, height: int, width: int) -> torch.Tensor:
    crop = astronaut[100 : 100 + height, 180 : 180 + width]
    return torch.from_numpy(crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


# --- the reverse of the key map: how deepinv would hold the same weights ------------------------


def _prefixed(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state_dict.items()}


def _deepinv_trainer_checkpoint(state_dict: dict[str, torch.Tensor], prefix: str) -> dict:
    """``Trainer.save_model``'s dict for a Restormer held under ``prefix`` (e.g. ``backbone_net.``)."""
    params = [torch.nn.Parameter(v.clone()) for v in state_dict.values() if v.is_floating_point()]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    sum(p.square().sum() for p in params[:3]).backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    return {
        "epoch": 7,
        "state_dict": _prefixed(state_dict, prefix),
        "loss": {"SupLoss": [0.021, 0.017]},
        "train_metrics": {"PSNR": [27.5, 28.1]},
        "eval_loss": {"SupLoss": [0.019]},
        "eval_metrics": {"PSNR": [28.0]},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }


LAYOUTS = {
    # swz30/Restormer release files and deepinv's Hub copies: same keys, same wrapper.
    "original_params": lambda sd: {"params": sd},
    # torch.save(deepinv_restormer.state_dict()): bare, same keys.
    "deepinv_module_state_dict": lambda sd: dict(sd),
    # deepinv Trainer checkpoint of ArtifactRemoval(backbone_net=Restormer(...)).
    "deepinv_trainer_artifact_removal": lambda sd: _deepinv_trainer_checkpoint(sd, "backbone_net."),
    # ... of ArtifactRemoval(EquivariantDenoiser(Restormer(...))).
    "deepinv_trainer_equivariant": lambda sd: _deepinv_trainer_checkpoint(sd, "backbone_net.denoiser."),
    # ... of EquivariantDenoiser(Restormer(...)) trained with DataParallel ("module." stripped by spandrel).
    "deepinv_trainer_dataparallel": lambda sd: _deepinv_trainer_checkpoint(sd, "module.denoiser."),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("norm", ["WithBias", "BiasFree"])
def test_layout_loads_and_equals_original_module(tmp_path: Path, astronaut: np.ndarray, layout: str, norm: str) -> None:
    net = _restormer(LayerNorm_type=norm, **SMALL)
    state = net.state_dict()
    path = tmp_path / f"{layout}.pth"
    torch.save(LAYOUTS[layout](state), path)

    assert set(read_state_dict(path)) == set(state)
    model = load_model(path, expected_arch="Restormer", device="cpu", cpu_rewrites=False)  # exact: the published network as is
    assert (model.arch, model.in_channels, model.out_channels, model.scale) == ("Restormer", 3, 3, 1)

    x = _photo_crop(astronaut, 40, 56)  # multiples of 8: no padding, compare the bare network
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    got = model(x)
    assert torch.equal(got, expected)
    assert (got - x).abs().max() > 1e-3  # the network did something
    rewritten = load_model(path, expected_arch="Restormer", device="cpu")  # photofix's CPU path
    assert (rewritten(x) - expected).abs().max() <= 1e-4


def test_odd_sizes_are_padded_like_the_network_wants(tmp_path: Path, astronaut: np.ndarray) -> None:
    net = _restormer(**SMALL)
    path = tmp_path / "restormer.pth"
    torch.save(_deepinv_trainer_checkpoint(net.state_dict(), "backbone_net."), path)
    model = load_model(path, expected_arch="Restormer", device="cpu")
    assert model.multiple_of == 8
    x = _photo_crop(astronaut, 37, 51)
    got = model(x)
    assert got.shape == x.shape and torch.isfinite(got).all()


@pytest.mark.parametrize(("norm", "release"), [("WithBias", "motion_deblurring"), ("BiasFree", "real_denoising")])
def test_released_configuration_is_detected_exactly(tmp_path: Path, astronaut: np.ndarray, norm: str, release: str) -> None:
    net = _restormer(LayerNorm_type=norm, **RELEASED)
    state = net.state_dict()
    for layout in ("original_params", "deepinv_trainer_artifact_removal"):
        path = tmp_path / f"{release}_{layout}.pth"
        torch.save(LAYOUTS[layout](state), path)
        model = load_model(path, expected_arch="Restormer", device="cpu", cpu_rewrites=False)
        loaded = model.descriptor.model
        assert {k: v.shape for k, v in loaded.state_dict().items()} == {k: v.shape for k, v in state.items()}
        assert len(loaded.encoder_level1) == 4 and len(loaded.latent) == 8 and len(loaded.refinement) == 4
        assert loaded.latent[0].attn.num_heads == 8
        assert loaded.encoder_level1[0].ffn.project_out.in_channels == int(48 * 2.66)
        assert ("encoder_level1.0.norm1.body.bias" in state) == (norm == "WithBias")
        x = _photo_crop(astronaut, 16, 24)
        with torch.no_grad():
            expected = net(x).clamp(0, 1)
        assert torch.equal(model(x), expected)


# --- the key map itself -----------------------------------------------------------------------------


def test_map_strips_deepinv_wrappers_and_nothing_else() -> None:
    state = _restormer(**SMALL).state_dict()
    assert to_canonical_layout(state) is state  # original layout: untouched
    for prefix in ("backbone_net.", "denoiser.", "model.", "backbone_net.denoiser."):
        mapped = to_canonical_layout(_prefixed(state, prefix))
        assert list(mapped) == list(state)
        assert all(mapped[k] is state[k] for k in state)
    # an unknown wrapper name is not guessed at
    unknown = _prefixed(state, "generator.")
    assert to_canonical_layout(unknown) is unknown


def test_map_leaves_non_restormer_state_dicts_untouched() -> None:
    from spandrel.architectures.NAFNet import NAFNet

    nafnet = NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]).state_dict()
    kair = kair_ffdnet_state_dict()  # keys "model.N.weight": starts like a deepinv wrapper, is not one
    restormer = _restormer(**SMALL).state_dict()
    partial = {k: v for k, v in _prefixed(restormer, "backbone_net.").items() if "refinement" not in k}
    for state in (nafnet, _prefixed(nafnet, "backbone_net."), kair, partial, {}):
        before = dict(state)
        out = to_canonical_layout(state)
        assert out is state and out == before
        assert not is_restormer(out)
