"""CPU seconds per megapixel for every model in the manifest (the README's models table).

The published checkpoints cannot be downloaded on the machine this was written on, so each
model is built with its *released configuration* (same widths, depths and heads; weights
random, which does not change the amount of work), saved, and loaded through
``photofix.engine.models.load_model`` on the CPU, so the figures include photofix's CPU rewrites
(channels_last, fused LayerNorm, folded BatchNorm) and its padding/clamp. The timed call is
one whole crop through ``LoadedModel`` (no tiling, which adds overlap on top).

Seconds per megapixel are per *input* megapixel, as wall time (best of the repeats) and as
process CPU time (the figure that does not depend on what else the machine is running:
at 1 thread it is the wall time the model would take on an otherwise idle core); for the x4 upscalers one input megapixel
is sixteen output megapixels. Models that share a configuration share a row.

Run from the repository root with photofix installed::

    python benchmarks/bench_lineup_speed.py                 # ~6-10 min on a shared 2-core CPU
    python benchmarks/bench_lineup_speed.py --only nafnet-gopro-width32 --threads 1

Figures are printed (and written with ``--json``), never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

Builder = Callable[[], dict]


def _nafnet(width: int, middle: int, enc: list[int], dec: list[int]) -> Builder:
    def build() -> dict:
        from spandrel.architectures.NAFNet import NAFNet

        net = NAFNet(img_channel=3, width=width, middle_blk_num=middle, enc_blk_nums=enc, dec_blk_nums=dec)
        return {"params": net.state_dict()}

    return build


def _restormer(norm: str) -> Builder:
    def build() -> dict:
        from spandrel_extra_arches.architectures.Restormer import Restormer

        net = Restormer(dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4, heads=[1, 2, 4, 8],
                        ffn_expansion_factor=2.66, bias=False, LayerNorm_type=norm)
        return {"params": net.state_dict()}

    return build


def _scunet() -> dict:
    from spandrel.architectures.SCUNet import SCUNet

    return SCUNet(in_nc=3, config=[4] * 7, dim=64).state_dict()


def _drunet() -> dict:
    from spandrel.architectures.DRUNet import DRUNet

    return DRUNet(in_nc=4, out_nc=3, nc=[64, 128, 256, 512], nb=4).state_dict()


def _ffdnet(channels: int, features: int, layers: int) -> Builder:
    def build() -> dict:
        from photofix.archs.ffdnet.network import FFDNet

        net = FFDNet(channels, features, layers, batch_norm=True, bias=False, noise_first=True,
                     noise_planes=channels, residual=True)
        # The IPOL release's key layout (with BatchNorm), which photofix detects as FFDNet.
        return {"intermediate_dncnn.itermediate_dncnn." + k[len("layers."):]: v for k, v in net.state_dict().items()}

    return build


def _rrdb() -> dict:
    from spandrel.architectures.ESRGAN import ESRGAN

    # spandrel's RRDBNet saves the old ESRGAN key names; same network as BasicSR's x4plus layout.
    return ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4).state_dict()


def _compact() -> dict:
    from spandrel.architectures.Compact import Compact

    return {"params": Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4).state_dict()}


def _dat() -> dict:
    from spandrel.architectures.DAT import DAT

    return DAT(upscale=4, in_chans=3, img_size=64, embed_dim=180, depth=[6] * 6, num_heads=[6] * 6,
               split_size=[8, 32], expansion_factor=4, resi_connection="1conv", upsampler="pixelshuffle").state_dict()


# configuration -> (builder, crop side in px, manifest ids that share it)
CONFIGS: dict[str, tuple[Builder, int, tuple[str, ...]]] = {
    "ffdnet-color": (_ffdnet(3, 96, 12), 512, ("ffdnet-color",)),
    "ffdnet-gray": (_ffdnet(1, 64, 15), 512, ("ffdnet-gray",)),
    "nafnet-gopro-width32": (_nafnet(32, 1, [1, 1, 1, 28], [1, 1, 1, 1]), 256, ("nafnet-gopro-width32",)),
    "nafnet-gopro-width64": (_nafnet(64, 1, [1, 1, 1, 28], [1, 1, 1, 1]), 256, ("nafnet-gopro-width64",)),
    "nafnet-sidd-width32": (_nafnet(32, 12, [2, 2, 4, 8], [2, 2, 2, 2]), 256, ("nafnet-sidd-width32",)),
    "nafnet-sidd-width64": (_nafnet(64, 12, [2, 2, 4, 8], [2, 2, 2, 2]), 256, ("nafnet-sidd-width64",)),
    "scunet": (_scunet, 256, ("scunet-color-real",)),
    "drunet": (_drunet, 256, ("drunet-color",)),
    "restormer-withbias": (_restormer("WithBias"), 256,
                           ("restormer-motion-deblur", "restormer-defocus-deblur", "restormer-derain")),
    "restormer-biasfree": (_restormer("BiasFree"), 256, ("restormer-real-denoise",)),
    "rrdbnet-x4": (_rrdb, 128, ("realesrgan-x4plus",)),
    "compact-x4": (_compact, 128, ("realesrgan-general-x4v3",)),
    "dat-x4": (_dat, 64, ("dat-x4",)),
}


def photo_crop(side: int, channels: int) -> torch.Tensor:
    from skimage import data

    photo = data.astronaut()[:side, 60 : 60 + side].astype(np.float32) / 255.0
    if channels == 1:
        photo = photo @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
    return torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].contiguous()


def measure(name: str, repeats: int, folder: Path) -> dict:
    from photofix.engine.models import load_model

    build, side, ids = CONFIGS[name]
    path = folder / f"{name}.pth"
    torch.manual_seed(0)
    torch.save(build(), path)
    model = load_model(path, device="cpu")
    x = photo_crop(side, model.in_channels)
    model(x, 25.0)  # warm-up: oneDNN primitive creation, allocator growth
    times = []
    cpu_times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        model(x, 25.0)
        times.append(time.perf_counter() - wall)
        cpu_times.append(time.process_time() - cpu)
    megapixels = side * side / 1e6
    best = min(times)
    # Process CPU time is what the model costs when it has the cores to itself; on a shared
    # machine wall time also counts the waits for a core (cpu/wall well below the thread count).
    params = sum(p.numel() for p in model.descriptor.model.parameters())
    return {
        "config": name, "ids": list(ids), "arch": model.arch, "params_m": params / 1e6, "side": side,
        "seconds": times, "s_per_mp": best / megapixels, "cpu_s_per_mp": min(cpu_times) / megapixels,
        "cpu_over_wall": cpu_times[times.index(best)] / best,
        "rewritten": model.channels_last,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), help="configurations to run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2, help="timed calls after one warm-up; best kept")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.only or list(CONFIGS)
    print(f"# torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("| config | manifest ids | params | crop | wall s/MP (input) | CPU s/MP (input) | cpu/wall | CPU rewrites |")
    print("|---|---|--:|--:|--:|--:|--:|---|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for name in names:
            row = measure(name, args.repeats, Path(tmp))
            rows.append(row)
            print(f"| {name} | {', '.join(row['ids'])} | {row['params_m']:.1f} M | {row['side']} px | "
                  f"{row['s_per_mp']:.1f} | {row['cpu_s_per_mp']:.1f} | {row['cpu_over_wall']:.2f} | {'yes' if row['rewritten'] else 'no'} |",
                  flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.1f}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
