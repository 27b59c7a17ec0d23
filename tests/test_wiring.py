"""Known-linear wiring checks: with its last conv zeroed, a global-residual network is the identity.

NAFNet (``x = ending(x); x = x + inp``) and Restormer (``output(x) + inp_img``) add
the input image to the last conv's output. Zeroing that conv's weight (and bias)
in the saved checkpoint must make the loaded model return its input exactly, on a
real photo, through ``load_model`` and through the tiled ``Restorer``. The same
checkpoint with its random final layer must not: that is the control showing the
checks can fail.
"""

from __future__ import annotations

import dataclasses

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from photofix.imageio import read_image
from photofix.engine.models import load_model
from photofix.tasks.restore import Restorer


def _nafnet() -> torch.nn.Module:
    """GoPro-width64 pattern (enc [1,1,1,28], middle 1, dec [1,1,1,1]), narrower and shallower."""
    from spandrel.architectures.NAFNet import NAFNet

    torch.manual_seed(1)
    net = NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 2], dec_blk_nums=[1, 1, 1, 1])
    with torch.no_grad():  # beta/gamma start at zero (blocks = identity): make the blocks matter
        for name, param in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                param.copy_(0.5 * torch.randn_like(param))
    return net.eval()


def _restormer() -> torch.nn.Module:
    from spandrel_extra_arches.architectures.Restormer import Restormer

    torch.manual_seed(2)
    net = Restormer(dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8])
    return net.eval()


# arch id, builder, name of the final projection conv in the checkpoint
NETWORKS: dict[str, tuple[Callable[[], torch.nn.Module], str]] = {
    "NAFNet": (_nafnet, "ending"),
    "Restormer": (_restormer, "output"),
}


def _save_checkpoint(tmp_path: Path, arch: str, zero_final: bool) -> Path:
    """The release layout of both (``{"params": state_dict}``), optionally with the last conv zeroed."""
    build, final = NETWORKS[arch]
    state = build().state_dict()
    final_keys = [k for k in state if k.startswith(final + ".")]
    assert final_keys and all(k in (f"{final}.weight", f"{final}.bias") for k in final_keys)
    if zero_final:
        state = {k: torch.zeros_like(v) if k in final_keys else v for k, v in state.items()}
    path = tmp_path / f"{arch}_{'zeroed' if zero_final else 'random'}.pth"
    torch.save({"params": state}, path)
    return path


def _as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("arch", sorted(NETWORKS))
def test_zeroed_final_layer_returns_the_input(tmp_path: Path, astronaut: np.ndarray, arch: str) -> None:
    x = _as_tensor(astronaut[60:105, 150:211] / 255.0)  # 45 x 61: odd, so the padding path runs too

    zeroed = load_model(_save_checkpoint(tmp_path, arch, zero_final=True), expected_arch=arch, device="cpu")
    out = zeroed(x)
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=1e-6, rtol=0)

    # control: the same network with its random final layer changes the photo
    random = load_model(_save_checkpoint(tmp_path, arch, zero_final=False), expected_arch=arch, device="cpu")
    assert (random(x) - x).abs().max() > 1e-2


@pytest.mark.parametrize("arch", sorted(NETWORKS))
def test_zeroed_final_layer_returns_the_input_through_tiles(tmp_path: Path, astronaut: np.ndarray, arch: str) -> None:
    png = tmp_path / "crop.png"
    PILImage.fromarray(astronaut[20:170, 140:270]).save(png)  # 150 x 130
    image = read_image(png)
    assert (image.height, image.width, image.pixels.shape[2]) == (150, 130, 3)

    tiles: list[tuple[int, int]] = []
    zeroed = load_model(_save_checkpoint(tmp_path, arch, zero_final=True), expected_arch=arch, device="cpu")
    restored, _ = Restorer("denoise", zeroed, tile=64, tile_overlap=16).restore(image, on_tile=lambda d, t: tiles.append((d, t)))
    assert tiles and tiles[-1][0] == tiles[-1][1] > 1  # really tiled
    assert restored.pixels.shape == image.pixels.shape
    np.testing.assert_allclose(restored.pixels, image.pixels, atol=1e-6, rtol=0)

    random = load_model(_save_checkpoint(tmp_path, arch, zero_final=False), expected_arch=arch, device="cpu")
    changed, _ = Restorer("denoise", random, tile=64, tile_overlap=16).restore(image)
    assert np.abs(changed.pixels - image.pixels).max() > 1e-2


def test_nafnet_tiles_start_on_its_internal_grid(tmp_path: Path, astronaut: np.ndarray) -> None:
    """NAFNet pads to 16 and downsamples 4 times; tiles off that grid change its output.

    spandrel reports multiple_of 1 for NAFNet; photofix aligns tile origins to 16, which
    must bring the tiled result much closer to the whole-image one than arbitrary origins.
    """
    png = tmp_path / "crop.png"
    PILImage.fromarray(astronaut[40:240, 120:320]).save(png)  # 200 x 200
    image = read_image(png)
    model = load_model(_save_checkpoint(tmp_path, "NAFNet", zero_final=False), expected_arch="NAFNet", device="cpu")
    assert model.multiple_of == 1 and model.tile_grid == 16

    whole, _ = Restorer("denoise", model, tile=0).restore(image)
    aligned, _ = Restorer("denoise", model, tile=100, tile_overlap=24).restore(image)
    # what photofix did before: origins wherever the even split puts them
    model.traits = dataclasses.replace(model.traits, tile_grid=1)
    unaligned, _ = Restorer("denoise", model, tile=100, tile_overlap=24).restore(image)

    aligned_error = float(np.mean((aligned.pixels - whole.pixels) ** 2))
    unaligned_error = float(np.mean((unaligned.pixels - whole.pixels) ** 2))
    assert unaligned_error > 10 * aligned_error, (unaligned_error, aligned_error)


def test_scunet_declares_its_64_px_grid(tmp_path: Path) -> None:
    from spandrel.architectures.SCUNet import SCUNet

    path = tmp_path / "scunet.pth"
    torch.save(SCUNet(in_nc=3, config=[1] * 7, dim=64).state_dict(), path)
    assert load_model(path, device="cpu").tile_grid == 64
