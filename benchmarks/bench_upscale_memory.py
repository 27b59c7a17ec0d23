"""Peak memory of one x4 upscale through the CLI: 2400x1600 8-bit PNG -> 9600x6400 PNG.

The model is Real-ESRGAN general-x4v3's released configuration (spandrel ``Compact``,
64 features, 32 convs, x4) with seeded random weights: the work and the memory are the
same as with the published weights. The photo is skimage's astronaut mirror-tiled to size.

``photofix upscale IN OUT --weights compact.pth`` runs in-process in a fresh subprocess,
which reports its peak RSS as VmHWM from ``/proc/self/status`` (``ru_maxrss`` of a child
carries the parent's peak over exec on Linux), and the SHA-256 of the output's decoded
pixels, so runs before and after a change can be checked for identical output.

Run from the repository root with photofix installed::

    python benchmarks/bench_upscale_memory.py             # ~2-5 min on a shared 2-core CPU
    python benchmarks/bench_upscale_memory.py --tile 512

Figures are printed (and written with ``--json``), never asserted.

Measured 2026-12-04 on the shared 2-core VM (load average 2.4-5.4), torch 2.14.1 (CUDA
build, on CPU), auto tile (1408 px: 2 x 2 tiles of 808 x 1208), 2 threads, one run each:

* whole float32 output canvas (before): peak **3.01 GiB**, 274 s;
* float sums for one tile + the overlap rows, output finished to uint8 as blended: peak
  **1.65 GiB**, 225 s; same output pixels (SHA-256 b88ff469...).

What is left is mostly not the output: ~0.8 GiB is torch + the model, 0.17 GiB the uint8
output, and ~0.65 GiB one 808 x 1208 tile's activations, which the auto tile size let grow
to 1 GiB on CPU. With the CPU budget lowered to 512 MiB (auto tile 1024 px): peak
**1.42 GiB**, 234 s (151 s in a quieter run with ``--tile 1024``, the same tiles); output
SHA-256 5a691bc4... (other tiles, so pixels that differ from the runs above by the tile
departure of a convolutional model at its manifest overlap).

With the OpenVINO extra installed, ``--backend auto`` runs Compact on OpenVINO. Measured
2026-12-04, one run each, other jobs on the machine, auto tile (1024 px): ``--backend openvino``
peak **1.75 GiB**, 104 s; ``--backend torch`` peak **1.11 GiB**, 175 s; the same output pixels
(SHA-256 5a691bc4...). OpenVINO's compiled model and its own buffers cost about 0.64 GiB more
than torch's path, for 0.6x the time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1024**3
MIB = 1024**2


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def build_inputs(folder: Path, size: tuple[int, int]) -> tuple[Path, Path]:
    """The random-weight Compact x4 checkpoint (Real-ESRGAN's ``params`` layout) and the 8-bit PNG photo."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data
    from spandrel.architectures.Compact import Compact

    weights = folder / "compact_x4.pth"
    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4)
    torch.save({"params": net.state_dict()}, weights)
    photo = data.astronaut()
    height, width = size
    grow = ((0, max(0, height - photo.shape[0])), (0, max(0, width - photo.shape[1])), (0, 0))
    tiled = np.pad(photo, grow, mode="symmetric")[:height, :width]
    source = folder / "photo.png"
    Image.fromarray(tiled).save(source)
    return weights, source


def drive(source: str, output: str, weights: str, tile: str, threads: int, backend: str) -> dict:
    """In the child: run the CLI on one file, then report peak RSS and what was written."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    from photofix.cli import app

    args = ["upscale", source, output, "--weights", weights, "--tile", tile, "--threads", str(threads),
            "--backend", backend, "--quiet"]
    started = time.perf_counter()
    code = app(args, standalone_mode=False)
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()  # before the output is read back below
    from PIL import Image

    with Image.open(output) as written:
        size, mode = written.size, written.mode
        pixels_sha256 = hashlib.sha256(written.tobytes()).hexdigest()
    return {"exit_code": code, "seconds": seconds, "peak": peak,
            "output_size": size, "output_mode": mode, "output_pixels_sha256": pixels_sha256,
            "output_8bit_bytes": size[0] * size[1] * len(mode)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tile", default="auto", help="--tile for photofix (default auto)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "openvino"),
                        help="--backend for photofix (auto: OpenVINO for Compact when the extra is installed)")
    parser.add_argument("--size", default="1600x2400", help="input HEIGHTxWIDTH (default 1600x2400)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--driver", nargs=3, metavar=("SOURCE", "OUTPUT", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.driver:
        print(json.dumps(drive(*args.driver, args.tile, args.threads, args.backend)))
        return 0

    with tempfile.TemporaryDirectory(prefix="photofix-upmem-") as tmp:
        folder = Path(tmp)
        size = tuple(int(n) for n in args.size.lower().split("x"))
        weights, source = build_inputs(folder, size)
        command = [sys.executable, __file__, "--driver", str(source), str(folder / "out.png"), str(weights),
                   "--tile", args.tile, "--threads", str(args.threads), "--backend", args.backend]
        child = subprocess.run(command, capture_output=True, text=True)
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return child.returncode
        result = json.loads(child.stdout.strip().splitlines()[-1])
    height, width = size
    print(f"photofix upscale {width}x{height} -> {result['output_size'][0]}x{result['output_size'][1]} "
          f"(Compact x4, random weights), --tile {args.tile}, --backend {args.backend}, {args.threads} threads")
    print(f"  exit code          {result['exit_code']}, {result['seconds']:.1f} s")
    print(f"  peak RSS (VmHWM)   {result['peak'] / GIB:.2f} GiB")
    print(f"  8-bit output       {result['output_8bit_bytes'] / MIB:.0f} MiB ({result['output_mode']}); "
          f"as float32 {result['output_8bit_bytes'] * 4 / MIB:.0f} MiB")
    print(f"  output pixels sha256 {result['output_pixels_sha256']}")
    if args.json:
        args.json.write_text(json.dumps({"tile": args.tile, "threads": args.threads, "backend": args.backend, **result},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
