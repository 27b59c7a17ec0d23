"""The ``photofix`` command: one sub-command per task, plus ``models``.

Commands are thin: they turn options into library calls and results into text
and exit codes. torch is imported only inside commands that run a model, so
``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import __version__, settings
from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, PhotofixError, UsageError
from .options import Common, task_command
from .render import Reporter, reported_errors

app = typer.Typer(
    name="photofix",
    help=(
        "Restore photos with pretrained networks, one file or whole folders.\n\n"
        "Examples:\n\n"
        "  photofix denoise scan.jpg clean.jpg\n\n"
        "  photofix upscale -r photos/ big/ --suffix _x4\n\n"
        "  photofix models list\n\n"
        "Exit codes: 0 done (or skipped), 1 some files failed, 2 usage error, "
        "3 weights/model unavailable, 130 interrupted. PHOTOFIX_DEBUG=1 shows tracebacks."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"photofix {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Restore photos with pretrained networks."""


def run_task(
    input: str,
    output: str,
    common: Common,
    steps: list[tuple[str, Common, dict[str, Any]]],
) -> None:
    """Shared body of every task command and of ``restore``: plan the steps, then run them over the files.

    ``steps`` holds (task, the options shared by the run with this step's model/weights, the
    task's own options); one step is a task command, several a chain.
    """
    global _interrupt_reported
    reporter = Reporter(json_mode=common.json, quiet=common.quiet, verbose=common.verbose)
    if common.quiet or common.json:
        # huggingface_hub reads this when it is first imported, which is at the first download.
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if common.json and output == "-":
        reporter.error("--json and OUTPUT '-' both use stdout; write the image to a file or drop --json")
        raise typer.Exit(EXIT_USAGE)
    if common.model and common.weights:
        reporter.error("--model and --weights both choose the model; give one of them")
        raise typer.Exit(EXIT_USAGE)

    _interrupt_on_sigterm()
    try:
        summary, interrupted = _run_files(input, output, common, steps, reporter)
    except KeyboardInterrupt:  # while loading code or planning, before the first file
        summary, interrupted = {}, True
    if interrupted:
        _ignore_further_signals()
        reporter.error("interrupted; finished outputs are kept, nothing half-written was left; run the same command to resume")
        _interrupt_reported = True
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_SOME_FAILED if summary["failed"] else EXIT_OK)


def _run_files(
    input: str, output: str, common: Common, steps: list[tuple[str, Common, dict[str, Any]]], reporter: Reporter
) -> tuple[dict[str, Any], bool]:
    """Plan, check the output folders, then process every file: (the summary, whether it was interrupted)."""
    from ..batch import remove_stale_temps, run_jobs
    from ..compare import preview_path
    from ..pipeline import Chain, check_output_folders, plan_jobs
    from ..provenance import Recipe
    from .processors import plan_step

    with reported_errors(reporter):
        fmt = common.format.pillow_name if common.format else None
        jobs = plan_jobs(input, output, recursive=common.recursive, output_format=fmt, suffix=common.suffix,
                         include=common.include or (), exclude=common.exclude or ())
        planned = [plan_step(task, step_common, options, reporter) for task, step_common, options in steps]
        if not common.dry_run:
            check_output_folders(jobs)
            outputs = [job.output for job in jobs if job.output is not None]
            removed = remove_stale_temps([*outputs, *map(preview_path, outputs)])
            if removed:
                reporter.note(f"removed {len(removed)} temporary file(s) left by an earlier run that was killed")
        recipe = Recipe(tuple(p.step for p in planned), output_format=fmt, quality=common.quality)

        def build() -> Any:
            if len(planned) == 1:
                return planned[0].build()
            return Chain([(p.step.task, p.build()) for p in planned])

        reporter.start(len(jobs))
        interrupted = False
        try:
            for result in run_jobs(
                jobs,
                build,
                force=common.force,
                dry_run=common.dry_run,
                output_format=fmt,
                quality=common.quality,
                max_pixels=common.max_pixels or None,
                memory_limit=common.memory_limit,
                # an upscale model is x4 whatever the final --scale: its canvas sets the peak
                output_scale=max((max(4.0, p.step.params.get("scale") or 4.0) for p in planned if p.step.task == "upscale"),
                                 default=1.0),
                read_stdin=sys.stdin.buffer.read,
                write_stdout=_write_stdout,
                on_file_start=reporter.file_started,
                on_tile=reporter.tile_done,
                fail_fast=common.fail_fast,
                history=_run_log(output, jobs, reporter),
                recipe=recipe,
                after_write=_preview_writer() if common.preview else None,
                jobs_in_flight=common.jobs or _default_jobs(common),
            ):
                reporter.result(result)
        except KeyboardInterrupt:
            _ignore_further_signals()
            interrupted = True
        except PhotofixError:
            reporter.finish()
            raise
        summary = reporter.finish(interrupted=interrupted)
        left = len(jobs) - sum(summary[k] for k in ("done", "skipped", "failed", "planned"))
        if common.fail_fast and summary["failed"] and left > 0:
            reporter.error(f"stopped at the first failure (--fail-fast); {left} file(s) not processed")
    return summary, interrupted


def _default_jobs(common: Common) -> int:
    """Overlap I/O only when cores are left over: on a CPU run using every core it measured no faster
    (benchmarks/bench_jobs_overlap.py), and the reading threads slowed the model."""
    from ..models import resolve_device

    threads = settings.threads(common.threads)
    spare_cores = threads is not None and threads < (os.cpu_count() or 1)
    return 2 if resolve_device(common.device).type != "cpu" or spare_cores else 1


def _run_log(output: str, jobs: list[Any], reporter: Reporter) -> Any:
    """``OUTPUT/.photofix/runs.jsonl`` for a folder run, the output file's folder for one file, none for stdout.

    Read now, so a damaged log is reported once, before the first file.
    """
    from ..provenance import RunLog

    if output == "-":
        return None
    log = RunLog(Path(output).parent if len(jobs) == 1 and jobs[0].output == Path(output) else Path(output))
    log.records()
    for warning in log.warnings:
        reporter.note(warning)
    return log


def _preview_writer() -> Callable[[Any, Any, Any], None]:
    """``--preview``: a small before/after JPEG beside each output, NAME.preview.jpg."""
    from ..compare import preview, preview_path
    from ..imageio import atomic

    def write(job: Any, before: Any, after: Any) -> None:
        from PIL import Image as PILImage

        if job.output is None:
            return
        target = preview_path(job.output)
        picture = PILImage.fromarray(preview(before, after))
        atomic.write_file(target, lambda fp: picture.save(fp, format="JPEG", quality=85))

    return write


# After the first interrupt, later ones are ignored this long: the run is stopping (the file under
# way is finished or its temp file removed), and a second Ctrl-C must not cut that short.
_GRACE_SECONDS = 5.0
_first_interrupt: float | None = None
_whole_process = False  # handlers installed by main(): this process is photofix, not a test or a host program
_interrupt_reported = False


def _on_interrupt(signum: int, frame: Any) -> None:
    """SIGINT and SIGTERM stop a run the same way: KeyboardInterrupt, then clean up, exit 130."""
    global _first_interrupt
    now = time.monotonic()
    if _first_interrupt is not None and now - _first_interrupt < _GRACE_SECONDS:
        return  # already stopping
    _first_interrupt = now
    raise KeyboardInterrupt


def _interrupt_on_sigterm(signals: tuple[str, ...] = ("SIGTERM",)) -> None:
    """Make SIGTERM (kill, a CI timeout, a closed terminal) clean up like Ctrl-C: no temp files left.

    main() adds SIGINT, so a second Ctrl-C while the run stops is ignored too (see ``_on_interrupt``).
    """
    for name in signals:
        number = getattr(signal, name, None)
        if number is None or signal.getsignal(number) is _on_interrupt:
            continue
        try:
            signal.signal(number, _on_interrupt)
        except ValueError:  # not the main thread (e.g. embedded use): leave signals alone
            return


def _ignore_further_signals() -> None:
    """Once the run was interrupted and cleaned up, nothing is left to stop: ignore SIGINT/SIGTERM until exit.

    Python puts the default handlers back late in its shutdown, so a second Ctrl-C there killed
    the process by signal or printed a traceback from an exit hook. Only when main() owns the process.
    """
    if not _whole_process:
        return
    for name in ("SIGINT", "SIGTERM"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, signal.SIG_IGN)


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# --- task commands -------------------------------------------------------------------


@task_command(
    app,
    "denoise",
    "Remove noise and grain. Non-blind models (FFDNet, DRUNet) use --sigma, estimated from the image when not given.",
)
def denoise(
    input: str,
    output: str,
    common: Common,
    sigma: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            max=255.0,
            help="Noise level (std. dev. on the 0-255 scale) for non-blind models. Default: estimated per image and reported.",
            rich_help_panel="Task",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Remove sensor noise and film grain.

    Examples: photofix denoise noisy.jpg clean.jpg   ·   photofix denoise -r scans/ clean/ --sigma 15
    """
    run_task(input, output, common, [("denoise", common, {"sigma": sigma})])


class BlurKind(str, Enum):
    motion = "motion"
    defocus = "defocus"


@task_command(app, "deblur", "Remove motion blur (NAFNet, GoPro-trained) or, with --kind defocus, missed focus.")
def deblur(
    input: str,
    output: str,
    common: Common,
    kind: Annotated[
        BlurKind,
        typer.Option(help="motion (shake, moving subjects) or defocus (missed focus; non-commercial model only).", rich_help_panel="Task"),
    ] = BlurKind.motion,
) -> None:
    """Remove motion blur, or defocus blur with --kind defocus.

    Examples: photofix deblur shaky.jpg sharp.jpg   ·   photofix deblur -r trip/ sharp/ --tier fast
    """
    run_task(input, output, common, [("deblur", common, {"kind": kind.value})])


@task_command(app, "derain", "Remove rain streaks. Its only model is non-commercial: opt in with --model restormer-derain.")
def derain(input: str, output: str, common: Common) -> None:
    """Remove rain streaks.

    Example: photofix derain street.jpg clear.jpg --model restormer-derain
    """
    run_task(input, output, common, [("derain", common, {})])


@task_command(app, "upscale", "Enlarge with a super-resolution network (4x by default).")
def upscale(
    input: str,
    output: str,
    common: Common,
    scale: Annotated[
        Optional[float],
        typer.Option(
            min=1.0,
            max=16.0,
            help="Final scale factor. The model's own factor is used, then resampled to this one if it differs.",
            rich_help_panel="Task",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Enlarge photos with a super-resolution model.

    Examples: photofix upscale small.png big.png   ·   photofix upscale photos/ big/ --scale 2 --tier fast
    """
    run_task(input, output, common, [("upscale", common, {"scale": scale})])


@task_command(app, "colorize", "Colour black-and-white photos with DDColor, keeping the original's full-resolution detail.")
def colorize(
    input: str,
    output: str,
    common: Common,
    render_size: Annotated[
        Optional[int],
        typer.Option(
            min=32,
            max=2048,
            help="Square size the model sees the photo at (a multiple of 32). Default: the model's training size "
            "(256). Larger can give finer colour regions, at 4x the time per doubling; detail always comes from the original.",
            rich_help_panel="Task",
            show_default=False,
        ),
    ] = None,
    saturation: Annotated[
        float,
        typer.Option(min=0.0, max=3.0, help="Scale the predicted colour (1.0 = the model's, 0 = grey, 1.2 = livelier).", rich_help_panel="Task"),
    ] = 1.0,
) -> None:
    """Colour black-and-white (or faded) photos; colour inputs are made grey first.

    Chroma is predicted at --render-size and laid under the original luminance, so the
    output has the input's full resolution and tonal detail (16-bit stays 16-bit).

    Examples: photofix colorize grandma.tif grandma_colour.tif   ·   photofix colorize -r scans/ colour/ --saturation 1.2
    """
    run_task(input, output, common, [("colorize", common, {"render_size": render_size, "saturation": saturation})])


@task_command(app, "scratch-repair", "Find scratches, dust and spots on old prints, then fill them in (LaMa), touching nothing else.")
def scratch_repair(
    input: str,
    output: str,
    common: Common,
    mask: Annotated[
        Optional[Path],
        typer.Option(
            exists=True,
            help="Your own damage mask (white = repair) instead of detection: one image file, or a folder of masks "
            "named like the photos (photo.png or photo_mask.png).",
            rich_help_panel="Task",
            show_default=False,
        ),
    ] = None,
    mask_out: Annotated[
        Optional[Path],
        typer.Option(help="Also write each mask used to this folder as NAME_mask.png, to check or retouch it.",
                     rich_help_panel="Task", show_default=False, file_okay=False),
    ] = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            min=0.001,
            max=1.0,
            help="Detection cut: the learned detector's scratch probability (default 0.4; lower finds more), or for "
            "--model classical the least local contrast of a scratch (default: adapted to each photo).",
            rich_help_panel="Task",
            show_default=False,
        ),
    ] = None,
    dilate: Annotated[
        int,
        typer.Option(min=0, max=50, help="Grow the mask by N px so scratch rims are repaired too.", rich_help_panel="Task"),
    ] = 2,
) -> None:
    """Repair scratches, dust and spots: detect them, then inpaint only there.

    The learned path (scratch UNet of "Bringing Old Photos Back to Life" + big-LaMa) downloads
    about 660 MB once; --model classical (a line/spot detector and OpenCV inpainting) needs no
    download and is used automatically when offline without cached weights. Pixels outside the
    mask are never changed.

    Examples: photofix scratch-repair scan.tif fixed.tif --mask-out masks/   ·   photofix scratch-repair -r box/ fixed/ --model classical
    """
    options = {"mask": mask, "mask_out": mask_out, "threshold": threshold, "dilate": dilate}
    run_task(input, output, common, [("scratch-repair", common, options)])


@task_command(app, "deshadow", "Lighten cast shadows: found automatically (or from --mask) and relit by the light measured across their edge.")
def deshadow(
    input: str,
    output: str,
    common: Common,
    mask: Annotated[
        Optional[Path],
        typer.Option(exists=True, help="Your own shadow mask (white = shadow, grey = penumbra): one image file, or a "
                     "folder of masks named like the photos (photo.png or photo_mask.png).", rich_help_panel="Task",
                     show_default=False),
    ] = None,
    mask_out: Annotated[
        Optional[Path],
        typer.Option(help="Also write each shadow mask used to this folder as NAME_mask.png.", rich_help_panel="Task",
                     show_default=False, file_okay=False),
    ] = None,
    sensitivity: Annotated[
        float,
        typer.Option(min=0.1, max=10.0, help="Detection sensitivity: above 1 finds fainter shadows (and more dark "
                     "objects), below 1 only clear ones.", rich_help_panel="Task"),
    ] = 1.0,
    match_texture: Annotated[
        bool,
        typer.Option("--match-texture", help="Also match the relit area's noise to the lit side's (less amplified grain).",
                     rich_help_panel="Task"),
    ] = False,
) -> None:
    """Remove cast shadows from photos of surfaces, documents and scenes lit by sun or lamps.

    Classical by default (no download). Once 'photofix models download shadowformer-istd-plus'
    has fetched it, the ShadowFormer network (MIT) relights the masked shadows instead;
    --model classical keeps the classical method.

    Works best on shadows falling on fairly uniform surfaces (walls, paper, ground, skin);
    it cannot tell a shadow from a dark object of the same colour, and it does not help at
    night. Give --mask for exact control; check --mask-out on photos that matter.

    Examples: photofix deshadow doc.jpg clean.jpg   ·   photofix deshadow photo.jpg out.jpg --mask shadow.png
    """
    options = {"mask": mask, "mask_out": mask_out, "sensitivity": sensitivity, "match_texture": match_texture}
    run_task(input, output, common, [("deshadow", common, options)])


@task_command(app, "restore", "Run several tasks in one pass (--steps or --preset): read once, each model loaded once, written once.")
def restore(
    input: str,
    output: str,
    common: Common,
    steps: Annotated[
        Optional[str],
        typer.Option(
            "--steps",
            "-s",
            help="Tasks in the order to run them, separated by commas; a task's options follow it after colons as "
            "key=value (its own options plus model and weights), e.g. 'denoise:model=scunet-real:sigma=15,upscale:scale=2'.",
            rich_help_panel="Task",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        Optional[str],
        typer.Option(
            help="A ready-made chain: old-photo (scratch-repair, denoise, colorize, upscale:scale=2) or phone (denoise, deblur).",
            rich_help_panel="Task",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Chain restorations; the image stays in memory between steps, so nothing is re-encoded.

    Each output's XMP and OUTPUT/.photofix/runs.jsonl record the steps, models, weight hashes
    and settings; re-running the command skips outputs already made the same way.

    Examples: photofix restore --preset old-photo scans/ restored/   ·
    photofix restore photo.jpg out.jpg --steps "denoise:sigma=15,upscale:scale=2"   ·
    photofix restore -r box/ out/ --steps "scratch-repair:model=classical,colorize:saturation=1.2"
    """
    from ..steps import parse_steps, preset_steps

    reporter = Reporter(quiet=common.quiet)
    try:
        if (steps is None) == (preset is None):
            raise UsageError("give the chain with --steps 'task,task:key=value,...' or --preset old-photo|phone (one of them)")
        if common.model or common.weights:
            raise UsageError("--model/--weights would be ambiguous in a chain; give them per step, e.g. --steps 'denoise:model=ID'")
        requests = parse_steps(steps) if steps is not None else preset_steps(preset or "")
    except UsageError as error:
        reporter.error(str(error))
        raise typer.Exit(EXIT_USAGE) from None
    chain = [(r.task, replace(common, model=r.model, weights=r.weights), r.task_options) for r in requests]
    run_task(input, output, common, chain)


def _register_models() -> None:
    from .compare_cmd import register
    from .models_cmd import models_app

    register(app)
    app.add_typer(models_app, name="models", help="List, download, verify and import model weights.")


_register_models()


def main() -> None:
    """Console-script entry point."""
    global _whole_process
    # First of all: a SIGTERM while torch loads is an interruption (exit 130), not a kill by signal.
    _whole_process = True
    _interrupt_on_sigterm(("SIGINT", "SIGTERM"))
    try:
        # Deprecation chatter from torch/spandrel internals is not the user's business.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        app()
        return
    except KeyboardInterrupt:  # while typer builds the commands
        pass
    except SystemExit as done:  # typer turns an interrupt outside run_task into a silent exit 130
        if done.code != EXIT_INTERRUPTED or _interrupt_reported:
            raise
    _ignore_further_signals()
    Reporter().error("interrupted; nothing half-written was left")
    sys.exit(EXIT_INTERRUPTED)
