"""The library's front door: build a task's processor, or restore files and folders.

``make_processor`` plans and loads one task (or a chain) and returns an object with
``restore(image) -> (image, details)``. ``restore_path`` is the engine the command line
runs: discovery and output mapping, resume by provenance record, the memory guard,
atomic writes with XMP provenance and ``OUTPUT/.photofix/runs.jsonl``; it yields one
``FileResult`` per file. Neither prints: messages go to ``on_event(kind, text)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from photofix import imageio, settings
from photofix.errors import UsageError
from photofix.run.jobs import FileResult, ImageProcessor, Job
from photofix.run.provenance import Recipe, Step
from photofix.tasks import (
    PRESETS,
    PlannedStep,
    RunSettings,
    StepRequest,
    get_task,
    ignore,
    parse_steps,
    preset_steps,
)
from photofix.tasks.spec import Notify

__all__ = ["FileResult", "Job", "Processor", "make_processor", "restore_path", "plan_steps", "default_jobs"]


@dataclass(frozen=True)
class Processor:
    """A task (or chain) ready to run: ``restore(image)`` returns the restored image and details."""

    steps: tuple[Step, ...]  # what runs, as provenance records it
    engine: ImageProcessor

    @property
    def label(self) -> str:
        return self.engine.label

    def restore(self, image: imageio.Image, on_tile: Callable[[int, int], None] | None = None) -> tuple[imageio.Image, dict[str, Any]]:
        return self.engine.restore(image, on_tile)


def make_processor(
    task: str | None = None,
    *,
    steps: str | Sequence[StepRequest] | None = None,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    tier: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    tile: str | int = "auto",
    tile_overlap: int | None = None,
    offline: bool | None = None,
    threads: int | None = None,
    on_event: Notify = ignore,
    **options: Any,
) -> Processor:
    """Plan and load ``task`` with its ``options`` (e.g. ``sigma=15``), or a chain given as ``steps``.

    ``steps`` is the ``--steps`` language (``"denoise:sigma=15,upscale:scale=2"``), a preset
    name (``"old-photo"``) or parsed ``StepRequest``s. Raises UsageError for a bad option or
    combination, WeightsError (and subclasses) when a model cannot be had.
    """
    run = _run_settings(model, weights, tier, device, precision, tile, tile_overlap, offline, threads)
    planned = plan_steps(_requests(task, steps, options), run, on_event)
    return Processor(tuple(p.step for p in planned), _build(planned))


def restore_path(
    task: str | None,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    steps: str | Sequence[StepRequest] | None = None,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    tier: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    tile: str | int = "auto",
    tile_overlap: int | None = None,
    offline: bool | None = None,
    threads: int | None = None,
    recursive: bool = False,
    format: str | None = None,
    suffix: str = "",
    quality: int | None = None,
    force: bool = False,
    dry_run: bool = False,
    preview: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    fail_fast: bool = False,
    max_pixels: int | None = imageio.DEFAULT_MAX_PIXELS,
    memory_limit: imageio.MemoryLimit = imageio.memory.AUTO,
    jobs: int | None = None,
    read_stdin: Callable[[], bytes] | None = None,
    write_stdout: Callable[[bytes], None] | None = None,
    on_event: Notify = ignore,
    on_start: Callable[[int], None] | None = None,
    on_file_start: Callable[[Job], None] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Iterator[FileResult]:
    """Restore a file, a folder (``recursive`` for the tree), a glob or ``-`` into ``output``; one result per file.

    Everything is checked before the first file (paths, options, models); a bad file then
    fails alone (``status == "failed"``, ``reason`` says why). Outputs already made the same
    way are skipped unless ``force``. ``format`` is a Pillow format name (PNG, JPEG, WEBP,
    TIFF, BMP). The model loads at the first file that needs it.
    """
    from photofix.run.batch import FileOptions, remove_stale_temps, run_jobs
    from photofix.review.compare import preview_path
    from photofix.run.jobs import check_output_folders, plan_jobs

    run = _run_settings(model, weights, tier, device, precision, tile, tile_overlap, offline, threads)
    requests = _requests(task, steps, options)
    input, output = os.fspath(input), os.fspath(output)
    jobs_planned = plan_jobs(input, output, recursive=recursive, output_format=format, suffix=suffix,
                             include=include, exclude=exclude)
    planned = plan_steps(requests, run, on_event)
    if not dry_run:
        check_output_folders(jobs_planned)
        outputs = [job.output for job in jobs_planned if job.output is not None]
        removed = remove_stale_temps([*outputs, *map(preview_path, outputs)])
        if removed:
            on_event("note", f"removed {len(removed)} temporary file(s) left by an earlier run that was killed")
    history = _run_log(output, jobs_planned, on_event)
    if on_start is not None:
        on_start(len(jobs_planned))
    files = FileOptions(
        force=force,
        dry_run=dry_run,
        output_format=format,
        quality=quality,
        max_pixels=max_pixels,
        memory_limit=memory_limit,
        output_scale=_output_scale(planned),
        read_stdin=read_stdin,
        write_stdout=write_stdout,
        history=history,
        recipe=Recipe(tuple(p.step for p in planned), output_format=format, quality=quality),
        after_write=_preview_writer() if preview else None,
    )
    yield from run_jobs(
        jobs_planned,
        lambda: _build(planned),
        files,
        on_file_start=on_file_start,
        on_tile=on_tile,
        fail_fast=fail_fast,
        jobs_in_flight=jobs or default_jobs(run),
    )


def plan_steps(requests: Sequence[StepRequest], run: RunSettings, notify: Notify = ignore) -> list[PlannedStep]:
    """Each step's model chosen and recorded (nothing loaded); a step's own model or weights win over ``run``'s."""
    chain = len(requests) > 1
    planned = []
    for number, request in enumerate(requests, 1):
        spec = get_task(request.task)
        where = f"step {number} (" if chain else ""
        options = spec.make_options(request.task_options, where=where)
        step_run = run
        if request.model is not None or request.weights is not None:
            step_run = replace(run, model=request.model, weights=request.weights)
        planned.append(spec.plan(step_run, options, notify))
    return planned


def default_jobs(run: RunSettings) -> int:
    """Overlap I/O only when cores are left over: on a CPU run using every core it measured no faster
    (benchmarks/bench_jobs_overlap.py), and the reading threads slowed the model."""
    from photofix.engine.models import resolve_device

    threads = settings.threads(run.threads)
    spare_cores = threads is not None and threads < (os.cpu_count() or 1)
    return 2 if resolve_device(run.device).type != "cpu" or spare_cores else 1


# --- helpers ---------------------------------------------------------------------------------


def _run_settings(model: str | None, weights: str | os.PathLike[str] | None, tier: str | None, device: str,
                  precision: str, tile: str | int, tile_overlap: int | None, offline: bool | None,
                  threads: int | None) -> RunSettings:
    if tier is not None and tier not in ("fast", "balanced", "best"):
        raise UsageError(f"tier {tier!r}: choose fast, balanced or best")
    return RunSettings(model=model, weights=Path(weights) if weights is not None else None, tier=tier, device=device,
                       precision=precision, tile=tile, tile_overlap=tile_overlap, offline=offline, threads=threads)


def _requests(task: str | None, steps: str | Sequence[StepRequest] | None, options: Mapping[str, Any]) -> list[StepRequest]:
    if (task is None) == (steps is None):
        raise UsageError("give a task (e.g. 'denoise') or a chain of steps (steps='denoise,upscale:scale=2'), one of them")
    if steps is None:
        return [StepRequest(str(task), dict(options))]
    if options:
        raise UsageError(f"options {', '.join(options)} apply to one task; in a chain give them per step ('task:key=value')")
    if isinstance(steps, str):
        return preset_steps(steps) if steps in PRESETS else parse_steps(steps)
    return list(steps)


def _build(planned: Sequence[PlannedStep]) -> ImageProcessor:
    from photofix.tasks.restore import Chain

    if len(planned) == 1:
        return planned[0].build()
    return Chain([(p.step.task, p.build()) for p in planned])


def _output_scale(planned: Sequence[PlannedStep]) -> float:
    # an upscale model is x4 whatever the final scale: its canvas sets the peak
    scales = [max(4.0, p.step.params.get("scale") or 4.0) for p in planned if p.step.task == "upscale"]
    return max(scales, default=1.0)


def _run_log(output: str, jobs: Sequence[Job], notify: Notify) -> Any:
    """``OUTPUT/.photofix/runs.jsonl`` for a folder run, the output file's folder for one file, none for stdout.

    Read now, so a damaged log is reported once, before the first file.
    """
    from photofix.run.provenance import RunLog

    if output == "-":
        return None
    log = RunLog(Path(output).parent if len(jobs) == 1 and jobs[0].output == Path(output) else Path(output))
    log.records()
    for warning in log.warnings:
        notify("note", warning)
    return log


def _preview_writer() -> Callable[[Any, Any, Any], None]:
    """``preview``: a small before/after JPEG beside each output, NAME.preview.jpg."""
    from photofix._files import write_file
    from photofix.review.compare import preview, preview_path

    def write(job: Any, before: Any, after: Any) -> None:
        from PIL import Image as PILImage

        if job.output is None:
            return
        target = preview_path(job.output)
        picture = PILImage.fromarray(preview(before, after))
        write_file(target, lambda fp: picture.save(fp, format="JPEG", quality=85))

    return write
