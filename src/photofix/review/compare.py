"""Before and after, in one picture: side by side, split, or a small preview; and which file is which.

Everything here is pure (arrays in, arrays out) except ``pair_folders``, which only reads:
writing is left to the caller. Photos are shown as 8-bit sRGB: ICC-tagged sources are
converted to sRGB (a ProPhoto scan otherwise looks dull next to its sRGB output), grey is
repeated into RGB and alpha is composited over neutral grey, so a transparent area never
passes for black or white.

When the two differ in size (an upscale), the before is enlarged with Lanczos to the
after's size: detail is then judged at one scale, and nearest-neighbour blocks never make
the before look worse than it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from photofix.errors import UsageError
from photofix.imageio import SUPPORTED_EXTENSIONS, Image
from photofix.run.jobs import PREVIEW_SUFFIX
from photofix.run.provenance import Record, RunLog, find_record, sha256_file

__all__ = [
    "DEFAULT_LABELS",
    "PREVIEW_SUFFIX",
    "Pair",
    "Pairing",
    "fit_long_side",
    "pair_folders",
    "preview",
    "preview_path",
    "resize_rgb",
    "side_by_side",
    "split_view",
    "to_rgb8",
]

DEFAULT_LABELS = ("before", "after")
NEUTRAL_GREY = 128  # alpha is composited over this; R = G = B so it adds no colour cast
GAP_GREY = 40

Labels = Sequence[str] | None


# --- display pixels -------------------------------------------------------------------


def to_rgb8(image: Image) -> np.ndarray:
    """The photo as H x W x 3 uint8 sRGB, ready to show: grey → RGB, alpha over neutral grey."""
    pixels = np.asarray(image.pixels)
    if pixels.dtype.kind == "u":  # finished output, see Image
        pixels = pixels / np.float32(np.iinfo(pixels.dtype).max)
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise UsageError(f"{image.meta.source_name}: pixels of shape {pixels.shape} are not H x W x 1 or 3; "
                         "read the photo with photofix.imageio.read_image")
    u8 = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    rgb = _to_srgb(u8, image.meta.icc_profile)
    if image.alpha is not None:
        alpha = np.clip(np.asarray(image.alpha, dtype=np.float32), 0.0, 1.0)[..., None]
        rgb = np.rint(rgb * alpha + NEUTRAL_GREY * (1.0 - alpha)).astype(np.uint8)
    return rgb


def _to_srgb(u8: np.ndarray, icc_profile: bytes | None) -> np.ndarray:
    """Convert from the source's ICC profile to sRGB; untagged, sRGB-tagged or unusable profiles pass as they are."""
    mode = "L" if u8.shape[2] == 1 else "RGB"
    transform = _transform_to_srgb(icc_profile, mode) if icc_profile else None
    if transform is None:
        return np.repeat(u8, 3, axis=2) if mode == "L" else u8
    from PIL import ImageCms

    try:
        converted = ImageCms.applyTransform(PILImage.fromarray(u8[..., 0] if mode == "L" else u8, mode), transform)
    except (ImageCms.PyCMSError, ValueError, OSError):
        return np.repeat(u8, 3, axis=2) if mode == "L" else u8
    return np.asarray(converted.convert("RGB"))


@lru_cache(maxsize=8)
def _transform_to_srgb(icc_profile: bytes, mode: str):  # -> ImageCms.ImageCmsTransform | None
    # A whole folder usually shares one or two profiles: build each transform once.
    import io

    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if "srgb" in (ImageCms.getProfileDescription(source) or "").lower().replace(" ", ""):
            return None
        return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, "RGB",
                                       renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except (ImageCms.PyCMSError, ValueError, OSError, TypeError):
        return None  # a profile Little CMS cannot use (or one for another colour space): show the numbers as they are


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of an 8-bit RGB array to ``size`` = (width, height)."""
    width, height = max(1, int(size[0])), max(1, int(size[1]))
    if (rgb.shape[1], rgb.shape[0]) == (width, height):
        return rgb
    # reducing_gap: big reductions start with a fast box step; the result is indistinguishable.
    resized = PILImage.fromarray(rgb).resize((width, height), PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(resized)


def fit_long_side(rgb: np.ndarray, long_side: int | None) -> np.ndarray:
    """Shrink so the long side is at most ``long_side`` (None: unchanged); never enlarges."""
    height, width = rgb.shape[:2]
    if long_side is None or max(height, width) <= long_side:
        return rgb
    scale = long_side / max(height, width)
    return resize_rgb(rgb, (round(width * scale), round(height * scale)))


def _match_height(before: np.ndarray, height: int, width_hint: int) -> np.ndarray:
    """The before at the after's height; exactly the after's size when the shapes agree up to rounding."""
    width = round(before.shape[1] * height / before.shape[0])
    if abs(width - width_hint) <= max(1, round(0.01 * width_hint)):
        width = width_hint  # an upscaler rounds sizes; don't let one pixel of aspect skew the comparison
    return resize_rgb(before, (width, height))


# --- labels ---------------------------------------------------------------------------


def _font_size(height: int, width: int) -> int:
    return int(np.clip(round(0.034 * min(height, width)), 11, 56))


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw_labels(canvas: np.ndarray, labels: list[tuple[str, int, int, str]], size: int) -> np.ndarray:
    """Draw each (text, x, y, anchor side) as white text on a dark translucent box; returns a new array."""
    base = PILImage.fromarray(canvas).convert("RGBA")
    overlay = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = _font(size)
    pad_x, pad_y = round(size * 0.5), round(size * 0.3)
    for text, x, y, side in labels:
        if not text:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        box_w, box_h = right - left + 2 * pad_x, bottom - top + 2 * pad_y
        x0 = x if side == "left" else x - box_w
        draw.rounded_rectangle((x0, y, x0 + box_w, y + box_h), radius=max(2, size // 4), fill=(0, 0, 0, 150))
        draw.text((x0 + pad_x - left, y + pad_y - top), text, font=font, fill=(255, 255, 255, 255))
    return np.asarray(PILImage.alpha_composite(base, overlay).convert("RGB"))


def _labels_pair(labels: Labels) -> tuple[str, str]:
    if labels is None:
        return "", ""
    labels = tuple(labels)
    if len(labels) != 2:
        raise UsageError(f"labels {labels!r}: give two texts, one for before and one for after (or None)")
    return str(labels[0]), str(labels[1])


# --- compositions ---------------------------------------------------------------------


def _compose_side_by_side(before: np.ndarray, after: np.ndarray, labels: Labels) -> np.ndarray:
    height, after_w = after.shape[:2]
    before = _match_height(before, height, after_w)
    before_w = before.shape[1]
    gap = max(2, round(height / 150))
    canvas = np.full((height, before_w + gap + after_w, 3), GAP_GREY, np.uint8)
    canvas[:, :before_w] = before
    canvas[:, before_w + gap:] = after
    left, right = _labels_pair(labels)
    size = _font_size(height, min(before_w, after_w))
    margin = round(size * 0.6)
    return _draw_labels(canvas, [(left, margin, margin, "left"), (right, before_w + gap + margin, margin, "left")], size)


def side_by_side(before: Image, after: Image, *, labels: Labels = DEFAULT_LABELS) -> np.ndarray:
    """Before on the left, after on the right, at the after's height, each labelled (``labels=None``: no labels)."""
    return _compose_side_by_side(to_rgb8(before), to_rgb8(after), labels)


def split_view(before: Image, after: Image, *, position: float = 0.5, labels: Labels = DEFAULT_LABELS) -> np.ndarray:
    """One frame the after's size: before left of ``position`` (0–1 of the width), after right of it."""
    if not 0.0 <= position <= 1.0:
        raise UsageError(f"split position {position} is outside 0–1; use e.g. 0.5 for the middle")
    after_rgb = to_rgb8(after)
    height, width = after_rgb.shape[:2]
    # The split only means something if the two overlay: the before takes the after's exact size.
    before_rgb = resize_rgb(to_rgb8(before), (width, height))
    x = round(position * width)
    frame = after_rgb.copy()
    frame[:, :x] = before_rgb[:, :x]
    line = max(1, round(width / 600))
    start = int(np.clip(x - line // 2, 0, width - line))
    frame[:, max(0, start - 1):start + line + 1] = 0  # dark edges keep the line visible on white skies
    frame[:, start:start + line] = 240
    left, right = _labels_pair(labels)
    size = _font_size(height, width)
    margin = round(size * 0.6)
    return _draw_labels(frame, [(left, margin, margin, "left"), (right, width - margin, margin, "right")], size)


def preview(before: Image, after: Image, *, long_side: int = 1024, labels: Labels = DEFAULT_LABELS) -> np.ndarray:
    """A side by side whose long side is at most ``long_side``, labels drawn at the final size so they stay legible."""
    if long_side < 16:
        raise UsageError(f"preview long side {long_side} is too small; use at least 16 pixels")
    before_rgb, after_rgb = to_rgb8(before), to_rgb8(after)
    height, after_w = after_rgb.shape[:2]
    before_w = before_rgb.shape[1] * height / before_rgb.shape[0]
    scale = min(1.0, long_side / max(height, before_w + after_w + max(2, height / 150)))
    if scale < 1.0:
        # Shrink before composing (the before follows the after's new height): far cheaper than
        # composing at full size, and the labels are drawn at a size meant for the preview.
        after_rgb = resize_rgb(after_rgb, (round(after_w * scale), round(height * scale)))
    out = _compose_side_by_side(before_rgb, after_rgb, labels)
    return fit_long_side(out, long_side)  # rounding can leave a pixel or two over


def preview_path(output: str | os.PathLike) -> Path:
    """Where ``--preview`` puts the before/after of ``output``: ``NAME.preview.jpg`` beside it."""
    path = Path(output)
    return path.with_name(path.stem + PREVIEW_SUFFIX)


# --- pairing folders ------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """An input and the output made from it.

    ``matched_by``: ``"record"`` (the run's record names this input's sha256), ``"record path"``
    (the record names this path, but the file has changed since the run) or ``"name"``.
    ``record`` is the output's verified record (run log or XMP), None if it has none.
    """

    before: Path
    after: Path
    record: Record | None = None
    matched_by: str = "name"


class Pairing(NamedTuple):
    pairs: list[Pair]
    outputs_without_input: list[Path]
    inputs_without_output: list[Path]


_SEPARATORS = "_-. "


def pair_folders(before_dir: str | os.PathLike, after_dir: str | os.PathLike, *, recursive: bool = True) -> Pairing:
    """Pair each output in ``after_dir`` with its input in ``before_dir``.

    First by the run records (the input's sha256, then its recorded path), then by name: same
    relative folder, and the output's stem equals the input's or extends it after a separator
    (``photo`` → ``photo_x4``; the extension may differ; the longest matching stem wins).
    Files under hidden folders (``.photofix/``), ``*.preview.jpg`` and the renditions folder of
    a contact sheet (``X_files/`` beside ``X.html``) are never candidates. The two folders may
    be the same (outputs written in place with a suffix) or one inside the other.
    """
    before_root, after_root = Path(before_dir), Path(after_dir)
    for root in (before_root, after_root):
        if not root.is_dir():
            raise UsageError(f"{root}: not a folder; give the folder of originals and the folder of results")
    same = before_root.resolve() == after_root.resolve()
    afters = _candidates(after_root, recursive, skip=None if same else before_root)
    befores = afters if same else _candidates(before_root, recursive, skip=after_root)

    logged = RunLog(after_root).records()
    verified = {rel: find_record(path, after_root) for rel, path in afters.items()}
    recorded = {rel: verified[rel] or logged.get(rel) for rel in afters}
    recorded = {rel: rec for rel, rec in recorded.items() if rec is not None}
    if same:  # in place: a file with a record is an output, never an original
        befores = {rel: path for rel, path in befores.items() if rel not in recorded}

    pairs: dict[str, Pair] = {}
    if recorded:
        by_hash = _hash_index(befores)
        for rel, rec in recorded.items():
            found = _by_hash(rec, by_hash.get(rec.input_sha256, []), before_root, befores)
            how = "record"
            if found is None:
                found, how = _by_recorded_path(rec.input, before_root, befores), "record path"
            if found is not None:
                pairs[rel] = Pair(befores[found], afters[rel], verified[rel], how)

    by_name = _name_index(befores)
    for rel, path in afters.items():
        if rel in pairs:
            continue
        found = _by_name(rel, path, by_name, exact=not same)
        if found is not None and befores[found] != path:
            pairs[rel] = Pair(befores[found], path, verified[rel], "name")

    paired_befores = {p.before for p in pairs.values()}
    if same:
        outputs = {p.after for p in pairs.values()}
        lonely_outputs = [afters[rel] for rel in recorded if rel not in pairs]
        lonely_inputs = [p for p in befores.values() if p not in paired_befores and p not in outputs]
    else:
        lonely_outputs = [path for rel, path in afters.items() if rel not in pairs]
        lonely_inputs = [p for p in befores.values() if p not in paired_befores]
    ordered = [pairs[rel] for rel in sorted(pairs, key=_sort_key)]
    return Pairing(ordered, lonely_outputs, lonely_inputs)


def _candidates(root: Path, recursive: bool, skip: Path | None) -> dict[str, Path]:
    """Image files under ``root`` by relative POSIX path, in sorted order."""
    skip_resolved = skip.resolve() if skip is not None else None
    found: dict[str, Path] = {}
    for folder, names in _walk(root, recursive, skip_resolved):
        for name in names:
            path = folder / name
            lowered = name.lower()
            if name.startswith(".") or lowered.endswith(PREVIEW_SUFFIX) or Path(lowered).suffix not in SUPPORTED_EXTENSIONS:
                continue
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path
    return dict(sorted(found.items(), key=lambda item: _sort_key(item[0])))


def _walk(root: Path, recursive: bool, skip: Path | None) -> Iterator[tuple[Path, list[str]]]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        files_set = set(files)
        dirs[:] = sorted(
            d for d in dirs
            if recursive
            and not d.startswith(".")  # .photofix/ (the run log) and other tools' hidden folders
            and not (d.endswith("_files") and f"{d[:-6]}.html" in files_set)  # a contact sheet's renditions
            and (skip is None or (here / d).resolve() != skip)
        )
        yield here, sorted(files)


def _hash_index(befores: dict[str, Path]) -> dict[str, list[str]]:
    """Inputs by content hash; several when photos are byte-identical copies."""
    index: dict[str, list[str]] = {}
    for rel, path in befores.items():
        try:
            index.setdefault(sha256_file(path), []).append(rel)
        except OSError:
            continue  # unreadable now: it can still pair by name, and reading it later says why
    return index


def _by_hash(record: Record, same_content: list[str], before_root: Path, befores: dict[str, Path]) -> str | None:
    """The input a record names by content; among identical copies, the one at its recorded path."""
    if len(same_content) <= 1:
        return same_content[0] if same_content else None
    named = _by_recorded_path(record.input, before_root, {rel: befores[rel] for rel in same_content})
    return named if named is not None else same_content[0]


def _by_recorded_path(recorded: str, before_root: Path, befores: dict[str, Path]) -> str | None:
    """The before whose relative path is the longest tail of the recorded input path."""
    if not recorded:
        return None
    given = Path(recorded)
    if given.is_absolute():
        try:
            rel = given.resolve().relative_to(before_root.resolve()).as_posix()
        except (ValueError, OSError):
            rel = None
        if rel in befores:
            return rel
    parts = given.parts
    for start in range(len(parts)):
        tail = "/".join(parts[start:])
        if tail in befores:
            return tail
    return None


def _name_index(befores: dict[str, Path]) -> dict[tuple[str, str], list[str]]:
    index: dict[tuple[str, str], list[str]] = {}
    for rel, path in befores.items():
        folder = rel.rpartition("/")[0]
        index.setdefault((folder, path.stem.lower()), []).append(rel)
    return index


def _by_name(rel: str, path: Path, index: dict[tuple[str, str], list[str]], *, exact: bool) -> str | None:
    folder = rel.rpartition("/")[0]
    stem = path.stem.lower()
    cuts = [len(stem)] if exact else []
    cuts += sorted((i for i, ch in enumerate(stem) if ch in _SEPARATORS and i > 0), reverse=True)
    for cut in cuts:
        found = index.get((folder, stem[:cut]))
        if found:
            # photo.jpg and photo.png both in the originals: the one with the output's extension
            same_ext = [r for r in found if r.lower().endswith(path.suffix.lower())]
            return (same_ext or found)[0]
    return None


def _sort_key(rel: str) -> tuple:
    """Natural order, so photo_2 comes before photo_10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", rel))
