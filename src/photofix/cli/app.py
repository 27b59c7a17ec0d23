"""The ``photofix`` command: one sub-command per task, plus ``models``.

Commands are thin: they turn options into library calls and results into text
and exit codes. torch is imported only inside commands that run a model, so
``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import sys
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from photofix.cli.help_types import use_value_words

from photofix import __version__
from photofix.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, PhotofixError, UsageError
from photofix.tasks import PRESETS, TASKS, OptionField, StepRequest, TaskSpec, parse_steps, preset_steps
from photofix.cli.options import Common, task_command
from photofix.cli.render import Reporter, reported_errors

use_value_words()

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


def run_task(input: str, output: str, common: Common, requests: list[Any]) -> None:
    """Shared body of every task command and of ``restore``: plan the steps, then run them over the files.

    ``requests`` are the steps (``StepRequest``: a task, its own options, and in a chain its
    model/weights); one request is a task command, several a chain.
    """
    global _interrupt_reported
    reporter = Reporter(json_mode=common.json, quiet=common.quiet, verbose=common.verbose)
    if common.quiet or common.json:
        # huggingface_hub reads this when it is first imported, which is at the first download.
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if common.json and output == "-":
        reporter.error("--json and OUTPUT '-' both use stdout; write the image to a file or drop --json")
        raise typer.Exit(EXIT_USAGE)
    if output == "-" and _stdout_is_terminal():
        reporter.error("OUTPUT '-' writes image bytes to stdout, which is a terminal here; "
                       "redirect it (> out.jpg) or pipe it (| next-program), or give an output file")
        raise typer.Exit(EXIT_USAGE)

    _interrupt_on_sigterm()
    reporter.waiting()
    try:
        summary, interrupted = _run_files(input, output, common, requests, reporter)
    except KeyboardInterrupt:  # while loading code or planning, before the first file
        summary, interrupted = {}, True
    finally:
        reporter.stop_waiting()
    if interrupted:
        _ignore_further_signals()
        reporter.error("interrupted; finished outputs are kept, nothing half-written was left; run the same command to resume")
        _interrupt_reported = True
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_SOME_FAILED if summary["failed"] else EXIT_OK)


def _run_files(input: str, output: str, common: Common, requests: list[Any], reporter: Reporter) -> tuple[dict[str, Any], bool]:
    """Run the library's ``restore_path`` and render it: (the summary, whether it was interrupted)."""
    from photofix import restore_path

    started, total = False, 0

    def start(files: int) -> None:
        nonlocal started, total
        started, total = True, files
        reporter.start(files)

    with reported_errors(reporter):
        results = restore_path(
            None, input, output, steps=requests, engine=_engine(common),
            model=common.model, weights=common.weights, tier=common.tier.value if common.tier else None,
            device=common.device, precision=common.precision.value, backend=common.backend.value, tile=common.tile,
            tile_overlap=common.tile_overlap,
            offline=common.offline or None, threads=common.threads,
            recursive=common.recursive, format=common.format.pillow_name if common.format else None, suffix=common.suffix,
            quality=common.quality, force=common.force, dry_run=common.dry_run, preview=common.preview,
            include=common.include or (), exclude=common.exclude or (), fail_fast=common.fail_fast,
            max_pixels=common.max_pixels or None, memory_limit=common.memory_limit, jobs=common.jobs,
            read_stdin=sys.stdin.buffer.read, write_stdout=_write_stdout,
            on_event=reporter.event, on_start=start, on_file_start=reporter.file_started, on_tile=reporter.tile_done,
        )
        interrupted = False
        try:
            for result in results:
                reporter.result(result)
        except KeyboardInterrupt:
            if not started:
                raise
            _ignore_further_signals()
            interrupted = True
            results.close()  # now, not at garbage collection: a Ray run stops its cluster work here
        except PhotofixError:
            if started:
                reporter.finish()
            raise
        summary = reporter.finish(interrupted=interrupted)
        left = total - sum(summary[k] for k in ("done", "skipped", "failed", "planned"))
        if common.fail_fast and summary["failed"] and left > 0:
            reporter.error(f"stopped at the first failure (--fail-fast); {left} file(s) not processed")
    return summary, interrupted



def _engine(common: Common) -> Any:
    """``local``, or a ``RayEngine`` from --ray-address/--workers/--gpus-per-worker (which need --engine ray)."""
    from photofix.api import RayEngine

    if common.engine.value == "ray" and not common.verbose:
        _quiet_ray()
    if common.engine.value == "local":
        given = [flag for flag, value in (("--ray-address", common.ray_address), ("--workers", common.workers),
                                          ("--gpus-per-worker", common.gpus_per_worker or None)) if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} apply to --engine ray; add it, or leave them out")
        return "local"
    return RayEngine(address=common.ray_address, workers=common.workers, gpus_per_worker=common.gpus_per_worker)


def _quiet_ray() -> None:
    """Keep Ray's start-up and scheduling chatter off the terminal (-v shows it): results and errors
    come back through photofix. Ray sets its loggers up when imported, so import it first; without
    Ray the library says how to install it."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


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


def _stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # replaced or closed stdout (tests, embedding)
        return False


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# --- task commands: generated from each task's spec -----------------------------------


def _typer_option(item: OptionField) -> tuple[Any, Any]:
    """(annotation, default) that declares one task option for Typer, from its spec."""
    spec = item.spec
    how: dict[str, Any] = {"help": spec.help, "rich_help_panel": "Task"}
    if item.default is None:
        how["show_default"] = False
    if item.kind is bool:
        return Annotated[bool, typer.Option(item.flag, **how)], item.default
    kind: Any = item.kind
    default = item.default
    if spec.choices:
        kind = Enum(f"{item.name.title()}Choice", {c: c for c in spec.choices}, type=str)
        default = None if default is None else kind(default)
    if spec.low is not None:
        how["min"] = spec.low
    if spec.high is not None:
        how["max"] = spec.high
    if kind is Path:
        how["exists"] = spec.must_exist
        how["file_okay"] = not spec.folder
    return Annotated[Optional[kind] if item.optional else kind, typer.Option(**how)], default


def _register_task(spec: TaskSpec) -> None:
    keyword = inspect.Parameter.KEYWORD_ONLY
    own = []
    for item in spec.option_fields():
        annotation, default = _typer_option(item)
        own.append(inspect.Parameter(item.name, keyword, default=default, annotation=annotation))

    def command(input: str, output: str, common: Common, **values: Any) -> None:
        options = {name: getattr(value, "value", value) for name, value in values.items()}  # enums to their text
        run_task(input, output, common, [StepRequest(spec.name, options)])

    plain = inspect.Parameter.POSITIONAL_OR_KEYWORD
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("input", plain), inspect.Parameter("output", plain), inspect.Parameter("common", plain), *own]
    )
    command.__doc__ = spec.description
    command.__name__ = spec.name.replace("-", "_")
    task_command(app, spec.name, spec.summary)(command)


for _spec in TASKS.values():
    _register_task(_spec)



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
            help="A ready-made chain: " + " or ".join(f"{name} ({steps.replace(',', ', ')})" for name, steps in PRESETS.items()) + ".",
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
    run_task(input, output, common, requests)


def _register_models() -> None:
    from photofix.cli.compare_cmd import register
    from photofix.cli.models_cmd import models_app

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
