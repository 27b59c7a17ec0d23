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
from photofix.errors import NonFiniteOutput, UsageError, WeightsError
from photofix.imageio import Image
from photofix.run.jobs import ImageProcessor, TileProgress

if TYPE_CHECKING:
    from photofix.engine.models import LoadedModel

# --- restoring one image -------------------------------------------------------------

# The best PSNR against the truth that the task's models reach (dB): the bf16 gate of
# ``--precision auto`` keeps the drop from it within 0.05 dB (engine/precision_gate.py). Denoise:
# NAFNet SIDD width 64 (40.30, its release); deblur: NAFNet GoPro width 64 (33.71, its release);
# upscale: DAT-light x4 on chelsea, measured (29.14, README "Quality, measured"). Other tasks
# take the highest of these.
_TRUTH_PSNR_DB = {"denoise": 40.3, "deblur": 33.71, "upscale": 29.14}
GATE_CROP = 128  # input px of the gate's centre crop (64 for upscalers: 16x the output)


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
        tile_batch: int | None = None,
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
        from photofix.engine.tiling import AutoTile  # torch is loaded: a model exists

        self._auto = AutoTile(model, min_tile)  # measures at the first photo, only if it is needed
        # Tiles per forward; None: as many as fit on a GPU (engine.tiling.auto_tile_batch), 1 elsewhere.
        self.tile_batch = tile_batch
        self.last_tile: int | None = None
        if self.changes_size and model.scale == 1:
            raise UsageError(f"{model.source}: a 1x model cannot upscale; choose an upscaling model")
        if not self.changes_size and model.scale != 1:
            raise UsageError(f"{model.source}: a {model.scale}x model changes the size; use it with 'upscale'")

    @property
    def label(self) -> str:
        return self.model.model_id or self.model.source

    def _settle_precision(self, run: Callable[[Any], Any], pixels: Any) -> None:
        """``--precision auto`` on a CPU with native bf16: measure (or recall) the bf16 gate on a centre crop."""
        import torch

        from photofix.engine.precision_gate import DEFAULT_TRUTH_PSNR_DB, settle_cpu_precision

        side = GATE_CROP if self.model.scale == 1 else GATE_CROP // 2
        height, width = pixels.shape[:2]
        top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
        crop = pixels[top : top + side, left : left + side].transpose(2, 0, 1)
        tensor = torch.from_numpy(crop.copy()).unsqueeze(0).to(self.model.device, self.model.dtype)
        settle_cpu_precision(self.model, run, tensor, _TRUTH_PSNR_DB.get(self.task, DEFAULT_TRUTH_PSNR_DB))

    def _run(self, fn: Callable[[Any], Any], pixels: Any, on_tile: TileProgress | None,
             finish: Callable[[Any], Any] | None = None) -> Any:
        from photofix.engine.tiling import run_tiled

        tile = self.tile
        if tile is None:
            tile = self._auto.side(fn, pixels.shape[2], *pixels.shape[:2])
        self.last_tile = tile
        batch = self.tile_batch or self._auto.batch(fn, pixels.shape[2], tile or max(pixels.shape[:2]))
        return run_tiled(
            fn,
            pixels,
            scale=self.model.scale,
            tile=tile,
            overlap=self.tile_overlap,
            multiple_of=self.model.tile_grid,
            least_side=self.min_tile,
            device=self.model.device,
            dtype=self.model.dtype,
            progress=on_tile,
            finish=finish,
            batch=batch,
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

        if model.gate_pending:
            self._settle_precision(run, pixels)
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
        if self.tile is None:  # --tile auto: say what it chose for this photo
            details["tile"] = "whole image" if self.last_tile >= max(pixels.shape[:2]) else self.last_tile
        details["precision"], details["backend"] = model.precision, model.backend
        if model.gate_verdict is not None:
            details["precision_gate"] = model.gate_verdict.describe()
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
        for (_, processor), (_, following) in zip(self.steps, self.steps[1:]):
            # the next step computes on float pixels, unless it keeps finished ones as they are
            # (faces pastes into them: an x4 upscale before it keeps its 8-bit canvas)
            if hasattr(processor, "finished_output") and not getattr(following, "accepts_finished", False):
                processor.finished_output = False

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


class GreyAware:
    """The task's colour model for colour photos, its one-channel model for grey ones.

    The grey model loads at the first grey photo, so a folder of colour photos never fetches it.
    """

    def __init__(self, colour: Restorer, load_grey: Callable[[], Restorer],
                 unavailable: Callable[[Exception], None] | None = None) -> None:
        self.colour = colour
        self._load_grey = load_grey
        self._unavailable = unavailable  # told once when the grey model cannot be had
        self._grey: Restorer | None = None
        self._finished = True

    @property
    def label(self) -> str:
        return self.colour.label

    @property
    def finished_output(self) -> bool:
        return self._finished

    @finished_output.setter
    def finished_output(self, value: bool) -> None:
        self._finished = value
        self.colour.finished_output = value
        if self._grey is not None:
            self._grey.finished_output = value

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        if image.pixels.shape[2] != 1:
            return self.colour.restore(image, on_tile)
        if self._grey is None:
            try:
                self._grey = self._load_grey()
            except WeightsError as error:  # e.g. offline and never fetched: the colour model still helps
                self._grey = self.colour
                if self._unavailable is not None:
                    self._unavailable(error)
            self._grey.finished_output = self._finished
        restored, details = self._grey.restore(image, on_tile)
        return restored, {**details, "model": self._grey.label}


def restore_image(image: Image, restorer: Restorer) -> Image:
    """Convenience for library users: the restored image only."""
    return restorer.restore(image)[0]


__all__ = [
    "Chain",
    "GreyAware",
    "Restorer",
    "TaskParams",
    "restore_image",
]
