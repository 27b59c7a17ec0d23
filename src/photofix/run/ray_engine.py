"""Run a folder on a Ray cluster: the local run's per-file stages, scheduled by Ray Data.

    jobs (listed on the driver by ``jobs.plan_jobs``, or ``remote.plan_remote_jobs`` for URIs)
    -> check and read (Ray tasks: hash, skip decision, decode)
    -> restore (Ray actors, each loading the model once)
    -> write (Ray tasks: XMP provenance, the atomic writer)
    -> the driver appends each record to ``OUTPUT/.photofix/runs.jsonl`` and yields a result.

Workers run ``batch.check_and_read``, ``batch.restore_loaded`` and ``batch.write_and_record``,
so skipping, provenance and writing are the local run's. What those would append to the run
log is carried back to the driver instead (``_StagedLog``): the driver is the log's one writer,
so no two processes ever append to it. Results come in the order files finish.

Ray is optional (``pip install "photofix[ray]"``) and imported only when a run uses it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from photofix.errors import UsageError, WeightsError
from photofix.run import remote
from photofix.run.batch import (
    FileOptions,
    Loaded,
    check_and_read,
    failure,
    remove_stale_temps,
    remove_temps,
    restore_loaded,
    temps_beside,
    write_and_record,
)
from photofix.run.jobs import FAILED, FileResult, ImageProcessor, Job
from photofix.run.provenance import Record, RunLog

__all__ = ["INSTALL_HINT", "BuildProcessor", "RayEngine", "require_ray", "run_on_ray"]

INSTALL_HINT = 'pip install "photofix[ray]"'
# After a stop: a temp file untouched this long (s) belongs to a write that was killed; past the
# grace (s) every one left is removed, so Ctrl-C returns promptly.
_WRITE_QUIET, _WRITE_GRACE = 2.0, 10.0

# Builds the processor inside a worker, given the CPU threads the worker may use.
BuildProcessor = Callable[[int | None], ImageProcessor]


@dataclass(frozen=True)
class RayEngine:
    """Where and how wide a Ray run goes.

    ``address``: None starts a local Ray or joins the one already running here (or RAY_ADDRESS);
    ``"auto"`` or ``"ray://host:10001"`` join a cluster. ``workers``: model actors (default: one
    per ``gpus_per_worker`` GPUs in the cluster, else one). Without GPUs each actor gets an even
    share of the cluster's CPUs as model threads.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"workers {self.workers}: give 1 or more model actors")
        if self.gpus_per_worker < 0:
            raise UsageError(f"gpus per worker {self.gpus_per_worker}: give 0 (CPU) or more")


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or UsageError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] extra: pyarrow, pandas
    except ImportError as error:
        raise UsageError(f"the ray engine needs Ray Data, which is not installed ({error.name or error}); "
                         f"{INSTALL_HINT}") from None
    return ray


# --- what travels between the stages -----------------------------------------------------------


@dataclass
class _Restored:
    loaded: Loaded
    image: Any
    details: dict[str, Any]
    label: str


@dataclass
class _Fatal:
    """The model cannot be had (weights, usage): the driver raises it, as a local run would."""

    error: BaseException


@dataclass
class _Item:
    """One photo on its way through the stages; ``work`` is what the last stage made of it."""

    job: Job  # absolute paths: workers do not share the driver's working folder
    shown: tuple[str, str | None]  # the input and output as the caller named them, for results and the log
    key: str  # the output's key in the run log
    logged: Record | None  # the driver's record for that key, for the skip decision
    place: remote.RemotePair | None = None  # set when input and output are URIs
    work: Loaded | _Restored | FileResult | _Fatal | None = None
    records: list[Record] = field(default_factory=list)  # for the driver to append to the run log
    seconds: float = 0.0  # work time over the stages so far (not time spent queued)


class _StagedLog(RunLog):
    """The run log as a worker sees it for one file: the driver's record of its output, appends kept aside."""

    def __init__(self, root: Any, key: str, logged: Record | None) -> None:
        super().__init__(root)
        self._latest = {key: logged} if logged is not None else {}
        self.staged: list[Record] = []

    def append(self, record: Record) -> None:
        self.staged.append(record)
        self.records()[record.output] = record


# --- the stages (run in Ray workers) ---------------------------------------------------------------


def _check_and_read(row: dict[str, Any], options: FileOptions, log_root: str) -> dict[str, Any]:
    item: _Item = row["item"]
    started = time.perf_counter()
    if item.place is None:
        item.work = _read_logged(item, item.job, options, log_root)
    else:
        with remote.staged_input(item.place) as (job, root):
            item.work = _read_logged(item, job, options, root)
    item.seconds += time.perf_counter() - started
    return row


def _read_logged(item: _Item, job: Job, options: FileOptions, log_root: Any) -> Loaded | FileResult:
    log = _StagedLog(log_root, item.key, item.logged)
    work = check_and_read(job, replace(options, history=log))
    item.records.extend(log.staged)  # an output known only by its XMP gets logged (see batch._decide_existing)
    return work


class _RestoreActor:
    """A Ray actor holding one model, loaded at the first photo that needs it."""

    def __init__(self, build: BuildProcessor, threads: int | None) -> None:
        self._build = build
        self._threads = threads
        self._processor: ImageProcessor | None = None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        items = list(batch["item"])
        for item in items:
            if isinstance(item.work, Loaded):
                started = time.perf_counter()
                item.work = self._restore(item.work, started)
                item.seconds += time.perf_counter() - started
        return {"item": items}

    def _restore(self, loaded: Loaded, started: float) -> _Restored | FileResult | _Fatal:
        try:
            if self._processor is None:
                self._processor = self._build(self._threads)
                started = time.perf_counter()  # loading the model is not this file's time
            outcome = restore_loaded(self._processor, loaded, started)
        except (WeightsError, UsageError) as error:
            return _Fatal(error)
        except Exception as error:  # noqa: BLE001 - as in a local run: this file fails, the next one retries
            return failure(loaded.job, error, started)
        if isinstance(outcome, FileResult):
            return outcome
        image, details = outcome
        return _Restored(loaded, image, details, self._processor.label)


def _actor_class(build: BuildProcessor, threads: int) -> type:
    """``_RestoreActor`` with its arguments built in: shipped with the class, so a restarted actor
    never depends on constructor arguments kept in the object store (ray-project/ray#53727)."""

    class RestoreActor(_RestoreActor):
        def __init__(self) -> None:
            super().__init__(build, threads)

    return RestoreActor


def _write(row: dict[str, Any], options: FileOptions, log_root: str) -> dict[str, Any]:
    item: _Item = row["item"]
    restored = item.work
    if not isinstance(restored, _Restored):
        return row
    started = time.perf_counter() - item.seconds  # the file's time is its work in every stage
    if item.place is None:
        item.work = _write_logged(item, restored, started, options, log_root)
    else:
        with remote.staged_output(item.place, restored.loaded.job) as (job, root, upload):
            item.work = _write_logged(item, replace(restored, loaded=replace(restored.loaded, job=job)),
                                      started, options, root)
            if item.work.status != FAILED:
                item.work = upload(item.work)
            if item.work.status == FAILED:
                item.records.clear()  # nothing reached the store: nothing to log
    restored.loaded.image = restored.image = None  # type: ignore[assignment] - pixels need not travel back
    return row


def _write_logged(item: _Item, restored: _Restored, started: float, options: FileOptions, log_root: Any) -> FileResult:
    log = _StagedLog(log_root, item.key, None)
    result = write_and_record(restored.loaded, restored.image, restored.details, restored.label, started,
                              replace(options, history=log))
    item.records.extend(log.staged)
    return result


# --- the driver ------------------------------------------------------------------------------------


def run_on_ray(
    jobs: Sequence[Job],
    build: BuildProcessor,
    options: FileOptions,
    engine: RayEngine,
    *,
    places: Sequence[remote.RemotePair] | None = None,
    written_beside: Callable[[Any], Any] | None = None,
    fail_fast: bool = False,
    on_file_start: Callable[[Job], None] | None = None,
) -> Iterator[FileResult]:
    """One result per job, in the order they finish; the run log is written here, on the driver.

    ``places`` (one per job) when inputs and outputs are URIs: workers then stage each file
    through a local temporary folder. Stopping early (``fail_fast``, closing the iterator,
    KeyboardInterrupt) stops the cluster's work and removes the temporary files of writes cut
    short, beside each output and beside ``written_beside(output)`` (a preview) if given.
    """
    ray = require_ray()
    started_ray = _connect(ray, engine.address)
    history = options.history
    finished = False
    rows: Iterator[dict[str, Any]] | None = None
    try:
        items = [_Item(_absolute(job), _names(job, place), *_log_entry(history, job, place), place=place)
                 for job, place in zip(jobs, places or [None] * len(jobs))]
        rows = iter(_pipeline(ray, items, options, build, engine).iter_rows())
        failed = False
        for row in rows:
            item: _Item = row["item"]
            if isinstance(item.work, _Fatal):
                raise item.work.error
            result = _logged(item, history)
            if on_file_start is not None:
                on_file_start(item.job)  # the progress shows the file that just finished
            yield result
            failed = failed or result.status == FAILED
            if fail_fast and failed:
                break
        finished = True
    finally:
        if rows is not None and hasattr(rows, "close"):
            rows.close()  # stops the streaming executor: its tasks and actors end
        if not finished and places is None:
            # A worker stopped mid-write leaves its temp file; this run's outputs are ours to clean.
            outputs = [job.output for job in jobs if job.output is not None]
            extra = [written_beside(o) for o in outputs] if written_beside is not None else []
            _clear_cut_writes([*outputs, *extra])
        if started_ray:
            ray.shutdown()


def _clear_cut_writes(outputs: list[Any]) -> None:
    """Remove the temp files of the writes a stop cut short, telling them from writes still finishing.

    Stopping the executor does not wait for its tasks: a write may still be going (it then
    renames its temp file into place), have been killed mid-file (its temp file stays), or
    not have begun yet (a task the stop has not reached starts it, and is then killed). A
    temp file left untouched for ``_WRITE_QUIET`` seconds is a killed one; the folders must
    show no temp file for ``_WRITE_QUIET`` seconds before the stop is over, and after
    ``_WRITE_GRACE`` seconds every one left goes.
    """
    now = time.monotonic()
    deadline, quiet_since = now + _WRITE_GRACE, now
    while now < deadline:
        left = temps_beside(outputs)
        if left:
            quiet_since = now
            remove_temps(left, older_than=_WRITE_QUIET)
        elif now - quiet_since >= _WRITE_QUIET:
            return
        time.sleep(0.2)
        now = time.monotonic()
    remove_stale_temps(outputs, older_than=0)


def _absolute(job: Job) -> Job:
    return Job(job.input.absolute() if job.input else None, job.output.absolute() if job.output else None, job.problem)


def _names(job: Job, place: remote.RemotePair | None) -> tuple[str, str | None]:
    if place is not None:
        return place.input, place.output
    return str(job.input), (str(job.output) if job.output is not None else None)


def _shown(result: FileResult, names: tuple[str, str | None]) -> FileResult:
    """``result`` naming the files as the caller did, not as the worker reached them."""
    given_input, given_output = names
    reason = result.reason
    if reason:
        reason = reason.replace(result.input, given_input)
        if result.output and given_output:
            reason = reason.replace(result.output, given_output)
    return replace(result, input=given_input, output=given_output, reason=reason)


def _log_entry(history: RunLog | None, job: Job, place: remote.RemotePair | None) -> tuple[str, Record | None]:
    if place is not None:
        key = place.key
    elif history is not None and job.output is not None:
        key = history.key(job.output)
    else:
        key = str(job.output)
    logged = history.records().get(key) if history is not None else None
    return key, logged


def _logged(item: _Item, history: RunLog | None) -> FileResult:
    """The item's result, its records appended to the run log (here only: the log's one writer)."""
    result = item.work
    assert isinstance(result, FileResult), result
    result = _shown(result, item.shown)
    for record in item.records:
        if record.input != PurePath(record.input).name:  # a worker's path (a record from XMP has the bare name)
            record.input = item.shown[0]
        if history is None:
            continue
        try:
            history.append(record)
        except OSError as error:  # OutputWriteError: the output is whole and carries its record in XMP
            note = f"written, but the run log could not be updated: {error}; a re-run will redo it or use the XMP record"
            result = replace(result, reason=note)
    return result


def _pipeline(ray: Any, items: list[_Item], options: FileOptions, build: BuildProcessor, engine: RayEngine) -> Any:
    """The Ray Data plan: read tasks -> restore actors -> write tasks, streaming one photo per row."""
    from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy

    context = DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows progress from the results
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    context.enable_fallback_to_arrow_object_ext_type = True  # rows are Python objects: pickled, as intended
    workers, worker_cpus, io_cpus = _shares(ray, engine)
    # The run log stays on the driver; other callables are shipped to the workers as they are.
    shipped = replace(options, history=None, read_stdin=None, write_stdout=None)
    log_root = str(options.history.root) if options.history is not None else "."
    stage_kwargs = {"options": shipped, "log_root": log_root}
    # CPU-only: the actors take the cores, decoding and encoding squeeze in beside them (num_cpus=0),
    # a few at a time; with GPUs every I/O task reserves a CPU of the node.
    io = {"num_cpus": io_cpus, "compute": TaskPoolStrategy(size=2 * workers) if io_cpus == 0 else None}
    dataset = ray.data.from_items([{"item": item} for item in items], override_num_blocks=max(1, len(items)))
    dataset = dataset.map(_check_and_read, fn_kwargs=stage_kwargs, **io)
    dataset = dataset.map_batches(
        _actor_class(build, max(1, int(worker_cpus))),
        batch_size=1,  # photos differ in size; one at a time keeps memory to one image per actor
        compute=ActorPoolStrategy(size=workers),
        num_cpus=worker_cpus,
        num_gpus=engine.gpus_per_worker or None,
    )
    return dataset.map(_write, fn_kwargs=stage_kwargs, **io)


def _shares(ray: Any, engine: RayEngine) -> tuple[int, float, float]:
    """(model actors, CPUs per actor, CPUs per I/O task), checked against what the cluster has."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    if engine.gpus_per_worker:
        workers = engine.workers or max(1, int(gpus // engine.gpus_per_worker))
        if workers * engine.gpus_per_worker > gpus:
            raise UsageError(f"{workers} worker(s) x {engine.gpus_per_worker:g} GPU need "
                             f"{workers * engine.gpus_per_worker:g} GPUs, the Ray cluster has {gpus:g}; "
                             "lower --workers or --gpus-per-worker")
        return workers, 1.0, 1.0
    workers = engine.workers or 1
    if workers > cpus:
        raise UsageError(f"{workers} workers need a CPU each, the Ray cluster has {cpus:g}; lower --workers")
    return workers, cpus / workers, 0.0


def _connect(ray: Any, address: str | None) -> bool:
    """Join or start Ray; True when this call started the connection (the run then ends it)."""
    if ray.is_initialized():
        return False
    # ray.init replaces the SIGTERM handler; the caller's way of stopping must stay as it was.
    in_main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = address or "a local Ray"
        raise UsageError(f"cannot start or join {where} ({error}); check --ray-address "
                         "(e.g. auto, or ray://HEAD:10001)") from None
    finally:
        if in_main and handler is not None:
            signal.signal(signal.SIGTERM, handler)
    return True
