"""``photofix models``: see, fetch, check and import the weights a task uses."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from photofix.errors import EXIT_OK, EXIT_WEIGHTS, UsageError, WeightsError
from photofix.store import ModelEntry
from photofix.cli.options import flowed
from photofix.cli.render import Reporter, make_console, reported_errors

models_app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})

IdsArg = Annotated[list[str], typer.Argument(metavar="ID...", help="Model ids from 'photofix models list'.", show_default=False)]


def _human_size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return "?"


# Methods that need no download, listed with the models of their task.
BUILT_IN = {
    "deshadow": ModelEntry(id="classical", task="deshadow", arch="built-in", tier="fast", source=None, sha256=None,
                           size_bytes=0, license="built in", commercial_use=True, params={}, tile_overlap=0,
                           notes="shadow mask from darkness and colour cues; relit by gains measured across the edge"),
}


class Machine(str, Enum):
    cpu = "cpu"
    gpu = "gpu"


def _marks(on_cpu: bool) -> str:
    here = "this machine runs on the CPU, so the ◆ models (bold)" if on_cpu else "this machine has a GPU, so the ★ models (bold)"
    return f"★ default with a GPU, ◆ default on a CPU (no --model or --tier); {here} run here"


@models_app.command("list")
def list_models(
    task: Annotated[Optional[str], typer.Option(help="Only this task's models, e.g. denoise.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per model on stdout.")] = False,
) -> None:
    """List the models photofix knows, their licence, and whether they are cached.

    ★ marks the default with a GPU, ◆ the default on a CPU; JSON's "default" is the one
    that runs on this machine. Non-commercial licences are shown in red; defaults are
    always free for commercial use.
    """
    from photofix.store import cached_path, default_entries, load_manifest, runs_on_cpu

    reporter = Reporter()
    with reported_errors(reporter):
        manifest = load_manifest()
        entries = manifest.for_task(task) if task else manifest.entries
        if task and not entries and task not in BUILT_IN:
            reporter.error(f"no models for task {task!r}; tasks: {', '.join(manifest.tasks())}")
            raise typer.Exit(2)
        on_cpu = runs_on_cpu()  # as a run resolves --device: PHOTOFIX_DEVICE, else CUDA, MPS, CPU
        cpu_ids = {e.id for e in default_entries(True, manifest)}
        gpu_ids = {e.id for e in default_entries(False, manifest)}
        # (entry, cached, CPU default, GPU default)
        rows = [(e, cached_path(e) is not None, e.id in cpu_ids, e.id in gpu_ids) for e in entries]
        # Tasks whose learned model is used only once cached, on either device: it is the default
        # then, else the built-in method.
        for built_in_task, method in BUILT_IN.items():
            if task not in (None, built_in_task):
                continue
            learned = [r for r in rows if r[0].task == built_in_task]
            learned_default = bool(learned) and learned[0][1]  # the run tries only the first
            rows = [(e, c, cpu or (learned_default and e is learned[0][0]), gpu or (learned_default and e is learned[0][0]))
                    for e, c, cpu, gpu in rows]
            rows.append((method, True, not learned_default, not learned_default))
    if as_json:
        for entry, cached, cpu, gpu in rows:
            record = {
                "id": entry.id,
                "task": entry.task,
                "arch": entry.arch,
                "tier": entry.tier,
                "size_bytes": entry.size_bytes,
                "license": entry.license,
                "commercial_use": entry.commercial_use,
                "verified_hash": entry.verified,
                "cached": cached,
                "default": cpu if on_cpu else gpu,
                "default_cpu": cpu,
                "default_gpu": gpu,
            }
            typer.echo(json.dumps(record))
        return
    table = Table(show_edge=False, caption=_marks(on_cpu))
    for column in ("id", "task", "tier", "arch", "size", "licence", "cached"):
        table.add_column(column)
    for entry, cached, cpu, gpu in rows:
        licence = entry.license if entry.commercial_use else f"[red]{escape(entry.license)} (non-commercial)[/red]"
        runs_here = cpu if on_cpu else gpu
        table.add_row(
            ("★" if gpu else " ") + ("◆" if cpu else " ") + " " + (f"[bold]{entry.id}[/bold]" if runs_here else entry.id),
            entry.task,
            entry.tier,
            entry.arch,
            _human_size(entry.size_bytes),
            licence,
            "[green]yes[/green]" if cached else "no",
        )
    make_console(stderr=False).print(table)


@models_app.command("download")
def download(
    ids: Annotated[Optional[list[str]], typer.Argument(metavar="ID", help="Model ids from 'photofix models list'.", show_default=False)] = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="The default model of every task, for this machine's device (see --for).")] = False,
    machine: Annotated[
        Optional[Machine],
        typer.Option("--for", help="With --defaults: the defaults of a cpu or gpu machine instead of this one (to fetch for another).", show_default=False),
    ] = None,
) -> None:
    """Download models into the cache and check their sha256 (needs network).

    'photofix models download --defaults --for cpu' fetches what a CPU-only machine runs when no --model or --tier is given, e.g. to carry to a machine without network.
    """
    from photofix.store import default_entries, load_manifest, runs_on_cpu
    from photofix.store import download as fetch

    reporter = Reporter()
    failed = False
    with reported_errors(reporter):
        if ids and defaults:
            raise UsageError("give model ids or --defaults, not both")
        if machine is not None and not defaults:
            raise UsageError("--for only goes with --defaults; model ids are fetched as named")
        if not ids and not defaults:
            raise UsageError("name the model ids to download, or --defaults for every task's default")
        manifest = load_manifest()
        if defaults:
            on_cpu = runs_on_cpu() if machine is None else machine is Machine.cpu
            entries = list(default_entries(on_cpu, manifest))
        else:
            entries = [manifest.get(i) for i in ids or ()]
    for entry in entries:
        try:
            fetched = fetch(entry, offline=False)
        except WeightsError as error:
            reporter.error(str(error))
            failed = True
            continue
        state = "downloaded" if fetched.downloaded else "already cached"
        reporter.info(f"[green]{state}[/green] {entry.id} → {escape(str(fetched.path))}")
        if fetched.first_use_hash:
            reporter.note(f"{entry.id} has no published sha256; recorded {fetched.sha256} and will insist on it from now on")
    raise typer.Exit(EXIT_WEIGHTS if failed else EXIT_OK)


@models_app.command("verify")
def verify(ids: Annotated[Optional[list[str]], typer.Argument(metavar="[ID...]", help="Default: every cached model.", show_default=False)] = None) -> None:
    """Re-hash cached weights and compare with the manifest (or the hash recorded on first use)."""
    from photofix.store import load_manifest
    from photofix.store import cached_path
    from photofix.store import verify as verify_entry

    reporter = Reporter()
    with reported_errors(reporter):
        manifest = load_manifest()
        entries = [manifest.get(i) for i in ids] if ids else [e for e in manifest.entries if cached_path(e)]
    if not entries:
        reporter.info("no cached models to verify")
        raise typer.Exit(EXIT_OK)
    bad = False
    for entry in entries:
        result = verify_entry(entry)
        if result.status in ("ok", "recorded"):
            reporter.info(f"[green]{result.status:<8}[/green] {entry.id}")
        elif result.status == "missing":
            reporter.info(f"[yellow]missing [/yellow] {entry.id} (photofix models download {entry.id})")
            bad = bad or bool(ids)
        else:
            reporter.error(
                f"{entry.id}: sha256 mismatch (expected {result.expected}, got {result.actual}); "
                f"remove it and run 'photofix models download {entry.id}'"
            )
            bad = True
    raise typer.Exit(EXIT_WEIGHTS if bad else EXIT_OK)


@models_app.command("path")
def path(model_id: Annotated[str, typer.Argument(metavar="ID", help="A model id.")]) -> None:
    """Print where a cached model's file is (exit code 3 if it is not cached)."""
    from photofix.store import load_manifest
    from photofix.store import cached_path

    reporter = Reporter()
    with reported_errors(reporter):
        entry = load_manifest().get(model_id)
    found = cached_path(entry)
    if found is None:
        reporter.error(f"{model_id} is not cached; run 'photofix models download {model_id}' or 'photofix models import {model_id} FILE'")
        raise typer.Exit(EXIT_WEIGHTS)
    typer.echo(str(found))


@models_app.command("import")
def import_(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="The model id the file belongs to.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, readable=True, help="The downloaded weights file.")],
) -> None:
    """Put a weights file fetched elsewhere into the cache (for machines without network).

    The sha256 is checked first; a wrong file is refused and nothing is placed. A model
    with no published sha256 takes the first file that loads (as data, never as code) as
    its architecture, and records that file's hash; 'photofix models forget ID' undoes it.
    """
    from photofix.store import load_manifest
    from photofix.store import import_file, trust_file

    reporter = Reporter()
    with reported_errors(reporter):
        entry = load_manifest().get(model_id)
        placed = import_file(entry, file)
    reporter.info(f"[green]imported[/green] {model_id} → {escape(str(placed))}")
    if not entry.verified:
        reporter.note(
            f"{model_id} has no published sha256; this file's hash is now the one photofix expects "
            f"(recorded in {escape(str(trust_file()))}; 'photofix models forget {model_id}' undoes it)"
        )


@models_app.command("forget")
def forget(ids: IdsArg) -> None:
    """Remove models from the cache, with any sha256 recorded on their first use.

    For a model with no published sha256, photofix records the hash of the first file it
    downloads or imports and refuses any other. If that was the wrong file, forget it,
    then download or import the right one. Records live in trusted_hashes.json under
    PHOTOFIX_HOME (default ~/.cache/photofix); 'photofix models path ID' shows the file.
    """
    from photofix.store import load_manifest
    from photofix.store import forget as forget_entry

    reporter = Reporter()
    with reported_errors(reporter):
        manifest = load_manifest()
        entries = [manifest.get(i) for i in ids]
        for entry in entries:
            removed = forget_entry(entry)
            if removed:
                reporter.info(f"[green]forgot[/green] {entry.id}: removed " + escape("; ".join(removed)))
            else:
                reporter.info(f"{entry.id}: nothing cached or recorded")


# --help wraps each docstring paragraph at the terminal's width, not where the source broke it
for _info in models_app.registered_commands:
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = flowed(_info.callback.__doc__)
