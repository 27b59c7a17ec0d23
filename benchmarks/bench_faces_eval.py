"""Faces: how many faces each detector finds on photos whose faces are known, and where in the
old-photo chain the faces step gains most.

    python benchmarks/bench_faces_eval.py [--yunet face_detection_yunet_2023mar.onnx] [--photo PATH:X,Y ...]

Photos: skimage's astronaut and cameraman, 100 LFW faces (skimage's 25-px subset, enlarged 4x
and laid out ten to a sheet like a group photo) and its 100 non-face patches (false alarms),
plus any ``--photo PATH:X,Y`` (one face centred near X, Y; e.g. matplotlib's grace_hopper.jpg,
from its wheel). Each photo is also tried "old": grey-sepia, blurred, grainy, JPEG q30; and
tilted 20 degrees. A face counts as found when a detected box holds its centre.

Chain order: each photo is shrunk to half size and made old (the input), then the faces step
runs either before or after the 2x enlargement the old-photo preset ends with. The face
model is replaced by an oracle that returns the clean photo's aligned face, so the figure is
the most a face model could add at that place (PSNR in the pasted ovals against the clean
photo), not what GFPGAN adds. The 2x step is OpenCV's bicubic, standing in for the learned
upscaler, whose weights are not available here.
"""

from __future__ import annotations

import argparse
import io
import time

import cv2
import numpy as np
from PIL import Image
from skimage import data

from photofix.methods.faces import CascadeDetector, YuNetDetector, detect_faces, restore_faces
from photofix.methods.faces.align import crop_face, face_transform


def old(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """Grey-sepia, soft, grainy, JPEG-compressed: uint8 RGB."""
    rng = np.random.default_rng(seed)
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255
    sepia = np.stack([grey * 1.07, grey * 0.95, grey * 0.78], axis=2)
    soft = cv2.GaussianBlur(sepia, (0, 0), 1.5)
    grainy = np.clip(soft + rng.normal(0, 0.04, soft.shape[:2])[..., None], 0, 1)
    buffer = io.BytesIO()
    Image.fromarray(np.rint(grainy * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=30)
    return np.asarray(Image.open(buffer).convert("RGB"))


def tilted(rgb: np.ndarray, centres: list[tuple[float, float]], angle: float = 20.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    turned = cv2.warpAffine(rgb, matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    return turned, [tuple(matrix @ np.array([x, y, 1.0])) for x, y in centres]


def lfw_sheets() -> tuple[list[tuple[np.ndarray, list[tuple[float, float]]]], list[np.ndarray]]:
    """Ten 'group photos' of ten LFW faces each, and ten sheets of the non-face patches."""
    patches = data.lfw_subset()  # 100 faces, then 100 non-faces, 25 x 25 grey
    cell, gap = 100, 40

    def sheet(group: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float]]]:
        canvas = np.full((2 * cell + 3 * gap, 5 * cell + 6 * gap), 0.55, dtype=np.float32)
        centres = []
        for i, patch in enumerate(group):
            r, c = divmod(i, 5)
            y, x = gap + r * (cell + gap), gap + c * (cell + gap)
            canvas[y:y + cell, x:x + cell] = cv2.resize(patch.astype(np.float32), (cell, cell), interpolation=cv2.INTER_CUBIC)
            centres.append((x + cell / 2, y + cell / 2))
        rgb = np.repeat(np.rint(np.clip(canvas, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
        return rgb, centres

    faces = [sheet(patches[i:i + 10]) for i in range(0, 100, 10)]
    others = [sheet(patches[i:i + 10])[0] for i in range(100, 200, 10)]
    return faces, others


def count(detector, rgb: np.ndarray, centres: list[tuple[float, float]], min_face: int = 24) -> tuple[int, int]:
    """(faces found, false alarms)."""
    boxes = [f.box for f in detect_faces(rgb.astype(np.float32) / 255, detector, min_face=min_face)]
    found = sum(any(x <= cx <= x + w and y <= cy <= y + h for x, y, w, h in boxes) for cx, cy in centres)
    alarms = sum(not any(x <= cx <= x + w and y <= cy <= y + h for cx, cy in centres) for x, y, w, h in boxes)
    return found, alarms


def oracle_chain(clean: np.ndarray, detector, faces_last: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """(result, pasted-oval mask) at the clean photo's size: the oracle face step before (False) or after
    (True) the 2x step, or none (None)."""
    clean_f = clean.astype(np.float32) / 255
    h, w = clean.shape[:2]
    small = cv2.resize(old(clean), (w // 2, h // 2), interpolation=cv2.INTER_AREA).astype(np.float32) / 255

    def enlarge(img: np.ndarray) -> np.ndarray:
        return np.clip(cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)

    def with_faces(img: np.ndarray, to_clean: float) -> tuple[np.ndarray, np.ndarray]:
        out, mask = img, np.zeros(img.shape[:2], dtype=np.float32)
        for face in detect_faces(img, detector, min_face=12):
            matrix = face_transform(face.landmarks)
            if matrix is None:
                continue
            # the oracle: the clean photo's face, aligned to the same frame
            truth = crop_face(clean_f, matrix @ np.diag([1 / to_clean, 1 / to_clean, 1.0]))
            pasted = restore_faces(out, [face], lambda _crop, truth=truth: truth)
            out, mask = pasted.pixels, np.maximum(mask, pasted.mask(*img.shape[:2]))
        return out, mask

    if faces_last is None:
        return enlarge(small), np.zeros((h, w), dtype=np.float32)
    if faces_last:
        return with_faces(enlarge(small), 1.0)
    restored, mask = with_faces(small, 2.0)
    return enlarge(restored), cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return 10 * np.log10(1 / float(np.mean((a[where] - b[where]) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yunet", help="YuNet ONNX file (face_detection_yunet_2023mar.onnx)")
    parser.add_argument("--photo", action="append", default=[], help="PATH:X,Y of a photo with one face centred near X, Y")
    args = parser.parse_args()

    photos = [("astronaut", data.astronaut(), [(222.0, 125.0)]), ("camera (3/4 view)", np.repeat(data.camera()[..., None], 3, axis=2), [(215.0, 160.0)])]
    for spec in args.photo:
        path, _, xy = spec.rpartition(":")
        x, y = map(float, xy.split(","))
        photos.append((path.rsplit("/", 1)[-1], np.asarray(Image.open(path).convert("RGB")), [(x, y)]))

    detectors = [CascadeDetector()]
    if args.yunet:
        detectors.append(YuNetDetector(args.yunet))
    sheets, others = lfw_sheets()

    print("| detector | photo | as given | old | tilted 20 deg | seconds |")
    print("|---|---|---|---|---|---|")
    for detector in detectors:
        for name, rgb, centres in photos:
            started = time.perf_counter()
            cells = [count(detector, rgb, centres), count(detector, old(rgb), centres), count(detector, *tilted(rgb, centres))]
            text = " | ".join(f"{f}/{len(centres)} found, {a} false" for f, a in cells)
            print(f"| {detector.name} | {name} | {text} | {time.perf_counter() - started:.1f} |")
        started = time.perf_counter()
        plain = [count(detector, rgb, c) for rgb, c in sheets]
        aged = [count(detector, old(rgb, seed), c) for seed, (rgb, c) in enumerate(sheets)]
        turned = [count(detector, *tilted(rgb, c)) for rgb, c in sheets]
        text = " | ".join(f"{sum(f for f, _ in cells)}/100 found, {sum(a for _, a in cells)} false" for cells in (plain, aged, turned))
        print(f"| {detector.name} | LFW sheets (10 x 10 faces, 100 px) | {text} | {time.perf_counter() - started:.1f} |")
        alarms = sum(count(detector, rgb, [])[1] for rgb in others)
        print(f"| {detector.name} | LFW non-face sheets (100 patches) | {alarms} false | | | |")

    print()
    print("| photo | no face step | faces before the 2x step | faces after the 2x step | pixels compared |")
    print("|---|---|---|---|---|")
    for name, rgb, _ in photos:
        clean = rgb.astype(np.float32) / 255
        none, _ = oracle_chain(rgb, detectors[0], None)
        first, first_mask = oracle_chain(rgb, detectors[0], False)
        last, last_mask = oracle_chain(rgb, detectors[0], True)
        both = (first_mask > 0.5) & (last_mask > 0.5)  # where both orders pasted a face
        if not both.any():
            print(f"| {name} | no face found at both places | | | 0 |")
            continue
        print(f"| {name} | {psnr(none, clean, both):.2f} dB | {psnr(first, clean, both):.2f} dB | {psnr(last, clean, both):.2f} dB | {int(both.sum())} |")


if __name__ == "__main__":
    main()
