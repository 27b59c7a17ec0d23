"""Colorize grey photos with DDColor, keeping every bit of the original's detail.

The network sees the photo small (``render_size`` square) and predicts only chroma:
the a and b channels of CIE L*a*b*. That chroma is resampled to the photo's full
size and joined to the photo's own full-resolution, full-precision lightness L*,
so resolution, sharpness and 16-bit tonal steps all come from the original and any
size works. A colour input is reduced to its lightness first (reported in the
details as ``converted_to_grey``).

Lab convention (the one DDColor's weights were trained in): CIE L*a*b* of
sRGB-encoded values, i.e. sRGB decoded with its piecewise transfer curve (not a
2.2 power), the sRGB/D65 matrix, and L in 0..100 with a, b in Lab units. The
authors' training data is built with ``skimage.color.rgb2lab`` on float sRGB and
their inference with ``cv2.cvtColor(float32, BGR2Lab)``; both are that convention.
spandrel's own DDColor call decodes with a 2.2 power instead, which darkens
shadows' L by several units, so it is not used here. The white point is the sum
of the sRGB matrix's rows (D65 to five digits, within 0.005 of skimage's a, b) so
that greys have exactly zero chroma: saturation 0 gives back the input grey.

The network's input is the small grey image repeated to three channels: the RGB of
(L, 0, 0) is the grey whose lightness is L, which is what the authors feed it.

Predicted chroma that sRGB cannot show at the photo's lightness is gamut-mapped, not
clipped: each such pixel's chroma C* is reduced at constant L* and hue h (CIE LCh)
until the colour fits, because clipping an RGB channel changes the lightness.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from photofix._color import linear_to_srgb, srgb_to_linear
from photofix.errors import ModelLoadError, NonFiniteOutput, UsageError
from photofix.imageio import Image
from photofix.engine.models import LoadedModel, load_model


ARCH_ID = "DDColor"
RENDER_MULTIPLE = 32  # ConvNeXt halves the size five times; DDColor's skip connections need exact multiples
GREY_TOLERANCE = 1.0 / 255 + 1e-6  # channels this close everywhere are a grey photo stored as RGB

PredictAB = Callable[[torch.Tensor], torch.Tensor]


class ChromaPredictor(Protocol):
    """What ``colorize_image`` needs of a model: ``Colorizer`` is one."""

    render_size: int

    def predict_ab(self, grey_rgb: torch.Tensor) -> torch.Tensor: ...


# sRGB primaries to CIE XYZ (IEC 61966-2-1, D65), as used by skimage and OpenCV.
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=np.float64,
)
_RGB_FROM_XYZ_T = np.linalg.inv(_XYZ_FROM_RGB).T.astype(np.float32)  # transposed: rows of pixels @ it
_WHITE_X, _, _WHITE_Z = (float(v) for v in _XYZ_FROM_RGB.sum(axis=1))  # XYZ of RGB (1, 1, 1): D65 to 5 digits
_LUMINANCE = _XYZ_FROM_RGB[1].astype(np.float32)  # Y row: sums to 1, so a grey's Y is its linear value
_EPSILON = 0.008856  # CIE: below this Y/Yn the cube root is replaced by a line
_KAPPA = 7.787
_DELTA = 16.0 / 116.0
_STRIP_PIXELS = 1 << 20  # colour maths in strips of about a million pixels bounds the temporaries
_MAX_SRGB_CHROMA = 140.0  # above any sRGB colour's C* (the blue primary's, about 133.8, is the largest)
_GAMUT_STEPS = 10  # bisection steps: C* ends within 140 / 2**10 < 0.14 of the gamut's edge (ΔE ≈ 1 is just visible)
_GAMUT_CHUNK = 1 << 16  # pixels mapped together


# --- sRGB and CIE L*a*b* ------------------------------------------------------------


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _EPSILON, np.cbrt(t), _KAPPA * t + _DELTA).astype(np.float32)


def _f_inverse(t: np.ndarray) -> np.ndarray:
    # Blended by a 0/1 factor, not np.where: several times faster on mixed masks, and exact
    # on both branches (the factor is 0 or 1).
    line = (t - np.float32(_DELTA)) * np.float32(1 / _KAPPA)
    return line + (t > np.float32(6.0 / 29.0)) * (t * t * t - line)


def lightness_from_luminance(luminance: np.ndarray) -> np.ndarray:
    """CIE L* (0..100) from relative luminance Y (0..1)."""
    return (116.0 * _f(luminance) - 16.0).astype(np.float32)


def lab_to_srgb(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """H x W lightness and H x W x 2 chroma to H x W x 3 sRGB, clipped to [0, 1].

    Clipping changes lightness; pass chroma through ``gamut_map_chroma`` first to keep it.
    """
    lit = _lit(lightness)
    return linear_to_srgb(np.stack(_linear_rgb(lit, ab[..., 0], ab[..., 1]), axis=-1))


# Linear sRGB from (X, Y, Z) = (Xn f⁻¹(fx), f⁻¹(fy), Zn f⁻¹(fz)), one coefficient per
# source and channel, so a pixel's Y part is worked out once however many chroma are tried.
_RGB_PER_X = _RGB_FROM_XYZ_T[0] * np.float32(_WHITE_X)
_RGB_PER_Z = _RGB_FROM_XYZ_T[2] * np.float32(_WHITE_Z)


class _Lit(NamedTuple):
    """A lightness as the Lab→RGB maths needs it: f(Y/Yn) and Y's share of R, G, B."""

    fy: np.ndarray
    rgb_of_y: tuple[np.ndarray, np.ndarray, np.ndarray]


def _lit(lightness: np.ndarray) -> _Lit:
    fy = (np.asarray(lightness, dtype=np.float32) + np.float32(16.0)) / np.float32(116.0)
    y = _f_inverse(fy)
    return _Lit(fy, tuple(y * weight for weight in _RGB_FROM_XYZ_T[1]))


def _linear_rgb(lit: _Lit, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Unclipped linear R, G, B of a*, b* at that lightness: the one conversion both the
    output and the gamut test use, so a colour found inside stays inside."""
    x = _f_inverse(lit.fy + a * np.float32(1 / 500))
    z = _f_inverse(np.maximum(lit.fy - b * np.float32(1 / 200), np.float32(0.0)))
    return [x * _RGB_PER_X[k] + lit.rgb_of_y[k] + z * _RGB_PER_Z[k] for k in range(3)]


def _inside_srgb(lit: _Lit, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which colours sRGB shows unclipped (NaN and inf, from absurd chroma, count as outside)."""
    red, green, blue = _linear_rgb(lit, a, b)
    low = np.minimum(np.minimum(red, green), blue)
    high = np.maximum(np.maximum(red, green), blue)
    return (low >= 0.0) & (high <= 1.0)


def gamut_map_chroma(lightness: np.ndarray, ab: np.ndarray, steps: int = _GAMUT_STEPS) -> np.ndarray:
    """Chroma (... x 2) that sRGB can show at ``lightness`` (...), keeping L* and hue.

    A colour already inside is returned unchanged (the same values); one outside has its
    chroma C* cut, along its own hue, to the largest value a bisection of ``steps`` steps
    finds inside. Chroma 0 (the grey of that L*) is always accepted, so the result never
    needs clipping and the lightness survives conversion exactly.
    """
    lightness = np.asarray(lightness, dtype=np.float32).reshape(-1)
    ab = np.asarray(ab, dtype=np.float32)
    flat = ab.reshape(-1, 2)
    mapped = flat
    for start in range(0, len(lightness), _GAMUT_CHUNK):  # small chunks keep temporaries in cache
        chunk = slice(start, start + _GAMUT_CHUNK)
        outside = ~_inside_srgb(_lit(lightness[chunk]), flat[chunk, 0], flat[chunk, 1])
        if outside.any():
            mapped = flat.copy() if mapped is flat else mapped
            far = mapped[chunk]  # a view: writing to it writes to the result
            pick = slice(None) if outside.all() else outside  # a slice copies nothing
            far[pick] = _bisect_chroma(_lit(lightness[chunk][pick]), flat[chunk][pick], steps)
    return mapped.reshape(ab.shape)


def _bisect_chroma(lit: _Lit, ab: np.ndarray, steps: int) -> np.ndarray:
    """For N colours outside sRGB, the N x 2 chroma on their hue at the largest C* found
    inside. The search runs from C* 0 (grey, always inside) up to C* ``reach`` (always
    outside); every pixel halves its own span each step, so no per-pixel branching."""
    chroma = np.sqrt(ab[:, 0] * ab[:, 0] + ab[:, 1] * ab[:, 1])
    cos_h, sin_h = (ab / np.maximum(chroma, np.float32(1e-30))[:, None]).T  # grey: 0, 0
    reach = np.minimum(chroma, np.float32(_MAX_SRGB_CHROMA))  # no sRGB colour lies beyond it
    low = np.zeros_like(chroma)
    for step in range(1, steps + 1):
        half_span = reach * np.float32(0.5**step)
        middle = low + half_span
        low += _inside_srgb(lit, middle * cos_h, middle * sin_h) * half_span
    return np.stack([low * cos_h, low * sin_h], axis=-1)


# --- the colorization -------------------------------------------------------------


class Luminance(NamedTuple):
    """A photo's lightness at full resolution, the grey that has it, and whether colour was dropped."""

    lightness: np.ndarray  # H x W float32 CIE L*, 0..100
    grey: np.ndarray  # H x W x 1 float32 sRGB grey with that lightness (the input itself when grey)
    was_colour: bool


def luminance_and_grey(pixels: np.ndarray) -> Luminance:
    """Split off what colorization keeps: the lightness, exactly, at full resolution.

    A grey input keeps its own values (no round trip, so 16-bit steps survive); a
    colour input is reduced to the grey of its CIE luminance Y.
    """
    _check_pixels(pixels)
    pixels = pixels.astype(np.float32, copy=False)
    if pixels.shape[2] == 1:
        grey = pixels
        luminance = srgb_to_linear(grey[..., 0])
        was_colour = False
    else:
        was_colour = False
        luminance = np.empty(pixels.shape[:2], dtype=np.float32)
        for rows in _strips(pixels.shape):
            strip = pixels[rows]
            was_colour = was_colour or bool(np.ptp(strip, axis=2).max() > GREY_TOLERANCE)
            luminance[rows] = srgb_to_linear(strip) @ _LUMINANCE
        grey = linear_to_srgb(luminance)[..., None]
    return Luminance(lightness_from_luminance(luminance), grey, was_colour)


def _strips(shape: tuple[int, ...]) -> list[slice]:
    """Row ranges of about ``_STRIP_PIXELS`` pixels covering an H x W (x C) array."""
    rows = max(1, _STRIP_PIXELS // max(1, shape[1]))
    return [slice(top, top + rows) for top in range(0, shape[0], rows)]


def colorize(
    pixels: np.ndarray,
    predict_ab: PredictAB,
    *,
    render_size: int,
    saturation: float = 1.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Colour an H x W x C float photo in [0, 1]; return H x W x 3 sRGB and details.

    ``predict_ab`` takes the grey photo resized to (1, 3, S, S) (S = ``render_size``)
    and returns its a, b chroma as (1, 2, S, S) in Lab units. The chroma is scaled by
    ``saturation`` (1 = the model's, 0 = grey), resampled to H x W and joined to the
    photo's own lightness, its chroma reduced where sRGB cannot show it (L* and hue
    kept; see ``gamut_map_chroma``). Details: ``converted_to_grey`` (the input had colour),
    ``render_size``, ``saturation``.
    """
    if not isinstance(render_size, int) or render_size < 1:
        raise UsageError(f"render size must be a positive whole number of pixels, not {render_size!r}")
    if not (math.isfinite(saturation) and saturation >= 0):
        raise UsageError(f"saturation must be 0 or more (1 = the model's colours), not {saturation!r}")
    lightness, grey, was_colour = luminance_and_grey(pixels)
    small = _resample(grey, render_size, render_size)
    network_input = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))).expand(3, -1, -1)[None]
    ab = predict_ab(network_input.contiguous())
    expected = (1, 2, render_size, render_size)
    if tuple(ab.shape) != expected:
        raise UsageError(f"the colorizer returned chroma of shape {tuple(ab.shape)}, expected {expected}")
    chroma = ab[0].detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0) * np.float32(saturation)
    chroma = _resample(chroma, *lightness.shape)
    rgb = np.empty((*lightness.shape, 3), dtype=np.float32)
    for rows in _strips(lightness.shape):
        rgb[rows] = lab_to_srgb(lightness[rows], gamut_map_chroma(lightness[rows], chroma[rows]))
    details = {"converted_to_grey": was_colour, "render_size": render_size, "saturation": saturation}
    return rgb, details


def _resample(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize H x W x C float values, unclipped: area averaging along an axis that
    shrinks (no aliasing), bilinear along one that grows (smooth chroma)."""
    import cv2

    values = np.ascontiguousarray(values, dtype=np.float32)
    channels = values.shape[2]
    for axis, target in ((0, height), (1, width)):
        size = values.shape[axis]
        if size == target:
            continue
        method = cv2.INTER_AREA if target < size else cv2.INTER_LINEAR
        new_hw = (target, values.shape[1]) if axis == 0 else (values.shape[0], target)
        values = cv2.resize(values, (new_hw[1], new_hw[0]), interpolation=method).reshape(*new_hw, channels)
    return values


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise UsageError(f"pixels must be an H x W x 1 or H x W x 3 array, not shape {getattr(pixels, 'shape', None)}")
    if not np.issubdtype(pixels.dtype, np.floating):
        raise UsageError(f"pixels must be floats in [0, 1], not {pixels.dtype}")


# --- Image in, Image out ------------------------------------------------------------


def colorize_image(image: Image, colorizer: ChromaPredictor, saturation: float = 1.0) -> tuple[Image, dict[str, Any]]:
    """Colour an ``Image``: RGB out (even from grey), same size, alpha and bit depth.

    A grey ICC profile cannot describe RGB pixels, so it is dropped (details say so);
    EXIF, XMP, DPI and the rest of the metadata are kept.
    """
    rgb, details = colorize(image.pixels, colorizer.predict_ab, render_size=colorizer.render_size, saturation=saturation)
    meta = replace(image.meta, grayscale=False)
    if _is_grey_profile(meta.icc_profile):
        meta = replace(meta, icc_profile=None)
        details["icc_profile_dropped"] = "the source's grey ICC profile cannot describe a colour image"
    return replace(image, pixels=rgb, meta=meta), details


def _is_grey_profile(profile: bytes | None) -> bool:
    return bool(profile) and profile[16:20] == b"GRAY"  # ICC header: data colour space signature


# --- the model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Colorizer:
    """A loaded DDColor network and the square size it sees photos at."""

    model: LoadedModel
    render_size: int

    def __post_init__(self) -> None:
        check_render_size(self.render_size)

    network = property(lambda self: self.model.network)
    device = property(lambda self: self.model.device)
    source = property(lambda self: self.model.source)
    model_id = property(lambda self: self.model.model_id)
    origin = property(lambda self: self.model.origin)

    @torch.inference_mode()
    def predict_ab(self, grey_rgb: torch.Tensor) -> torch.Tensor:
        """(1, 3, S, S) grey RGB in [0, 1] → (1, 2, S, S) a, b in Lab units, on the CPU.

        Calls the raw network, not spandrel's DDColor call, whose colour pipeline
        differs from the one the weights were trained with (see the module notes).
        """
        ab = self.network(grey_rgb.to(self.device, self.model.dtype)).to("cpu", torch.float32)
        if not torch.isfinite(ab).all():
            raise NonFiniteOutput(f"{self.source}: the colorizer produced NaN/inf chroma at {self.model.precision}; "
                                  + ("check the weights file" if self.model.dtype == torch.float32 else "run again with --precision fp32"))
        return ab


def check_render_size(render_size: int) -> None:
    """DDColor sees S x S images with S a positive multiple of 32."""
    if isinstance(render_size, int) and render_size >= RENDER_MULTIPLE and render_size % RENDER_MULTIPLE == 0:
        return
    near = max(1, round(render_size / RENDER_MULTIPLE)) * RENDER_MULTIPLE if isinstance(render_size, int) else 256
    raise UsageError(f"render size must be a multiple of {RENDER_MULTIPLE} such as {near}, not {render_size!r}")


def load_colorizer(
    weights: str | os.PathLike,
    device: str | torch.device | None = None,
    render_size: int | None = None,
    *,
    expected_arch: str = ARCH_ID,
    model_id: str | None = None,
    precision: str = "auto",
    sha256: str | None = None,
    hash_recorded_now: bool = False,
) -> Colorizer:
    """Load a DDColor checkpoint (bare or ``params``-wrapped) for ``colorize_image``.

    ``render_size`` defaults to the network's ``input_size`` (256, the size the
    released models were trained at; the authors' scripts infer at 512).
    """
    if render_size is not None:
        check_render_size(render_size)
    path = Path(weights)
    model = load_model(path, expected_arch=expected_arch, model_id=model_id, device=device, precision=precision,
                       cpu_rewrites=False, sha256=sha256, hash_recorded_now=hash_recorded_now)
    network = model.network
    if getattr(network, "num_output_channels", None) != 2:
        raise ModelLoadError(f"{path}: this DDColor predicts {network.num_output_channels} channels, not a, b; "
                             "use a released DDColor colorization checkpoint")
    size = int(network.input_size[0]) if render_size is None else render_size
    return Colorizer(model, size)


__all__ = [
    "ChromaPredictor",
    "Colorizer",
    "Luminance",
    "check_render_size",
    "colorize",
    "colorize_image",
    "gamut_map_chroma",
    "lab_to_srgb",
    "load_colorizer",
    "luminance_and_grey",
]
