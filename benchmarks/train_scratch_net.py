"""Fit the weights of ``scratch_net`` (round 8's small learned scratch detector; not shipped).

Training data: the tuning generators of ``bench_scratch_eval.py`` (round 8: all but ``tidemark``)
drawn on photos that are **not** among the evaluation's 18: a folder given with ``--photos``
(the project used the natural photos of OpenCV's ``samples/data``, from the
opencv-python-headless 4.9.0.80 sdist on PyPI; list in SCRATCH_EVAL.md). Each photo is shown
at the evaluation's sizes and JPEG qualities, damaged by every tuning generator twice.

A pixel is labelled damage where the generator's coverage is at least 0.5 and the luminance
changed visibly (>= ``--visible``); pixels the damage touched less than that (antialiased
rims, invisible damage) are left out of the loss rather than called clean.

    python benchmarks/train_scratch_net.py --photos /path/to/photos --out scratch_net.npz --steps 4000 --batch 24

CPU only: round 8's run (those arguments) took 4 min to draw the samples and 22 min to train
on this project's two shared cores. Deterministic for a given seed and torch version.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_scratch_eval import GENERATORS, JPEGS, SCALES, jpeg  # noqa: E402

from photofix.methods.scratch import luminance  # noqa: E402
from scratch_net import build_net, net_input, save_weights  # noqa: E402

IGNORE = 255
ROUND8_TRAINING = ("straight", "curved", "crease", "dust_hair", "jagged", "film", "print_scan", "aged_portrait",
                   "sketched", "marked", "relief")


def load_folder(folder: Path) -> dict[str, np.ndarray]:
    photos = {}
    for path in sorted(folder.iterdir()):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            photos[path.stem] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    return photos


def labelled_samples(photos: dict[str, np.ndarray], generators: list[str], repeats: int, visible: float,
                     seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(3 x H x W float32 input, H x W uint8 label: 0 clean, 1 damage, 255 left out) pairs."""
    samples = []
    for k, (name, photo) in enumerate(photos.items()):
        for gi, gen in enumerate(generators):
            for r in range(repeats):
                rng = np.random.default_rng([seed, k, gi, r])
                scale = SCALES[int(rng.integers(len(SCALES)))]
                clean = photo
                if scale != 1.0:
                    h, w = photo.shape[:2]
                    size = (round(w * scale), round(h * scale))
                    clean = np.clip(cv2.resize(photo, size, interpolation=cv2.INTER_AREA if scale < 1
                                               else cv2.INTER_CUBIC), 0, 1).astype(np.float32)
                if rng.random() < 0.25:  # some grey photos: the evaluation has several
                    clean = luminance(clean)[..., None]
                damaged, coverage = GENERATORS[gen](clean, rng)
                damaged = jpeg(damaged, JPEGS[int(rng.integers(len(JPEGS)))])
                change = np.abs(luminance(damaged) - luminance(clean))
                label = np.zeros(coverage.shape, np.uint8)
                label[coverage > 0.02] = IGNORE
                label[(coverage >= 0.5) & (change >= visible)] = 1
                samples.append((net_input(damaged), label))
        print(f"{name}: {len(samples)} samples", file=sys.stderr)
    return samples


def batches(samples, patch: int, size: int, rng: np.random.Generator):
    while True:
        xs, ys = [], []
        for i in rng.integers(len(samples), size=size):
            x, y = samples[i]
            h, w = y.shape
            if h < patch or w < patch:
                continue
            top, left = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
            xs.append(x[:, top:top + patch, left:left + patch])
            ys.append(y[top:top + patch, left:left + patch])
        yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def train(samples, steps: int, patch: int, batch: int, lr: float, pos_weight: float, seed: int):
    torch.manual_seed(seed)
    net = build_net()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    weight = torch.tensor(pos_weight)
    start, running = time.perf_counter(), []
    for step, (x, y) in zip(range(steps), batches(samples, patch, batch, np.random.default_rng(seed))):
        logits = net(x)[:, 0]
        keep = y != IGNORE
        target = (y == 1).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], target[keep], pos_weight=weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            print(f"step {step + 1}/{steps} loss {np.mean(running[-100:]):.4f} "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True, help="training photos (none of the evaluation's)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--pos-weight", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=2, help="damaged copies per photo and generator")
    parser.add_argument("--visible", type=float, default=0.06, help="luminance change that makes damage visible")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--generators", default=",".join(ROUND8_TRAINING),
                        help="damage to train on (default: round 8's eleven, all that were written before "
                             "its held-out tidemark)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    generators = args.generators.split(",")
    photos = load_folder(args.photos)
    print(f"{len(photos)} photos x {len(generators)} generators x {args.repeats}", file=sys.stderr)
    samples = labelled_samples(photos, generators, args.repeats, args.visible, args.seed)
    net = train(samples, args.steps, args.patch, args.batch, args.lr, args.pos_weight, args.seed)
    save_weights(net, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
