"""The library's front door: build a task's processor, or restore files and folders.

``make_processor`` plans and loads one task (or a chain) and returns an object with
``restore(image) -> (image, details)``. ``restore_path`` is the engine the command line
runs: discovery and output mapping, resume by provenance record, the memory guard,
atomic writes with XMP provenance and ``OUTPUT/.photofix/runs.jsonl``; it yields one
``FileResult`` per file, here or (``engine="ray"``) on a Ray cluster. Neither prints:
messages go to ``on_event(kind, text)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from photofix import imageio, settings
from photofix.errors import ModelLoadError, UsageError
from photofix.run.jobs import FileResult, ImageProcessor, Job
from photofix.run.ray_engine import RayEngine
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

__all__ = ["FileResult", "Job", "Processor", "RayEngine", "make_processor", "restore_path", "plan_steps", "default_jobs"]


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
    backend: str = "auto",
    on_event: Notify = ignore,
    **options: Any,
) -> Processor:
    """Plan and load ``task`` with its ``options`` (e.g. ``sigma=15``), or a chain given as ``steps``.

    ``steps`` is the ``--steps`` language (``"denoise:sigma=15,upscale:scale=2"``), a preset
    name (``"old-photo"``) or parsed ``StepRequest``s. Raises UsageError for a bad option or
    combination, WeightsError (and subclasses) when a model cannot be had.
    """
    run = _run_settings(model, weights, tier, device, precision, tile, tile_overlap, offline, threads, backend)
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
    backend: str = "auto",
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
    engine: str | RayEngine = "local",
    **options: Any,
) -> Iterator[FileResult]:
    """Restore a file, a folder (``recursive`` for the tree), a glob or ``-`` into ``output``; one result per file.

    Everything is checked before the first file (paths, options, models); a bad file then
    fails alone (``status == "failed"``, ``reason`` says why). Outputs already made the same
    way are skipped unless ``force``. ``format`` is a Pillow format name (PNG, JPEG, WEBP,
    TIFF, BMP). The model loads at the first file that needs it.

    ``engine="ray"`` (or a ``RayEngine`` naming the cluster and its workers) runs the files on
    Ray, results in the order they finish; input and output may then also be URIs
    (``s3://``, ``gs://``, ``file://``). Without Ray installed that is a UsageError.
    """
    from photofix.run.batch import FileOptions, remove_stale_temps, run_jobs
    from photofix.review.compare import preview_path
    from photofix.run.jobs import PassedOver, check_output_folders, plan_jobs
    from photofix.run import remote

    cluster = _cluster(engine, os.fspath(input), os.fspath(output))
    run = replace(_run_settings(model, weights, tier, device, precision, tile, tile_overlap, offline, threads, backend),
                  dry_run=dry_run)
    requests = _requests(task, steps, options)
    input, output = os.fspath(input), os.fspath(output)
    places = None
    if remote.is_uri(input) or remote.is_uri(output):
        if cluster is None:
            raise UsageError(f"{input if remote.is_uri(input) else output}: URIs are read and written by the ray engine; "
                             "add --engine ray, or give local paths")
        jobs_planned, places = remote.plan_remote_jobs(input, output, recursive=recursive, output_format=format,
                                                       suffix=suffix, include=include, exclude=exclude)
    else:
        def note_passed_over(passed: PassedOver) -> None:
            if passed.describe():
                on_event("note", f"{input}: passed over {passed.describe()}")

        jobs_planned = plan_jobs(input, output, recursive=recursive, output_format=format, suffix=suffix,
                                 include=include, exclude=exclude, on_passed_over=note_passed_over)
    planned = plan_steps(requests, run, on_event)
    if not dry_run and places is None:
        check_output_folders(jobs_planned)
        outputs = [job.output for job in jobs_planned if job.output is not None]
        removed = remove_stale_temps([*outputs, *map(preview_path, outputs)])
        if removed:
            on_event("note", f"removed {len(removed)} temporary file(s) left by an earlier run that was killed")
    with ExitStack() as uploads:
        if places is None:
            history = _run_log(output, jobs_planned, on_event)
        else:
            history = uploads.enter_context(remote.remote_run_log(output))  # uploaded when the run ends
            _note_log_warnings(history, on_event)
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
        if cluster is None:
            yield from run_jobs(jobs_planned, lambda: _build(planned), files, on_file_start=on_file_start,
                                on_tile=on_tile, fail_fast=fail_fast,
                                jobs_in_flight=jobs or default_jobs(run, uses_model=_uses_model(planned)))
            return
        from photofix.run.ray_engine import run_on_ray

        build = partial(_build_on_worker, tuple(requests), _for_workers(run), tuple(p.step for p in planned))
        yield from run_on_ray(jobs_planned, build, files, cluster, places=places, fail_fast=fail_fast,
                              written_beside=preview_path if preview else None, on_file_start=on_file_start)


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


def default_jobs(run: RunSettings, *, uses_model: bool = True) -> int:
    """Overlap I/O only when cores are left over: on a CPU run using every core it measured no faster
    (benchmarks/bench_jobs_overlap.py), and the reading threads slowed the model.

    A run with no network (classical methods) runs on the CPU: asking which device is there would
    import torch, seconds a one-file run of a classical method never otherwise pays.
    """
    threads = settings.threads(run.threads)
    spare_cores = threads is not None and threads < (os.cpu_count() or 1)
    if not uses_model:
        return 2 if spare_cores else 1
    from photofix.engine.models import resolve_device

    return 2 if resolve_device(run.device).type != "cpu" or spare_cores else 1


def _uses_model(planned: Sequence[PlannedStep]) -> bool:
    return any(p.step.model != "classical" for p in planned)


# --- helpers ---------------------------------------------------------------------------------


def _run_settings(model: str | None, weights: str | os.PathLike[str] | None, tier: str | None, device: str,
                  precision: str, tile: str | int, tile_overlap: int | None, offline: bool | None,
                  threads: int | None, backend: str = "auto") -> RunSettings:
    if tier is not None and tier not in ("fast", "balanced", "best"):
        raise UsageError(f"tier {tier!r}: choose fast, balanced or best")
    return RunSettings(model=model, weights=Path(weights) if weights is not None else None, tier=tier, device=device,
                       precision=precision, tile=tile, tile_overlap=tile_overlap, offline=offline, threads=threads,
                       backend=backend)


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
    _note_log_warnings(log, notify)
    return log


def _note_log_warnings(log: Any, notify: Notify) -> None:
    log.records()
    for warning in log.warnings:
        notify("note", warning)


# --- the ray engine ----------------------------------------------------------------------------


def _cluster(engine: str | RayEngine, input: str, output: str) -> RayEngine | None:
    """None for a local run; for Ray, checked first: without Ray installed nothing else is looked at."""
    if engine == "local":
        return None
    if engine != "ray" and not isinstance(engine, RayEngine):
        raise UsageError(f"engine {engine!r}: choose local or ray")
    from photofix.run.ray_engine import require_ray

    require_ray()
    if "-" in (input, output):
        raise UsageError("the ray engine reads and writes files; stdin/stdout ('-') runs with the local engine")
    return engine if isinstance(engine, RayEngine) else RayEngine()


def _for_workers(run: RunSettings) -> RunSettings:
    """``run`` as a worker elsewhere must read it: a weights path that does not depend on the working
    folder, and offline decided here rather than by each worker's environment."""
    weights = run.weights.absolute() if run.weights is not None else None
    return replace(run, weights=weights, offline=settings.offline(run.offline))


def _build_on_worker(requests: Sequence[StepRequest], run: RunSettings, expected: tuple[Step, ...],
                     threads: int | None) -> ImageProcessor:
    """A Ray actor's processor: planned again there (nothing to pickle but the request), then
    checked to be the very steps the driver recorded, so every output's provenance is true."""
    planned = plan_steps(requests, replace(run, threads=run.threads or threads))
    chosen = tuple(p.step for p in planned)
    if chosen != expected:
        raise ModelLoadError(
            f"a Ray worker chose {[(s.task, s.model, s.weights_sha256) for s in chosen]}, the driver "
            f"{[(s.task, s.model, s.weights_sha256) for s in expected]}; install the same photofix and weights "
            "on every node, or name the model with --model/--weights")
    return _build(planned)


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
