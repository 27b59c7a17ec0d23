"""Restore one image: one loaded model applied tile by tile, or several processors in turn.

``Restorer`` holds one loaded model and restores images; ``Chain`` runs several
processors in turn on the image in memory. Which files a run restores is ``jobs``'s,
running them is ``batch``'s, choosing the model ``choice``'s. torch loads at the first
restore, not on import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from photofix.engine import adapt
from photofix.errors import NonFiniteOutput, UsageError
from photofix.imageio import Image
from photofix.run.jobs import ImageProcessor, TileProgress

if TYPE_CHECKING:
    from photofix.engine.models import LoadedModel

# --- restoring one image -------------------------------------------------------------


@dataclass
class TaskParams:
    """Task options from the command line; None means the task's default."""

    sigma: float | None = None
    scale: float | None = None
    kind: str | None = None


class Restorer:
    """One loaded model applied to images with tiling.

    ``tile`` None means auto: the model's memory per pixel is measured on a small
    probe tile at the first image and the tile side chosen from free memory.

    An upscale of an 8-bit source returns finished uint8 pixels (see ``Image``) unless
    ``finished_output`` is False, as ``Chain`` sets it for every step but its last.
    """

    finished_output = True

    def __init__(
        self,
        task: str,
        model: LoadedModel,
        *,
        params: TaskParams | None = None,
        tile: int | None = None,
        tile_overlap: int = 32,
        min_tile: int = 0,
    ) -> None:
        self.task = task
        self.changes_size = adapt.changes_size(task)
        self.model = model
        self.params = params or TaskParams()
        self.tile = tile
        self.tile_overlap = tile_overlap
        # Below min_tile a model's tiled output departs from its whole-image output
        # (global statistics inside the network): auto sizing never goes below it.
        self.min_tile = min_tile
        if self.changes_size and model.scale == 1:
            raise UsageError(f"{model.source}: a 1x model cannot upscale; choose an upscaling model")
        if not self.changes_size and model.scale != 1:
            raise UsageError(f"{model.source}: a {model.scale}x model changes the size; use it with 'upscale'")

    @property
    def label(self) -> str:
        return self.model.model_id or self.model.source

    def _auto_tile(self, fn: Callable[[Any], Any], channels: int) -> int:
        from photofix.engine.tiling import auto_tile_size, measure_bytes_per_pixel

        per_pixel = measure_bytes_per_pixel(fn, channels, self.model.device)
        return max(auto_tile_size(self.model.device, per_pixel, align=self.model.tile_grid), self.min_tile)

    def _run(self, fn: Callable[[Any], Any], pixels: Any, on_tile: TileProgress | None,
             finish: Callable[[Any], Any] | None = None) -> Any:
        from photofix.engine.tiling import run_tiled

        if self.tile is None:
            self.tile = self._auto_tile(fn, pixels.shape[2])

        return run_tiled(
            fn,
            pixels,
            scale=self.model.scale,
            tile=self.tile,
            overlap=self.tile_overlap,
            multiple_of=self.model.tile_grid,
            least_side=self.min_tile,
            device=self.model.device,
            dtype=self.model.dtype,
            progress=on_tile,
            finish=finish,
        )

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        """Return the restored image and details worth reporting (e.g. the noise level used)."""
        import torch  # here, not at module level: planning and the CLI's --help stay torch-free

        details: dict[str, Any] = {}
        sigma = self.params.sigma
        if self.model.takes_noise_level:
            if sigma is None:
                sigma = adapt.estimate_noise_sigma(image.pixels)
                details["sigma_estimated"] = True
            details["sigma"] = round(sigma, 2)
        elif sigma is not None:
            details["sigma_ignored"] = "this model is blind: it estimates the noise itself"

        pixels = adapt.prepare(image, self.model.in_channels)
        model = self.model
        split = adapt.per_channel(pixels.shape[2], model.in_channels)

        def run(tile):
            if split:
                return torch.cat([model(tile[:, c : c + 1], sigma) for c in range(tile.shape[1])], dim=1)
            return model(tile, sigma)

        final_scale = self.params.scale if self.changes_size else None
        # An upscale's float canvas would dwarf the 8-bit file it becomes: finish it to those integers.
        finishing = self.changes_size and self.finished_output
        finish = adapt.finished_rows(image, final_scale, model.scale) if finishing else None
        try:
            result = self._run(run, pixels, on_tile, finish)
        except NonFiniteOutput:
            if model.dtype == torch.float32:
                raise
            # Half precision overflowed (black/NaN output on some GPUs): redo this image in fp32.
            model.use_float32()
            details["precision_fallback"] = "fp32"
            result = self._run(run, pixels, on_tile, finish)
        if self.changes_size:
            details["scale"] = final_scale or model.scale
        return adapt.finish(image, result, final_scale=final_scale), details


class Chain:
    """Processors applied in turn to one image held in memory: read once, written once.

    Details of each step are reported under ``TASK.key`` (``denoise.sigma``), a repeated
    task as ``TASK#2.key``.
    """

    def __init__(self, steps: Sequence[tuple[str, ImageProcessor]]) -> None:
        if not steps:
            raise UsageError("a chain needs at least one step")
        self.steps = list(steps)
        for _, processor in self.steps[:-1]:
            if isinstance(processor, Restorer):
                processor.finished_output = False  # the next step computes on float pixels

    @property
    def label(self) -> str:
        return " → ".join(processor.label for _, processor in self.steps)

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        details: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for task, processor in self.steps:
            seen[task] = seen.get(task, 0) + 1
            prefix = task if seen[task] == 1 else f"{task}#{seen[task]}"
            image, step_details = processor.restore(image, on_tile)
            details.update({f"{prefix}.{key}": value for key, value in step_details.items()})
        return image, details


def restore_image(image: Image, restorer: Restorer) -> Image:
    """Convenience for library users: the restored image only."""
    return restorer.restore(image)[0]
