"""Which files a run restores and where each output goes; what happened to each file.

``plan_jobs`` maps an input spec (file, folder, glob, ``-``) to ``Job``s (input, output
pairs), refusing impossible combinations before the first file; ``check_output_folders``
checks the output folders can be written. ``batch.run_jobs`` processes the jobs with an
``ImageProcessor`` and yields a ``FileResult`` per file. No torch: planning stays cheap.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from photofix import imageio
from photofix.errors import UsageError
from photofix.imageio import Image

# Side-by-side previews written by --preview; discovery never treats them as photos.
PREVIEW_SUFFIX = ".preview.jpg"

STDIO = "-"
DONE, SKIPPED, FAILED, PLANNED = "done", "skipped", "failed", "planned"
_EXTENSION_FOR_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "AVIF": ".avif"}
_GLOB_CHARS = set("*?[")


TileProgress = Callable[[int, int], None]


class ImageProcessor(Protocol):
    """What ``run_jobs`` needs of a task's model(s): ``pipeline.Restorer`` and ``Chain``, others in ``restorers``."""

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
    extension = _EXTENSION_FOR_FORMAT[fmt] if fmt else imageio.output_extension(source)
    return f"{source.stem}{suffix}{extension}"


@dataclass(frozen=True)
class PassedOver:
    """What discovery passed over in INPUT, so a run can say so instead of skipping in silence."""

    folders: int = 0  # sub-folders not searched (no -r)
    by_extension: tuple[tuple[str, int], ...] = ()  # files that are not photos photofix reads

    def describe(self) -> str | None:
        parts = []
        if self.folders:
            parts.append(f"{self.folders} sub-folder{'s' * (self.folders > 1)} not searched (add -r)")
        if self.by_extension:
            files = ", ".join(f"{count} {ext or 'without extension'}" for ext, count in self.by_extension)
            parts.append(f"files that are not photos photofix reads: {files}")
        return "; ".join(parts) or None


def _discover(spec: str, recursive: bool) -> tuple[list[Path], Path | None, PassedOver]:
    """Input files, the base folder their relative paths are taken from (None: single file), and
    what a folder held besides (one walk: a library of photos is listed once)."""
    path = Path(spec)
    if path.is_dir():
        photos, folders, extensions = [], 0, Counter()
        for entry in path.rglob("*") if recursive else path.iterdir():
            if _is_image_file(entry):
                photos.append(entry)
            elif any(part.startswith(".") for part in entry.relative_to(path).parts):
                continue  # hidden: .photofix/ and other tools' own files are nobody's photos
            elif entry.is_dir():
                folders += not recursive
            elif not entry.name.lower().endswith(PREVIEW_SUFFIX):
                extensions[entry.suffix.lower()] += 1
        by_count = tuple(sorted(extensions.items(), key=lambda item: (-item[1], item[0])))
        return sorted(photos), path, PassedOver(folders, by_count)
    if path.is_file() or path.is_symlink():
        return [path], None, PassedOver()
    if _GLOB_CHARS & set(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=recursive) if _is_image_file(Path(p)))
        base = Path(os.path.commonpath([str(p.parent) for p in matches])) if matches else None
        return matches, base, PassedOver()
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
    on_passed_over: Callable[[PassedOver], None] | None = None,
) -> list[Job]:
    """Map the command line's INPUT and OUTPUT to jobs; raise UsageError for impossible combinations.

    Refused: OUTPUT equal to the input folder, or inside it with -r, unless ``suffix`` keeps
    outputs apart (suffixed files there are then earlier outputs, not inputs); two inputs
    mapped to one output. A job whose output is another input gets a ``problem`` and fails alone.

    ``include``/``exclude`` are globs on each input's path relative to INPUT (``/``-separated);
    a pattern without ``/`` is matched against the file name alone. ``on_passed_over`` hears what a
    folder INPUT held besides its photos.
    """
    if input_spec == STDIO:
        out = None if output_spec == STDIO else Path(output_spec)
        if out is not None and out.is_dir():
            raise UsageError(f"{output_spec}: stdin has no file name; give an output file, not a folder")
        return [Job(None, out)]

    inputs, base, passed_over = _discover(input_spec, recursive)
    if on_passed_over is not None:
        on_passed_over(passed_over)  # never skip in silence (issue 16)
    if include or exclude:
        inputs = [p for p in inputs if _selected(p, base, include, exclude)]
    if not inputs and (include or exclude):
        raise UsageError(f"{input_spec}: no images match the --include/--exclude patterns")
    if not inputs:
        hint = " (add -r to search sub-folders)" if Path(input_spec).is_dir() and not recursive else ""
        raise UsageError(f"{input_spec}: no images found{hint}; photofix reads {', '.join(sorted(imageio.SUPPORTED_EXTENSIONS))}")

    output = Path(output_spec)
    names_a_file = (output.suffix.lower() in imageio.WRITABLE_EXTENSIONS and not output.is_dir()
                    and not output_spec.endswith(("/", os.sep)))
    # A glob that matches one photo, written to a file name: that file, not a folder named like it.
    single = (base is None or names_a_file) and len(inputs) == 1
    if not single and names_a_file and not output.exists():
        raise UsageError(
            f"{output_spec}: looks like a file name, but {input_spec} holds {len(inputs)} photos; give a folder "
            f"as OUTPUT (end it with '/' to use this name as a folder)"
        )
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


__all__ = [
    "PassedOver",
    "FileResult",
    "ImageProcessor",
    "Job",
    "PREVIEW_SUFFIX",
    "STDIO",
    "TileProgress",
    "check_output_folders",
    "plan_jobs",
]
