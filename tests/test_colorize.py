"""Colorize: DDColor-T from a checkpoint in the released layout, the exact wiring of the
photo's own lightness with the predicted chroma (checked against scikit-image's Lab), and
chroma beyond sRGB gamut-mapped so that lightness survives."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image as PILImage
from skimage import color

from photofix.methods.colorize import colorize, colorize_image, gamut_map_chroma, load_colorizer, luminance_and_grey
from photofix.errors import ArchitectureMismatch, ModelLoadError, UsageError
from photofix.imageio import Image, ImageMeta, decode_image, encode_image
from tests.helpers import kair_ffdnet_state_dict

# DDColor-T ("ddcolor_paper_tiny") as the authors build it: scripts/infer.py --model_size tiny
# and ddcolor/pipeline.py build_ddcolor_model (input_size only sizes a probe pass at construction).
PAPER_TINY = {
    "encoder_name": "convnext-t",
    "decoder_name": "MultiScaleColorDecoder",
    "num_input_channels": 3,
    "nf": 512,
    "num_output_channels": 2,
    "last_norm": "Spectral",
    "do_normalize": False,
    "num_queries": 100,
    "num_scales": 3,
    "dec_layers": 9,
}


# --- helpers -----------------------------------------------------------------------


class FakeChroma:
    """A known 'model': returns fixed a, b planes and records what it was given."""

    def __init__(self, ab: torch.Tensor) -> None:
        self.ab = ab
        self.render_size = ab.shape[-1]
        self.inputs: list[torch.Tensor] = []

    def predict_ab(self, grey_rgb: torch.Tensor) -> torch.Tensor:
        self.inputs.append(grey_rgb.clone())
        return self.ab


def gradient_ab(size: int) -> torch.Tensor:
    """a rises left to right, b falls top to bottom: any flip, transpose or offset shows."""
    a = torch.linspace(-18.0, 18.0, size).expand(size, size)
    b = torch.linspace(12.0, -12.0, size)[:, None].expand(size, size)
    return torch.stack([a, b])[None].contiguous()


def lightness_of_grey(grey: np.ndarray) -> np.ndarray:
    """scikit-image's L* of grey values (H x W)."""
    return color.rgb2lab(np.repeat(np.asarray(grey, np.float64)[..., None], 3, axis=2))[..., 0]


def assert_lightness_within_levels(output: np.ndarray, grey: np.ndarray, levels: float, peak: int) -> None:
    """Output (quantised to ``peak``) has the L* of the input grey to within ``levels`` grey levels."""
    quantised = np.round(np.clip(output, 0, 1) * peak) / peak
    lightness = color.rgb2lab(quantised.astype(np.float64))[..., 0]
    low = lightness_of_grey(np.clip(grey - levels / peak, 0, 1))
    high = lightness_of_grey(np.clip(grey + levels / peak, 0, 1))
    assert np.all(lightness >= low - 1e-9) and np.all(lightness <= high + 1e-9)


def photo_grey(astronaut: np.ndarray, height: int, width: int, peak: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """A real photo as a grey H x W x 1 image on a 'peak'-level grid, mapped into [low, high]."""
    grey = color.rgb2gray(cv2.resize(astronaut, (width, height), interpolation=cv2.INTER_AREA))
    return (np.round((low + (high - low) * grey) * peak) / peak).astype(np.float32)[..., None]


def meta(**changes) -> ImageMeta:
    base = ImageMeta(format="PNG", mode="L", bit_depth=8, grayscale=True, exif=b"Exif\0\0MM", dpi=(300.0, 300.0))
    return dataclasses.replace(base, **changes)


# --- (a) DDColor-T from a checkpoint in the released layout ---------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained DDColor-T saved like the release: BasicSR's {"params": state_dict}, which the
    authors' scripts unwrap with ``torch.load(path)["params"]`` (same 440 keys and shapes)."""
    from spandrel_extra_arches.architectures.DDColor import DDColor

    torch.manual_seed(0)
    model = DDColor(**PAPER_TINY, input_size=(64, 64))
    path = tmp_path_factory.mktemp("ddcolor") / "ddcolor_paper_tiny.pth"
    torch.save({"params": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint: Path):
    return load_colorizer(tiny_checkpoint, "cpu")


def test_detection_reproduces_the_paper_tiny_config(tiny) -> None:
    detected = {key: tiny.network.hyperparameters[key] for key in PAPER_TINY}
    assert detected == PAPER_TINY
    assert tiny.render_size == tiny.network.input_size[0] == 256  # the size the models were trained at


def test_real_ddcolor_colours_a_grey_photo_keeping_its_lightness(tiny, astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 512, 512, 255)
    answers: list[torch.Tensor] = []

    def run_network(grey_rgb: torch.Tensor) -> torch.Tensor:
        answers.append(tiny.predict_ab(grey_rgb))
        return answers[-1]

    rgb, details = colorize(grey, run_network, render_size=64)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.float32
    assert np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert details["converted_to_grey"] is False and details["render_size"] == 64
    assert np.ptp(rgb, axis=2).max() > 0.01  # the network's chroma reached the output
    lightness = color.rgb2lab(rgb.astype(np.float64))[..., 0]
    assert np.abs(lightness - lightness_of_grey(grey[..., 0])).max() < 0.05  # gamut-mapped, not clipped
    # Untrained spectral norms make its chroma huge (all out of gamut); scaled down, the same
    # chroma must leave the photo's lightness untouched where it fits sRGB as predicted.
    ab = answers[0]
    assert ab.shape == (1, 2, 64, 64) and ab.dtype == torch.float32
    rgb, _ = colorize(grey, lambda x: ab, render_size=64, saturation=20.0 / float(ab.abs().max()))
    inside = (rgb > 1e-6).all(axis=2) & (rgb < 1 - 1e-6).all(axis=2)  # no channel clipped to 0 or 1
    assert inside.mean() > 0.5
    lightness = color.rgb2lab(rgb.astype(np.float64))[..., 0]
    assert np.abs(lightness - lightness_of_grey(grey[..., 0]))[inside].max() < 0.05


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mislabelled_ddcolor.pth"
    torch.save(kair_ffdnet_state_dict(), path)
    with pytest.raises(ArchitectureMismatch, match="DDColor"):
        load_colorizer(path, "cpu")


def test_an_unknown_checkpoint_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "unknown.pth"
    torch.save({"params": {"foo.weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(ModelLoadError, match="unknown model architecture"):
        load_colorizer(path, "cpu")


def test_render_size_must_suit_the_network(tiny, tiny_checkpoint: Path) -> None:
    with pytest.raises(UsageError, match="multiple of 32 such as 96"):
        load_colorizer(tiny_checkpoint, "cpu", render_size=100)  # refused before loading
    with pytest.raises(UsageError):
        dataclasses.replace(tiny, render_size=0)
    assert dataclasses.replace(tiny, render_size=96).render_size == 96


# --- (b) wiring: known chroma in, exact Lab out -----------------------------------


@pytest.mark.parametrize("saturation", [1.0, 0.6])
def test_8_bit_output_is_input_lightness_plus_upsampled_known_chroma(astronaut: np.ndarray, saturation: float) -> None:
    grey = photo_grey(astronaut, 301, 509, 255, low=0.25, high=0.75)
    fake = FakeChroma(gradient_ab(64))
    rgb, _ = colorize(grey, fake.predict_ab, render_size=64, saturation=saturation)
    assert (rgb > 0).all() and (rgb < 1).all()  # the chosen chroma stays in gamut: nothing clipped
    assert_lightness_within_levels(rgb, grey[..., 0], levels=1, peak=255)
    expected_ab = F.interpolate(fake.ab, size=(301, 509), mode="bilinear", align_corners=False)[0] * saturation
    ab = color.rgb2lab(rgb.astype(np.float64))[..., 1:]
    assert np.abs(ab - expected_ab.numpy().transpose(1, 2, 0)).max() < 0.05


def test_16_bit_lightness_keeps_16_bit_precision(astronaut: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    grey = photo_grey(astronaut, 257, 331, 65535, low=0.25, high=0.75)
    grey = np.round(grey * 65535 + rng.integers(0, 256, grey.shape)) / 65535  # steps no 8-bit value has
    grey = grey.astype(np.float32)
    fake = FakeChroma(gradient_ab(96))
    rgb, _ = colorize(grey, fake.predict_ab, render_size=96)
    assert (rgb > 0).all() and (rgb < 1).all()
    assert_lightness_within_levels(rgb, grey[..., 0], levels=1, peak=65535)


def test_16_bit_grey_png_comes_back_as_16_bit_colour_with_its_lightness(astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 121, 203, 65535, low=0.25, high=0.75)
    buffer = io.BytesIO()
    PILImage.fromarray(np.round(grey[..., 0] * 65535).astype(np.uint16)).save(buffer, format="PNG")
    source = decode_image(buffer.getvalue(), name="scan.png")
    assert source.meta.bit_depth == 16 and source.meta.grayscale
    coloured, details = colorize_image(source, FakeChroma(gradient_ab(64)))
    assert coloured.meta.bit_depth == 16 and not coloured.meta.grayscale and details["converted_to_grey"] is False
    written = decode_image(encode_image(coloured, format="PNG"), name="out.png")
    assert written.meta.bit_depth == 16 and written.pixels.shape == (121, 203, 3)
    assert_lightness_within_levels(written.pixels, grey[..., 0], levels=1, peak=65535)


# --- (c) colour inputs, alpha, saturation, sizes ----------------------------------


def test_colour_input_is_reduced_to_its_lightness_and_reported(astronaut: np.ndarray) -> None:
    photo = (cv2.resize(astronaut, (517, 301), interpolation=cv2.INTER_AREA) / 255.0).astype(np.float32)
    fake = FakeChroma(gradient_ab(64))
    rgb, details = colorize(photo, fake.predict_ab, render_size=64, saturation=0.0)
    assert details["converted_to_grey"] is True
    seen = fake.inputs[0]
    assert torch.equal(seen[:, 0], seen[:, 1]) and torch.equal(seen[:, 1], seen[:, 2])  # the network saw grey
    assert np.abs(np.ptp(rgb, axis=2)).max() < 1e-5  # saturation 0: grey out
    lightness = color.rgb2lab(rgb.astype(np.float64))[..., 0]
    assert np.abs(lightness - color.rgb2lab(photo.astype(np.float64))[..., 0]).max() < 0.01


def test_grey_stored_as_rgb_is_not_reported_as_colour(astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 64, 80, 255)
    _, details = colorize(np.repeat(grey, 3, axis=2), FakeChroma(gradient_ab(32)).predict_ab, render_size=32)
    assert details["converted_to_grey"] is False
    assert luminance_and_grey(np.repeat(grey, 3, axis=2)).was_colour is False


def test_saturation_zero_gives_back_the_16_bit_grey(astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 301, 517, 65535)  # full range, 0 to 1
    rgb, details = colorize(grey, FakeChroma(gradient_ab(64)).predict_ab, render_size=64, saturation=0.0)
    assert details["saturation"] == 0.0
    assert np.abs(rgb - grey).max() < 0.5 / 65535


def test_alpha_and_metadata_are_carried(astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 301, 517, 255)
    alpha = np.linspace(0, 1, 301 * 517, dtype=np.float32).reshape(301, 517)
    grey_profile = bytes(16) + b"GRAY" + bytes(108)
    source = Image(grey, alpha.copy(), meta(icc_profile=grey_profile))
    coloured, details = colorize_image(source, FakeChroma(gradient_ab(64)), saturation=1.3)
    assert np.array_equal(coloured.alpha, alpha)
    assert coloured.pixels.shape == (301, 517, 3) and coloured.meta.grayscale is False
    assert coloured.meta.exif == source.meta.exif and coloured.meta.dpi == source.meta.dpi
    assert coloured.meta.icc_profile is None and "icc_profile_dropped" in details
    rgb_profile = bytes(16) + b"RGB " + bytes(108)
    kept, details = colorize_image(dataclasses.replace(source, meta=meta(icc_profile=rgb_profile)), FakeChroma(gradient_ab(64)))
    assert kept.meta.icc_profile == rgb_profile and "icc_profile_dropped" not in details


@pytest.mark.parametrize(("height", "width", "render_size"), [(301, 517, 32), (301, 517, 96), (517, 301, 64), (21, 33, 64)])
def test_any_image_size_with_any_render_size(astronaut: np.ndarray, height: int, width: int, render_size: int) -> None:
    grey = photo_grey(astronaut, height, width, 255)
    fake = FakeChroma(gradient_ab(render_size))
    rgb, details = colorize(grey, fake.predict_ab, render_size=render_size)
    assert fake.inputs[0].shape == (1, 3, render_size, render_size)
    assert abs(float(fake.inputs[0].mean()) - float(grey.mean())) < 0.01  # the network saw this photo, whole
    assert rgb.shape == (height, width, 3) and details["render_size"] == render_size
    ab = color.rgb2lab(rgb.astype(np.float64))[..., 1:]
    assert np.sign(ab[:, -1, 0].mean() - ab[:, 0, 0].mean()) == 1  # a still rises left to right
    assert np.sign(ab[0, :, 1].mean() - ab[-1, :, 1].mean()) == 1  # b still falls top to bottom


def test_bad_arguments_are_usage_errors(astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 40, 40, 255)
    fake = FakeChroma(gradient_ab(32))
    with pytest.raises(UsageError, match="saturation"):
        colorize(grey, fake.predict_ab, render_size=32, saturation=-0.5)
    with pytest.raises(UsageError, match="saturation"):
        colorize(grey, fake.predict_ab, render_size=32, saturation=float("nan"))
    with pytest.raises(UsageError, match="shape"):
        colorize(grey, fake.predict_ab, render_size=64)  # the model answers 32 x 32
    with pytest.raises(UsageError, match="H x W x 1 or H x W x 3"):
        colorize(grey[..., 0], fake.predict_ab, render_size=32)


def test_colorizer_stand_in_needs_only_render_size_and_predict_ab(astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 50, 70, 255)
    stand_in = SimpleNamespace(render_size=32, predict_ab=lambda x: torch.zeros(1, 2, 32, 32))
    coloured, _ = colorize_image(Image(grey, None, meta()), stand_in)
    assert np.abs(coloured.pixels - grey).max() < 1e-5


def test_strip_by_strip_maths_matches_whole_image_maths(astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import photofix.methods.colorize as module

    photo = np.repeat(photo_grey(astronaut, 301, 517, 65535), 3, axis=2)
    photo[-3:, -5:, 0] = 0.9  # colour only in the last rows
    fake = FakeChroma(gradient_ab(64))
    whole, whole_details = colorize(photo, fake.predict_ab, render_size=64)
    monkeypatch.setattr(module, "_STRIP_PIXELS", 1000)  # about two rows a strip
    strips, strip_details = colorize(photo, fake.predict_ab, render_size=64)
    assert np.array_equal(whole, strips)
    assert whole_details["converted_to_grey"] is strip_details["converted_to_grey"] is True


# --- (d) chroma beyond sRGB: less chroma at the same L* and hue, never clipping ------


def saturated_ab(kind: tuple[float, float] | str, size: int) -> torch.Tensor:
    """Chroma far outside sRGB: one a, b everywhere, or "random" values up to 128."""
    if kind == "random":
        generator = torch.Generator().manual_seed(0)
        return (torch.rand(1, 2, size, size, generator=generator) * 256 - 128).contiguous()
    return torch.tensor(kind, dtype=torch.float32)[None, :, None, None].expand(1, 2, size, size).contiguous()


def linear_rgb_reference(lab: np.ndarray) -> np.ndarray:
    """Unclipped linear sRGB of CIE L*a*b* (D65) by the published formulas, in float64."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * np.array([0.95047, 1.0, 1.08883])
    xyz_from_rgb = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
    return xyz @ np.linalg.inv(xyz_from_rgb).T


SATURATED = [((120.0, 120.0), 1.0), ((120.0, -120.0), 1.0), ((-120.0, 120.0), 1.0), ((-120.0, -120.0), 1.0),
             ("random", 1.0), ("random", 3.0)]


@pytest.mark.parametrize(("kind", "saturation"), SATURATED)
def test_saturated_chroma_keeps_lightness_through_an_8_bit_png(astronaut: np.ndarray, kind, saturation: float) -> None:
    grey = photo_grey(astronaut, 211, 307, 255)  # full range: black and white too
    alpha = np.linspace(0, 1, 211 * 307, dtype=np.float32).reshape(211, 307)
    coloured, _ = colorize_image(Image(grey, alpha, meta(exif=None)), FakeChroma(saturated_ab(kind, 32)), saturation=saturation)
    written = decode_image(encode_image(coloured, format="PNG"), name="out.png")
    assert written.meta.bit_depth == 8 and np.abs(written.alpha - alpha).max() <= 0.5 / 255 + 1e-6
    assert np.ptp(written.pixels, axis=2).mean() > 0.1  # still strongly coloured, not greyed out
    error = np.abs(color.rgb2lab(written.pixels.astype(np.float64))[..., 0] - lightness_of_grey(grey[..., 0]))
    assert error.mean() < 0.2  # L* units (0..100); 8-bit rounding alone, measured 0.04 to 0.07
    assert_lightness_within_levels(written.pixels, grey[..., 0], levels=1, peak=255)  # every pixel


def test_saturated_chroma_keeps_lightness_in_16_bit_output(astronaut: np.ndarray) -> None:
    grey = photo_grey(astronaut, 121, 203, 65535)
    buffer = io.BytesIO()
    PILImage.fromarray(np.round(grey[..., 0] * 65535).astype(np.uint16)).save(buffer, format="PNG")
    coloured, _ = colorize_image(decode_image(buffer.getvalue(), name="scan.png"), FakeChroma(saturated_ab("random", 32)), 2.0)
    written = decode_image(encode_image(coloured, format="PNG"), name="out.png")
    assert written.meta.bit_depth == 16 and np.ptp(written.pixels, axis=2).mean() > 0.1
    assert_lightness_within_levels(written.pixels, grey[..., 0], levels=1, peak=65535)


def test_chroma_inside_srgb_is_left_exactly_as_predicted(astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import photofix.methods.colorize as module

    lab = color.rgb2lab(np.random.default_rng(0).uniform(0.02, 0.98, (64, 64, 3))).astype(np.float32)
    lab[0, :4] = [[0, 0, 0], [100, 0, 0], [50, 0, 0], [0.5, 0, 0]]  # greys, black and white among them
    assert np.array_equal(gamut_map_chroma(lab[..., 0], lab[..., 1:]), lab[..., 1:])
    grey = photo_grey(astronaut, 301, 509, 255, low=0.25, high=0.75)
    fake = FakeChroma(gradient_ab(64))
    mapped, _ = colorize(grey, fake.predict_ab, render_size=64)
    monkeypatch.setattr(module, "gamut_map_chroma", lambda lightness, ab: ab)
    unmapped, _ = colorize(grey, fake.predict_ab, render_size=64)
    assert np.array_equal(mapped, unmapped)


def test_out_of_gamut_chroma_goes_to_the_gamut_edge_on_its_own_hue() -> None:
    rng = np.random.default_rng(1)
    lightness = rng.uniform(0, 100, 2000).astype(np.float32)
    ab = rng.uniform(-200, 200, (2000, 2)).astype(np.float32)
    mapped = gamut_map_chroma(lightness, ab).astype(np.float64)
    ab = ab.astype(np.float64)
    chroma, kept = np.hypot(*ab.T), np.hypot(*mapped.T)
    assert np.all(kept <= chroma) and kept.mean() > 20  # less chroma, but not grey
    sine = (ab[:, 0] * mapped[:, 1] - ab[:, 1] * mapped[:, 0]) / np.maximum(chroma * kept, 1e-12)
    assert np.abs(sine).max() < 1e-5  # the same hue angle ...
    assert np.all((ab * mapped).sum(axis=1) >= 0)  # ... not the opposite one
    # The reference edge: the first chroma, in steps of 0.02 along each pixel's hue, outside sRGB.
    steps = np.arange(0, 140, 0.02)
    hue = ab / chroma[:, None]
    ray = np.stack(np.broadcast_arrays(lightness[:, None], hue[:, None, 0] * steps, hue[:, None, 1] * steps), axis=-1)
    inside = ((linear_rgb_reference(ray) >= -1e-6) & (linear_rgb_reference(ray) <= 1 + 1e-6)).all(axis=-1)
    edge = np.minimum(steps[np.argmin(inside, axis=1) - 1], chroma)
    assert np.abs(kept - edge).max() < 140 / 2**10 + 0.03
