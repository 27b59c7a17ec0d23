"""Masked-crop inpainting benchmark: cost follows the mask's area, not the image's.

Prints figures, never asserts them (the machine may be shared and noisy). For thin scratches
(random gentle curves 300-800 px long, 2-3 px wide, the same set whatever the image size)
on a real photo mirror-tiled to 6 MP and 24 MP, it times ``inpaint_masked`` with

* the classical inpainter (``inpaint_classical``; ``--fill biharmonic``, the default, or
  ``telea``) for 5, 20 and 80 scratches, and
* a randomly initialised big-LaMa (51 M parameters, loaded through ``load_lama`` from a
  temporary checkpoint) for 5 and 20 scratches on 24 MP (``--lama-scratches`` to change),

and compares each with one whole-image pass: the classical fill over the whole 6 MP / 24 MP image, and
LaMa over a whole 1 MP image (a 24 MP LaMa pass would need tens of GB; its time is
extrapolated from the 1 MP one). Peak memory is the process's peak RSS (VmHWM, reset through
/proc/self/clear_refs before each case) minus its RSS before the case; the output image copy
(12 bytes a pixel) is part of it and listed apart.

Run from the repository root with photofix installed (plus scikit-image)::

    python benchmarks/bench_masked_inpaint.py            # ~3 min on a 2-core machine
    python benchmarks/bench_masked_inpaint.py --no-lama  # classical only, ~1 min

Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

MIB = 1024**2
SIZES = {"6 MP": (2000, 3000), "24 MP": (4000, 6000)}


def photo(height: int, width: int) -> np.ndarray:
    """skimage's astronaut mirror-tiled to height x width, float32 in [0, 1]."""
    from skimage import data

    tile = data.astronaut()
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]))
    big = np.pad(tile, ((0, tile.shape[0] * (reps[0] - 1)), (0, tile.shape[1] * (reps[1] - 1)), (0, 0)), mode="symmetric")
    return np.ascontiguousarray(big[:height, :width], dtype=np.float32) / np.float32(255)


def scratch_mask(height: int, width: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` gentle cubic curves, 300-800 px long and 2-3 px wide, inside a 2000 x 3000 area.

    The curves are the same whatever the image size, so the mask's area is too.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    t = np.linspace(0, 1, 200)[:, None]
    for _ in range(count):
        start = rng.uniform([100, 100], [2900, 1900])
        length, angle = rng.uniform(300, 800), rng.uniform(0, 2 * np.pi)
        along = np.array([np.cos(angle), np.sin(angle)])
        across = np.array([-along[1], along[0]])
        bends = [start + k / 3 * length * along + rng.uniform(-0.25, 0.25) * length * across for k in (1, 2)]
        end = start + length * along
        curve = (1 - t) ** 3 * start + 3 * (1 - t) ** 2 * t * bends[0] + 3 * (1 - t) * t**2 * bends[1] + t**3 * end
        cv2.polylines(mask, [np.round(curve).astype(np.int32)], False, 1, int(rng.integers(2, 4)))
    return mask.astype(bool)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(run) -> tuple[float, float, object]:
    """(seconds, peak RSS growth in MiB, result) of ``run()``."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS:")
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return seconds, (_status_kib("VmHWM:") - before) / 1024, result


def random_lama(folder: Path):
    """big-LaMa with seeded random weights, saved as spandrel's layout and loaded via load_lama."""
    import torch
    from spandrel.architectures.LaMa import LaMa

    from photofix.methods.inpaint import load_lama

    torch.manual_seed(0)
    path = folder / "random-big-lama.pth"
    torch.save(LaMa(in_nc=4, out_nc=3).state_dict(), path)
    return load_lama(path, "cpu")


def row(rows: list[str], case: str, size: str, scratches: int | str, seconds: float, peak: float, output_mib: float, stats=None) -> None:
    crops = f"{stats.crops:5d} | {stats.crop_pixels / 1e6:7.2f} | {stats.filled_pixels / 1e3:8.1f}" if stats else "    1 |  (whole) |        -"
    line = f"| {case:24s} | {size:5s} | {scratches!s:>4} | {seconds:8.2f} | {peak:8.0f} | {output_mib:6.0f} | {crops} |"
    rows.append(line)
    print(line, file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 1: on a shared 2-core machine two OpenMP threads stall at each of LaMa's many small ops
    parser.add_argument("--threads", type=int, default=1, help="torch threads for LaMa (default 1)")
    parser.add_argument("--no-lama", action="store_true", help="classical inpainter only")
    parser.add_argument("--lama-scratches", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--fill", default="biharmonic", choices=("biharmonic", "telea"),
                        help="the classical method (biharmonic, the default since round 10 of SCRATCH_EVAL; telea before)")
    args = parser.parse_args()

    from functools import partial

    from photofix.methods.inpaint import inpaint_classical, inpaint_masked

    classical = partial(inpaint_classical, method=args.fill)
    label = args.fill.capitalize()

    rows: list[str] = []
    for size, (height, width) in SIZES.items():
        image = photo(height, width)
        output_mib = image.nbytes / MIB
        for count in (5, 20, 80):
            mask = scratch_mask(height, width, count)
            seconds, peak, result = measure(lambda: inpaint_masked(image, mask, classical))
            row(rows, f"{label}, masked crops", size, count, seconds, peak, output_mib, result.stats)
        mask = scratch_mask(height, width, 20)
        seconds, peak, _ = measure(lambda: classical(image, mask))
        row(rows, f"{label}, whole image", size, 20, seconds, peak, output_mib)
        del image

    if not args.no_lama:
        import torch

        torch.set_num_threads(args.threads)
        with tempfile.TemporaryDirectory() as folder:
            lama = random_lama(Path(folder))
        height, width = SIZES["24 MP"]
        image = photo(height, width)
        for count in args.lama_scratches:
            mask = scratch_mask(height, width, count)
            seconds, peak, result = measure(lambda: inpaint_masked(image, mask, lama, max_crop=256))
            row(rows, "LaMa, masked crops (256)", "24 MP", count, seconds, peak, image.nbytes / MIB, result.stats)
        small = np.ascontiguousarray(image[:1024, :1024])
        mask = scratch_mask(1024, 1024, 0)
        cv2.line(mask.view(np.uint8), (100, 100), (900, 800), 1, 3)
        lama(small[:64, :64], mask[:64, :64])  # warm-up
        seconds, peak, _ = measure(lambda: lama(small, mask))
        row(rows, "LaMa, whole image", "1 MP", 1, seconds, peak, small.nbytes / MIB)

    print(f"threads: torch {args.threads}, cv2 {cv2.getNumThreads()}; cpus {os.cpu_count()}; load {os.getloadavg()[0]:.1f}")
    print("| case | image | scratches | seconds | peak RSS growth, MiB | output copy, MiB | crops | crop MP | filled kpx |")
    print("|---|---|---|---|---|---|---|---|---|")
    for line in rows:
        print(line)


if __name__ == "__main__":
    main()
