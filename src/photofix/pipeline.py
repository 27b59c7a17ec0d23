"""Restore one image or a whole folder; return per-file results, never print.

``plan_jobs`` maps an input spec (file, folder, glob, ``-``) to (input, output)
pairs; ``Restorer`` holds one loaded model and restores images; ``Chain`` runs
several processors in turn on the image in memory. ``batch.run_jobs`` processes
the pairs and yields a ``FileResult`` per file for the CLI to render.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from . import adapt, imageio
from .compare import PREVIEW_SUFFIX
from .errors import NonFiniteOutput, UsageError
from .imageio import Image

if TYPE_CHECKING:
    from .manifest import Manifest, ModelEntry
    from .models import LoadedModel

STDIO = "-"
DONE, SKIPPED, FAILED, PLANNED = "done", "skipped", "failed", "planned"
_EXTENSION_FOR_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
_GLOB_CHARS = set("*?[")


TileProgress = Callable[[int, int], None]


class ImageProcessor(Protocol):
    """What ``run_jobs`` needs of a task's model(s): Restorer here, others in ``restorers``."""

    @property
    def label(self) -> str: ...

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]: ...


@dataclass
class Job:
    """One input and where its output goes; ``None`` means stdin/stdout."""

    input: Path | None
    output: Path | None
    problem: str | None = None  # found when planning: the job fails with this reason, nothing is read or written


@dataclass
class FileResult:
    """What happened to one file: feeds the progress bar, the summary and ``--json``."""

    input: str
    output: str | None
    status: str
    reason: str | None = None
    seconds: float = 0.0
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    trace: str | None = field(default=None, repr=False, compare=False)  # a failure's traceback, for PHOTOFIX_DEBUG

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, trace=None))
        del data["trace"]
        return data


# --- discovery and output mapping ------------------------------------------------


def _is_image_file(path: Path) -> bool:
    """An image by its extension; broken links and unreadable entries count, so they are reported, not skipped."""
    if path.name.lower().endswith(PREVIEW_SUFFIX):
        return False  # ``--preview`` output beside an earlier run's output, not a photo to restore
    return path.suffix.lower() in imageio.SUPPORTED_EXTENSIONS and not path.is_dir()


def _output_name(source: Path, fmt: str | None, suffix: str) -> str:
    extension = _EXTENSION_FOR_FORMAT[fmt] if fmt else source.suffix
    return f"{source.stem}{suffix}{extension}"


def _discover(spec: str, recursive: bool) -> tuple[list[Path], Path | None]:
    """Input files and the base folder their relative paths are taken from (None: single file)."""
    path = Path(spec)
    if path.is_dir():
        walker = path.rglob("*") if recursive else path.iterdir()
        return sorted(p for p in walker if _is_image_file(p)), path
    if path.is_file() or path.is_symlink():
        return [path], None
    if _GLOB_CHARS & set(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=recursive) if _is_image_file(Path(p)))
        base = Path(os.path.commonpath([str(p.parent) for p in matches])) if matches else None
        return matches, base
    raise UsageError(f"{spec}: no such file or folder; check the path")


def plan_jobs(
    input_spec: str,
    output_spec: str,
    *,
    recursive: bool = False,
    output_format: str | None = None,
    suffix: str = "",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[Job]:
    """Map the command line's INPUT and OUTPUT to jobs; raise UsageError for impossible combinations.

    Refused: OUTPUT equal to the input folder, or inside it with -r, unless ``suffix`` keeps
    outputs apart (suffixed files there are then earlier outputs, not inputs); two inputs
    mapped to one output. A job whose output is another input gets a ``problem`` and fails alone.

    ``include``/``exclude`` are globs on each input's path relative to INPUT (``/``-separated);
    a pattern without ``/`` is matched against the file name alone.
    """
    if input_spec == STDIO:
        out = None if output_spec == STDIO else Path(output_spec)
        if out is not None and out.is_dir():
            raise UsageError(f"{output_spec}: stdin has no file name; give an output file, not a folder")
        return [Job(None, out)]

    inputs, base = _discover(input_spec, recursive)
    if include or exclude:
        inputs = [p for p in inputs if _selected(p, base, include, exclude)]
    if not inputs and (include or exclude):
        raise UsageError(f"{input_spec}: no images match the --include/--exclude patterns")
    if not inputs:
        hint = " (add -r to search sub-folders)" if Path(input_spec).is_dir() and not recursive else ""
        raise UsageError(f"{input_spec}: no images found{hint}; photofix reads {', '.join(sorted(imageio.SUPPORTED_EXTENSIONS))}")

    output = Path(output_spec)
    single = base is None and len(inputs) == 1
    if output_spec == STDIO:
        if not single:
            raise UsageError("output '-' (stdout) takes a single input image, not a folder or glob")
        return [Job(inputs[0], None)]
    if single and not (output.is_dir() or output_spec.endswith(("/", os.sep))):
        return [Job(inputs[0], output)]
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output_spec}: is a file, but the input is a folder or glob; give a folder as OUTPUT")

    places = _Places()
    real_output = places.folder(output)
    real_base = places.folder(base) if base is not None else None
    in_place = real_base is not None and real_output == real_base
    if in_place and not suffix:
        raise UsageError(
            f"{output_spec}: OUTPUT is the input folder, so outputs would replace the originals; "
            "choose another folder or add --suffix (e.g. --suffix _fixed)"
        )
    # OUTPUT inside the input tree: the photos already in it are inputs like any other, so without
    # a suffix they could not be told from outputs (a re-run would take its outputs for photos,
    # and --force would write one input's result over another original).
    nested = real_base is not None and not in_place and _is_within(real_output, real_base)
    if nested and not suffix and (recursive or any(_is_within(places.entry(p), real_output) for p in inputs)):
        raise UsageError(
            f"{output_spec}: OUTPUT is inside the input folder {base}, so the photos already in it would be "
            f"mixed up with the outputs; choose a folder outside {base} or add --suffix (e.g. --suffix _fixed)"
        )
    jobs = []
    for source in inputs:
        if (suffix and (in_place or nested) and source.stem.endswith(suffix)
                and _is_within(places.entry(source), real_output)):
            continue  # an earlier run's suffixed output inside OUTPUT, not a photo to restore
        relative = source.relative_to(base) if base is not None else Path(source.name)
        jobs.append(Job(source, output / relative.parent / _output_name(source, output_format, suffix)))
    _refuse_collisions(jobs, output_format, places)
    _mark_overwritten_inputs(jobs, places)
    return jobs


class _Places:
    """Where paths really are, symlinks resolved; each folder resolved once (many files share few folders)."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def folder(self, path: Path) -> str:
        key = os.fspath(path)
        if key not in self._folders:
            try:
                self._folders[key] = os.path.normcase(os.path.realpath(path))
            except (OSError, RuntimeError, ValueError):  # realpath leaves a looping link as it is; be sure
                self._folders[key] = os.path.normcase(os.path.abspath(path))
        return self._folders[key]

    def entry(self, path: Path) -> str:
        """The directory entry ``path`` (its folder resolved, its own name kept): what writing it replaces."""
        return os.path.join(self.folder(path.parent), os.path.normcase(path.name))

    def target(self, path: Path) -> str:
        """What reading ``path`` reads: a symlink's target."""
        return self.folder(path) if path.is_symlink() else self.entry(path)


def _is_within(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)


def _refuse_collisions(jobs: Sequence[Job], output_format: str | None, places: _Places) -> None:
    """Two inputs mapped to one output would overwrite each other (and redo both on every re-run)."""
    claimed: dict[str, Job] = {}
    for job in jobs:
        assert job.output is not None
        first = claimed.setdefault(places.entry(job.output), job)
        if first is job:
            continue
        hint = ("drop --format so each keeps its own extension, or leave one out with --exclude" if output_format
                else "rename one of them or leave one out with --exclude")
        raise UsageError(f"{first.input} and {job.input} would both be written to {job.output}; {hint}")


def _mark_overwritten_inputs(jobs: Sequence[Job], places: _Places) -> None:
    """A job whose output is an input of this run (the file itself, or a link's target) fails alone.

    Writing it would replace an original, before or after it is read. Only this job is wrong,
    so only it fails (its line names both files); the others run.
    """
    inputs: dict[str, Path] = {}
    for job in jobs:
        assert job.input is not None
        inputs[places.entry(job.input)] = job.input
        inputs.setdefault(places.target(job.input), job.input)
    for job in jobs:
        assert job.output is not None
        other = inputs.get(places.entry(job.output))
        if other is not None:
            what = "the input itself" if other == job.input else f"{other}, another input of this run"
            job.problem = (f"its output {job.output} would overwrite {what}; "
                           "choose an OUTPUT folder outside the input folder or add --suffix")


def check_output_folders(jobs: Sequence[Job]) -> None:
    """UsageError, before the first file, for an output folder that cannot be created or written.

    A missing folder is judged by its nearest existing parent: it must be a folder (not a file
    or a broken link) that this user may write to.
    """
    seen: set[Path] = set()
    for job in jobs:
        if job.output is None or job.problem is not None or job.output.parent in seen:
            continue
        folder = job.output.parent
        seen.add(folder)
        existing = folder
        while not existing.is_dir():
            if existing.exists() or existing.is_symlink():
                raise UsageError(f"{folder}: cannot create the output folder, {existing} is not a folder; "
                                 "choose another OUTPUT")
            if existing.parent == existing:
                break
            existing = existing.parent
        if not os.access(existing, os.W_OK | os.X_OK):
            where = "" if existing == folder else f" (its parent {existing} is not writable)"
            raise UsageError(f"{folder}: the output folder is not writable{where}; "
                             "check its permissions or choose another OUTPUT")


def _selected(path: Path, base: Path | None, include: Sequence[str], exclude: Sequence[str]) -> bool:
    relative = (path.relative_to(base) if base is not None else Path(path.name)).as_posix()

    def matches(pattern: str) -> bool:
        return fnmatch.fnmatchcase(relative if "/" in pattern else path.name, pattern)

    if include and not any(matches(p) for p in include):
        return False
    return not any(matches(p) for p in exclude)


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
        from .tiling import auto_tile_size, measure_bytes_per_pixel

        per_pixel = measure_bytes_per_pixel(fn, channels, self.model.device)
        return max(auto_tile_size(self.model.device, per_pixel, align=self.model.tile_grid), self.min_tile)

    def _run(self, fn: Callable[[Any], Any], pixels: Any, on_tile: TileProgress | None,
             finish: Callable[[Any], Any] | None = None) -> Any:
        from .tiling import run_tiled

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


# --- choosing the model ------------------------------------------------------------


def choose_entry(
    manifest: Manifest,
    task: str,
    model_id: str | None,
    tier: str | None,
    scale: float | None = None,
    kind: str | None = None,
    on_cpu: bool = False,
) -> ModelEntry:
    """The manifest entry for ``--model``, else the task's default for the tier.

    A requested ``scale`` prefers a model of that native scale in the same tier
    (no resampling needed); otherwise the default runs and its output is resampled.
    A ``kind`` (deblur: motion or defocus) keeps to models trained for it. With no
    tier, ``on_cpu`` uses the task's CPU default tier. Only models licensed for
    commercial use are ever chosen for the user.
    """
    if model_id:
        entry = manifest.get(model_id)
        if entry.task != task:
            raise UsageError(f"model {model_id!r} is for {entry.task}, not {task}; see 'photofix models list --task {task}'")
        return entry
    candidates = [e for e in manifest.for_task(task) if kind is None or e.params.get("kind") == kind]
    if task in manifest.defaults:
        default = manifest.default_for(task, tier, on_cpu=on_cpu)
        if default in candidates:
            if scale is not None and default.params.get("scale") != scale:
                for entry in candidates:
                    if entry.tier == default.tier and entry.params.get("scale") == scale:
                        return entry
            return default
    free = [e for e in candidates if e.commercial_use]
    if free:
        return next((e for e in free if e.tier == tier), free[0])
    what = f"{kind} {task}" if kind else task
    choices = ", ".join(f"{e.id} ({e.license})" for e in candidates) or "none yet"
    raise UsageError(f"{what} has no model licensed for commercial use, so none is chosen for you; pick one with --model: {choices}")


def default_overlap(manifest: Manifest, arch: str) -> tuple[int, int]:
    """Overlap and minimum tile for a ``--weights`` file: the manifest's for that architecture, else 32 px and 0."""
    same = [e for e in manifest.entries if e.arch == arch]
    if not same:
        return 32, 0
    return max(e.tile_overlap for e in same), max(e.min_tile for e in same)
