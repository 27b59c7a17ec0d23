"""Scratch rounds 9-10: blend the fill in by how sure the detector is, instead of replacing outright
(shipped as ``photofix.methods.scratch_blend``, behind ``--blend-faint``; this script compares weightings).

When a flagged pixel is damage the fill is the better estimate of the photo; when it is the
photo's own detail the original is exact. With p the chance it is damage, the blend
``p * fill + (1 - p) * original`` has the least expected squared error. The detector's score
over its threshold stands in for p: the weight rises linearly from ``w0`` at the threshold to 1
at ``k`` times it, per pixel (``pixel``) or per connected piece from its 90th-percentile score
(``piece``). The mask is the CLI's classical path's, unchanged; so is the fill (``--fill``, as the
evaluation's). One detection and one fill per photo; every weighting is derived from them.

    python benchmarks/scratch_soft_fill.py --generators straight,curved --weightings pixel:2:0.3,piece:3:0.6

Prints per generator: mean and worst PSNR gain and photos below -1 dB for the hard fill and each
weighting; of the visible damage the detector found, the share of pixels given a weight under 1
(*ghost*: left faintly visible) and the mean share of the damage's contrast left (*left*).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scratch_eval import (GENERATORS, HELD_OUT, JPEGS, jpeg, load_bopb, load_photos, prepare,  # noqa: E402
                                psnr, with_faces)

from photofix.methods.inpaint import inpaint_classical, inpaint_masked  # noqa: E402
from photofix.methods.scratch import ScratchDetection, luminance, scratch_detection  # noqa: E402
from photofix.methods.scratch_blend import fill_weights  # noqa: E402


def weights(found: ScratchDetection, mask: np.ndarray, spec: str, reach: int = 1) -> np.ndarray:
    """H x W weight of the fill for weighting ``kind:k:w0`` (``scratch_blend.fill_weights`` with
    ``full_at`` k and ``floor`` w0) on: each pixel's confidence (``pixel``), its piece's 90th
    percentile (``piece``), its contrast over a fixed reference R instead of the photo's threshold
    (``abs:k:w0:R``, round 10), or its confidence with pieces at least L px long taken as sure
    (``long:k:w0:L``, round 10)."""
    kind, k, w0, *extra = spec.split(":")
    confidence = found.confidence
    if kind == "abs":
        confidence = confidence * np.float32(found.threshold / float(extra[0]))
    elif kind == "long":
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        long_piece = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= float(extra[0])
        long_piece[0] = False  # the background
        confidence = np.where(long_piece[labels], np.float32(k), confidence)
    elif kind == "piece":
        count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
        flat = labels[mask]
        order = np.argsort(flat, kind="stable")
        starts = np.searchsorted(flat[order], np.arange(1, count))
        per_piece = np.array([np.percentile(chunk, 90) if chunk.size else 1.0
                              for chunk in np.split(confidence[mask][order], starts[1:])], np.float32)
        confidence = np.zeros(mask.shape, np.float32)
        confidence[mask] = per_piece[flat - 1]
    elif kind != "pixel":
        raise SystemExit(f"unknown weighting {spec}")
    return fill_weights(confidence, mask, full_at=float(k), floor=float(w0), reach=reach)


def real_scans(root: Path, specs: list[str]) -> None:
    """Per weighting and scan: % of the flagged pixels that take at least 0.9 of the fill (a crack
    left faintly visible shows as a low share)."""
    scans, figure = load_bopb(root)
    if figure is not None:
        scans["figure"] = figure[0]
    print("| weighting | " + " | ".join(scans) + " |")
    print("|---|" + "---|" * len(scans))
    found = {name: (with_faces(scan), scratch_detection(scan)) for name, scan in scans.items()}
    for spec in specs:
        cells = [f"{100 * (weights(det, mask, spec)[mask] >= 0.9).mean():.0f} %" for mask, det in found.values()]
        print(f"| {spec} | " + " | ".join(cells) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generators", default=",".join(g for g in GENERATORS if g not in HELD_OUT))
    parser.add_argument("--weightings", default="pixel:2:0.3,pixel:3:0.3,piece:2:0.3,piece:3:0.6")
    parser.add_argument("--extra-photos", type=Path)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--fill", default="biharmonic", choices=("biharmonic", "telea", "ns"),
                        help="inpaint_classical's method (rounds 9-10's figures: telea, the fill then)")
    parser.add_argument("--feather", type=int, default=1,
                        help="px of half-filled rim around the mask (inpaint_masked; 1 before round 10); weights reach as far")
    parser.add_argument("--bopb", type=Path, help="also the real scans (bench_scratch_eval's --bopb): the share of "
                        "flagged pixels each weighting gives at least 0.9 of the fill")
    args = parser.parse_args()
    specs = args.weightings.split(",")
    if args.bopb:
        real_scans(args.bopb, specs)
    photos = load_photos(args.extra_photos)
    rows = []
    for gen in args.generators.split(","):
        gi = list(GENERATORS).index(gen)
        for k, (name, photo) in enumerate(photos.items()):
            rng = np.random.default_rng([args.seed, gi, k])
            clean = prepare(photo, k)
            damaged, coverage = GENERATORS[gen](clean, rng)
            damaged = jpeg(damaged, JPEGS[(k // 3) % 3])
            mask = with_faces(damaged)
            fill = partial(inpaint_classical, method=args.fill)
            filled = inpaint_masked(damaged, mask, fill, feather=args.feather).pixels if mask.any() else damaged
            before = psnr(damaged, clean)
            row = {"generator": gen, "photo": name, "hard": psnr(filled, clean) - before}
            found = scratch_detection(damaged)
            visible = (coverage >= 0.5) & (np.abs(luminance(damaged) - luminance(clean)) >= 0.1) & mask
            for spec in specs:
                w = weights(found, mask, spec, args.feather)[..., None]
                row[spec] = psnr(damaged + w * (filled - damaged), clean) - before
                row[spec + " ghost"] = float((w[..., 0][visible] < 1).mean()) if visible.any() else float("nan")
                row[spec + " left"] = float((1 - w[..., 0][visible]).mean()) if visible.any() else float("nan")
            rows.append(row)
            print(f"{gen:12s} {name:20s} hard {row['hard']:+.2f} " + " ".join(f"{s} {row[s]:+.2f}" for s in specs),
                  file=sys.stderr)
    names = ["hard"] + specs
    print("| generator | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for gen in args.generators.split(",") + ["all"]:
        sel = [r for r in rows if gen == "all" or r["generator"] == gen]
        cells = []
        for n in names:
            gains = np.array([r[n] for r in sel])
            cell = f"{gains.mean():+.2f} / {gains.min():+.2f} / {int((gains < -1).sum())}"
            if n != "hard":
                cell += (f" (ghost {100 * np.nanmean([r[n + ' ghost'] for r in sel]):.0f} %, "
                         f"left {100 * np.nanmean([r[n + ' left'] for r in sel]):.0f} %)")
            cells.append(cell)
        print(f"| {gen} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
