"""``photofix compare``: look at results, two files as one image or two folders as an HTML sheet."""

from __future__ import annotations

import io
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from photofix.errors import EXIT_OK, EXIT_SOME_FAILED, OutputWriteError, UsageError
from photofix.cli.render import Reporter, reported_errors

HELP = """Compare originals with results: two files give one image, two folders an HTML page.

Two files: BEFORE and AFTER side by side (or split at --position), written as AFTER-STEM_compare.jpg beside AFTER unless -o says otherwise. A different size is fine: the before is enlarged to the after's size (Lanczos), so an upscale is judged at one scale.

Two folders: every output in AFTER is paired with its input in BEFORE (by photofix's run record, else by name: photo.jpg → photo_x4.png) and shown in one page with a draggable divider, pixel sizes and what made each output. The page opens from disk, no server; its pictures go in a folder beside it (compare_files/). Add #split=30 to its URL to start every divider at 30%.

Examples:

  photofix compare scan.jpg clean.jpg

  photofix compare scan.jpg big.png --mode split --position 0.3 -o check.png

  photofix compare scans/ restored/      (writes restored/compare.html)

  photofix compare scans/ restored/ -o review.html --max-side 2400
"""


class Mode(str, Enum):
    side = "side"
    split = "split"


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the photofix command."""
    app.command("compare", help=HELP, no_args_is_help=True)(compare)


def compare(
    before: Annotated[Path, typer.Argument(metavar="BEFORE", help="The original: a photo, or a folder of them.", show_default=False)],
    after: Annotated[Path, typer.Argument(metavar="AFTER", help="The result: a photo, or the output folder of a run.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Where to write. Default: AFTER-STEM_compare.jpg beside AFTER (files) "
                     "or AFTER/compare.html (folders).", show_default=False, dir_okay=False),
    ] = None,
    mode: Annotated[Mode, typer.Option(help="Two files: side by side, or one frame split at --position.")] = Mode.side,
    position: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Where the split falls, 0 (left) to 1 (right); for folders, where the page's dividers start.")
    ] = 0.5,
    max_side: Annotated[
        Optional[int],
        typer.Option(min=64, help="Longest side in pixels: of the image (files; default full size) or of each "
                     "picture in the page (folders; default 1600).", show_default=False),
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", "-r/-R", help="Folders: look in sub-folders too.")] = True,
    title: Annotated[Optional[str], typer.Option(help="Folders: the page title.", show_default=False)] = None,
) -> None:
    reporter = Reporter()
    with reported_errors(reporter):
        for path in (before, after):
            if not path.exists():
                raise UsageError(f"{path}: no such file or folder; check the path")
        if before.is_dir() and after.is_dir():
            failed = _compare_folders(before, after, output, position, max_side, recursive, title, reporter)
            raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)
        if before.is_dir() or after.is_dir():
            folder, file = (before, after) if before.is_dir() else (after, before)
            raise UsageError(f"{folder} is a folder but {file} is a file; give two files or two folders")
        _compare_files(before, after, output, mode, position, max_side, reporter)


def _refuse_inputs(output: Path, *inputs: Path) -> None:
    for given in inputs:
        if _same_path(output, given):
            raise UsageError(f"{output}: is an input of this comparison; give another -o so it is not overwritten")


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _compare_files(before: Path, after: Path, output: Path | None, mode: Mode, position: float,
                   max_side: int | None, reporter: Reporter) -> None:
    from photofix import imageio
    from photofix.review import compare
    from photofix.imageio import write_file
    from photofix.run.provenance import find_record

    target = output if output is not None else after.with_name(f"{after.stem}_compare.jpg")
    _refuse_inputs(target, before, after)
    if target.suffix.lower() in (".html", ".htm"):
        from photofix.review.contact_sheet import write_contact_sheet

        pair = compare.Pair(before, after, find_record(after), "given")
        write_contact_sheet([pair], target, title=f"{before.name} → {after.name}", max_side=max_side or 1600,
                            split=position)
        reporter.info(f"wrote {target}")
        return
    fmt = imageio.format_for_path(target)
    before_image, after_image = imageio.read_image(before), imageio.read_image(after)
    if mode is Mode.split:
        picture = compare.split_view(before_image, after_image, position=position)
    else:
        picture = compare.side_by_side(before_image, after_image)
    picture = compare.fit_long_side(picture, max_side)
    del before_image, after_image
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputWriteError(f"{target}: cannot create the folder {target.parent} ({err.strerror or err}); "
                               "check the path and its permissions") from err
    write_file(target, lambda fp: _save(fp, picture, fmt))
    reporter.info(f"wrote {target} ({picture.shape[1]}×{picture.shape[0]}, {'split' if mode is Mode.split else 'side by side'})")


def _save(fp: Any, rgb: Any, fmt: str) -> None:
    from PIL import Image as PILImage

    options: dict[str, Any] = {"quality": 92, "subsampling": 0} if fmt == "JPEG" else {}
    if fmt == "WEBP":
        options = {"quality": 92}
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt, **options)
    fp.write(buffer.getvalue())


def _compare_folders(before: Path, after: Path, output: Path | None, position: float, max_side: int | None, recursive: bool,
                     title: str | None, reporter: Reporter) -> int:
    """Write the sheet; returns how many pairs could not be shown."""
    from photofix.review.compare import pair_folders
    from photofix.review.contact_sheet import write_contact_sheet

    target = output if output is not None else after / "compare.html"
    if target.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{target}: two folders make an HTML page; give -o NAME.html")
    pairs, lonely_outputs, lonely_inputs = pair_folders(before, after, recursive=recursive)
    if not pairs:
        hint = "" if recursive else " (sub-folders were not searched: drop --no-recursive)"
        raise UsageError(f"{after}: no output matches a photo in {before} by run record or by name{hint}; "
                         "check that BEFORE holds the originals and AFTER the results")
    notes = _unpaired_notes(lonely_outputs, lonely_inputs, after, before)
    failures: list[str] = []

    def counted(pair: Any, error: str | None) -> None:
        if error is not None:
            failures.append(error)
        if progress is not None:
            progress.advance(task)

    progress, task = _progress(reporter, len(pairs))
    try:
        write_contact_sheet(pairs, target, title=title or f"{before.name or before} → {after.name or after}",
                            max_side=max_side or 1600, notes=notes, split=position, on_pair=counted)
    finally:
        if progress is not None:
            progress.stop()
    for failure in failures:
        reporter.error(failure)
    shown = len(pairs) - len(failures)
    reporter.info(f"wrote {target} ({shown} pair{'s' if shown != 1 else ''})")
    for note in notes:
        reporter.note(note)
    return len(failures)


def _unpaired_notes(outputs: list[Path], inputs: list[Path], after: Path, before: Path) -> list[str]:
    def listing(paths: list[Path], root: Path) -> str:
        names = [p.relative_to(root).as_posix() for p in paths[:3]]
        return ", ".join(names) + (", …" if len(paths) > 3 else "")

    notes = []
    if outputs:
        notes.append(f"{len(outputs)} output{'s' if len(outputs) != 1 else ''} had no matching input: {listing(outputs, after)}")
    if inputs:
        notes.append(f"{len(inputs)} input{'s' if len(inputs) != 1 else ''} had no output: {listing(inputs, before)}")
    return notes


def _progress(reporter: Reporter, total: int) -> tuple[Any, Any]:
    if not reporter.interactive or total < 2:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("pairs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=reporter.err, transient=True)
    progress.start()
    return progress, progress.add_task("pairs", total=total)
