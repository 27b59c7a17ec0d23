"""Tile departure benchmark: how far tiled inference drifts from whole-image inference.

photofix runs models tile by tile (``photofix.engine.tiling.run_tiled``). For a
convolutional model with enough overlap the tiled output equals the whole-image
output; models with image-wide operations do not have that property:
Restormer's transposed attention normalises and mixes over *all* pixels of its
input, and NAFNet's simplified channel attention average-pools over it, so a
tile sees different statistics than the whole image. SCUNet's Swin windows and
NAFNet's stride-2 grid also depend on where a tile starts. This script measures
the departure for random weights in the real architectures' layouts, loaded
through ``photofix.engine.models.load_model`` (the exact inference path, including
padding and the clamp to [0, 1]).

For each model and photo it computes the whole-image output W (``tile=0``) and
tiled outputs T over a grid of tile sizes x overlaps, and reports

* departure ``D = 10*log10(1/mean((T-W)^2))`` in dB ("PSNR-equivalent";
  higher = closer; inf = identical) and ``max|T-W|``;
* the dB cost ``dPSNR = PSNR(T, C) - PSNR(W, C)`` against the clean photo C
  (the input is C plus Gaussian noise of sigma 25/255, fixed seed);
* the actual tile side and overlap photofix's planner chose (tiles are even, so
  ``--tile 256`` on a 384 px image gives two ~220 px tiles);
* the share of the squared departure that falls in the raised-cosine blend bands
  (seam-limited departures sit there; image-wide ones do not);
* an estimate of the dB cost for a *trained* model reaching ``P`` dB:
  ``10*log10(1 + 10**((P - D)/10))`` (departure uncorrelated with the model's
  error). With random weights the model's own error is huge, which makes the
  measured dPSNR lenient; this estimate is the stricter yardstick.

Random initialisation is adjusted so that every model behaves like a residual
restorer with a non-trivial, image-like output (documented in ``INIT_NOTES``):
NAFNet's per-block ``beta``/``gamma`` (zero at init, which makes every block an
identity and switches channel attention off) are set to 1; SCUNet and DRUNet,
which have no global skip, get an exact identity path (head -> tail centre taps)
plus their random branch; in every model the last layer's random part is scaled
so that the residual (output - input) has an RMS of 25/255 on a fixed noisy
crop of the astronaut photo. The departure then scales like that of a sigma-25
denoiser. Each model's seed is fixed by its place in ``MODELS``.

spandrel reports ``multiple_of=1`` for NAFNet and SCUNet, so photofix's tiles
start at arbitrary pixel offsets; ``--aligned`` combos are also run with tile
origins on the models' internal grids (NAFNet 16, SCUNet 64), and the phase
probe (default and ``--full`` modes) compares single crops at origin offsets
0/64/16/8/2/1 with the whole image, away from any border.

Run from the repository root with photofix installed::

    python benchmarks/bench_tile_departure.py --quick            # ~2 min: smoke test
    python benchmarks/bench_tile_departure.py --json dep.json    # ~13 min: subset on one 320 px photo
    python benchmarks/bench_tile_departure.py --full --json full.json   # ~2-3 h: full grid, 3 photos
    python benchmarks/bench_tile_departure.py --merge a.json b.json --json all.json  # combine runs

(times on a shared 2-core CPU; the two Restormers take ~2/3 of every run.)
Options ``--models``, ``--images``, ``--size``, ``--tiles``, ``--overlaps``,
``--combos`` and ``--aligned`` narrow or widen any mode. Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

SIGMA = 25.0  # noise (0-255 scale) added to the photos; also the sigma passed to DRUNet
RESIDUAL_RMS = SIGMA / 255.0  # target RMS of (output - input) after the init adjustment
CRITERION_DB = 0.1  # |dPSNR| must stay below this
TRAINED_PSNR = (33.0, 40.0)  # PSNRs of trained models (GoPro-deblur ~33 dB, SIDD-denoise ~40 dB)

MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "images": ["astronaut"],
        "size": 160,
        "combos": [(128, 16), (128, 32)],
        "aligned": [],
        "phase": False,
    },
    "default": {
        "images": ["astronaut"],
        "size": 320,
        "combos": [(256, 16), (256, 32), (256, 64), (128, 32)],
        "aligned": [(256, 32)],
        "phase": True,
    },
    "full": {
        "images": ["astronaut", "coffee", "chelsea"],
        "size": 384,
        "combos": [(t, o) for t in (128, 192, 256) for o in (16, 32, 64, 96) if o <= t // 2],
        # tile-origin alignment to the models' internal grids (NAFNet 16, SCUNet 64) at tile 256
        "aligned": [(256, o) for o in (16, 32, 64, 96)],
        "phase": True,
    },
}

INIT_NOTES = {
    "all": (
        "Random weights (PyTorch default init, seeded) in the real layout, except: the last layer's random "
        f"part is scaled so that RMS(output - input) = {RESIDUAL_RMS:.4f} (sigma 25/255) on a fixed 128 px "
        "noisy crop of the astronaut photo, so every model acts like a residual restorer of that strength."
    ),
    "NAFNet": "beta and gamma of every NAFBlock set to 1 (their init is 0, which makes each block an identity "
    "and disables the simplified channel attention altogether).",
    "SCUNet": "exact identity path added: head conv output channels 0-2 copy the RGB input (centre tap), "
    "the last up stage's channels 0-2 are zeroed (ConvTranspose + every block's conv1_2), and the tail conv "
    "adds those channels back (centre tap 1); the rest of the tail is the scaled random branch.",
    "DRUNet": "same identity path as SCUNet (head channels 0-2 = RGB; m_up1 channels 0-2 zeroed in the "
    "ConvTranspose and each ResBlock's last conv; tail centre tap 1) plus the scaled random branch.",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- models ----------------------------------------------------------------------------


@dataclass
class ModelSpec:
    key: str
    label: str
    group: str  # recommendation group (both Restormer configurations form one)
    family: str  # architecture id photofix should detect
    build: Callable[[], Any]
    trained_psnr: float  # typical PSNR of the trained model: yardstick for the estimated cost


def _restormer(layer_norm: str) -> Callable[[], Any]:
    def build() -> Any:
        from spandrel_extra_arches.architectures.Restormer import Restormer

        return Restormer(dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4, heads=[1, 2, 4, 8],
                         ffn_expansion_factor=2.66, bias=False, LayerNorm_type=layer_norm)

    return build


def _nafnet(middle: int, enc: list[int], dec: list[int]) -> Callable[[], Any]:
    def build() -> Any:
        from spandrel.architectures.NAFNet import NAFNet

        return NAFNet(img_channel=3, width=64, middle_blk_num=middle, enc_blk_nums=enc, dec_blk_nums=dec)

    return build


def _scunet() -> Any:
    from spandrel.architectures.SCUNet import SCUNet

    return SCUNet(in_nc=3, config=[4] * 7, dim=64)


def _drunet() -> Any:
    from spandrel.architectures.DRUNet import DRUNet

    return DRUNet(in_nc=4, out_nc=3, nc=[64, 128, 256, 512], nb=4)


MODELS = [
    ModelSpec("restormer-withbias", "Restormer motion-deblur/derain config (WithBias LN)", "Restormer",
              "Restormer", _restormer("WithBias"), 33.0),  # GoPro 32.9 dB
    ModelSpec("restormer-biasfree", "Restormer real-denoise config (BiasFree LN)", "Restormer",
              "Restormer", _restormer("BiasFree"), 40.0),  # SIDD 40.0 dB
    ModelSpec("nafnet-gopro", "NAFNet GoPro width 64 (enc 1,1,1,28 / mid 1)", "NAFNet GoPro", "NAFNet",
              _nafnet(1, [1, 1, 1, 28], [1, 1, 1, 1]), 33.0),  # GoPro 33.7 dB
    ModelSpec("nafnet-sidd", "NAFNet SIDD width 64 (enc 2,2,4,8 / mid 12)", "NAFNet SIDD", "NAFNet",
              _nafnet(12, [2, 2, 4, 8], [2, 2, 2, 2]), 40.0),  # SIDD 40.3 dB
    ModelSpec("scunet", "SCUNet colour (config [4]*7, dim 64)", "SCUNet", "SCUNet", _scunet, 40.0),  # real noise: no fixed figure, 40 dB to be safe
    ModelSpec("drunet", "DRUNet colour (in_nc 4, nb 4) - control CNN", "DRUNet", "DRUNet", _drunet, 33.0),  # sigma 25 colour ~32 dB
]
MODEL_KEYS = [m.key for m in MODELS]
GROUP_ORDER = ["Restormer", "NAFNet GoPro", "NAFNet SIDD", "SCUNet", "DRUNet"]
# Tile-origin alignment matching the models' internal grids (spandrel reports multiple_of=1 for both).
INTERNAL_GRID = {"NAFNet": 16, "SCUNet": 64}


def _raw_call(family: str, net: Any, x: Any) -> Any:
    import torch

    if family == "DRUNet":
        x = torch.cat([x, torch.full_like(x[:, :1], SIGMA / 255.0)], dim=1)
    return net(x)


def _add_identity_path(net: Any, family: str) -> tuple[Any, Any]:
    """SCUNet/DRUNet: make output = input + tail_random(features) exactly; return (tail conv, identity)."""
    import torch
    from torch import nn

    head = next(m for m in net.m_head.modules() if isinstance(m, nn.Conv2d))
    tail = next(m for m in net.m_tail.modules() if isinstance(m, nn.Conv2d))
    up = net.m_up1
    with torch.no_grad():
        for c in range(3):
            head.weight[c].zero_()
            head.weight[c, c, 1, 1] = 1.0
        transpose = next(m for m in up.modules() if isinstance(m, nn.ConvTranspose2d))
        transpose.weight[:, :3].zero_()
        if family == "SCUNet":
            last_convs = [block.conv1_2 for block in up.modules() if type(block).__name__ == "ConvTransBlock"]
        else:
            last_convs = [
                [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1]
                for block in up.modules()
                if type(block).__name__ == "ResBlock"
            ]
        assert last_convs, family
        for conv in last_convs:
            conv.weight[:3].zero_()
            if conv.bias is not None:
                conv.bias[:3].zero_()
    identity = torch.zeros_like(tail.weight)
    for c in range(3):
        identity[c, c, 1, 1] = 1.0
    return tail, identity


def adjust_init(spec: ModelSpec, net: Any, probe: Any) -> dict[str, Any]:
    """Apply the documented init adjustments; scale the residual to RESIDUAL_RMS on ``probe``."""
    import torch

    family = spec.family
    with torch.no_grad():
        if family == "NAFNet":
            for name, param in net.named_parameters():
                if name.endswith(".beta") or name.endswith(".gamma"):
                    param.fill_(1.0)
        if family in ("SCUNet", "DRUNet"):
            layer, identity = _add_identity_path(net, family)
        else:
            layer = net.output if family == "Restormer" else net.ending
            identity = None
        # the residual is linear in the last layer's (random part of the) parameters; with an
        # identity path (not added yet) the random branch alone is the output
        before = _raw_call(family, net, probe)
        if identity is None:
            before = before - probe
        rms = float(before.pow(2).mean().sqrt())
        scale = RESIDUAL_RMS / rms
        layer.weight.mul_(scale)
        if layer.bias is not None:
            layer.bias.mul_(scale)
        if identity is not None:
            layer.weight.add_(identity)
        after = _raw_call(family, net, probe) - probe
    return {"residual_rms_before": rms, "scale": scale, "residual_rms_after": float(after.pow(2).mean().sqrt())}


def build_model(spec: ModelSpec, seed: int, probe_hwc: np.ndarray, folder: Path) -> tuple[Any, dict[str, Any]]:
    """Random model -> adjusted init -> .pth -> photofix.engine.models.load_model (the real inference path)."""
    import torch

    from photofix.archs import traits_of
    from photofix.engine.cpu_rewrite import rewrite_for_cpu
    from photofix.engine.models import load_model

    torch.manual_seed(seed)
    net = spec.build().eval()
    probe = torch.from_numpy(np.ascontiguousarray(probe_hwc.transpose(2, 0, 1))).unsqueeze(0)
    info = adjust_init(spec, net, probe)
    path = folder / f"{spec.key}.pth"
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    torch.save(state, path)
    del net
    # Loaded without the CPU rewrites so the round-trip check below compares the same keys;
    # the rewrites (same results within 1e-4, tests/test_cpu_rewrite.py) are applied after it.
    model = load_model(path, device="cpu", precision="fp32", cpu_rewrites=False)
    if model.arch != spec.family:
        raise RuntimeError(f"{spec.key}: photofix detected {model.arch}, expected {spec.family}")
    loaded = model.descriptor.model.state_dict()
    mismatch = [k for k, v in state.items() if k not in loaded or not torch.equal(loaded[k], v)]
    if mismatch or len(loaded) != len(state):
        raise RuntimeError(f"{spec.key}: weights did not round-trip through photofix ({mismatch[:3]})")
    if traits_of(model.arch).cpu_rewrites:
        rewrite_for_cpu(model.descriptor.model)
        model.channels_last = True
    hyper = getattr(model.descriptor.model, "hyperparameters", {}) or {}
    info.update(
        arch=model.arch,
        multiple_of=model.multiple_of,
        minimum_size=model.minimum_size,
        tiling_discouraged=model.tiling_discouraged,
        takes_noise_level=model.takes_noise_level,
        parameters=sum(v.numel() for v in state.values()),
        hyperparameters={k: v for k, v in hyper.items() if isinstance(v, (int, float, str, bool, list, tuple))},
    )
    path.unlink()
    return model, info


# --- images and metrics --------------------------------------------------------------


def load_photo(name: str, size: int) -> np.ndarray:
    """Central crop of a scikit-image photo, at most ``size`` px a side, sides multiples of 8.

    ``astronaut2x`` is the 512 px astronaut enlarged to 1024 px (bicubic): the only way to get
    a real photo large enough for tiles of 384-768 px from scikit-image's bundled data.
    """
    from skimage import data

    if name.endswith("2x"):
        import cv2

        small = getattr(data, name[:-2])()
        image = cv2.resize(small, (small.shape[1] * 2, small.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    else:
        image = getattr(data, name)()
    h, w = image.shape[:2]
    ch, cw = min(size, h) // 8 * 8, min(size, w) // 8 * 8
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw, :3]).astype(np.float32) / 255.0


def calibration_probe(seed: int) -> np.ndarray:
    """The fixed 128 px input the residual is calibrated on, whatever the mode and photos:
    the centre of the noisy 384 px astronaut crop (as in ``--full``)."""
    return noisy(load_photo("astronaut", 384), seed + 1000)[128:256, 128:256]


def noisy(clean: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, SIGMA / 255.0, clean.shape).astype(np.float32)
    return np.clip(clean + noise, 0.0, 1.0).astype(np.float32)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.mean(d * d))


def db(value: float) -> float:
    return float("inf") if value <= 0 else float(10 * np.log10(1.0 / value))


def trained_cost(departure_db: float, psnr_db: float) -> float:
    """dB lost by a model at ``psnr_db`` if its error and the departure are uncorrelated."""
    if math.isinf(departure_db):
        return 0.0
    return float(10 * np.log10(1 + 10 ** ((psnr_db - departure_db) / 10)))


def band_mask(plan: Any, height: int, width: int) -> np.ndarray:
    """Pixels inside a raised-cosine blend band (any tile weight strictly between 0 and 1)."""
    from photofix.engine.tiling import axis_windows

    def axis(spans: Any, length: int) -> np.ndarray:
        mask = np.zeros(length, dtype=bool)
        for (start, _), w in zip(spans, axis_windows(spans, 1)):
            mask[start : start + len(w)] |= (w > 1e-6) & (w < 1 - 1e-6)
        return mask

    return axis(plan.ys, height)[:, None] | axis(plan.xs, width)[None, :]


def plan_summary(plan: Any) -> dict[str, Any]:
    def sides(spans: Any) -> list[int]:
        return [b - a for a, b in spans]

    def overlaps(spans: Any) -> list[int]:
        return [spans[i][1] - spans[i + 1][0] for i in range(len(spans) - 1)]

    ov = overlaps(plan.ys) + overlaps(plan.xs)
    return {
        "grid": f"{len(plan.ys)}x{len(plan.xs)}",
        "tiles": plan.count,
        "side_min": min(sides(plan.ys) + sides(plan.xs)),
        "side_max": max(sides(plan.ys) + sides(plan.xs)),
        "overlap_min": min(ov) if ov else None,
    }


# --- the measurement -----------------------------------------------------------------


def run_model(spec: ModelSpec, model: Any, images: dict[str, dict[str, np.ndarray]],
              combos: list[tuple[int, int]], aligned: list[tuple[int, int]]) -> dict[str, Any]:
    from photofix.engine.tiling import plan_tiles, run_tiled

    def fn(x: Any) -> Any:
        return model(x, SIGMA)

    rows: list[dict[str, Any]] = []
    whole: dict[str, Any] = {}
    first_whole = None
    grid = INTERNAL_GRID.get(spec.family)
    jobs = [(t, o, model.multiple_of) for t, o in combos]
    if grid and grid != model.multiple_of:
        jobs += [(t, o, grid) for t, o in aligned]
    for name, pair in images.items():
        clean, x = pair["clean"], pair["input"]
        h, w = x.shape[:2]
        start = time.perf_counter()
        W = run_tiled(fn, x, tile=0, multiple_of=model.multiple_of)
        seconds = time.perf_counter() - start
        if first_whole is None:
            first_whole = W
        psnr_w = db(mse(W, clean))
        whole[name] = {
            "shape": [h, w],
            "seconds": round(seconds, 2),
            "ms_per_px": round(1000 * seconds / (h * w), 4),
            "out_std": float(W.std()),
            "clamped_fraction": float(np.mean((W <= 0) | (W >= 1))),
            "residual_rms": float(np.sqrt(mse(W, x))),
            "psnr_input": db(mse(x, clean)),
            "psnr_whole": psnr_w,
        }
        note = "" if whole[name]["out_std"] > 0.02 else "  (!) output nearly constant"
        log(f"  {spec.key} {name} {w}x{h}: whole image {seconds:.1f}s, out std {W.std():.3f}, "
            f"clamped {whole[name]['clamped_fraction']:.1%}, PSNR(W,C) {psnr_w:.2f} dB{note}")
        for tile, overlap, align in jobs:
            if overlap > tile // 2:
                continue
            plan = plan_tiles(h, w, tile, overlap, align)
            if plan.count == 1:
                log(f"    tile {tile} overlap {overlap}: single tile on {w}x{h}, skipped")
                continue
            start = time.perf_counter()
            T = run_tiled(fn, x, tile=tile, overlap=overlap, multiple_of=align)
            seconds = time.perf_counter() - start
            diff = np.asarray(T, np.float64) - np.asarray(W, np.float64)
            sq = diff * diff
            band = band_mask(plan, h, w)
            total = float(sq.sum())
            departure = db(float(sq.mean()))
            psnr_t = db(mse(T, clean))
            err = np.asarray(W, np.float64) - clean
            denom = math.sqrt(total * float((err * err).sum()))
            row = {
                "model": spec.key,
                "image": name,
                "tile": tile,
                "overlap": overlap,
                "align": align,
                "aligned_override": align != model.multiple_of,
                **plan_summary(plan),
                "departure_db": departure,
                "max_abs": float(np.abs(diff).max()),
                "psnr_tiled": psnr_t,
                "psnr_whole": psnr_w,
                "dpsnr": psnr_t - psnr_w,
                "corr_with_error": float((diff * err).sum() / denom) if denom > 0 else 0.0,
                "band_share": float(sq[band].sum() / total) if total > 0 else 0.0,
                "band_pixels": float(band.mean()),
                "departure_outside_band_db": db(float(sq[~band].mean())) if (~band).any() else float("inf"),
                "seconds": round(seconds, 2),
                **{f"trained_cost_{int(p)}": trained_cost(departure, p) for p in TRAINED_PSNR},
            }
            rows.append(row)
            log(f"    tile {tile:>3} ov {overlap:>2} align {align:>2} ({row['grid']} of {row['side_max']}px, "
                f"ov>={row['overlap_min']}): D {departure:6.2f} dB  max {row['max_abs']:.4f}  "
                f"dPSNR {row['dpsnr']:+.4f} dB  [{seconds:.0f}s]")
    return {"whole": whole, "rows": rows, "first_whole": first_whole}


def phase_probe(spec: ModelSpec, model: Any, x: np.ndarray, whole: np.ndarray,
                size: int = 192, margin: int = 48) -> list[dict[str, Any]]:
    """Why misaligned tiles depart: run single crops at several origin offsets and compare the
    crop's interior (``margin`` px from its borders, so no seam or border effect) with the
    whole-image output. Offsets that are multiples of the model's internal grid should agree."""
    import torch

    def run(arr: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0)
        return model(t, SIGMA)[0].float().numpy().transpose(1, 2, 0)

    if min(x.shape[:2]) < 64 + size + 8:
        log(f"    phase probe skipped: needs a photo of at least {64 + size + 8} px a side")
        return []
    out = []
    for offset, side in ((0, size), (64, size), (16, size), (8, size), (2, size), (1, size),
                         (64, size + 8), (64, size - 8)):
        if offset + side > min(x.shape[:2]):
            continue
        tile = run(x[offset : offset + side, offset : offset + side])
        a, z = margin, side - margin
        d = np.asarray(tile[a:z, a:z], np.float64) - whole[offset + a : offset + z, offset + a : offset + z]
        out.append({"model": spec.key, "offset": offset, "side": side, "interior_departure_db": db(float(np.mean(d * d)))})
        log(f"    phase: origin offset {offset:>2}, crop {side}px: interior D {out[-1]['interior_departure_db']:.1f} dB")
    return out


# --- aggregation, recommendation, tables ---------------------------------------------


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Worst case over photos, per (model, tile, overlap, align)."""
    keys: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        keys.setdefault((row["model"], row["tile"], row["overlap"], row["align"]), []).append(row)
    out = []
    for (model, tile, overlap, align), group in keys.items():
        out.append({
            "model": model,
            "tile": tile,
            "overlap": overlap,
            "align": align,
            "aligned_override": group[0]["aligned_override"],
            "images": len(group),
            "side_min": min(r["side_min"] for r in group),
            "side_max": max(r["side_max"] for r in group),
            "overlap_min": min(r["overlap_min"] for r in group),
            "departure_db_min": min(r["departure_db"] for r in group),
            "departure_db_mean": float(np.mean([r["departure_db"] for r in group])),
            "max_abs": max(r["max_abs"] for r in group),
            "dpsnr_worst": max((r["dpsnr"] for r in group), key=abs),
            "band_share_mean": float(np.mean([r["band_share"] for r in group])),
            "departure_outside_band_db_min": min(r["departure_outside_band_db"] for r in group),
            **{f"trained_cost_{int(p)}_worst": max(r[f"trained_cost_{int(p)}"] for r in group) for p in TRAINED_PSNR},
        })
    return out


CRITERIA = {
    "measured": "|dPSNR| < 0.1 dB as measured (random weights)",
    "trained": "est. cost < 0.1 dB at the model's typical PSNR",
    "trained_aligned": "same, tile origins aligned to the model's internal grid",
}


def required_departure(psnr_db: float) -> float:
    """Departure D at which ``trained_cost`` equals CRITERION_DB."""
    return psnr_db - 10 * math.log10(10 ** (CRITERION_DB / 10) - 1)


def recommend(agg: list[dict[str, Any]], group_models: list[str]) -> dict[str, Any]:
    """Smallest overlap per tile cap that passes (and keeps passing at every larger tested overlap).

    "Today" uses the rows tiled as photofix does now (``multiple_of`` from spandrel);
    "aligned" uses the rows whose tile origins sit on the model's internal grid (for
    Restormer and DRUNet that is already the case).
    """
    spec = {s.key: s for s in MODELS}
    yardstick = {m: spec[m].trained_psnr for m in group_models}
    mine = [r for r in agg if r["model"] in group_models]
    needs_override = {m for m in group_models if spec[m].family in INTERNAL_GRID}
    today = [r for r in mine if not r["aligned_override"]]
    aligned = [r for r in mine if r["aligned_override"] or r["model"] not in needs_override]

    def passes(r: dict[str, Any], criterion: str) -> bool:
        if criterion == "measured":
            return abs(r["dpsnr_worst"]) < CRITERION_DB
        return trained_cost(r["departure_db_min"], yardstick[r["model"]]) < CRITERION_DB

    result: dict[str, Any] = {
        "models": group_models,
        "yardstick_psnr": yardstick,
        "required_departure_db": {m: required_departure(p) for m, p in yardstick.items()},
        "per_tile": {},
    }
    for name, rows, criterion in (("measured", today, "measured"), ("trained", today, "trained"),
                                  ("trained_aligned", aligned, "trained")):
        tiles = sorted({r["tile"] for r in rows})
        per_tile: dict[int, int | None] = {}
        for tile in tiles:
            overlaps = sorted({r["overlap"] for r in rows if r["tile"] == tile})
            ok = {o: all(passes(r, criterion) for r in rows if r["tile"] == tile and r["overlap"] == o)
                  for o in overlaps}
            closed = [o for o in overlaps if all(ok[q] for q in overlaps if q >= o)]
            per_tile[tile] = closed[0] if closed else None
        result["per_tile"][name] = per_tile
        allowed = [t for t in tiles if all(per_tile[u] is not None for u in tiles if u >= t)]
        if not rows:
            result[name] = {"overlap": None, "min_tile": None, "text": "not measured"}
        elif not allowed:
            worst = {}  # (tile, overlap) -> lowest D over the group's models and photos
            for r in rows:
                key = (r["tile"], r["overlap"])
                worst[key] = min(worst.get(key, math.inf), r["departure_db_min"])
            (tile, overlap), value = max(worst.items(), key=lambda kv: kv[1])
            result[name] = {"overlap": None, "min_tile": None,
                            "text": f"none of tiles {tiles} passes; best worst-case D {value:.1f} dB "
                                    f"at tile {tile} overlap {overlap}"}
        else:
            overlap = max(per_tile[t] for t in allowed)
            result[name] = {"overlap": overlap, "min_tile": allowed[0],
                            "text": f"overlap {overlap} px, tile cap >= {allowed[0]}"}
    return result


def fmt_db(value: float) -> str:
    return "  inf" if math.isinf(value) else f"{value:5.1f}"


def format_tables(results: dict[str, Any]) -> str:
    lines: list[str] = []
    agg = results["aggregate"]
    for spec in MODELS:
        mine = [r for r in agg if r["model"] == spec.key]
        if not mine:
            continue
        info = results["models"][spec.key]
        whole = results["whole"][spec.key]
        lines.append(f"### {spec.label} (`{spec.key}`)")
        lines.append("")
        lines.append(
            f"photofix: arch {info['arch']}, multiple_of {info['multiple_of']}, "
            f"tiling {'discouraged' if info['tiling_discouraged'] else 'supported'}; "
            + ", ".join(f"{n}: whole {w['shape'][1]}x{w['shape'][0]} {w['seconds']}s, out std {w['out_std']:.3f}, "
                        f"clamped {w['clamped_fraction']:.1%}, PSNR(W,C) {w['psnr_whole']:.2f} dB"
                        for n, w in whole.items())
        )
        lines.append("")
        lines.append("| tile cap | overlap | align | tiles used (side / overlap px) | D min (dB) | D mean (dB) | "
                     "max abs | dPSNR worst (dB) | in bands | est. cost @33 / @40 dB |")
        lines.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
        for r in sorted(mine, key=lambda r: (r["aligned_override"], r["tile"], r["overlap"])):
            side = f"{r['side_min']}-{r['side_max']}" if r["side_min"] != r["side_max"] else f"{r['side_max']}"
            lines.append(
                f"| {r['tile']} | {r['overlap']} | {r['align']}{'*' if r['aligned_override'] else ''} | "
                f"{side} / >={r['overlap_min']} | {fmt_db(r['departure_db_min'])} | {fmt_db(r['departure_db_mean'])} | "
                f"{r['max_abs']:.4f} | {r['dpsnr_worst']:+.4f} | {r['band_share_mean']:.0%} | "
                f"{r['trained_cost_33_worst']:.3f} / {r['trained_cost_40_worst']:.3f} |"
            )
        lines.append("")
    if results.get("phase"):
        lines.append("### Origin phase: one crop vs the whole image, interior only (48 px from the crop's borders)")
        lines.append("")
        lines.append("| model | origin offset (px) | crop side | interior D (dB) |")
        lines.append("|---|---:|---:|---:|")
        for r in results["phase"]:
            lines.append(f"| {r['model']} | {r['offset']} | {r['side']} | {fmt_db(r['interior_departure_db'])} |")
        lines.append("")
    lines.append("### Recommendation (worst photo; tile caps and overlaps among those tested)")
    lines.append("")
    lines.append("Per tile cap: the smallest overlap that passes and keeps passing at every larger tested overlap. "
                 "Trained-model yardstick: D >= typical PSNR + 16.3 dB.")
    lines.append("")
    lines.append("| model | " + " | ".join(CRITERIA[c].replace("|", "\\|") for c in CRITERIA) + " |")
    lines.append("|---|" + "---|" * len(CRITERIA))
    for group, rec in results["recommendations"].items():
        cells = []
        for c in CRITERIA:
            per = ", ".join(f"{t}: {o if o is not None else '-'}" for t, o in rec["per_tile"][c].items())
            cells.append(f"{rec[c]['text']} ({per})" if per else rec[c]["text"])
        need = ", ".join(f"{m} {d:.1f} dB" for m, d in rec["required_departure_db"].items())
        lines.append(f"| {group} (D needed: {need}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------


def parse_combo(text: str) -> tuple[int, int]:
    tile, overlap = text.split(":")
    return int(tile), int(overlap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke test: 160 px photo, tile 128 (~3 min)")
    mode.add_argument("--full", action="store_true", help="full grid, three 384 px photos (hours on 2 CPU cores)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--models", nargs="+", choices=MODEL_KEYS, help="models to run (default: all)")
    parser.add_argument("--images", nargs="+", choices=("astronaut", "coffee", "chelsea", "astronaut2x"), help="photos")
    parser.add_argument("--size", type=int, help="crop side in px (chelsea is only 300 px tall)")
    parser.add_argument("--tiles", type=int, nargs="+", help="tile caps; with --overlaps replaces the mode's grid")
    parser.add_argument("--overlaps", type=int, nargs="+", help="overlaps (combos with overlap > tile/2 skipped)")
    parser.add_argument("--combos", type=parse_combo, nargs="+", metavar="TILE:OVERLAP", help="explicit combos")
    parser.add_argument("--aligned", type=parse_combo, nargs="*", metavar="TILE:OVERLAP",
                        help="combos also run with tile origins aligned to NAFNet's (16) / SCUNet's (64) grid")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core box 2 threads ran 2x slower)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", action="store_true",
                        help="NAFNet/SCUNet: also run single crops at origin offsets 64/16/8/2/1 and compare their "
                             "interiors with the whole image (on in default and --full modes)")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                        help="run nothing: combine earlier --json files and print (and --json write) the tables")
    args = parser.parse_args(argv)
    if args.merge:
        return merge_runs(args.merge, args.json)

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    import torch

    import photofix

    torch.set_num_threads(args.threads)
    mode_name = "quick" if args.quick else "full" if args.full else "default"
    cfg = dict(MODES[mode_name])
    if args.images:
        cfg["images"] = args.images
    if args.size:
        cfg["size"] = args.size
    if args.tiles or args.overlaps:
        tiles = args.tiles or sorted({t for t, _ in cfg["combos"]})
        overlaps = args.overlaps or sorted({o for _, o in cfg["combos"]})
        cfg["combos"] = [(t, o) for t in tiles for o in overlaps if o <= t // 2]
    if args.combos:
        cfg["combos"] = args.combos
    if args.aligned is not None:
        cfg["aligned"] = args.aligned
    specs = [m for m in MODELS if not args.models or m.key in args.models]

    images = {}
    for i, name in enumerate(cfg["images"]):
        clean = load_photo(name, cfg["size"])
        images[name] = {"clean": clean, "input": noisy(clean, args.seed + 1000 + i)}
    probe = calibration_probe(args.seed)

    started = time.time()
    sizes = ", ".join(f"{n} {v['clean'].shape[1]}x{v['clean'].shape[0]}" for n, v in images.items())
    log(f"mode {mode_name}: photos {sizes}; "
        f"combos {cfg['combos']}; aligned {cfg['aligned']}; threads {args.threads}")
    results: dict[str, Any] = {
        "benchmark": "tile_departure",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "mode": mode_name,
        "config": {
            "images": {n: list(v["clean"].shape[:2]) for n, v in images.items()},
            "combos": cfg["combos"],
            "aligned": cfg["aligned"],
            "sigma": SIGMA,
            "residual_rms_target": RESIDUAL_RMS,
            "criterion_db": CRITERION_DB,
            "trained_psnr": TRAINED_PSNR,
            "threads": args.threads,
            "seed": args.seed,
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "photofix": getattr(photofix, "__version__", "?"),
            "spandrel": _version("spandrel"),
            "spandrel_extra_arches": _version("spandrel_extra_arches"),
            "machine": platform.machine(),
            "processor": platform.processor(),
        },
        "init_notes": INIT_NOTES,
        "models": {},
        "whole": {},
        "rows": [],
    }
    with tempfile.TemporaryDirectory(prefix="tile-departure-") as tmp:
        for spec in specs:
            seed = args.seed + MODELS.index(spec)  # the same random model whichever models are selected
            log(f"{spec.key}: building (seed {seed})")
            model, info = build_model(spec, seed, probe, Path(tmp))
            log(f"  {info['parameters'] / 1e6:.1f} M params, multiple_of {info['multiple_of']}, "
                f"residual RMS {info['residual_rms_before']:.3f} -> {info['residual_rms_after']:.4f} "
                f"(x{info['scale']:.3g})")
            results["models"][spec.key] = {"label": spec.label, "seed": seed, "trained_psnr": spec.trained_psnr, **info}
            measured = run_model(spec, model, images, cfg["combos"], cfg["aligned"])
            results["whole"][spec.key] = measured["whole"]
            results["rows"] += measured["rows"]
            if (args.phase or cfg["phase"]) and spec.family in INTERNAL_GRID:
                results.setdefault("phase", []).extend(
                    phase_probe(spec, model, images[cfg["images"][0]]["input"], measured["first_whole"]))
            del model
            log(f"  elapsed {time.time() - started:.0f}s")
    summarise(results)
    results["seconds"] = round(time.time() - started, 1)
    text = format_tables(results)
    print(f"# tile departure, {results['date']}, mode {mode_name}, {results['seconds']:.0f}s\n")
    print(text)
    if args.json:
        args.json.write_text(json.dumps(_finite(results), indent=1, default=_json_default))
        log(f"wrote {args.json}")
    return 0


def summarise(results: dict[str, Any]) -> None:
    """Add the worst-case aggregate and the recommendations to ``results``."""
    results["aggregate"] = aggregate(results["rows"])
    present = set(results["models"])
    results["recommendations"] = {
        group: recommend(results["aggregate"], [s.key for s in MODELS if s.group == group and s.key in present])
        for group in GROUP_ORDER
        if any(s.group == group and s.key in present for s in MODELS)
    }


def merge_runs(paths: list[Path], out: Path | None) -> int:
    """Combine runs (e.g. one photo per run, or a subset of models) into one set of tables."""
    merged: dict[str, Any] = {"benchmark": "tile_departure", "merged_from": [], "models": {}, "whole": {}, "rows": []}
    seen: dict[tuple, int] = {}
    for path in paths:
        run = _infinite(json.loads(path.read_text()))
        merged["merged_from"].append({"file": str(path), "date": run.get("date"), "mode": run.get("mode"),
                                      "config": run.get("config"), "seconds": run.get("seconds")})
        for key in ("environment", "init_notes"):
            merged.setdefault(key, run.get(key))
        merged.setdefault("phase", []).extend(run.get("phase", []))
        for key, info in run["models"].items():
            merged["models"].setdefault(key, info)
        shapes = {img: tuple(w["shape"]) for per_image in run["whole"].values() for img, w in per_image.items()}
        known = {img: tuple(w["shape"]) for per_image in merged["whole"].values() for img, w in per_image.items()}
        # the same photo cropped to another size is another test image
        rename = {img: img if known.get(img, shape) == shape else f"{img}@{shape[1]}x{shape[0]}"
                  for img, shape in shapes.items()}
        for key, per_image in run["whole"].items():
            merged["whole"].setdefault(key, {}).update({rename[img]: w for img, w in per_image.items()})
        for row in run["rows"]:
            row["image"] = rename.get(row["image"], row["image"])
            ident = (row["model"], row["image"], row["tile"], row["overlap"], row["align"])
            if ident in seen:  # a later run of the same case replaces the earlier one
                merged["rows"][seen[ident]] = row
            else:
                seen[ident] = len(merged["rows"])
                merged["rows"].append(row)
    merged["date"] = max((m["date"] or "") for m in merged["merged_from"])
    merged["mode"] = "merged"
    summarise(merged)
    print(f"# tile departure, merged from {', '.join(str(p) for p in paths)}\n")
    print(format_tables(merged))
    if out:
        out.write_text(json.dumps(_finite(merged), indent=1, default=_json_default))
        log(f"wrote {out}")
    return 0


def _infinite(value: Any) -> Any:
    """Undo ``_finite`` after reading a JSON file."""
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _infinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_infinite(v) for v in value]
    return value


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _finite(value: Any) -> Any:
    """Strict JSON has no infinity: write identical outputs' departure as the string "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
