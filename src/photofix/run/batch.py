"""Run a processor over many files: resume, provenance, and I/O overlapped with compute.

Each file goes through three stages:

1. **check and read** — is the output already up to date (its record has this input's
   content hash and this recipe)? If not, read the bytes, hash them, decode;
2. **restore** — the processor, on the calling thread (one model in memory);
3. **write** — embed the record in the output's XMP, write atomically, append the
   record to the run log, and any after-write hook (a preview).

With ``jobs`` > 1, stage 1 of the next files and stage 3 of the last one run in
worker threads while stage 2 computes: decoding and encoding release the GIL, so a
folder of many small photos no longer waits on the disk and the codecs. Results are
yielded in input order either way.

The three stages are public (``check_and_read``, ``restore_loaded``, ``write_and_record``)
so ``run.ray_engine`` runs the very same per-file code on a cluster.
"""

from __future__ import annotations

import os
import stat
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from photofix import imageio
from photofix._files import temp_target
from photofix.errors import NotEnoughMemory, OutputWriteError, PhotofixError, UsageError, WeightsError
from photofix.imageio import Image
from photofix.run.jobs import DONE, FAILED, PLANNED, SKIPPED, FileResult, ImageProcessor, Job, TileProgress
from photofix.run.provenance import Recipe, RunLog, new_record, sha256_bytes, sha256_file, with_record

AfterWrite = Callable[[Job, Image, Image], None]


@dataclass
class Loaded:
    """A file read and decoded, waiting for the processor (the Ray engine ships it between stages)."""

    job: Job
    image: Image
    input_sha256: str
    redo: str | None  # why an existing output is being replaced, if it is


@dataclass(frozen=True)
class FileOptions:
    """How a run reads, skips, writes and records each file; the defaults suit a library caller."""

    force: bool = False  # redo outputs that are up to date
    dry_run: bool = False  # decide each file (PLANNED, SKIPPED), read and write nothing
    output_format: str | None = None  # a Pillow format name; None keeps each output's own
    quality: int | None = None
    max_pixels: int | None = imageio.DEFAULT_MAX_PIXELS
    memory_limit: imageio.MemoryLimit = imageio.memory.AUTO
    output_scale: float = 1.0  # how many times wider the output is: sizes the memory guard
    read_stdin: Callable[[], bytes] | None = None
    write_stdout: Callable[[bytes], None] | None = None
    history: RunLog | None = None
    recipe: Recipe | None = None
    after_write: AfterWrite | None = None


def run_jobs(
    jobs: list[Job],
    get_restorer: Callable[[], ImageProcessor],
    options: FileOptions = FileOptions(),
    *,
    on_file_start: Callable[[Job], None] | None = None,
    on_tile: TileProgress | None = None,
    fail_fast: bool = False,
    jobs_in_flight: int = 1,
) -> Iterator[FileResult]:
    """Process jobs, one result each in input order; a bad file fails alone.

    An existing output is skipped when its record (``options.history``: the run log, or the
    output's XMP) shows the same input content and ``recipe``; it is redone when the
    record differs, and left alone (skipped) when photofix has no record of making it.
    ``force`` redoes everything. Without ``history`` any existing output is skipped.

    ``get_restorer`` is called once, at the first file that needs the model, so a run
    where everything is skipped (or a dry run) loads nothing. Errors about the model
    itself (weights missing, wrong architecture) end the run: every later file would
    fail the same way. ``fail_fast`` ends it at the first failed file.

    ``jobs_in_flight`` > 1 reads ahead and writes behind in threads (see module doc).

    A file whose restoration would need more memory than ``options.memory_limit`` ("auto":
    what is free) fails before it is decoded.
    """
    if options.history is not None:
        options.history.records()  # load the log once, before worker threads read it
    ahead = max(1, jobs_in_flight) - 1
    readers = ThreadPoolExecutor(ahead, thread_name_prefix="photofix-read") if ahead else None
    writer = ThreadPoolExecutor(1, thread_name_prefix="photofix-write") if ahead else None
    reads: deque[tuple[Job, Future | None]] = deque()
    pending = _InOrder()
    restorer: ImageProcessor | None = None
    queue = iter(jobs)

    def submit_read() -> None:
        job = next(queue, None)
        if job is not None:
            reads.append((job, readers.submit(check_and_read, job, options) if readers else None))

    try:
        for _ in range(max(1, ahead)):
            submit_read()
        while reads and not (fail_fast and pending.failed):
            job, future = reads.popleft()
            submit_read()
            if on_file_start is not None:
                on_file_start(job)
            started = time.perf_counter()
            loaded = future.result() if future is not None else check_and_read(job, options)
            if isinstance(loaded, FileResult):
                pending.append(loaded)
                yield from pending.ready(block=False)
                continue
            if restorer is None:
                try:
                    restorer = get_restorer()
                except (WeightsError, UsageError):
                    raise  # every later file would fail the same way
                except Exception as error:  # noqa: BLE001 - as a failed restore: this file fails, the next retries
                    pending.append(failure(job, error, started))
                    yield from pending.ready(block=True)
                    continue
                started = time.perf_counter()  # loading the model is not this file's time
            outcome = restore_loaded(restorer, loaded, started, on_tile)
            if isinstance(outcome, FileResult):
                pending.append(outcome)
                yield from pending.ready(block=True)
                continue
            restored, details = outcome
            if writer is not None:
                if pending.writes() >= ahead:
                    yield from pending.ready(block=True)  # bound the images held for writing
                pending.append(writer.submit(write_and_record, loaded, restored, details, restorer.label, started, options))
            else:
                pending.append(write_and_record(loaded, restored, details, restorer.label, started, options))
            yield from pending.ready(block=False)
        yield from pending.ready(block=True)
    finally:
        for executor in (readers, writer):
            if executor is not None:
                # Unstarted reads are dropped; a write under way finishes (it is atomic and logged).
                executor.shutdown(wait=True, cancel_futures=True)


class _InOrder:
    """Results waiting to be yielded in input order: finished ones, or writes still under way."""

    def __init__(self) -> None:
        self.queue: deque[Future | FileResult] = deque()
        self.failed = False  # a failed result has been yielded: what ``fail_fast`` stops at

    def append(self, item: Future | FileResult) -> None:
        self.queue.append(item)

    def writes(self) -> int:
        return sum(isinstance(item, Future) for item in self.queue)

    def ready(self, block: bool) -> Iterator[FileResult]:
        """Results from the front that are done; with ``block``, all of them, waiting for writes."""
        while self.queue and (block or not isinstance(self.queue[0], Future) or self.queue[0].done()):
            head = self.queue.popleft()
            result = head.result() if isinstance(head, Future) else head
            self.failed = self.failed or result.status == FAILED
            yield result


# --- before a run: temporary files of a killed run ------------------------------------------

STALE_TEMP_SECONDS = 30 * 60


def remove_stale_temps(outputs: Iterable[os.PathLike], *, older_than: float = STALE_TEMP_SECONDS) -> list[str]:
    """Remove the temporary files a killed run (SIGKILL, power loss) left beside these outputs.

    Only photofix's own naming for these very output names counts (``.NAME.xxxxxxxx.tmp``
    beside ``NAME``), only regular files, and only ones not modified for ``older_than``
    seconds: a temp file lives while one image is encoded and written, far less than that,
    so a photofix running at the same time never loses the file it is writing. Returns the
    paths removed; one that cannot be removed is left for a later run.
    """
    return remove_temps(temps_beside(outputs), older_than=older_than)


def remove_temps(entries: Iterable[os.DirEntry], *, older_than: float) -> list[str]:
    """Remove the regular files among ``entries`` not modified for ``older_than`` s; the paths removed."""
    removed: list[str] = []
    now = time.time()
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= older_than:
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue
    return removed


def temps_beside(outputs: Iterable[os.PathLike]) -> list[os.DirEntry]:
    """photofix's temporary files (``.NAME.xxxxxxxx.tmp``) beside these outputs, as they are now."""
    names_by_folder: dict[str, set[str]] = {}
    for output in outputs:
        folder, name = os.path.split(os.fspath(output))
        names_by_folder.setdefault(folder or os.curdir, set()).add(name)
    found: list[os.DirEntry] = []
    for folder, names in names_by_folder.items():
        try:
            with os.scandir(folder) as entries:
                found.extend(e for e in entries if temp_target(e.name) in names)
        except OSError:
            continue  # no such folder yet: nothing was left there
    return found


# --- stage 1: check and read -------------------------------------------------------------


def check_and_read(job: Job, opts: FileOptions) -> Loaded | FileResult:
    name, out_name = _names(job)
    started = time.perf_counter()
    if job.problem is not None:  # found when planning (the output is another input): nothing is read
        return FileResult(name, out_name, FAILED, job.problem)
    try:
        if job.input is not None and job.output is not None and _same_file(job.input, job.output):
            return FileResult(name, out_name, FAILED, "output would overwrite the input; choose another OUTPUT or add --suffix")
        data = _read_bytes(job, opts.read_stdin)
        input_sha256 = sha256_bytes(data)
        redo = None
        if job.output is not None and job.output.exists() and not opts.force:
            skip, redo = _decide_existing(job, input_sha256, opts)
            if skip is not None:
                return FileResult(name, out_name, SKIPPED, skip)
        if opts.dry_run:
            return FileResult(name, out_name, PLANNED, redo)
        # Refused before decoding when it cannot fit: the run's peak grows with the output's size.
        image = imageio.decode_image(data, name=name, max_pixels=opts.max_pixels,
                                     memory_limit=opts.memory_limit, output_scale=opts.output_scale)
    except Exception as error:  # noqa: BLE001 - one odd file must not end a folder run
        return failure(job, error, started)
    return Loaded(job, image, input_sha256, redo)


def _decide_existing(job: Job, input_sha256: str, opts: FileOptions) -> tuple[str | None, str | None]:
    """(reason to skip, None) or (None, reason to redo) for an output that exists."""
    assert job.output is not None
    if opts.history is None or opts.recipe is None:
        return "output exists (use --force to redo it)", None
    record = opts.history.record_for(job.output)
    if record is None:
        return "output exists and photofix has no record of making it; --force replaces it", None
    if record.matches(input_sha256, opts.recipe.fingerprint):
        if not opts.history.is_logged(record):
            # Known from the output's XMP only (the log was deleted, or a run stopped between
            # writing the file and logging it): log it now so the log lists every output.
            opts.history.append(record)
        return "up to date (same input content and settings)", None
    return None, record.differs_in(input_sha256, opts.recipe.fingerprint)


def _read_bytes(job: Job, read_stdin: Callable[[], bytes] | None) -> bytes:
    if job.input is None:
        if read_stdin is None:
            raise UsageError("reading from stdin is not available here")
        return read_stdin()
    return imageio.read_bytes(job.input)


# --- stage 2: restore ------------------------------------------------------------------------


def restore_loaded(restorer: ImageProcessor, loaded: Loaded, started: float,
                   on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]] | FileResult:
    """(restored image, details) or the file's failure; errors about the model or the command propagate."""
    try:
        restored, details = restorer.restore(loaded.image, on_tile)
    except (WeightsError, UsageError):
        raise  # about the model or the command: every later file would fail the same way
    except Exception as error:  # noqa: BLE001 - one odd file must not end a folder run
        return failure(loaded.job, error, started)
    if loaded.redo:
        details = {**details, "redone": loaded.redo}
    if loaded.image.meta.note:  # e.g. only the first frame of an animation was restored
        details = {**details, "note": loaded.image.meta.note}
    return restored, details


# --- stage 3: write and record -------------------------------------------------------------


def write_and_record(loaded: Loaded, restored: Image, details: dict[str, Any], label: str, started: float,
                      opts: FileOptions) -> FileResult:
    job = loaded.job
    name, out_name = _names(job)
    record = None
    note = None
    try:
        lost = imageio.lost_on_write(restored, _output_format(restored, job, opts))
        if lost:  # e.g. transparency dropped by JPEG: said, not silent (issue 16)
            details = {**details, "note": "; ".join(filter(None, [details.get("note"), lost]))}
        if opts.recipe is not None:
            key = opts.history.key(job.output) if opts.history is not None and job.output is not None else out_name
            record = new_record(name, loaded.input_sha256, key, opts.recipe, details)
            restored = replace(restored, meta=replace(restored.meta, xmp=with_record(restored.meta.xmp, record)))
        _write(restored, job, opts)
        if record is not None and opts.history is not None and job.output is not None:
            record.output_sha256 = sha256_file(job.output)
            record.seconds = round(time.perf_counter() - started, 3)
            try:
                opts.history.append(record)
            except OutputWriteError as error:  # the output is whole and carries its record in XMP
                note = f"written, but the run log could not be updated: {error}; a re-run will redo it or use the XMP record"
        if opts.after_write is not None:
            try:
                opts.after_write(job, loaded.image, restored)
            except Exception as error:  # noqa: BLE001 - a preview must not fail the output it shows
                details = {**details, "preview_failed": str(error)}
    except Exception as error:  # noqa: BLE001
        return failure(job, error, started)
    return FileResult(name, out_name, DONE, note, seconds=time.perf_counter() - started, model=label, details=details)


def _write(image: Image, job: Job, opts: FileOptions) -> None:
    if job.output is None:
        if opts.write_stdout is None:
            raise UsageError("writing to stdout is not available here")
        opts.write_stdout(imageio.encode_image(image, format=_output_format(image, job, opts), quality=opts.quality))
        return
    imageio.write_image(image, job.output, format=_output_format(image, job, opts), quality=opts.quality)


def _output_format(image: Image, job: Job, opts: FileOptions) -> str:
    if opts.output_format:
        return opts.output_format
    return imageio.format_for_path(job.output) if job.output is not None else imageio.writable_format(image.meta.format)


# --- small helpers ---------------------------------------------------------------------------


def _names(job: Job) -> tuple[str, str]:
    return (str(job.input) if job.input else "<stdin>"), (str(job.output) if job.output else "<stdout>")


def failure(job: Job, error: BaseException, started: float) -> FileResult:
    name, out_name = _names(job)
    trace = "".join(traceback.format_exception(error))
    if isinstance(error, MemoryError) and not isinstance(error, PhotofixError):  # numpy's, mid-restore
        error = NotEnoughMemory(f"{name}: ran out of memory restoring it; close other programs, "
                                "or use a smaller --tile or --jobs 1, and run it again")
    if isinstance(error, PhotofixError):
        return FileResult(name, out_name, FAILED, str(error), time.perf_counter() - started, trace=trace)
    reason = f"unexpected {type(error).__name__}: {error} (PHOTOFIX_DEBUG=1 shows where)"
    return FileResult(name, out_name, FAILED, reason, time.perf_counter() - started, details={"exception": repr(error)},
                      trace=trace)


def _same_file(a: os.PathLike, b: os.PathLike) -> bool:
    try:
        return os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


__all__ = [
    "AfterWrite",
    "FileOptions",
    "Loaded",
    "STALE_TEMP_SECONDS",
    "check_and_read",
    "failure",
    "remove_stale_temps",
    "remove_temps",
    "restore_loaded",
    "run_jobs",
    "temps_beside",
    "write_and_record",
]
