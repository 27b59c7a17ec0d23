"""Seconds per megapixel on a CUDA GPU, per model, precision and tile batch (issue 13).

No GPU was available where this was written, so nothing here has been measured on one: run it
on a CUDA machine and paste its table. Each configuration is built in its released layout with
random weights (the work is the same as the real file's; ``bench_lineup_speed.CONFIGS``),
loaded through ``photofix.engine.models.load_model`` at each precision the architecture allows,
and run through ``photofix.engine.tiling.run_tiled`` over an image of several tiles, exactly as
photofix runs a photo, with 1, 2, 4, ... tiles per forward. Times are wall seconds after
``torch.cuda.synchronize()``, best of the repeats after one warm-up; peak memory is
``torch.cuda.max_memory_allocated``; the last column is the largest difference from the
same precision's one-tile-at-a-time output (batched kernels may round differently; blending
is exact).

    python benchmarks/bench_gpu.py                          # every configuration, cuda
    python benchmarks/bench_gpu.py --only compact-x4 --batches 1 4 8 --tile 512
    python benchmarks/bench_gpu.py --dry-run                # tiny models on the CPU: checks the script (tests run it)

Figures are printed (and written with ``--json``), never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lineup_speed import CONFIGS as LINEUP  # noqa: E402 - the released configurations, one place


def _tiny_nafnet() -> dict:
    from spandrel.architectures.NAFNet import NAFNet

    return {"params": NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]).state_dict()}


def _tiny_compact() -> dict:
    from spandrel.architectures.Compact import Compact

    return {"params": Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4).state_dict()}


# The dry run: the same code path, small enough for a CPU test (seconds).
TINY: dict[str, Callable[[], dict]] = {"nafnet-tiny": _tiny_nafnet, "compact-x4-tiny": _tiny_compact}
PRECISIONS = ("fp32", "fp16", "bf16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, build: Callable[[], dict], precision: str, batches: list[int], tile: int, tiles_per_side: int,
            repeats: int, device: torch.device, folder: Path) -> list[dict]:
    from photofix.engine.models import load_model
    from photofix.engine.tiling import run_tiled
    from photofix.errors import DeviceError

    path = folder / f"{name}.pth"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(build(), path)
    try:
        model = load_model(path, device=device, precision=precision)
    except DeviceError as error:  # e.g. fp16 on a CPU, or an architecture without bf16
        return [{"config": name, "precision": precision, "skipped": str(error)}]
    side = tile * tiles_per_side - 16 * (tiles_per_side - 1)  # tiles overlap by 16 px
    image = np.random.default_rng(0).random((side, side, model.in_channels), dtype=np.float32)
    fn = lambda x: model(x, 25.0)  # noqa: E731
    rows, reference = [], None
    for batch in batches:
        run = lambda: run_tiled(fn, image, scale=model.scale, tile=tile, overlap=16,  # noqa: E731
                                multiple_of=model.tile_grid, device=device, dtype=model.dtype, batch=batch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        out = run()  # warm-up
        times = []
        for _ in range(repeats):
            _sync(device)
            started = time.perf_counter()
            out = run()
            _sync(device)
            times.append(time.perf_counter() - started)
        reference = out if reference is None else reference
        rows.append({
            "config": name, "precision": precision, "tile": tile, "batch": batch, "image_side": side,
            "s_per_mp": min(times) / (side * side / 1e6),
            "peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "max_diff_vs_batch_1": float(np.abs(out.astype(np.float64) - reference).max()),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    from photofix.engine.cpu_features import cpu_capabilities

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny models on the CPU, tiny inputs: checks the script")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--only", nargs="+", help=f"configurations ({', '.join(LINEUP)})")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--tile", type=int, default=256, help="tile side in input px (upscalers: the output is 16x)")
    parser.add_argument("--tiles-per-side", type=int, default=3, help="the image is this many tiles square")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.dry_run:
        device = torch.device("cpu")
        configs = TINY
        args.tile, args.tiles_per_side, args.repeats = 32, 2, 1
        args.batches = [1, 2]
        args.precisions = [p for p in args.precisions if p != "fp16"]  # fp16 is refused on a CPU
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("no CUDA device here: run on a GPU machine, or --dry-run to check the script on the CPU")
        configs = {name: LINEUP[name][0] for name in (args.only or LINEUP)}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU dry run)"
    print(f"# torch {torch.__version__}, device {device}, GPU {gpu}; CPU {cpu_capabilities().summary()}", flush=True)
    print("| config | precision | tile | tiles per forward | s/MP (input) | peak GPU MiB | max diff vs 1 per forward |")
    print("|---|---|--:|--:|--:|--:|--:|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in configs.items():
            for precision in args.precisions:
                for row in measure(name, build, precision, args.batches, args.tile, args.tiles_per_side, args.repeats,
                                   device, Path(tmp)):
                    rows.append(row)
                    if "skipped" in row:
                        print(f"| {name} | {precision} | - | - | skipped: {row['skipped']} | - | - |", flush=True)
                        continue
                    peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
                    print(f"| {name} | {precision} | {row['tile']} | {row['batch']} | {row['s_per_mp']:.3f} | {peak} | "
                          f"{row['max_diff_vs_batch_1']:.1e} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "gpu": gpu, "torch": torch.__version__, "rows": rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
