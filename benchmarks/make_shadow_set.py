"""Write synthetic cast shadows onto real shadow-free photos, as a set for bench_deshadow_eval.py.

The shadow is drawn the way light makes it, in **linear light**: inside the shadow the sun is
blocked and the sky still lights the surface, so every channel is multiplied by a
transmission (the photo's texture stays), red a little more dimmed than blue
(skylight is bluish). The transmission's luminance, tint and penumbra are drawn from ranges
that cover real photos' (ISTD and the UIUC-style pairs show luminance steps of roughly
0.3-2.5 log units and penumbrae of a few px to about 20 px at 512 px):

* luminance transmission 0.15-0.7 (log step 0.36-1.9); red dimmed up to 35 % more, blue up
  to 50 % less (in log units of the luminance step);
* penumbra: the hard shape blurred with a Gaussian of 1-8 px at 512 px, grown with the size;
* optional JPEG (quality 80-95) after the shadow.

Two shape families (``--family``):

* ``occluder``: a board or wall held over the scene, a polygon of 5-8 corners covering
  8-45 % of the photo, often running off its edges (the ISTD recipe);
* ``figure``: a pole or person: a long band from an edge with a rounded blob on it, 4-25 %;
* ``building``: a building's shadow, larger than the others: the photo cut by one or two
  straight edges (a wall's, and a roof's that meets it at an angle), 30-70 % of the photo in
  shadow, sometimes with a lit notch (a gap between buildings). Written for round 3 of
  benchmarks/DESHADOW_EVAL.md before anything of that round's second step was tried.

Writes ``OUT/shadow/NAME.png``, ``OUT/mask/NAME.png`` (the hard shape, white = shadow) and
``OUT/free/NAME.png`` (the untouched photo). Photos: scikit-image's colour photos and any
``--extra`` files. Seeded, so a set can be rebuilt::

    python benchmarks/make_shadow_set.py --family occluder --out /work/data/shadows_synth/occluder
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from photofix._color import linear_to_srgb, srgb_to_linear

SKIMAGE_COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "cat")


def photos(extra: list[Path], skimage: bool = True) -> list[tuple[str, np.ndarray]]:
    """(name, float32 H x W x 3 sRGB) of the source photos, at most 800 px a side."""
    from skimage import data

    found = [(name, getattr(data, name)()) for name in SKIMAGE_COLOUR] if skimage else []
    if skimage:
        found.append(("stereo_motorcycle", data.stereo_motorcycle()[0]))
    found += [(path.stem, np.asarray(Image.open(path).convert("RGB"))) for path in extra]
    out = []
    for name, pixels in found:
        image = pixels[..., :3].astype(np.float32) / 255.0
        h, w = image.shape[:2]
        scale = min(1.0, 800 / max(h, w))
        if scale < 1.0:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        out.append((name, image))
    return out


def occluder_shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A polygon of 5-8 corners around a centre, stretched, covering 8-45 % of the photo."""
    for _ in range(100):
        centre = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
        corners = rng.integers(5, 9)
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radius = rng.uniform(0.2, 0.6, corners) * max(h, w)
        stretch = rng.uniform(0.5, 1.5)
        points = centre + np.stack([np.cos(angles) * radius * stretch, np.sin(angles) * radius / stretch], 1)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [points.round().astype(np.int32)], 1)
        if 0.08 <= mask.mean() <= 0.45:
            return mask.astype(bool)
    raise RuntimeError("no polygon of the wanted size")


def figure_shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A band from an edge (a pole's or a body's shadow) with a rounded blob on it, 4-25 %."""
    side = max(h, w)
    for _ in range(100):
        mask = np.zeros((h, w), np.uint8)
        start = np.array([rng.uniform(0, w), h + 5.0]) if rng.random() < 0.6 else np.array([-5.0, rng.uniform(0, h)])
        angle = rng.uniform(-2.4, -0.7) if start[1] > h else rng.uniform(-0.6, 0.6)
        length = rng.uniform(0.4, 0.9) * side
        end = start + length * np.array([np.cos(angle), np.sin(angle)])
        thickness = int(rng.uniform(0.03, 0.09) * side)
        cv2.line(mask, tuple(start.round().astype(int)), tuple(end.round().astype(int)), 1, max(2, thickness))
        axes = (int(rng.uniform(0.05, 0.12) * side), int(rng.uniform(0.08, 0.18) * side))
        cv2.ellipse(mask, tuple(end.round().astype(int)), axes, np.degrees(angle), 0, 360, 1, -1)
        if 0.04 <= mask.mean() <= 0.25:
            return mask.astype(bool)
    raise RuntimeError("no figure of the wanted size")


def building_shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One or two straight edges across the photo, 30-70 % in shadow, sometimes a lit notch."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    for _ in range(100):
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(-0.3, 0.3) * max(h, w)
        centre = np.array([w / 2, h / 2])
        inside = (xx - centre[0]) * np.cos(angle) + (yy - centre[1]) * np.sin(angle) < offset
        if rng.random() < 0.5:  # a roof line: a second edge at 30-80 degrees to the first
            turn = angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.4)
            corner = centre + rng.uniform(-0.3, 0.3, 2) * np.array([w, h])
            inside &= (xx - corner[0]) * np.cos(turn) + (yy - corner[1]) * np.sin(turn) < rng.uniform(0, 0.3) * max(h, w)
        if rng.random() < 0.3:  # a lit gap between two buildings
            gap = rng.uniform(0.04, 0.12) * max(h, w)
            across = (xx - centre[0]) * -np.sin(angle) + (yy - centre[1]) * np.cos(angle) - rng.uniform(-0.3, 0.3) * max(h, w)
            inside &= np.abs(across) > gap / 2
        if 0.3 <= inside.mean() <= 0.7:
            return inside
    raise RuntimeError("no building shadow of the wanted size")


def cast(image: np.ndarray, shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo with ``shape`` in shadow (linear light, skylit tint, Gaussian penumbra)."""
    h, w = shape.shape
    sigma = rng.uniform(1.0, 8.0) * max(h, w) / 512
    cover = cv2.GaussianBlur(shape.astype(np.float32), (0, 0), sigma)
    step = -np.log(rng.uniform(0.15, 0.7))  # log units of luminance
    red, blue = step * (1 + rng.uniform(0, 0.35)), step * (1 - rng.uniform(0, 0.5))
    green = (step - 0.2126 * red - 0.0722 * blue) / 0.7152  # keeps the luminance step
    transmission = np.exp(-np.array([red, green, blue], np.float32))
    light = srgb_to_linear(image)
    shaded = light * (1 - cover[..., None] * (1 - transmission))
    return np.clip(linear_to_srgb(shaded), 0, 1)


def save(path: Path, pixels: np.ndarray, quality: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    if quality is not None:  # compressed, then stored losslessly so the set's names stay .png
        from io import BytesIO

        buffer = BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        image = Image.open(buffer).convert(image.mode)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=("occluder", "figure", "building"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--extra", type=Path, action="append", default=[], help="more shadow-free photos")
    parser.add_argument("--no-skimage", action="store_true", help="only the --extra photos")
    parser.add_argument("--per-photo", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    families = {"occluder": occluder_shape, "figure": figure_shape, "building": building_shape}
    rng = np.random.default_rng([args.seed, list(families).index(args.family)])
    draw = families[args.family]
    for name, image in photos(args.extra, skimage=not args.no_skimage):
        h, w = image.shape[:2]
        for k in range(args.per_photo):
            shape = draw(rng, h, w)
            shaded = cast(image, shape, rng)
            stem = f"{name}_{k}"
            quality = int(rng.integers(80, 96)) if rng.random() < 0.5 else None
            save(args.out / "shadow" / f"{stem}.png", shaded, quality)
            save(args.out / "mask" / f"{stem}.png", np.repeat(shape[..., None], 3, 2).astype(np.float32))
            save(args.out / "free" / f"{stem}.png", image)


if __name__ == "__main__":
    main()
