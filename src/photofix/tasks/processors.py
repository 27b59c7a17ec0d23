"""Image processors for the tasks that are not one image-to-image network.

``pipeline.Restorer`` runs one network tile by tile. Colorize predicts chroma at a
small working size and keeps the full-resolution luminance; scratch-repair detects
damage and inpaints only around it. Both plug into ``pipeline.run_jobs`` through the
same ``label`` / ``restore(image, on_tile)`` shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from photofix._color import LUMA_601, luma
from photofix.methods.deshadow import deshadow
from photofix.methods.deshadow_mask import detect_shadows, mask_from_array
from photofix.errors import ImageError
from photofix.imageio import Image
from photofix.methods.inpaint import InpaintFn, inpaint_masked
from photofix.run.jobs import TileProgress
from photofix.methods.scratch import dilate_mask, luminance, scratch_detection, upsample_mask
from photofix.methods.scratch_blend import fill_weights

if TYPE_CHECKING:
    from photofix.engine.models import LoadedMaskedModel, LoadedModel
    from photofix.methods.colorize import Colorizer


@dataclass
class ColorizeProcessor:
    """Colour each image with one loaded DDColor network."""

    colorizer: Colorizer
    saturation: float = 1.0

    @property
    def label(self) -> str:
        return self.colorizer.model_id or self.colorizer.source

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        from photofix.methods.colorize import colorize_image  # torch: only runs that colour load it

        result, details = colorize_image(image, self.colorizer, self.saturation)
        if on_tile is not None:
            on_tile(1, 1)  # one pass at the render size: report it as one tile
        return result, details




# --- scratch-repair ------------------------------------------------------------------

# Short side the detection UNet sees: the scale "Bringing Old Photos Back to Life" runs it at
# (its detection.py rescales every photo, up or down, to this short side), which is the scale
# its scratches were synthesised at in training.
DETECT_SHORT_SIDE = 256
DETECT_THRESHOLD = 0.4


def detect_with_model(detector: LoadedModel, pixels: np.ndarray, *, short_side: int = DETECT_SHORT_SIDE,
                      threshold: float = DETECT_THRESHOLD) -> np.ndarray:
    """Bool H x W scratch mask from the learned detector run at its working resolution.

    The probability map (``scratch_probability``) is enlarged bilinearly to full size and
    thresholded there (``scratch.upsample_mask``), so thin scratches stay thin continuous bands;
    the authors enlarge it nearest-neighbour, which turns each working pixel into a block.
    """
    height, width = pixels.shape[:2]
    return upsample_mask(scratch_probability(detector, pixels, short_side=short_side), (height, width), threshold=threshold)


def scratch_probability(detector: LoadedModel, pixels: np.ndarray, *, short_side: int = DETECT_SHORT_SIDE) -> np.ndarray:
    """The learned detector's probability map at its working size, the photo prepared as its authors do.

    As in their ``detection.py``: the grey photo (ITU-R 601 luma of the encoded values, PIL's
    "L") is first resized (bicubic) so its sides are multiples of 16, then with bilinear
    interpolation, without antialiasing, so its short side is ``short_side`` (photos smaller
    than that are enlarged) and both sides are multiples of 16.
    The network sees what it saw when its authors measured it (tests/test_scratch_recipe.py).
    """
    import torch
    import torch.nn.functional as F

    grid = max(16, detector.multiple_of)
    height, width = (max(grid, round(side / grid) * grid) for side in pixels.shape[:2])
    factor = short_side / min(height, width)
    size = (max(grid, round(height * factor / grid) * grid), max(grid, round(width * factor / grid) * grid))
    grey = torch.from_numpy(np.ascontiguousarray(luminance(pixels), dtype=np.float32))[None, None]
    if (height, width) != pixels.shape[:2]:  # their first resize: PIL's bicubic, which torch's antialiased one matches
        grey = F.interpolate(grey, size=(height, width), mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)
    return _run_map(detector, F.interpolate(grey, size=size, mode="bilinear", align_corners=False))


def _probability_map(detector: LoadedModel, rgb: np.ndarray, size: tuple[int, int], *, shrink: bool) -> np.ndarray:
    """A one-channel detector's output map for an H x W x 3 photo resized to ``size`` (w, h)."""
    import cv2
    import torch

    small = cv2.resize(np.ascontiguousarray(rgb, dtype=np.float32), size,
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return _run_map(detector, torch.from_numpy(small).permute(2, 0, 1)[None])


def _run_map(detector: LoadedModel, x: Any) -> np.ndarray:
    """H x W float32: a one-channel detector's output for the 1 x C x H x W tensor ``x``."""
    return detector(x.to(detector.device, detector.dtype))[0, 0].float().cpu().numpy()


@dataclass
class ScratchRepairProcessor:
    """Detect damage (learned UNet, classical detector, or the user's mask), then inpaint around it.

    ``user_mask(image)`` returns the user's mask for that image, values in [0, 1] (or None: detect it);
    ``mask_out(image, mask)`` saves the mask used. The mask is grown by ``dilate`` px so the
    soft rims of scratches are replaced too. With a ``face_detector``, the classical mask's
    pieces on faces' features are dropped first (``methods.scratch_faces``); details say how
    many faces were found and how many pixels were spared. With ``blend``, the classical
    detector's faint detections take only part of the fill (``methods.scratch_blend``).
    """

    inpaint_fn: InpaintFn
    detector: LoadedModel | None = None  # None: the classical detector
    threshold: float | None = None
    dilate: int = 2
    margin: int = 32
    labels: tuple[str, str] = ("classical", "classical")  # detector, inpainter
    user_mask: Callable[[Image], np.ndarray | None] | None = None
    mask_out: Callable[[Image, np.ndarray], None] | None = None
    face_detector: Any = None  # a methods.faces.FaceDetector: the classical mask is kept off faces' features
    blend: bool = False  # classical detector: faint detections take part of the fill (methods.scratch_blend)

    @property
    def label(self) -> str:
        detector, inpainter = self.labels
        return detector if detector == inpainter else f"{detector}+{inpainter}"

    def detect(self, image: Image) -> tuple[np.ndarray, str, dict[str, Any], np.ndarray | None]:
        """(mask, its source, details, the share of the fill each pixel takes or None for all)."""
        given = self.user_mask(image) if self.user_mask is not None else None
        if given is not None:
            return given > 0.5, "user mask", {}, None
        if self.detector is not None:
            threshold = DETECT_THRESHOLD if self.threshold is None else self.threshold
            return detect_with_model(self.detector, image.pixels, threshold=threshold), self.labels[0], {}, None
        found = scratch_detection(image.pixels, threshold=self.threshold)
        mask, details = found.mask, {}
        if self.face_detector is not None:
            from photofix.methods.scratch_faces import faces_for_protection, protect_face_features

            mask, done = protect_face_features(mask, faces_for_protection(image.pixels, self.face_detector))
            details = {"faces_protected": done.faces, "face_pixels_spared": done.pixels_refused,
                       "face_detector": self.face_detector.name}
        # faint detections take part of the fill (methods.scratch_blend); the rim grown by
        # ``dilate`` and the inpainting's 1-px feather take the weight of the pixels they border
        strength = fill_weights(found.confidence, mask, reach=self.dilate + 1) if self.blend else None
        return mask, "classical", details, strength

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        mask, source, faces, strength = self.detect(image)
        mask = dilate_mask(mask, self.dilate)
        if self.mask_out is not None:
            self.mask_out(image, mask)
        damaged = float(mask.mean())
        details: dict[str, Any] = {"mask": source, "damaged_percent": round(100 * damaged, 3), **faces}
        if strength is not None:
            details["blended_percent"] = round(100 * float((strength[mask] < 1).mean()), 3) if mask.any() else 0.0
        if not mask.any():
            details["crops"] = 0
            return image, details
        result = inpaint_masked(image.pixels, mask, self.inpaint_fn, margin=self.margin, strength=strength)
        details["crops"] = result.stats.crops
        if on_tile is not None:
            on_tile(result.stats.crops, result.stats.crops)
        return replace(image, pixels=result.pixels), details


# --- deshadow ------------------------------------------------------------------------

# The learned shadow detector (FDRNet) sees the photo squashed to the square it was trained on.
SHADOW_DETECT_SIDE = 400
# Probabilities under this count as lit: a sigmoid never reaches 0, and a mask that is not 0
# would relight the whole photo a little. Ramped (not cut) so no seam appears at the floor.
SHADOW_FLOOR = 0.05
# Less learned shadow than this (fraction of the photo at >= 0.5) and the photo is left alone.
MIN_LEARNED_SHADOW = 0.005


def shadow_mask_with_model(detector: LoadedModel, pixels: np.ndarray) -> np.ndarray:
    """Soft H x W shadow mask in [0, 1] from a learned detector's probability map.

    The photo is resized to ``SHADOW_DETECT_SIDE`` square (FDRNet's training size), the
    probability enlarged bilinearly back to the photo's size (its soft edges become the
    penumbra the relighting ramps across), and values under ``SHADOW_FLOOR`` ramp to 0.
    """
    import cv2

    height, width = pixels.shape[:2]
    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]
    side = SHADOW_DETECT_SIDE
    probability = _probability_map(detector, rgb, (side, side), shrink=min(height, width) > side)
    full = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip((full - SHADOW_FLOOR) / (1 - SHADOW_FLOOR), 0, 1).astype(np.float32)


@dataclass
class DeshadowProcessor:
    """Find (or take) a soft shadow mask, then relight: measured per-channel gains (classical)
    or a mask-guided network such as ShadowFormer, pasted back only around the shadow.

    The mask is the user's, else the learned ``detector``'s (FDRNet) when one is loaded, else
    the classical detector's; details name it as ``mask_source``.
    """

    sensitivity: float = 1.0
    match_texture: bool = False
    user_mask: Callable[[Image], np.ndarray | None] | None = None
    mask_out: Callable[[Image, np.ndarray], None] | None = None
    model: LoadedMaskedModel | None = None
    model_label: str = "classical"
    detector: LoadedModel | None = None  # a learned shadow detector; None: the classical one
    detector_label: str = "fdrnet"
    tile: int | None = None  # None: the engine's choice from the model's memory and tiling advice
    overlap: int = 80
    _auto: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.model is not None:
            from photofix.engine.tiling import AutoTile  # torch is loaded: a model exists

            self._auto = AutoTile(self.model)  # measures at the first photo, only if it is needed

    @property
    def label(self) -> str:
        return self.model_label

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        given = self.user_mask(image) if self.user_mask is not None else None
        try:
            mask, source, unsure = self._mask(image, given)
            raw: dict[str, Any] = {}
            if unsure:
                pixels, mask = image.pixels, np.zeros(image.pixels.shape[:2], np.float32)
            elif self.model is None:
                result = deshadow(image.pixels, mask, sensitivity=self.sensitivity, match_texture=self.match_texture)
                pixels, mask, raw = result.pixels, result.mask, result.details
                unsure = raw.get("left_alone")
            else:
                mask = mask_from_array(mask, image.pixels.shape)
                pixels = self._relight_with_model(image.pixels, mask, on_tile)
        except ImageError as error:  # name the photo: the mask's message may name only the mask
            raise ImageError(f"{image.meta.source_name}: {error}") from error
        if self.mask_out is not None:
            self.mask_out(image, mask)
        details = {"mask_source": source, **{key: raw[key] for key in ("regions",) if key in raw}}
        details["shadow_percent"] = round(100 * float(np.mean(mask >= 0.5)), 2)
        if unsure:  # the detector was not sure: say why the photo is unchanged
            details["note"] = f"unchanged: {unsure} (give --mask to choose the shadow)"
        return replace(image, pixels=pixels), details

    def _mask(self, image: Image, given: np.ndarray | None) -> tuple[np.ndarray | None, str, str | None]:
        """(mask, its source, why the photo is left alone or None): the user's, else the learned
        detector's, else the classical detector's. The mask is None when the classical relighting
        is to find it itself (it then reports its own reasons)."""
        if given is not None:
            return given, "given", None
        if self.detector is not None:
            learned = shadow_mask_with_model(self.detector, image.pixels)
            if np.mean(learned >= 0.5) < MIN_LEARNED_SHADOW:
                return learned, self.detector_label, (f"the shadow detector found shadow on under "
                                                      f"{100 * MIN_LEARNED_SHADOW:g} % of the photo")
            return learned, self.detector_label, None
        if self.model is None:
            return None, "detected", None
        detection = detect_shadows(image.pixels, sensitivity=self.sensitivity)
        return detection.mask_to_use, "detected", detection.unsure

    def _relight_with_model(self, pixels: np.ndarray, mask: np.ndarray, on_tile: TileProgress | None) -> np.ndarray:
        """Run the network tile by tile on RGB + mask; keep its output only in and around the shadow.

        Outside a 16 px margin around the mask the input is returned bit for bit: a restoration
        network also retouches lit areas slightly, and nothing outside a shadow should change.
        """
        import cv2

        from photofix.engine.tiling import run_tiled

        if not np.any(mask >= 0.5):
            return pixels
        model = self.model
        rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
        stacked = np.concatenate([rgb, (mask >= 0.5).astype(np.float32)[..., None]], axis=2)

        def run(tile: Any) -> Any:
            return model(tile[:, :3], tile[:, 3:]).clamp(0, 1)

        tile = self.tile
        if tile is None:
            tile = self._auto.side(run, stacked.shape[2], *stacked.shape[:2])
        relit = run_tiled(run, stacked, tile=tile, overlap=self.overlap, multiple_of=model.tile_grid,
                          device=model.device, dtype=model.dtype, progress=on_tile, least_side=model.minimum_size)
        if pixels.shape[2] == 1:
            relit = luma(relit, LUMA_601, keep_channel=True)
        near = cv2.dilate((mask > 0.01).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (33, 33)))
        weight = np.maximum(cv2.GaussianBlur(near.astype(np.float32), (0, 0), 4) * near, np.clip(mask, 0, 1))[..., None]
        out = pixels.copy()
        inside = near.astype(bool)
        out[inside] = (weight * relit + (1 - weight) * pixels)[inside]
        return out


__all__ = [
    "DETECT_SHORT_SIDE",
    "ColorizeProcessor",
    "DeshadowProcessor",
    "ScratchRepairProcessor",
    "detect_with_model",
    "scratch_probability",
    "shadow_mask_with_model",
]
