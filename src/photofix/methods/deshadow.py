"""Remove cast shadows without a model: relight the shadow by the light it lost.

In linear light a shadow multiplies each channel by an attenuation ``a`` (0.3-0.5 in sun,
bluish under skylight: blue keeps the most). Where the mask is ``m`` (1 in the umbra, ramping
to 0 across the penumbra) the light received is ``1 - m (1 - a)`` of the lit level, because a
penumbra is the sun partly hidden. Relighting divides by exactly that, so the penumbra is
undone as smoothly as it fell and no halo is drawn.

``a`` is measured per connected shadow region, per channel, across its border:

* the **shadow band** is the umbra (mask >= 98 % of the region's maximum) within ``band`` px
  of its edge, the **lit band** the pixels under 2 % within ``band`` px of the rest (``band``:
  3 % of the shorter side, 4 to 48 px). Skipping the penumbra matters: a Gaussian edge of
  15 px still darkens by several % 30 px out. Both bands are averaged over their own pixels
  only (a normalised Gaussian of ``band / 3`` px), which removes texture without mixing the
  penumbra in.
* each shadow-band pixel is paired with the nearest lit-band pixel, so a border crossing
  several surfaces compares each surface with itself. A pair sees ``lit (1 - m_q k)`` and
  ``lit (1 - m_p k)`` with their (averaged) mask values, which gives ``k = 1 - a`` exactly,
  whatever depth the mask reaches; the region's ``k`` is the median over its pairs (robust to
  pairs that straddle an object's edge). A brightness gradient across the border still biases
  it: about 10 % low on the rocket photo's dusk sky.
* a region with fewer than 32 pairs (too small, or its border off the photo) takes the median
  of all the photo's pairs; with no lit band anywhere there is nothing to compare with
  (ImageError: that photo fails alone). Gains are kept between 1 (a "shadow" lighter than its surroundings is left
  alone) and ``max_gain``.

A hard (0/1) mask, as painted by hand, first gets the edges the photo shows
(``refine_mask_edges``): without that the bands would sit inside the real penumbra and the
gains come out 30-50 % low.

``match_texture`` also scales the fine detail (log-domain, 3 px) of each relit region so its
contrast matches the lit band's: it evens out noise a deep shadow amplified, or contrast a
flat one lost. Off by default: for a true multiplicative shadow relighting restores the
texture exactly.

Pixels where the mask is 0 are returned bit for bit; the rest is converted back to sRGB and
clipped to [0, 1]. Works on grey (C = 1) and colour photos, float16/32/64 (the input's float
type is kept). ``deshadow`` chains detection (deshadow_mask) and relighting.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cv2
import numpy as np

from photofix._color import linear_to_srgb, srgb_to_linear
from photofix.methods.deshadow_mask import (
    ShadowDetection,
    checked_image,
    checked_mask,
    detect_shadows,
    estimate_shadow_mask,
    feather_mask,
    mask_from_array,
    refine_mask_edges,
)
from photofix.errors import ImageError, UsageError

__all__ = [
    "DeshadowResult",
    "deshadow",
    "remove_shadow",
    # re-exported from deshadow_mask, so the whole classical path is importable from here
    "detect_shadows",
    "estimate_shadow_mask",
    "feather_mask",
    "mask_from_array",
    "refine_mask_edges",
]

_CORE = 0.98  # mask value (of the mask's maximum) from which a pixel counts as umbra
_LIT = 0.02  # ...and under which as lit, when measuring (a penumbra's Gaussian tail is long)
_BAND_FRACTION = 0.03  # of the shorter side
_BAND_LIMITS = (4, 48)  # px
_MIN_PAIRS = 32
_FLOOR = np.float32(1e-4)  # linear light added before ratios and logs
_DETAIL_SIGMA = 3.0  # px: the fine detail match_texture rescales
_DETAIL_LIMITS = (0.5, 1.5)


class DeshadowResult(NamedTuple):
    pixels: np.ndarray  # same shape and float type as the input
    mask: np.ndarray  # float32 H x W in [0, 1]: the mask relit with (edges refined or feathered)
    details: dict[str, Any]


def deshadow(
    pixels: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    sensitivity: float = 1.0,
    min_area: int | None = None,
    feather: float | None = None,
    match_texture: bool = False,
    max_gain: float = 8.0,
) -> DeshadowResult:
    """Find the shadows (unless ``mask`` is given: any array ``mask_from_array`` reads) and relight them.

    ``details`` is ``remove_shadow``'s, plus ``mask_source`` ("given" or "detected") and, when
    detected, ``detected_regions`` (``found_by_pairing`` of them came from ``shadow_pairs``) and
    ``candidate_regions``. When the detection is unsure
    (``deshadow_mask.confidence``: grey photo, nothing shadow-like, too little or too much of
    the photo) the photo comes back unchanged with ``left_alone``: the reason, one sentence.
    """
    image = checked_image(pixels)
    detection: ShadowDetection | None = None
    if mask is None:
        detection = detect_shadows(image, sensitivity=sensitivity, min_area=min_area)
        soft = detection.mask_to_use
    else:
        soft = mask_from_array(mask, image.shape)
    relit, details, used = _relight(image, soft, feather=feather, match_texture=match_texture, max_gain=max_gain)
    details["mask_source"] = "given" if detection is None else "detected"
    if detection is not None:
        details["detected_regions"] = sum(1 for r in detection.regions if r.kept)
        details["found_by_pairing"] = sum(1 for r in detection.regions if r.kept and r.found_by == "pairing")
        details["candidate_regions"] = len(detection.regions)
        if detection.unsure:
            details["left_alone"] = detection.unsure
    return DeshadowResult(relit.reshape(np.shape(pixels)), used, details)


def remove_shadow(
    pixels: np.ndarray,
    mask: np.ndarray,
    *,
    feather: float | None = None,
    match_texture: bool = False,
    max_gain: float = 8.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Relight the shadow under ``mask`` (float H x W in [0, 1], 1 = full shadow).

    feather: ``None`` leaves a soft mask as it is and gives a hard (0/1) one the edges the
        photo shows (``refine_mask_edges``: ramped across the penumbra measured along its
        border, so a mask painted a little loose or tight still works); 0 uses the mask as
        it is; a number of px cuts the mask at 0.5 and ramps it that wide, centred on the cut.
    match_texture: also match the relit detail's contrast to the lit surroundings'.
    max_gain: the most a channel is brightened (8 = a shadow letting through 12.5 %).

    Returns the photo (same shape and float type; pixels where the mask is 0 untouched) and
    details: ``regions``, ``gains`` (per channel, area-weighted mean), ``region_gains``,
    ``fallback_regions`` (regions that took the photo-wide gains), ``mask_area`` (fraction at
    >= 0.5), ``changed_area`` (fraction > 0), ``edges`` ("given", "measured" or "feathered N px"),
    ``band`` (px).
    """
    image = checked_image(pixels)
    relit, details, _ = _relight(image, checked_mask(mask, image.shape), feather=feather, match_texture=match_texture, max_gain=max_gain)
    return relit.reshape(np.shape(pixels)), details


def _relight(image: np.ndarray, soft: np.ndarray, *, feather: float | None, match_texture: bool, max_gain: float) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    if not max_gain >= 1.0:
        raise UsageError(f"max_gain must be at least 1, not {max_gain}")
    h, w, channels = image.shape
    soft, edges = _edges(image, soft, feather)
    support = soft > 0
    band = int(np.clip(round(_BAND_FRACTION * min(h, w)), *_BAND_LIMITS))
    details: dict[str, Any] = {
        "regions": 0,
        "gains": [1.0] * channels,
        "region_gains": [],
        "fallback_regions": 0,
        "mask_area": float(np.count_nonzero(soft >= 0.5)) / (h * w),
        "changed_area": float(np.count_nonzero(support)) / (h * w),
        "edges": edges,
        "band": band,
    }
    result = np.array(image, copy=True)
    if not support.any():
        return result, details, soft

    light = srgb_to_linear(image)
    count, regions = cv2.connectedComponents(support.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    attenuation, fallback = _attenuations(light, soft, regions, count, band, max_gain)
    per_pixel = attenuation[regions[support]]  # N x C
    m = soft[support][:, None]
    relit = light[support] / (1.0 - m * (1.0 - per_pixel))
    if match_texture:
        relit = _match_texture(light, soft, regions, support, relit, band)
    result[support] = linear_to_srgb(relit).astype(result.dtype, copy=False)

    areas = np.bincount(regions[support], minlength=count)[1:].astype(np.float64)
    gains = 1.0 / attenuation[1:]
    details.update(
        regions=count - 1,
        gains=[round(float(g), 4) for g in (areas @ gains) / areas.sum()],
        region_gains=[[round(float(g), 4) for g in row] for row in gains],
        fallback_regions=fallback,
    )
    return result, details, soft


def _edges(image: np.ndarray, soft: np.ndarray, feather: float | None) -> tuple[np.ndarray, str]:
    """The mask with the edges it will be relit with, and how they were made."""
    if feather is None:
        hard = bool(np.all((soft == 0) | (soft == 1)))
        if not hard or not soft.any() or soft.all():
            return soft, "given"
        return refine_mask_edges(image, soft), "measured"
    if feather == 0:
        return soft, "given"
    return feather_mask(soft, feather), f"feathered {feather:g} px"


def _attenuations(light: np.ndarray, soft: np.ndarray, regions: np.ndarray, count: int, band: int, max_gain: float) -> tuple[np.ndarray, int]:
    """(count x C) light let through per region (row 0 unused, 1) and how many fell back."""
    channels = light.shape[2]
    level = _relative_level(soft, regions, count)
    shaded = level >= _LIT
    core = level >= _CORE
    outside = cv2.distanceTransform(shaded.view(np.uint8) ^ 1, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    lit_band = ~shaded & (outside <= band)
    inside = cv2.distanceTransform(core.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    shadow_band = core & (inside <= band)
    if not lit_band.any():
        raise ImageError("the shadow mask leaves no unshadowed pixels next to it to compare with; draw it over the shadow only")

    # band means: texture averaged out, each band over its own pixels only
    sigma = band / 3.0
    lit_light, lit_mask = _band_mean(light, soft, lit_band, sigma)
    shadow_light, shadow_mask = _band_mean(light, soft, shadow_band, sigma)
    # each shadow-band pixel with its nearest lit-band pixel (labels of the nearest zero of "not lit band")
    _, nearest = cv2.distanceTransformWithLabels(lit_band.view(np.uint8) ^ 1, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    lit_index = np.zeros(int(nearest.max()) + 1, np.intp)
    lit_index[nearest[lit_band]] = np.flatnonzero(lit_band)
    rows = np.flatnonzero(shadow_band)
    partner = lit_index[nearest.ravel()[rows]]
    # a pair sees lit * (1 - m_q k) and lit * (1 - m_p k), k = 1 - attenuation: solve for k
    ratio = (lit_light.reshape(-1, channels)[partner] + _FLOOR) / (shadow_light.reshape(-1, channels)[rows] + _FLOOR)
    denominator = lit_mask.ravel()[partner, None] - ratio * shadow_mask.ravel()[rows, None]
    usable = np.all(np.abs(denominator) > 1e-3, axis=1)
    darkening = (1.0 - ratio[usable]) / denominator[usable]
    owner = regions.ravel()[rows][usable]

    def attenuation(k: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - np.median(k, axis=0), 1.0 / max_gain, 1.0)

    result = np.ones((count, channels), np.float32)
    if owner.size == 0:
        raise ImageError("the shadow mask has no full-shadow part next to unshadowed pixels; the gains cannot be measured")
    overall = attenuation(darkening)
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(count + 1))
    fallback = 0
    for k in range(1, count):
        pick = order[starts[k] : starts[k + 1]]
        if pick.size >= _MIN_PAIRS:
            result[k] = attenuation(darkening[pick])
        else:
            result[k] = overall
            fallback += 1
    return result, fallback


def _relative_level(soft: np.ndarray, regions: np.ndarray, count: int) -> np.ndarray:
    """The mask as a fraction of its own region's maximum (0 outside every region)."""
    support = regions > 0
    peak = np.zeros(count, np.float32)
    np.maximum.at(peak, regions[support], soft[support])
    return np.where(support, soft / np.maximum(peak[regions], 1e-6), 0.0).astype(np.float32)


def _band_mean(light: np.ndarray, soft: np.ndarray, band: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted means of the light and of the mask over the band's own pixels."""
    weight = band.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-6)
    light_mean = cv2.GaussianBlur(light * weight[..., None], (0, 0), sigma).reshape(light.shape) / norm[..., None]
    mask_mean = cv2.GaussianBlur(soft * weight, (0, 0), sigma) / norm
    return light_mean, mask_mean


def _match_texture(light: np.ndarray, soft: np.ndarray, regions: np.ndarray, support: np.ndarray, relit: np.ndarray, band: int) -> np.ndarray:
    """Scale each region's fine log-domain detail so its contrast matches the lit band's."""
    h, w, channels = light.shape
    logs = np.log(light + _FLOOR)
    logs[support] = np.log(relit + _FLOOR)
    detail = logs - cv2.GaussianBlur(logs, (0, 0), _DETAIL_SIGMA).reshape(logs.shape)
    outside = cv2.distanceTransform(support.view(np.uint8) ^ 1, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    _, nearest = cv2.distanceTransformWithLabels(support.view(np.uint8) ^ 1, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    owner_of = np.zeros(int(nearest.max()) + 1, np.int32)
    owner_of[nearest[support]] = regions[support]
    lit_owner = np.where(~support & (outside <= band), owner_of[nearest], 0)
    count = int(regions.max()) + 1
    core = _relative_level(soft, regions, count) >= _CORE
    scale = np.ones((count, channels), np.float32)
    for k in range(1, count):
        lit_detail, shadow_detail = detail[lit_owner == k], detail[core & (regions == k)]
        if len(lit_detail) >= _MIN_PAIRS and len(shadow_detail) >= _MIN_PAIRS:
            ratio = _spread(lit_detail) / np.maximum(_spread(shadow_detail), 1e-6)
            scale[k] = np.clip(ratio, *_DETAIL_LIMITS)
    factor = scale[regions[support]] ** soft[support][:, None]
    d = detail[support]
    return np.exp(logs[support] + (factor - 1.0) * d) - _FLOOR


def _spread(values: np.ndarray) -> np.ndarray:
    """Robust standard deviation per channel (1.4826 x median absolute deviation)."""
    return 1.4826 * np.median(np.abs(values - np.median(values, axis=0)), axis=0)
