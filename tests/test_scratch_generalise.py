"""The classical scratch detector on damage it was never tuned on, and on clean faces.

The damage here is drawn by a generator that lives only in this file: elliptic arcs (1.5-3 px,
two thirds near-white, one third near-black) and small square flecks, antialiased by 4x
supersampling. It differs from the benchmark's generators (benchmarks/bench_scratch_eval.py)
and from tests/test_scratch_repair.py's Bezier strokes and round spots. Bounds sit under the
figures measured with the CLI's classical path (stated next to each; the mask is not grown, the
CLI's default since the evaluation): they guard against regressions on damage nobody tuned
for. The issue-11 targets it does not meet yet (F1 >= 0.6, no photo worse by 1 dB) are in
benchmarks/SCRATCH_EVAL.md; faces are tested in tests/test_scratch_faces.py.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from photofix.methods.faces import CascadeDetector
from photofix.methods.inpaint import inpaint_classical, inpaint_masked
from photofix.methods.scratch import detect_scratches, luminance
from photofix.methods.scratch_faces import faces_for_protection, protect_face_features
from tests.helpers import psnr

SS = 4


def arcs_and_flecks(clean: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(damaged float32 H x W x C, coverage H x W in [0, 1]) for a float32 photo."""
    rng = np.random.default_rng(seed)
    h, w = clean.shape[:2]
    image = clean.copy()
    coverage = np.zeros((h, w), np.float32)

    def paint(layer: np.ndarray, value: float) -> None:
        nonlocal image, coverage
        alpha = cv2.resize(layer.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        image = (1 - alpha[..., None]) * image + alpha[..., None] * np.float32(value)
        coverage = np.maximum(coverage, alpha)

    for i in range(7):
        layer = np.zeros((h * SS, w * SS), np.uint8)
        centre = (int(rng.uniform(0, w * SS)), int(rng.uniform(0, h * SS)))
        axes = (int(rng.uniform(0.2, 0.6) * w * SS), int(rng.uniform(0.1, 0.4) * h * SS))
        start = rng.uniform(0, 360)
        thickness = int(rng.uniform(1.5, 3) * SS)
        cv2.ellipse(layer, centre, axes, rng.uniform(0, 180), start, start + rng.uniform(30, 80), 1, thickness)
        paint(layer, rng.uniform(0.88, 1.0) if i % 3 else rng.uniform(0.0, 0.1))
    for _ in range(12):
        layer = np.zeros((h * SS, w * SS), np.uint8)
        x, y, r = int(rng.uniform(0, w * SS)), int(rng.uniform(0, h * SS)), int(rng.uniform(1, 2.5) * SS)
        cv2.rectangle(layer, (x - r, y - r), (x + r, y + r), 1, -1)
        paint(layer, rng.uniform(0.9, 1.0))
    return np.clip(image, 0, 1).astype(np.float32), coverage


def _metrics(clean: np.ndarray, damaged: np.ndarray, coverage: np.ndarray) -> tuple[float, float]:
    """(F1 of the raw mask, PSNR gain of the CLI's classical path: the mask as detected, biharmonic fill)."""
    mask = detect_scratches(damaged)
    visible = (coverage >= 0.5) & (np.abs(luminance(damaged) - luminance(clean)) >= 0.1)
    near = cv2.dilate((coverage > 0.02).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    recall = mask[visible].mean()
    precision = near[mask].mean() if mask.any() else 1.0
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    repaired = inpaint_masked(damaged, mask, inpaint_classical).pixels
    return float(f1), psnr(repaired, clean) - psnr(damaged, clean)


CROPS = {  # 300 x 300 crops
    "rocket": lambda: data.rocket()[50:350, 100:400],
    "coffee": lambda: data.coffee()[:300, 200:500],
    "camera": lambda: data.camera()[:300, 200:500],
}


@pytest.fixture(scope="module")
def measured() -> dict[tuple[str, int], tuple[float, float]]:
    results = {}
    for name, crop in CROPS.items():
        clean = crop().astype(np.float32) / 255
        clean = clean if clean.ndim == 3 else clean[..., None]
        for seed in (1, 2):
            damaged, coverage = arcs_and_flecks(clean, seed)
            results[name, seed] = _metrics(clean, damaged, coverage)
    return results


def test_unseen_damage_is_found_and_repair_gains(measured) -> None:
    # measured (no growth): F1 0.802/0.769 rocket, 0.685/0.731 coffee, 0.689/0.648 camera
    # (mean 0.721); gain +12.34/+8.03, +3.69/+5.25, +4.32/+5.55 dB (mean +6.53; with the Telea
    # fill used before, +12.04/+7.90, +3.31/+4.43, +3.89/+5.08, mean +6.11). Before stretches
    # along the scene's edges were dropped: F1 mean 0.612, gains mean +4.32, lowest +2.74.
    f1 = [f for f, _ in measured.values()]
    gains = [g for _, g in measured.values()]
    assert np.mean(f1) >= 0.68, measured
    assert np.mean(gains) >= 5.5, measured
    assert min(gains) >= 3.0, measured


def test_smooth_fur_photo_keeps_its_high_gain() -> None:
    # the cat (fur, whiskers): measured F1 0.890/0.873, gain +11.18/+8.39 dB. Before stretches along
    # the scene's edges were dropped: 0.906/0.940, +13.58/+13.86 (arcs that follow the cat's own
    # edges for a stretch are now left there: the price of keeping its whiskers and eyes)
    clean = data.chelsea()[:, :300].astype(np.float32) / 255
    for seed in (1, 2):
        f1, gain = _metrics(clean, *arcs_and_flecks(clean, seed))
        assert f1 >= 0.85 and gain >= 7.5, (seed, f1, gain)


def test_a_clean_portrait_is_barely_masked_and_its_features_not_at_all() -> None:
    face = data.astronaut()[:256, 128:384].astype(np.float32) / 255
    plain = detect_scratches(face)
    mask, _ = protect_face_features(plain, faces_for_protection(face, CascadeDetector()))
    # measured: 0.96 % of the 256 px crop with the detector alone; 0.66 % of it and 0.22 % of the
    # features box (brows, eyes, nose, mouth) with the face's features kept out (the CLI's path)
    assert plain.mean() <= 0.012
    assert mask.mean() <= 0.008
    assert mask[80:160, 52:147].mean() <= 0.005


def test_the_biharmonic_fill_beats_telea_on_damage_neither_was_chosen_on() -> None:
    # measured (gain dB, Telea -> biharmonic): rocket +12.04 -> +12.34, +7.90 -> +8.03; coffee
    # +3.31 -> +3.69, +4.43 -> +5.25; camera +3.89 -> +4.32, +5.08 -> +5.55 (the choice was made on
    # benchmarks/bench_scratch_eval.py's generators; these arcs and flecks are not among them)
    from functools import partial

    differences = []
    for crop in CROPS.values():
        clean = crop().astype(np.float32) / 255
        clean = clean if clean.ndim == 3 else clean[..., None]
        for seed in (1, 2):
            damaged, _ = arcs_and_flecks(clean, seed)
            mask = detect_scratches(damaged)
            telea, biharmonic = (psnr(inpaint_masked(damaged, mask, partial(inpaint_classical, method=m)).pixels, clean)
                                 for m in ("telea", "biharmonic"))
            differences.append(biharmonic - telea)  # the same damaged input: the PSNR difference is the gain's
    assert min(differences) > 0.0 and np.mean(differences) >= 0.3, differences
