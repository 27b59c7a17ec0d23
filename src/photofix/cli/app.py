"""The ``photofix`` command: one sub-command per task, plus ``models``.

Commands are thin: they turn options into library calls and results into text
and exit codes. torch is imported only inside commands that run a model, so
``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
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


ProcessorFactory = Callable[[], Any]


def run_task(
    task: str,
    input: str,
    output: str,
    common: Common,
    *,
    factory: Callable[[Reporter], ProcessorFactory] | None = None,
    **task_params: Any,
) -> None:
    """Shared body of every task command; ``factory`` builds the processor for tasks that are not one network."""
    from ..pipeline import TaskParams, plan_jobs, run_jobs

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
    with reported_errors(reporter):
        fmt = common.format.pillow_name if common.format else None
        jobs = plan_jobs(input, output, recursive=common.recursive, output_format=fmt, suffix=common.suffix,
                         include=common.include or (), exclude=common.exclude or ())
        params = TaskParams(**task_params)
        reporter.start(len(jobs))
        interrupted = False
        try:
            for result in run_jobs(
                jobs,
                factory(reporter) if factory else _restorer_factory(task, common, params, reporter),
                overwrite=common.overwrite,
                dry_run=common.dry_run,
                output_format=fmt,
                quality=common.quality,
                max_pixels=common.max_pixels or None,
                read_stdin=sys.stdin.buffer.read,
                write_stdout=_write_stdout,
                on_file_start=reporter.file_started,
                on_tile=reporter.tile_done,
                fail_fast=common.fail_fast,
            ):
                reporter.result(result)
        except KeyboardInterrupt:
            interrupted = True
        except PhotofixError:
            reporter.finish()
            raise
        summary = reporter.finish(interrupted=interrupted)
        left = len(jobs) - sum(summary[k] for k in ("done", "skipped", "failed", "planned"))
        if common.fail_fast and summary["failed"] and left > 0:
            reporter.error(f"stopped at the first failure (--fail-fast); {left} file(s) not processed")
    if interrupted:
        reporter.error("interrupted; finished outputs are kept, nothing half-written was left")
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_SOME_FAILED if summary["failed"] else EXIT_OK)


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM (kill, a CI timeout, a closed terminal) clean up like Ctrl-C: no temp files left."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. embedded use): leave signals alone
        pass


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _restorer_factory(task: str, common: Common, params: Any, reporter: Reporter) -> Callable[[], Any]:
    """Build the model lazily: a run that skips every file loads nothing."""

    def build() -> Any:
        from ..manifest import load_manifest
        from ..models import load_entry, load_model, resolve_device
        from ..pipeline import Restorer, choose_entry, default_overlap

        _set_threads(common.threads)
        manifest = load_manifest()
        device = resolve_device(common.device)
        if common.weights is not None:
            model = load_model(common.weights, device=device, precision=common.precision.value)
            overlap, min_tile = default_overlap(manifest, model.arch)
            reporter.detail(f"loaded {common.weights} as {model.arch} ({model.scale}x)")
        else:
            tier = common.tier.value if common.tier else None
            entry = choose_entry(manifest, task, common.model, tier, params.scale, params.kind, on_cpu=device.type == "cpu")
            offline = _announce_entry(entry, common, reporter)
            model = load_entry(entry, offline=offline, device=device, precision=common.precision.value)
            _announce_hash(entry, model.hash_recorded_now, model.sha256, reporter)
            overlap, min_tile = entry.tile_overlap, entry.min_tile
        if common.tile_overlap is not None:
            overlap = common.tile_overlap
        tile = None if common.tile == "auto" else int(common.tile)
        restorer = Restorer(task, model, params=params, tile=tile, tile_overlap=overlap, min_tile=min_tile)
        if tile and tile < min_tile:
            reporter.note(f"tiles under {min_tile} px change this model's result noticeably; --tile {tile} is used as asked")
        reporter.detail(
            f"device {model.device}, {str(model.dtype).replace('torch.', '')}, "
            f"tile {'auto' if tile is None else tile or 'whole image'}, overlap {overlap} px"
        )
        return restorer

    return build


def _announce_entry(entry: Any, common: Common, reporter: Reporter) -> bool:
    """Licence note and download notice before a manifest model is fetched; returns offline."""
    from ..weights import cached_path

    offline = settings.offline(common.offline)
    if not entry.commercial_use:
        reporter.note(f"{entry.id} is licensed for non-commercial use only ({entry.license})")
    if not offline and cached_path(entry) is None:
        size = f" ({entry.size_bytes / 1e6:.0f} MB)" if entry.size_bytes else ""
        reporter.info(f"downloading {entry.id}{size}, once; later runs use the cached copy")
    reporter.detail(f"model {entry.id} ({entry.arch}, {entry.license})")
    return offline


def _announce_hash(entry: Any, recorded_now: bool, sha256: str | None, reporter: Reporter) -> None:
    if recorded_now:
        reporter.note(f"{entry.id} has no published sha256; recorded {sha256} and will insist on it from now on")


def _colorize_factory(common: Common, render_size: int | None, saturation: float) -> Callable[[Reporter], ProcessorFactory]:
    def with_reporter(reporter: Reporter) -> ProcessorFactory:
        def build() -> Any:
            from ..colorize import load_colorizer
            from ..manifest import load_manifest
            from ..models import resolve_device
            from ..pipeline import choose_entry
            from ..restorers import ColorizeProcessor
            from ..weights import fetch

            _set_threads(common.threads)
            device = resolve_device(common.device)
            if common.weights is not None:
                colorizer = load_colorizer(common.weights, device, render_size)
            else:
                tier = common.tier.value if common.tier else None
                entry = choose_entry(load_manifest(), "colorize", common.model, tier, on_cpu=device.type == "cpu")
                fetched = fetch(entry, offline=_announce_entry(entry, common, reporter))
                _announce_hash(entry, fetched.first_use_hash, fetched.sha256, reporter)
                colorizer = load_colorizer(fetched.path, device, render_size or entry.params.get("render_size"), model_id=entry.id)
            reporter.detail(f"device {colorizer.device}, chroma predicted at {colorizer.render_size} px, saturation {saturation}")
            return ColorizeProcessor(colorizer, saturation)

        return build

    return with_reporter


def _scratch_factory(
    common: Common, mask: Path | None, mask_out: Path | None, threshold: float | None, dilate: int
) -> Callable[[Reporter], ProcessorFactory]:
    def with_reporter(reporter: Reporter) -> ProcessorFactory:
        def build() -> Any:
            from functools import partial

            from ..errors import WeightsNotCached
            from ..inpaint import inpaint_classical, load_lama
            from ..manifest import load_manifest
            from ..models import load_model, resolve_device
            from ..restorers import ScratchRepairProcessor
            from ..weights import fetch

            if common.weights is not None:
                raise UsageError(
                    "scratch-repair runs two models, so --weights cannot say which; add local files with "
                    "'photofix models import bopb-scratch-detect FILE' or 'photofix models import big-lama FILE'"
                )
            _set_threads(common.threads)
            device = resolve_device(common.device)
            user_mask, export = _mask_hooks(mask, mask_out)
            processor = ScratchRepairProcessor(
                inpaint_fn=partial(inpaint_classical, method="telea"),
                threshold=threshold,
                dilate=dilate,
                user_mask=user_mask,
                mask_out=export,
            )
            if common.model == "classical":
                reporter.detail("classical detector and OpenCV Telea inpainting (no download)")
                return processor
            manifest = load_manifest()
            chosen = manifest.get(common.model) if common.model else None
            if chosen is not None and chosen.task not in ("scratch-detect", "inpaint"):
                raise UsageError(f"model {chosen.id!r} is for {chosen.task}; scratch-repair takes a scratch-detect "
                                 "or inpaint model, or 'classical'")
            detect_entry = chosen if chosen and chosen.task == "scratch-detect" else manifest.default_for("scratch-detect")
            inpaint_entry = chosen if chosen and chosen.task == "inpaint" else manifest.default_for("inpaint")
            # A mask file for a single photo replaces detection: don't fetch a 450 MB detector for nothing.
            needed = [inpaint_entry] if mask is not None and mask.is_file() else [detect_entry, inpaint_entry]
            try:
                paths = {}
                for entry in needed:
                    fetched = fetch(entry, offline=_announce_entry(entry, common, reporter))
                    _announce_hash(entry, fetched.first_use_hash, fetched.sha256, reporter)
                    paths[entry.task] = fetched.path
            except WeightsNotCached:
                if not settings.offline(common.offline):
                    raise
                reporter.note("the learned scratch models are not cached and photofix is offline: using the classical "
                              "detector and OpenCV inpainting instead (--model classical says so explicitly)")
                return processor
            processor.inpaint_fn = load_lama(paths["inpaint"], device)
            if "scratch-detect" in paths:
                processor.detector = load_model(paths["scratch-detect"], expected_arch=detect_entry.arch,
                                                model_id=detect_entry.id, device=device, precision="fp32")
            processor.labels = (detect_entry.id if processor.detector else "user mask", inpaint_entry.id)
            reporter.detail(f"device {device}; detector {processor.labels[0]}, inpainting {inpaint_entry.id} in crops around the damage")
            return processor

        return build

    return with_reporter


def _mask_hooks(mask: Path | None, mask_out: Path | None) -> tuple[Callable[[Any], Any], Callable[[Any, Any], None]]:
    """``--mask`` (a file, or a folder matched by photo name) and ``--mask-out`` as per-image callbacks."""
    from ..masks import find_mask, load_mask, save_mask

    def user_mask(image: Any) -> Any:
        found = find_mask(mask, image.meta.source_name) if mask is not None else None
        return None if found is None else load_mask(found, image.pixels.shape)

    def export(image: Any, used: Any) -> None:
        if mask_out is not None:
            save_mask(used, mask_out, image.meta.source_name)

    return user_mask, export


def _deshadow_factory(common: Common, mask: Path | None, mask_out: Path | None, sensitivity: float,
                      match_texture: bool) -> Callable[[Reporter], ProcessorFactory]:
    def with_reporter(reporter: Reporter) -> ProcessorFactory:
        def build() -> Any:
            from ..manifest import load_manifest
            from ..models import load_masked_model, resolve_device
            from ..restorers import DeshadowProcessor
            from ..weights import cached_path, fetch

            processor = DeshadowProcessor(sensitivity, match_texture, *_mask_hooks(mask, mask_out))
            if common.model == "classical":
                reporter.detail("classical deshadow: shadow mask from darkness and colour cues, relit by measured gains")
                return processor
            _set_threads(common.threads)
            device = resolve_device(common.device)
            if common.weights is not None:
                processor.model = load_masked_model(common.weights, expected_arch="ShadowFormer", device=device, precision="fp32")
                processor.model_label = common.weights.name
                return processor
            learned = load_manifest().for_task("deshadow")
            entry = next((e for e in learned if e.id == common.model), None) if common.model else learned[0] if learned else None
            if common.model and entry is None:
                raise UsageError(f"unknown deshadow model {common.model!r}; choose 'classical' or one of: {', '.join(e.id for e in learned)}")
            if entry is None or (not common.model and cached_path(entry) is None):
                # The learned model is the default only once it is cached: its weights live on Google
                # Drive, so photofix never starts a download nobody asked for.
                if entry is not None:
                    reporter.note(f"using the classical method; for the learned one run 'photofix models download {entry.id}' once")
                return processor
            fetched = fetch(entry, offline=_announce_entry(entry, common, reporter))
            _announce_hash(entry, fetched.first_use_hash, fetched.sha256, reporter)
            processor.model = load_masked_model(fetched.path, expected_arch=entry.arch, device=device, precision="fp32")
            processor.model_label = entry.id
            processor.overlap = entry.tile_overlap if common.tile_overlap is None else common.tile_overlap
            if common.tile != "auto":
                processor.tile = int(common.tile)
            reporter.detail(f"model {entry.id} on {device}, mask from {'--mask' if mask else 'the classical detector'}")
            return processor

        return build

    return with_reporter


def _set_threads(threads: int | None) -> None:
    import torch

    count = settings.threads(threads)
    if count:
        torch.set_num_threads(count)


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
    run_task("denoise", input, output, common, sigma=sigma)


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
    run_task("deblur", input, output, common, kind=kind.value)


@task_command(app, "derain", "Remove rain streaks. Its only model is non-commercial: opt in with --model restormer-derain.")
def derain(input: str, output: str, common: Common) -> None:
    """Remove rain streaks.

    Example: photofix derain street.jpg clear.jpg --model restormer-derain
    """
    run_task("derain", input, output, common)


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
    run_task("upscale", input, output, common, scale=scale)


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
    run_task("colorize", input, output, common, factory=_colorize_factory(common, render_size, saturation))


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
    run_task("scratch-repair", input, output, common, factory=_scratch_factory(common, mask, mask_out, threshold, dilate))


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
    run_task("deshadow", input, output, common, factory=_deshadow_factory(common, mask, mask_out, sensitivity, match_texture))


def _register_models() -> None:
    from .models_cmd import models_app

    app.add_typer(models_app, name="models", help="List, download, verify and import model weights.")


_register_models()


def main() -> None:
    """Console-script entry point."""
    # Deprecation chatter from torch/spandrel internals is not the user's business.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    app()
