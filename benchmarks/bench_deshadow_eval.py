"""Deshadow evaluation on real shadow photos: is the automatic mask right, does relighting help?

Prints figures, never asserts them. Data is read from a folder kept outside the repository
(``--data``, default ``/work/data/shadows``), one sub-folder per set::

    SET/shadow/NAME.(png|jpg)   the photo with the shadow
    SET/mask/NAME.png           the true shadow mask (white = shadow), optional
    SET/free/NAME.(png|jpg)     the same scene without the shadow, optional

A set with ``free`` images but no masks gets masks derived from the pair (the photo's
luminance below 0.72 of the colour-fitted shadow-free luminance, cleaned with a 2 px opening
and a 3 px closing). Sets used for this write-up (benchmarks/DESHADOW_EVAL.md) come from
images committed to public GitHub repositories; they are not redistributed here.

Per set:

* **BER** (balanced error rate) of the automatic mask (>= 0.5) against the true mask, counted
  over all the set's pixels as the field does: ``100 (1 - (TP/(TP+FN) + TN/(TN+FP)) / 2)``,
  with its shadow-side (``100 FN/(TP+FN)``) and non-shadow-side (``100 FP/(TN+FP)``) errors.
  A photo the detector leaves alone counts as "no shadow found" (all negative).
* **PSNR** (dB, whole image, 8-bit scale) of the input and of the outputs against the
  shadow-free image, **colour-fitted**: ISTD's (and the paired sets') shadow-free images were
  shot later with a slightly different exposure and white balance, so each channel of the
  shadow-free image is fitted to the input by least squares (``a x + b``) over the pixels
  outside the true mask grown by 10 px, as the field's "ISTD+"-style adjustment does.
  Gains: automatic path (the library's default: detection, confidence gate, relighting),
  the true mask relit (oracle mask), and the detector without its gate.
* **left alone**: how many photos the gate refused, with the reasons.

Photos without shadows (scikit-image's colour photos and every ``free`` image of the sets):
PSNR of the automatic path's output against the photo (inf = bit-identical) and how many
were left alone. Target: no measurable change (<= 0.1 dB).

``--held-out SET`` (repeatable) marks the sets kept out of all tuning; they are printed in a
table of their own. Run from the repository root with photofix installed::

    python benchmarks/bench_deshadow_eval.py --data /work/data/shadows --held-out istd --held-out ucf
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from photofix.methods.deshadow import deshadow, remove_shadow
from photofix.methods.deshadow_mask import detect_shadows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Case:
    set: str
    name: str
    shadow: np.ndarray  # float32 H x W x 3 in [0, 1]
    mask: np.ndarray | None  # bool H x W
    free: np.ndarray | None  # float32 H x W x 3, colour-fitted to ``shadow``
    derived_mask: bool = False


@dataclass
class Counts:
    tp: int = 0
    fn: int = 0
    tn: int = 0
    fp: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        self.tp += int(np.count_nonzero(predicted & truth))
        self.fn += int(np.count_nonzero(~predicted & truth))
        self.tn += int(np.count_nonzero(~predicted & ~truth))
        self.fp += int(np.count_nonzero(predicted & ~truth))

    def ber(self) -> tuple[float, float, float]:
        shadow_err = self.fn / max(1, self.tp + self.fn)
        lit_err = self.fp / max(1, self.tn + self.fp)
        return 100 * (shadow_err + lit_err) / 2, 100 * shadow_err, 100 * lit_err


@dataclass
class SetResult:
    counts: Counts = field(default_factory=Counts)
    input_db: list[float] = field(default_factory=list)
    auto_db: list[float] = field(default_factory=list)
    ungated_db: list[float] = field(default_factory=list)
    oracle_db: list[float] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    photos: int = 0
    rows: list[str] = field(default_factory=list)


# --- data ---------------------------------------------------------------------------------


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    plane = np.asarray(Image.open(path).convert("L"), np.float32) / 255.0
    if plane.shape != shape:
        plane = cv2.resize(plane, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return plane >= 0.5


def find(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        if (folder / (stem + suffix)).exists():
            return folder / (stem + suffix)
    return None


def colour_fit(free: np.ndarray, shadow: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Each channel of ``free`` mapped by the least-squares ``a x + b`` onto ``shadow`` over ``outside``."""
    fitted = np.empty_like(free)
    for c in range(3):
        x, y = free[..., c][outside], shadow[..., c][outside]
        a, b = np.polyfit(x, y, 1) if x.size > 100 else (1.0, 0.0)
        fitted[..., c] = a * free[..., c] + b
    return np.clip(fitted, 0.0, 1.0)


def derive_mask(shadow: np.ndarray, free: np.ndarray) -> np.ndarray:
    """A pair's shadow: luminance below 0.72 of the (globally fitted) shadow-free luminance."""
    def lum(v: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur((v ** 2.2) @ np.array([0.2126, 0.7152, 0.0722], np.float32), (0, 0), 1.5) + 1e-3

    ratio = lum(shadow) / lum(free)
    ratio /= np.median(ratio)  # most of the frame is lit: its ratio is the exposure change
    raw = (ratio < 0.72).astype(np.uint8)
    disk = lambda r: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))  # noqa: E731
    raw = cv2.morphologyEx(cv2.morphologyEx(raw, cv2.MORPH_OPEN, disk(2)), cv2.MORPH_CLOSE, disk(3))
    return raw.astype(bool)


def load_set(folder: Path) -> list[Case]:
    """Every photo of one set folder (see the module's docstring for the layout)."""
    cases = []
    for path in sorted((folder / "shadow").iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        shadow = read_rgb(path)
        mask_path, free_path = find(folder / "mask", path.stem), find(folder / "free", path.stem)
        mask = read_mask(mask_path, shadow.shape[:2]) if mask_path else None
        free, derived = None, False
        if free_path is not None:
            raw_free = read_rgb(free_path)
            if raw_free.shape != shadow.shape:
                raw_free = cv2.resize(raw_free, (shadow.shape[1], shadow.shape[0]), interpolation=cv2.INTER_AREA)
            if mask is None:
                mask, derived = derive_mask(shadow, raw_free), True
            outside = cv2.dilate(mask.astype(np.uint8), np.ones((21, 21), np.uint8)) == 0
            free = colour_fit(raw_free, shadow, outside)
        cases.append(Case(folder.name, path.stem, shadow, mask, free, derived))
    return cases


def load_all(root: Path) -> dict[str, list[Case]]:
    return {d.name: load_set(d) for d in sorted(root.iterdir()) if (d / "shadow").is_dir()}


def clean_photos(root: Path | None) -> list[tuple[str, np.ndarray]]:
    """Photos without shadows: scikit-image's colour photos and the sets' shadow-free images."""
    from skimage import data

    photos = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "coins", "camera", "moon"):
        image = np.asarray(getattr(data, name)(), np.float32) / 255.0
        photos.append((name, image if image.ndim == 3 else image[..., None]))
    if root is not None:
        for folder in sorted(root.glob("*/free")):
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    photos.append((f"{folder.parent.name}/{path.stem}", read_rgb(path)))
    return photos


# --- metrics ------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def to_8bit(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255) / 255


def evaluate_case(case: Case, result: SetResult) -> None:
    auto = deshadow(case.shadow)
    left = auto.details.get("left_alone")
    detected = auto.mask >= 0.5
    result.photos += 1
    if left:
        result.left_alone.append(f"{case.name}: {left}")
    row = f"  {case.name:<14} mask {100 * auto.details['mask_area']:5.1f} %"
    if case.mask is not None:
        result.counts.add(detected, case.mask)
        one = Counts()
        one.add(detected, case.mask)
        row += f"  true {100 * case.mask.mean():5.1f} %  BER {one.ber()[0]:5.1f}"
    if case.free is not None:
        before = psnr(case.shadow, case.free)
        result.input_db.append(before)
        result.auto_db.append(psnr(to_8bit(auto.pixels), case.free) - before)
        ungated = detect_shadows(case.shadow).mask
        relit = remove_shadow(case.shadow, ungated)[0] if ungated.any() else case.shadow
        result.ungated_db.append(psnr(to_8bit(relit), case.free) - before)
        try:
            oracle, _ = remove_shadow(case.shadow, case.mask)
            result.oracle_db.append(psnr(to_8bit(oracle), case.free) - before)
        except Exception as error:  # noqa: BLE001 - a mask touching every border: report, go on
            result.oracle_db.append(float("nan"))
            row += f"  (oracle failed: {error})"
        row += f"  in {before:5.2f} dB  auto {result.auto_db[-1]:+5.2f}  ungated {result.ungated_db[-1]:+5.2f}  oracle {result.oracle_db[-1]:+5.2f}"
    if left:
        row += f"  [left alone: {left}]"
    result.rows.append(row)


# --- report -------------------------------------------------------------------------------


def mean(values: list[float]) -> str:
    values = [v for v in values if np.isfinite(v)]
    return f"{np.mean(values):+.2f}" if values else "-"


def table(results: dict[str, SetResult], cases: dict[str, list[Case]]) -> list[str]:
    lines = [
        "| set | photos | masks | BER | shadow err | non-shadow err | PSNR in | gain auto | gain ungated | gain oracle mask | left alone |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        has_mask = any(c.mask is not None for c in cases[name])
        ber = r.counts.ber() if has_mask else None
        kind = "derived" if any(c.derived_mask for c in cases[name]) else ("given" if has_mask else "-")
        ber_cells = " | ".join(f"{v:.1f}" for v in ber) if ber else "- | - | -"
        psnr_in = f"{np.mean(r.input_db):.2f}" if r.input_db else "-"
        lines.append(
            f"| {name} | {r.photos} | {kind} | {ber_cells} | {psnr_in} | {mean(r.auto_db)} | {mean(r.ungated_db)} "
            f"| {mean(r.oracle_db)} | {len(r.left_alone)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data/shadows"))
    parser.add_argument("--held-out", action="append", default=[], help="set kept out of all tuning (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="tables only, no per-photo rows")
    args = parser.parse_args()

    started = time.perf_counter()
    cases = load_all(args.data)
    results = {name: SetResult() for name in cases}
    for name, set_cases in cases.items():
        for case in set_cases:
            evaluate_case(case, results[name])
    tuning = {k: v for k, v in results.items() if k not in args.held_out}
    held = {k: v for k, v in results.items() if k in args.held_out}

    print("## Sets used while tuning\n")
    print("\n".join(table(tuning, cases)))
    if held:
        print("\n## Held-out sets (never run while tuning)\n")
        print("\n".join(table(held, cases)))
    paired = [v for r in results.values() for v in r.auto_db]
    print(f"\nMean gain of the automatic path over every paired photo: {np.mean(paired):+.2f} dB ({len(paired)} photos)")
    if not args.quiet:
        for name, r in results.items():
            print(f"\n### {name}")
            print("\n".join(r.rows))

    print("\n## Photos without shadows\n")
    print("| photo | flagged % | PSNR out vs in | left alone |")
    print("| --- | ---: | ---: | --- |")
    for name, image in clean_photos(args.data):
        out = deshadow(image)
        change = psnr(to_8bit(out.pixels), to_8bit(image))
        left = out.details.get("left_alone") or ""
        print(f"| {name} | {100 * out.details['mask_area']:.1f} | {change:.1f} | {left} |")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
