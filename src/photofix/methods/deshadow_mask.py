"""Find cast shadows on a photo without a model, and the mask helpers deshadowing needs.

The detector needs no download. It works in **linear light** (the sRGB curve undone), where
a shadow is a multiplication: the surface stays the same, the light on it drops. That gives
three cues, each measured on a copy at most 512 px a side, smoothed by 2 px so texture and
noise do not count:

* **darkness**: a shadow is darker than the light around it. The reference "lit level" at
  each pixel is the 60th percentile of the log of each channel over a window 15 % of
  the photo's side; it is recomputed four times with the pixels already judged shadow left
  out, so a large shadow does not drag its own reference down. The drop below that level is
  the darkness, in log units (0.92 is a shadow letting through 40 % of the light). It counts
  from 0.15 to 0.45 (smooth ramp) and stops counting above 2-3 (under 10 % of the light: a
  black object, not a shadow; skylight alone lights a shadow more than that).
* **chromaticity**: light is taken away, not colour changed. Each channel drops by about as
  much as the luminance, within 0.1 log units, except that a shadow lit by blue sky alone
  loses more red and less blue: red may drop up to 30 % more than the luminance, blue up to
  50 % less. A dark patch of another colour (coffee in a white cup, a red saucer on wood)
  fails this.
* **the edge**: every candidate region is checked as a whole along its border. The median
  of each channel at each distance from the border (24 px in and out) gives the region's
  step and its penumbra. A shadow's step is a darkening of at least 0.2 log units with the
  chromaticity above, and its edge is soft: at least 3 px between the 25 % and 75 % points.
  Painted, printed and object edges are sharper, and the regions they bound are dropped.

The pixels where darkness x chromaticity exceeds 0.5 are cleaned with an opening (2 px) and
closing (3 px), pieces under ``min_area`` dropped, holes under 2 % of the photo filled, and
the regions that pass the edge check are kept. The soft mask ramps across each region's
border over the penumbra width measured for it (smoothstep centred where the step is half
done), so relighting does not draw a seam.

A fixed cut on a score in log-luminance units is used rather than Otsu's: on photos with
black objects (astronaut's helmet) Otsu split black from the rest and cut above the shadow.
Grey photos have no chromaticity cue; there only regions with a clear edge are kept (at least
6 px of penumbra, a 0.4 log step, under 30 % of the photo), because otherwise the dark halves
of ordinary scenes were taken for shadows.

**Pairing** (colour photos; ``shadow_pairs``): the lit window cannot see a shadow larger than
itself, so a second set of candidates comes from regions that a neighbour across their border
matches as the same surface in more light. They are verified apart from the window's (so a
merged piece cannot fail the border check for both) by the same border check and gate.

Confidence (measured on real shadow photos: benchmarks/DESHADOW_EVAL.md). A region is kept
only if its border looks like a real cast shadow's (``_is_sure``): a step of 0.5 log units or
more, half done inside the region (or within 4 px), a penumbra of at most 16 px, and blue not
dropping more than red (skylight fills shadows bluish). The photo is then left alone (empty
mask, ``ShadowDetection.unsure`` says why) when it is grey, when nothing passes, or when the
kept regions cover under 6 % or over 55 % of it: relighting a dark object costs far more than
a missed shadow gains.

Measured (round 3 of the write-up): on 9 real photos with shadow-free truth (colour-fitted) the
automatic path gains +4.28 dB on average (+0.48 dB on the 3 ISTD ones: one shadow on green
card is missed and one photo left alone; +1.43 dB on the held-out ISTD photo); the true mask,
relit the same way, gains +4.6 to +16 dB. Mask BER: 6 (UIUC-style pairs), 18 (Restaya), 27
(SBU, 52 photos, 15 left alone), 29 (UCF, 32 photos, held out). Every photo without shadows
(scikit-image's and the real and synthetic sets' shadow-free images) came back bit for bit.
Held-out synthetic shadows gain +1.2 to +4.1 dB, with most large ones still left alone.
Synthetic shadows with wide (5-15 px Gaussian) penumbrae are often left alone
(tests/test_deshadow.py). A hand-painted mask (``mask_from_array``; ``remove_shadow`` then
measures its edges on the photo) is the accurate path.

Images are float H x W x C in [0, 1] (C = 1 or 3), sRGB-encoded; masks are float32 H x W in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from photofix._color import LUMA_709, luma, srgb_to_linear
from photofix.errors import ImageError, UsageError
from photofix.methods.masks import mask_from_array  # noqa: F401 - mask_from_array is part of this module's API
from photofix.methods.scratch import as_image
from photofix.methods.shadow_colour import chroma_consistency, smoothstep
from photofix.methods.shadow_pairs import paired_candidates

WORK_SIDE = 512  # px: detection runs on a copy at most this large a side

_LOG_FLOOR = 2e-3  # linear light added before logs (~ sRGB 0.026): below it values are noise
_TEXTURE_SIGMA = 2.0  # px: smoothing before any cue, so texture and noise do not count
_COARSE_SIDE = 64  # the lit level is computed on a copy this large a side
_LIT_QUANTILE = 0.6
_LIT_RADIUS = 0.15  # of the photo's longer side: window radius of the lit level
_ITERATIONS = 4
_DARK_RAMP = (0.15, 0.45)  # log units of darkness: score rises from 0 to 1 across these
_TOO_DARK = (2.0, 3.0)  # log units: score falls back to 0 across these (black objects)
_SCORE_CUT = 0.5
_OPEN, _CLOSE = 2, 3  # px radii of the clean-up
_HOLE_FRACTION = 0.02  # holes under this fraction of the photo are filled
_PROFILE_REACH = 24  # px each side of a region's border over which its profile is measured
_MIN_WIDTH = 3.0  # px between the 25 % and 75 % points of a shadow's edge, at least
_MIN_STEP = 0.2  # log units of luminance a shadow's border must step down, at least
_MIN_CHROMA = 0.3  # chromaticity score of a region's step, at least
# What a cast shadow's border looked like on real photos (SBU, UIUC, ISTD-style sets; see
# benchmarks/DESHADOW_EVAL.md) and what the false alarms on shadow-free photos did not:
_SURE_STEP = 0.5  # log units of luminance, at least: a shadow lets through 60 % of the light or less
_SURE_CENTRE = -4.0  # px: the step is half done inside the region (or within 4 px of it)...
_SURE_WIDTH = 16.0  # px: ...over a penumbra no wider than this (out-of-focus backgrounds are wider)
_SURE_BLUE = 0.1  # log units blue may drop more than red: skylight fills a shadow bluish, not yellowish
# the gate: a photo is left alone unless the sure regions cover this share of it (min, max)
_GATE_AREA = (0.06, 0.55)
# grey photos have no chromaticity cue, so only a clear edge counts: at least 6 px of penumbra,
# a 0.4 log step, and no region over 30 % of the photo (there, dark halves of scenes were taken)
_GREY_LIMITS = (6.0, 0.4, 0.3)
_MIN_AREA_FRACTION = 0.002  # default min_area: this fraction of the (working) photo
_DEFAULT_PENUMBRA = 4.0  # px (working size) of a region whose edge could not be measured


# --- detection ------------------------------------------------------------------------


@dataclass
class ShadowRegion:
    """One region the detector considered, at the working size ``ShadowDetection.scale``."""

    area: int  # px at the working size
    step: list[float]  # log drop across the border: R, G, B, luminance (one value for grey)
    width: float  # px between the 25 % and 75 % points of the edge
    centre: float  # px from the border (inside positive) where the step is half done
    chroma: float  # chroma_consistency of the step
    kept: bool  # its border passed the checks, including ``_is_sure`` on colour photos
    found_by: str = "window"  # "window" (darker than the light nearby) or "pairing" (shadow_pairs)


@dataclass
class ShadowDetection:
    """``mask``: float32 H x W in [0, 1] at the photo's size. ``regions``: every candidate."""

    mask: np.ndarray
    regions: list[ShadowRegion] = field(default_factory=list)
    scale: float = 1.0  # working size / photo size
    unsure: str | None = None  # why the photo should be left alone (``confidence``), or None

    @property
    def area_fraction(self) -> float:
        return float(np.count_nonzero(self.mask >= 0.5)) / max(1, self.mask.size)

    @property
    def mask_to_use(self) -> np.ndarray:
        """``mask``, or an empty one when unsure: relighting a dark object costs more than a missed shadow."""
        return np.zeros_like(self.mask) if self.unsure else self.mask


def estimate_shadow_mask(pixels: np.ndarray, *, sensitivity: float = 1.0, min_area: int | None = None) -> np.ndarray:
    """Soft H x W float32 mask in [0, 1] of the cast shadows found on a photo.

    sensitivity: scales the darkness needed: 2 counts half as dark a drop, 0.5 twice.
    min_area: px (at the photo's size) under which a shadow piece is dropped; default 0.2 %
        of the photo.

    See the module's docstring for the cues and their limits; ``detect_shadows`` also
    returns what was measured of each region, and why a photo is left alone. When the
    detection is unsure the mask is empty.
    """
    return detect_shadows(pixels, sensitivity=sensitivity, min_area=min_area).mask_to_use


def detect_shadows(pixels: np.ndarray, *, sensitivity: float = 1.0, min_area: int | None = None) -> ShadowDetection:
    """``estimate_shadow_mask`` with the regions it considered (area, step, penumbra)."""
    image = checked_image(pixels)
    if not sensitivity > 0:
        raise UsageError(f"sensitivity must be positive, not {sensitivity}")
    h, w, channels = image.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    work = image.astype(np.float32)
    if scale < 1.0:
        work = _resize(work, max(1, round(w * scale)), max(1, round(h * scale)))
    work_area = work.shape[0] * work.shape[1]
    if min_area is None:
        min_work_area = max(16, int(_MIN_AREA_FRACTION * work_area))
    else:
        min_work_area = max(1, int(round(min_area * scale * scale)))

    light = srgb_to_linear(work)
    logs = _log_channels(light)
    score = _shadow_score(logs, channels > 1, sensitivity)
    candidates = _clean(score > _SCORE_CUT, min_work_area)
    regions, soft = _verify(candidates, logs, channels > 1)
    if channels > 1:  # regions a lit neighbour matches: shadows too large for the lit window
        paired = _clean(paired_candidates(light, logs, work, _LOG_FLOOR, sensitivity), min_work_area)
        more, soft_paired = _verify(paired, logs, colour=True, found_by="pairing")
        regions += more
        np.maximum(soft, soft_paired, out=soft)
    detection = ShadowDetection(_to_size(soft, scale, (h, w)), regions, scale)
    detection.unsure = confidence(detection, channels)
    return detection


def _is_sure(region: ShadowRegion) -> bool:
    """A region whose border steps down, sits on it and is coloured like a real cast shadow's."""
    red, blue, luminance = region.step[0], region.step[2], region.step[-1]
    return (
        luminance >= _SURE_STEP
        and region.centre >= _SURE_CENTRE
        and region.width <= _SURE_WIDTH
        and blue <= red + _SURE_BLUE
    )


def confidence(detection: ShadowDetection, channels: int) -> str | None:
    """Why the photo should be left as it is (a sentence), or None when the detection can be trusted.

    On photos without shadows the detector still flags dim corners, out-of-focus backgrounds
    and shading; relighting those costs 1-15 dB. Only a clear verdict is acted on.
    """
    if channels == 1:
        return "grey photo: without colour a shadow cannot be told from a dark object"
    area = detection.area_fraction
    if area == 0.0:
        candidates = len(detection.regions)
        return "no shadow found" if candidates == 0 else f"no shadow found ({candidates} dark area(s) with edges unlike a cast shadow's)"
    low, high = _GATE_AREA
    if area < low:
        return f"only {100 * area:.1f} % of the photo looks like shadow: too little to be sure"
    if area > high:
        return f"{100 * area:.0f} % of the photo looks like shadow: more likely the scene's own darkness"
    return None


def _to_size(soft: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """A working-size soft mask at the photo's size, values under 1e-3 set to exactly 0."""
    if scale < 1.0:
        soft = cv2.resize(soft, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    soft = np.clip(soft, 0.0, 1.0)
    soft[soft < 1e-3] = 0.0
    return np.ascontiguousarray(soft, dtype=np.float32)


def _log_channels(light: np.ndarray) -> np.ndarray:
    """H x W x 4 (R, G, B, luminance) or H x W x 1 logs of the texture-smoothed light."""
    smooth = cv2.GaussianBlur(light, (0, 0), _TEXTURE_SIGMA).reshape(light.shape)
    if light.shape[2] == 3:
        smooth = np.concatenate([smooth, luma(smooth, LUMA_709, keep_channel=True)], axis=2)
    return np.log(smooth + np.float32(_LOG_FLOOR))


def _shadow_score(logs: np.ndarray, colour: bool, sensitivity: float) -> np.ndarray:
    """Darkness below the lit level x chromaticity consistency, in [0, 1]."""
    lo, hi = (v / sensitivity for v in _DARK_RAMP)
    lit = np.ones(logs.shape[:2], bool)
    for _ in range(_ITERATIONS):
        drop = _lit_level(logs, lit) - logs
        score = smoothstep(drop[..., -1], lo, hi) * (1.0 - smoothstep(drop[..., -1], *_TOO_DARK))
        if colour:
            score *= chroma_consistency(drop)
        lit = score <= _SCORE_CUT
    return score


def _lit_level(logs: np.ndarray, lit: np.ndarray) -> np.ndarray:
    """Per channel, the ``_LIT_QUANTILE`` of the lit pixels in a window around each pixel.

    Computed on a ``_COARSE_SIDE`` copy: pixels not lit are ranked below every lit one, so
    the quantile is taken among the lit pixels only. Windows with under 10 % lit pixels
    take the quantile of the lit pixels of the whole photo.
    """
    h, w, channels = logs.shape
    s = _COARSE_SIDE / max(h, w)
    cw, ch = max(1, round(w * s)), max(1, round(h * s))
    small = _resize(np.ascontiguousarray(logs), cw, ch)
    valid = _resize(lit.astype(np.float32), cw, ch) > 0.5
    r = max(1, round(_LIT_RADIUS * _COARSE_SIDE))
    ranked = np.where(valid[..., None], small, np.float32(-1e3))
    padded = np.pad(ranked, ((r, r), (r, r), (0, 0)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * r + 1, 2 * r + 1), axis=(0, 1))
    windows = np.sort(windows.reshape(ch, cw, channels, -1), axis=-1)
    n = windows.shape[-1]
    counts = cv2.boxFilter(np.pad(valid.astype(np.float32), r, mode="reflect"), -1, (2 * r + 1, 2 * r + 1), normalize=False)[r:-r, r:-r]
    rank = np.clip(np.round(n - counts + _LIT_QUANTILE * (np.maximum(counts, 1) - 1)), 0, n - 1).astype(np.intp)
    level = np.take_along_axis(windows, np.broadcast_to(rank[:, :, None, None], (ch, cw, channels, 1)), axis=-1)[..., 0]
    sparse = counts < 0.1 * n
    if sparse.any():
        pool = small[valid] if valid.any() else small.reshape(-1, channels)
        level[sparse] = np.quantile(pool, _LIT_QUANTILE, axis=0)
    level = cv2.GaussianBlur(level, (0, 0), r / 2).reshape(ch, cw, channels)
    return _resize(level, w, h).reshape(h, w, channels)


def _clean(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Open, close, drop pieces under ``min_area`` px, fill holes under ``_HOLE_FRACTION``."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _disk(_OPEN))
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _disk(_CLOSE))
    m = _drop_small(m.view(bool), min_area)
    h, w = m.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~m).view(np.uint8), connectivity=4)
    fill = stats[:, cv2.CC_STAT_AREA] < _HOLE_FRACTION * h * w
    fill[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = False
    fill[0] = False  # label 0 is the mask itself
    return m | fill[labels]


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def _verify(candidates: np.ndarray, logs: np.ndarray, colour: bool, found_by: str = "window") -> tuple[list[ShadowRegion], np.ndarray]:
    """Keep the candidate regions whose border steps like a shadow's; draw their soft masks."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates.view(np.uint8), connectivity=8)
    soft = np.zeros(candidates.shape, np.float32)
    regions = []
    for k in range(1, count):
        region = _measure(logs, labels, stats[k], k, colour, _PROFILE_REACH)
        if region is None:
            continue
        region.found_by = found_by
        min_width, min_step, max_area = (_MIN_WIDTH, _MIN_STEP, 1.0) if colour else _GREY_LIMITS
        region.kept = (
            region.width >= min_width
            and region.step[-1] >= min_step
            and region.chroma >= _MIN_CHROMA
            and region.area <= max_area * candidates.size
            and (not colour or _is_sure(region))
        )
        regions.append(region)
        if region.kept:
            _draw_ramp(soft, labels, stats[k], k, region.width, region.centre)
    return regions, soft


def _measure(logs: np.ndarray, labels: np.ndarray, stat: np.ndarray, k: int, colour: bool, reach: int) -> ShadowRegion | None:
    """Step, penumbra and chromaticity across region ``k``'s border (None: no border to measure)."""
    box = _box(stat, reach + 2, labels.shape)
    edge = _edge(_profile(logs[box], _signed_distance(labels[box] == k), reach), reach)
    if edge is None:
        return None
    step, width, centre = edge
    chroma = float(chroma_consistency(step)) if colour else 1.0
    area = int(stat[cv2.CC_STAT_AREA])
    return ShadowRegion(area, [round(float(v), 3) for v in step], round(width, 2), round(centre, 2), round(chroma, 3), False)


def _draw_ramp(soft: np.ndarray, labels: np.ndarray, stat: np.ndarray, k: int, width: float, centre: float) -> None:
    """Raise ``soft`` to region ``k``'s ramp: a smoothstep across its border, as wide as its penumbra."""
    half = _ramp_half_width(width)
    box = _box(stat, int(np.ceil(half - centre)) + 2, soft.shape)
    ramp = smoothstep(_signed_distance(labels[box] == k), centre - half, centre + half)
    np.maximum(soft[box], ramp, out=soft[box])


def _box(stat: np.ndarray, pad: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    """A component's bounding box from connectedComponentsWithStats, grown by ``pad`` px."""
    x, y, bw, bh = (int(v) for v in stat[:4])
    pad = max(pad, 1)
    return slice(max(0, y - pad), min(shape[0], y + bh + pad)), slice(max(0, x - pad), min(shape[1], x + bw + pad))


def _signed_distance(region: np.ndarray) -> np.ndarray:
    """px from the region's border: positive inside, negative outside (pixel centres, +-0.5)."""
    r8 = region.view(np.uint8)
    inside = cv2.distanceTransform(r8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(1 - r8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.where(region, inside - 0.5, 0.5 - outside).astype(np.float32)


def _profile(logs: np.ndarray, signed: np.ndarray, reach: int) -> np.ndarray:
    """(2 * reach + 1) x channels: median log value at each whole px of signed distance."""
    index = np.round(signed).astype(np.intp) + reach
    near = (index >= 0) & (index <= 2 * reach)
    index, values = index[near], logs[near]
    order = np.argsort(index, kind="stable")
    index, values = index[order], values[order]
    starts = np.searchsorted(index, np.arange(2 * reach + 2))
    profile = np.full((2 * reach + 1, logs.shape[-1]), np.nan, np.float32)
    for j in range(2 * reach + 1):
        if starts[j + 1] - starts[j] >= 8:
            profile[j] = np.median(values[starts[j] : starts[j + 1]], axis=0)
    return profile


def _edge(profile: np.ndarray, reach: int) -> tuple[np.ndarray, float, float] | None:
    """(step per channel, 25-75 % width, half-way point) of a border profile, or None."""
    outer, inner = profile[: reach // 2], profile[-(reach // 2) :]
    if np.isnan(outer[:, -1]).all() or np.isnan(inner[:, -1]).all():
        return None
    step = np.nanmedian(outer, axis=0) - np.nanmedian(inner, axis=0)
    if step[-1] <= 0.05:
        return step, 0.0, 0.0
    done = (np.nanmedian(outer[:, -1]) - profile[:, -1]) / step[-1]
    distance = np.arange(-reach, reach + 1, dtype=np.float32)
    valid = ~np.isnan(done)
    distance, done = distance[valid], np.maximum.accumulate(np.clip(done[valid], 0.0, 1.0))

    def crossing(level: float) -> float:
        k = int(np.argmax(done >= level))
        if done[k] < level:
            return float(distance[-1])
        if k == 0:
            return float(distance[0])
        f0, f1 = done[k - 1], done[k]
        return float(distance[k - 1] + (level - f0) / max(f1 - f0, 1e-6) * (distance[k] - distance[k - 1]))

    q25, q50, q75 = crossing(0.25), crossing(0.5), crossing(0.75)
    return step, q75 - q25, q50


def _ramp_half_width(width: float) -> float:
    """Half-width of a smoothstep as steep in its middle as a Gaussian edge of that 25-75 % width.

    The Gaussian's sigma is the width / 1.349; a smoothstep over ``centre +- 1.88 sigma`` has
    the same slope at its centre.
    """
    sigma = width / 1.349 if width > 0 else _DEFAULT_PENUMBRA
    return 1.88 * max(sigma, 1.0)


# --- masks ------------------------------------------------------------------------------


def refine_mask_edges(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Soften a hard mask's edges to the penumbra the photo shows there: float32 H x W in [0, 1].

    Each region of ``mask >= 0.5`` gets the ramp ``detect_shadows`` draws: measured on the photo
    across its border (the step's half-way point and its 25-75 % width), so a mask painted a
    little loose or tight still ramps where the light changes. A region whose border shows no
    darkening (or none can be measured) gets a ``_DEFAULT_PENUMBRA`` ramp on its edge.
    Works at ``WORK_SIDE`` like the detector; pixels more than the ramp outside stay exactly 0.
    """
    image = checked_image(pixels)
    hard = checked_mask(mask, image.shape)
    h, w, channels = image.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    work, plane = image.astype(np.float32), hard
    if scale < 1.0:
        size = max(1, round(w * scale)), max(1, round(h * scale))
        work, plane = _resize(work, *size), _resize(plane, *size)
    count, labels, stats, _ = cv2.connectedComponentsWithStats((plane >= 0.5).view(np.uint8), connectivity=8)
    logs = _log_channels(srgb_to_linear(work))
    soft = np.zeros(labels.shape, np.float32)
    for k in range(1, count):
        region = _measure(logs, labels, stats[k], k, channels > 1, _PROFILE_REACH)
        if region is None or region.step[-1] <= 0.05 or region.width <= 0:
            _draw_ramp(soft, labels, stats[k], k, 0.0, 0.0)
        else:
            _draw_ramp(soft, labels, stats[k], k, region.width, region.centre)
    return _to_size(soft, scale, (h, w))


def feather_mask(mask: np.ndarray, width: float) -> np.ndarray:
    """A hard mask's edge ramped over ``width`` px (0 outside, 1 inside, 0.5 on the edge).

    Pixels more than ``width / 2`` px outside the mask stay exactly 0.
    """
    if width < 0:
        raise UsageError(f"feather width must be 0 or more px, not {width}")
    hard = checked_mask(mask) >= 0.5
    if width == 0 or not hard.any() or hard.all():
        return hard.astype(np.float32)
    return smoothstep(_signed_distance(hard), -width / 2, width / 2)


# --- shared helpers ---------------------------------------------------------------------


def checked_image(pixels: np.ndarray) -> np.ndarray:
    """The photo as H x W x C (C = 1 or 3) in its own float type (float16, 32 or 64), no copy.

    The shape rule is scratch-repair's ``as_image``, applied to a one-pixel view so that the
    photo is not converted: pixels deshadowing leaves alone come back bit for bit.
    """
    values = np.asarray(pixels)
    if not np.issubdtype(values.dtype, np.floating):
        raise UsageError(f"expected float pixels in [0, 1], got {values.dtype}; divide 8-bit values by 255")
    channels = as_image(values[:1, :1]).shape[2]
    if values.size == 0:
        raise ImageError(f"the image is empty (shape {values.shape})")
    return values.reshape(values.shape[0], values.shape[1], channels)


def checked_mask(mask: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A soft mask as float32 H x W in [0, 1] (bool becomes 0/1; H x W x 1 is accepted).

    ``shape``: the photo's (H, W[, C]) the mask must match; ``mask_from_array`` resizes one.
    """
    values = np.asarray(mask)
    plane = values[..., 0] if values.ndim == 3 and values.shape[2] == 1 else values
    if plane.ndim != 2 or (shape is not None and plane.shape != tuple(shape[:2])):
        wanted = "H x W" if shape is None else f"{tuple(shape[:2])}"
        raise ImageError(f"mask shape {values.shape} does not match the photo's {wanted}; mask_from_array reads and resizes masks")
    if plane.dtype == bool:
        return plane.astype(np.float32)
    if not np.issubdtype(plane.dtype, np.floating):
        raise UsageError(f"expected a float mask in [0, 1], got {plane.dtype}; mask_from_array reads integer masks")
    plane = plane.astype(np.float32)
    if plane.size and (np.nanmin(plane) < -0.01 or np.nanmax(plane) > 1.01):
        raise ImageError(f"a mask must hold values in [0, 1], not {np.nanmin(plane):.3g}..{np.nanmax(plane):.3g}")
    return np.clip(np.nan_to_num(plane, nan=0.0), 0.0, 1.0)


def _resize(values: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-average when shrinking, bilinear when growing; keeps a channel axis of 1."""
    method = cv2.INTER_AREA if w < values.shape[1] else cv2.INTER_LINEAR
    out = cv2.resize(values, (w, h), interpolation=method)
    return out.reshape(h, w, -1) if values.ndim == 3 else out


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


__all__ = [
    "mask_from_array",
    "ShadowDetection",
    "ShadowRegion",
    "WORK_SIDE",
    "checked_image",
    "checked_mask",
    "chroma_consistency",
    "confidence",
    "detect_shadows",
    "estimate_shadow_mask",
    "feather_mask",
    "refine_mask_edges",
    "smoothstep",
]
