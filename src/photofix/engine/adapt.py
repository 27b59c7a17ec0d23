"""Images to models and back: each network task's work before and after the model.

A network task turns an ``Image`` into the array the model wants (``prepare``) and the
model's output back into an ``Image`` (``finish``): grey sources are run as RGB
and written back grey, alpha is carried (resized when the task changes the
size), and upscale resamples to a requested final scale. The tasks themselves
(options, help, planning) live in ``photofix.tasks``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from photofix._color import LUMA_601, luma
from photofix.engine import noise_level
from photofix.errors import UsageError
from photofix.imageio import Image
from photofix.imageio.encode import quantize

# The tasks run by one image-to-image network (``pipeline.Restorer``): does the model change the size?
NETWORK_TASKS: dict[str, bool] = {"denoise": False, "deblur": False, "derain": False, "upscale": True}


def changes_size(task: str) -> bool:
    """Whether ``task`` enlarges the image; UsageError for a task no single network runs."""
    try:
        return NETWORK_TASKS[task]
    except KeyError:
        raise UsageError(f"{task!r} is not run by one network; choose one of {', '.join(NETWORK_TASKS)}") from None


def prepare(image: Image, model_channels: int) -> np.ndarray:
    """Pixels as the model wants them: grey repeated to RGB for colour models.

    A colour image given to a grey model stays colour: the engine runs the model
    on each channel in turn (see ``per_channel``).
    """
    pixels = image.pixels
    if pixels.shape[2] == 1 and model_channels == 3:
        return np.repeat(pixels, 3, axis=2)
    return pixels


def per_channel(image_channels: int, model_channels: int) -> bool:
    """True when a one-channel model must be run once per colour channel."""
    return model_channels == 1 and image_channels == 3


def finish(image: Image, result: np.ndarray, *, final_scale: float | None = None) -> Image:
    """Back to an Image like the source: grey stays grey, alpha follows, size as requested.

    ``result`` is the model's float output, or already finished integers (see ``finished_rows``).
    """
    if final_scale is not None:
        target = _final_size(image, final_scale)
        if result.shape[:2] != target:
            result = resize(result, target)
    if image.meta.grayscale and result.shape[2] == 3:
        result = _to_grey(result)
    alpha = image.alpha
    if alpha is not None and alpha.shape != result.shape[:2]:
        alpha = resize(alpha[..., None], result.shape[:2])[..., 0]
    pixels = result if result.dtype.kind == "u" else np.ascontiguousarray(result, dtype=np.float32)
    return replace(image, pixels=pixels, alpha=alpha)


def finished_rows(image: Image, final_scale: float | None, model_scale: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """Turns blocks of the model's output into the integers the encoder will write, or None if floats are still needed.

    An 8-bit source is always written with 8 bits, so its output can be stored as uint8,
    made grey first as ``finish`` does and rounded by ``encode.quantize``: the same bytes as
    finishing in float, in a quarter of the memory. Not when the output is still to be
    resampled to ``final_scale`` (that needs floats), nor for 16-bit sources, whose output
    depth depends on the format written, unknown here.
    """
    model_size = (image.height * model_scale, image.width * model_scale)
    if image.meta.bit_depth != 8 or (final_scale is not None and _final_size(image, final_scale) != model_size):
        return None
    grey = image.meta.grayscale

    def rows(block: np.ndarray) -> np.ndarray:
        return quantize(_to_grey(block) if grey and block.shape[2] == 3 else block, np.uint8)

    return rows


def _final_size(image: Image, final_scale: float) -> tuple[int, int]:
    return round(image.height * final_scale), round(image.width * final_scale)


def _to_grey(pixels: np.ndarray) -> np.ndarray:
    return luma(pixels, LUMA_601, keep_channel=True)  # grey from a colour model's output


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample H x W x C to ``size`` (h, w): area averaging down, Lanczos up."""
    import cv2

    h, w = size
    shrinking = h < pixels.shape[0] or w < pixels.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    out = cv2.resize(pixels, (w, h), interpolation=interpolation)
    if out.ndim == 2:
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


def estimate_noise_sigma(pixels: np.ndarray) -> float:
    """Noise standard deviation on the 0–255 scale, for non-blind denoisers.

    Read on luma, one octave below the finest band, in the flattest blocks of the photo:
    ``engine.noise_level`` says why (JPEG, correlated camera and scan noise).
    """
    return noise_level.estimate_noise_sigma(pixels)


__all__ = [
    "NETWORK_TASKS",
    "changes_size",
    "estimate_noise_sigma",
    "finish",
    "finished_rows",
    "per_channel",
    "prepare",
    "resize",
]
