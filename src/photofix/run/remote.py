"""Inputs and outputs behind file-system URIs (``s3://``, ``gs://``, ``file://``) for the Ray engine.

pyarrow's file systems do the I/O. Each file is staged through a local temporary folder, so
the per-file code of a local run (``batch``) works unchanged on local paths: the worker
downloads the input (and an existing output, to check its record), and after a write uploads
the output and its preview. An upload is one object PUT (on a local file system a temp file
and a rename), so a reader never sees half a file. The run log is kept in a local copy on the
driver and uploaded when the run ends.

pyarrow comes with ``photofix[ray]``; it is imported only when a URI is used.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from photofix import imageio
from photofix.errors import OutputWriteError, UsageError
from photofix.run.jobs import _EXTENSION_FOR_FORMAT  # one table of output extensions, shared with plan_jobs
from photofix.run.jobs import FAILED, PREVIEW_SUFFIX, FileResult, Job
from photofix.run.provenance import LOG_FOLDER, LOG_NAME, RunLog

__all__ = ["RemotePair", "is_uri", "plan_remote_jobs", "remote_run_log", "staged_input", "staged_output", "upload"]



def is_uri(spec: str | os.PathLike[str]) -> bool:
    """``scheme://...`` (two letters at least, so ``C:\\`` stays a path)."""
    scheme, sep, _ = os.fspath(spec).partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.isalnum()


@dataclass(frozen=True)
class RemotePair:
    """One photo's input and output URIs, and the output's key in the run log (its path under OUTPUT)."""

    input: str
    output: str
    key: str



def _filesystem(uri: str) -> tuple[Any, str]:
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as error:
        raise UsageError(f"{uri}: cannot open this URI ({error}); check the scheme and credentials") from None


def _join(uri: str, relative: str) -> str:
    return uri.rstrip("/") + "/" + relative


# --- planning, on the driver -------------------------------------------------------------------


def plan_remote_jobs(input_uri: str, output_uri: str, *, recursive: bool = False, output_format: str | None = None,
                     suffix: str = "", include: Sequence[str] = (), exclude: Sequence[str] = ()) -> tuple[list[Job], list[RemotePair]]:
    """Jobs (for display: relative names) and their URIs; UsageError for what cannot be done, as ``plan_jobs``."""
    from pyarrow.fs import FileSelector, FileType

    if not is_uri(output_uri):
        raise UsageError(f"{output_uri}: with a URI as INPUT give a URI as OUTPUT too (e.g. file:///data/out or s3://bucket/out)")
    in_fs, in_path = _filesystem(input_uri)
    info = in_fs.get_file_info(in_path)
    if info.type == FileType.NotFound:
        raise UsageError(f"{input_uri}: no such file or folder; check the URI")
    if info.type == FileType.File:
        names = [PurePosixPath(in_path).name]
        base_uri = input_uri.rsplit("/", 1)[0]
    else:
        listed = in_fs.get_file_info(FileSelector(in_path, recursive=recursive))
        names = sorted(PurePosixPath(i.path).relative_to(in_path.rstrip("/") or "/").as_posix()
                       for i in listed if i.type == FileType.File and _is_photo(i.path))
        base_uri = input_uri
    names = [n for n in names if _selected(n, include, exclude)]
    if not names:
        raise UsageError(f"{input_uri}: no images found{'' if recursive else ' (add -r to search sub-folders)'}")
    if output_uri.rstrip("/") == base_uri.rstrip("/") and not suffix:
        raise UsageError(f"{output_uri}: OUTPUT is the input folder, so outputs would replace the originals; "
                         "choose another folder or add --suffix")
    jobs, places, keys = [], [], set()
    for name in names:
        source = PurePosixPath(name)
        extension = _EXTENSION_FOR_FORMAT[output_format] if output_format else source.suffix
        key = (source.parent / f"{source.stem}{suffix}{extension}").as_posix()
        if key in keys:
            raise UsageError(f"two inputs would both be written to {_join(output_uri, key)}; "
                             "drop --format or leave one out with --exclude")
        keys.add(key)
        jobs.append(Job(Path(name), Path(key)))
        places.append(RemotePair(_join(base_uri, name), _join(output_uri, key), key))
    return jobs, places


def _is_photo(path: str) -> bool:
    lower = path.lower()
    return not lower.endswith(PREVIEW_SUFFIX) and PurePosixPath(lower).suffix in imageio.SUPPORTED_EXTENSIONS


def _selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    name = PurePosixPath(relative).name

    def matches(pattern: str) -> bool:
        return fnmatch.fnmatchcase(relative if "/" in pattern else name, pattern)

    return (not include or any(map(matches, include))) and not any(map(matches, exclude))


@contextmanager
def remote_run_log(output_uri: str) -> Iterator[RunLog]:
    """A local copy of ``OUTPUT/.photofix/runs.jsonl``, uploaded back when the run ends (however it ends)."""
    log_uri = _join(output_uri, f"{LOG_FOLDER}/{LOG_NAME}")
    with tempfile.TemporaryDirectory(prefix="photofix-log-") as folder:
        log = RunLog(folder)
        _download_if_exists(log_uri, log.path)
        before = log.path.stat().st_mtime_ns if log.path.exists() else None
        try:
            yield log
        finally:
            if log.path.exists() and log.path.stat().st_mtime_ns != before:
                upload(log.path, log_uri)


# --- staging, in the workers -----------------------------------------------------------------------


@contextmanager
def staged_input(place: RemotePair) -> Iterator[tuple[Job, Path]]:
    """(a local Job, the local OUTPUT root): the input downloaded, and the output too if it exists."""
    with tempfile.TemporaryDirectory(prefix="photofix-in-") as folder:
        local_in = Path(folder) / "input" / PurePosixPath(place.input).name
        root = Path(folder) / "output"
        local_out = root / place.key
        local_in.parent.mkdir(parents=True)
        local_out.parent.mkdir(parents=True)
        try:
            _download(place.input, local_in)
        except OSError:
            pass  # left missing: batch.check_and_read reports it as unreadable, naming the file
        _download_if_exists(place.output, local_out)
        yield Job(local_in, local_out), root


@contextmanager
def staged_output(place: RemotePair, read_job: Job) -> Iterator[tuple[Job, Path, Callable[[FileResult], FileResult]]]:
    """(a local Job to write, the local OUTPUT root, ``upload(result)``) in a fresh temporary folder."""
    with tempfile.TemporaryDirectory(prefix="photofix-out-") as folder:
        root = Path(folder)
        local_out = root / place.key
        local_out.parent.mkdir(parents=True, exist_ok=True)

        def send(result: FileResult) -> FileResult:
            """Upload the output and what was written beside it (a preview); a failed upload fails the file."""
            try:
                for written in sorted(p for p in local_out.parent.iterdir() if p.is_file()):
                    relative = written.relative_to(root).as_posix()
                    upload(written, _join(place.output[: -len(place.key)].rstrip("/"), relative))
            except OSError as error:
                return replace(result, status=FAILED, reason=f"{place.output}: upload failed ({error}); run again to retry")
            return result

        yield Job(read_job.input, local_out), root, send


def _download(uri: str, target: Path) -> None:
    from pyarrow.fs import FileType

    fs, path = _filesystem(uri)
    if fs.get_file_info(path).type != FileType.File:
        raise FileNotFoundError(uri)
    with fs.open_input_stream(path) as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)


def _download_if_exists(uri: str, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _download(uri, target)
    except FileNotFoundError:
        target.unlink(missing_ok=True)


def upload(local: Path, uri: str) -> None:
    """Put ``local`` at ``uri`` whole: one object PUT, or on a local file system a temp file and a rename."""
    from pyarrow.fs import LocalFileSystem

    fs, path = _filesystem(uri)
    parent = str(PurePosixPath(path).parent)
    local_fs = isinstance(fs, LocalFileSystem)
    target = f"{parent}/.{PurePosixPath(path).name}.{secrets.token_hex(4)}.tmp" if local_fs else path
    try:
        if local_fs:
            fs.create_dir(parent, recursive=True)
        with open(local, "rb") as source, fs.open_output_stream(target) as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        if local_fs:
            fs.move(target, path)
    except BaseException as error:
        if local_fs:
            try:
                fs.delete_file(target)
            except OSError:
                pass
        if isinstance(error, OSError):
            raise OutputWriteError(f"{uri}: could not upload ({error}); check the credentials and that the "
                                   "bucket or folder is writable") from error
        raise
