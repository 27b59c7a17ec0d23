"""Task hooks: noise-level estimate, grey in/grey out, alpha handling, final scale."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from photofix.errors import UsageError
from photofix.imageio import Image, ImageMeta
from photofix.engine.models import load_model
from photofix.tasks.restore import Restorer, TaskParams
from photofix.engine.adapt import changes_size, estimate_noise_sigma, finish
from tests.helpers import add_noise


def _image(pixels: np.ndarray, alpha: np.ndarray | None = None, grayscale: bool = False) -> Image:
    meta = ImageMeta(
        format="PNG", mode="L" if grayscale else "RGB", bit_depth=8, grayscale=grayscale, exif=None,
        icc_profile=None, xmp=None, dpi=None, quality=None, subsampling=None, source_name="test.png",
    )
    return Image(pixels=pixels.astype(np.float32), alpha=alpha, meta=meta)


@pytest.mark.parametrize("sigma", [10, 25, 40])
def test_noise_estimate_tracks_the_true_level(astronaut: np.ndarray, sigma: float) -> None:
    noisy = add_noise(astronaut, sigma, seed=3) / 255.0
    estimate = estimate_noise_sigma(noisy)
    # clipping at 0/255 removes a little noise, texture adds a little
    assert abs(estimate - sigma) < 0.15 * sigma + 1.5


def test_noise_estimate_is_low_on_a_clean_photo(chelsea: np.ndarray) -> None:
    assert estimate_noise_sigma(chelsea / 255.0) < 4.0


def test_grey_source_is_written_back_grey(ffdnet_weights, astronaut: np.ndarray) -> None:
    grey = (add_noise(astronaut[:96, :96].mean(axis=2).astype(np.uint8), 20) / 255.0)[..., None]
    model = load_model(ffdnet_weights["rgb"], device="cpu")  # a colour model
    restored, details = Restorer("denoise", model, params=TaskParams(sigma=20), tile=0).restore(_image(grey, grayscale=True))
    assert restored.pixels.shape == (96, 96, 1)
    assert details["sigma"] == 20


def test_colour_image_through_grey_model_stays_colour(ffdnet_weights, astronaut: np.ndarray) -> None:
    rgb = add_noise(astronaut[:64, :64], 15) / 255.0
    model = load_model(ffdnet_weights["gray"], device="cpu")
    restored, _ = Restorer("denoise", model, params=TaskParams(sigma=15), tile=0).restore(_image(rgb))
    assert restored.pixels.shape == (64, 64, 3)
    assert not np.allclose(restored.pixels[..., 0], restored.pixels[..., 1])


def test_alpha_is_untouched_by_denoise_and_resized_by_upscale(ffdnet_weights, dat_weights, astronaut: np.ndarray) -> None:
    rgb = astronaut[:24, :32] / 255.0
    alpha = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (24, 1))
    image = _image(rgb, alpha=alpha)
    denoised, _ = Restorer("denoise", load_model(ffdnet_weights["rgb"], device="cpu"), params=TaskParams(sigma=5), tile=0).restore(image)
    assert denoised.alpha is alpha
    upscaled, details = Restorer("upscale", load_model(dat_weights[2], device="cpu"), tile=0).restore(image)
    assert upscaled.pixels.shape == (48, 64, 3) and upscaled.alpha.shape == (48, 64)
    assert details["scale"] == 2
    # a horizontal ramp stays a ramp
    assert np.all(np.diff(upscaled.alpha[10]) >= -1e-3)


def test_finish_resamples_to_the_final_scale() -> None:
    image = _image(np.zeros((10, 20, 3)))
    model_output = np.zeros((40, 80, 3), np.float32)  # a 4x model
    assert finish(image, model_output, final_scale=2).pixels.shape == (20, 40, 3)
    assert finish(replace(image), model_output, final_scale=1.5).pixels.shape == (15, 30, 3)


def test_unknown_task_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="denoise"):
        changes_size("sharpen")


def test_nan_output_in_half_precision_is_redone_in_fp32(ffdnet_weights, astronaut: np.ndarray) -> None:
    import torch

    model = load_model(ffdnet_weights["rgb"], device="cpu", precision="bf16")
    real_call = type(model.descriptor.model).forward

    def overflow_in_half(self, x, sigma):
        out = real_call(self, x, sigma)
        return out * float("nan") if x.dtype != torch.float32 else out

    model.descriptor.model.forward = overflow_in_half.__get__(model.descriptor.model)
    restorer = Restorer("denoise", model, params=TaskParams(sigma=10), tile=0)
    restored, details = restorer.restore(_image(astronaut[:32, :32] / 255.0))
    assert details["precision_fallback"] == "fp32" and model.dtype == torch.float32
    assert np.isfinite(restored.pixels).all()


def test_requested_scale_prefers_a_native_model_of_the_same_tier() -> None:
    from photofix.store.manifest import parse_manifest
    from photofix.store.choice import choose_entry

    def model(id_: str, tier: str, scale: int) -> str:
        return f"""
[[model]]
id = "{id_}"
task = "upscale"
arch = "ESRGAN"
tier = "{tier}"
license = "MIT"
commercial_use = true
sha256 = "unverified"
tile_overlap = 16
[model.source]
url = "https://example.org/{id_}.pth"
filename = "{id_}.pth"
[model.params]
scale = {scale}
"""

    manifest = parse_manifest(
        'schema = 1\n[defaults.upscale]\ndefault = "balanced"\nfast = "a4"\nbalanced = "b4"\nbest = "b4"\n'
        + model("a4", "fast", 4) + model("b4", "balanced", 4) + model("b2", "balanced", 2) + model("a2", "fast", 2)
    )
    assert choose_entry(manifest, "upscale", None, None, None).id == "b4"
    assert choose_entry(manifest, "upscale", None, None, 2).id == "b2"
    assert choose_entry(manifest, "upscale", None, "fast", 2).id == "a2"
    assert choose_entry(manifest, "upscale", None, None, 3).id == "b4"  # none native: resample the default


def test_blur_kind_picks_the_family_and_never_a_non_commercial_default() -> None:
    from photofix.store.manifest import load_manifest
    from photofix.store.choice import choose_entry

    manifest = load_manifest()
    assert choose_entry(manifest, "deblur", None, None, kind="motion").id == "nafnet-gopro-width64"
    assert choose_entry(manifest, "deblur", None, "fast", kind="motion").id == "nafnet-gopro-width32"
    with pytest.raises(UsageError, match="defocus deblur has no model licensed for commercial use.*restormer-defocus-deblur"):
        choose_entry(manifest, "deblur", None, None, kind="defocus")
    assert choose_entry(manifest, "deblur", "restormer-defocus-deblur", None, kind="defocus").id == "restormer-defocus-deblur"
    with pytest.raises(UsageError, match="--model: restormer-derain"):
        choose_entry(manifest, "derain", None, None)


def test_auto_tile_never_goes_below_the_models_minimum(ffdnet_weights, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from photofix.engine import tiling

    monkeypatch.setattr(tiling, "auto_tile_size", lambda *a, **k: 96)  # as if memory were tight
    model = load_model(ffdnet_weights["rgb"], device="cpu")
    restorer = Restorer("denoise", model, params=TaskParams(sigma=5), tile=None, min_tile=256)
    _, details = restorer.restore(_image(astronaut[:64, :64] / 255.0))
    assert restorer.last_tile == 256 and restorer.tile is None  # chosen per photo; the setting stays auto
    assert details["tile"] == "whole image"  # what -v and --json show for this photo
    assert Restorer("denoise", model, tile=64, min_tile=256).tile == 64  # an explicit --tile is honoured
