"""Replace a file all at once: a reader sees the old file or the new one, never a part.

The one atomic writer for outputs, weights and photofix's own JSON files, plus file hashing.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from photofix.errors import OutputWriteError

CHUNK_SIZE = 1 << 20
# Temp files are ".NAME.<8 hex>.tmp" beside NAME; ``temp_target`` recognises exactly that.
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\.(.+)\.[0-9a-f]{8}\.tmp", re.DOTALL)

T = TypeVar("T")


def write_atomic(target: Path, write: Callable[[BinaryIO], T], *, suffix: str = TEMP_SUFFIX) -> T:
    """Write via a temp file beside ``target``, fsync, rename; returns what ``write`` returned.

    Any exception (KeyboardInterrupt too) removes the temp file and propagates unchanged;
    raising inside ``write`` is how a caller rejects what it wrote.
    """
    tmp, fd = create_temp(target, suffix)
    try:
        with os.fdopen(fd, "wb") as fp:
            result = write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(target.parent)
    return result


def write_file(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write_atomic`` for outputs: failures become OutputWriteError saying what to do."""
    try:
        write_atomic(target, write)
    except OSError as err:
        reason = err.strerror or err
        raise OutputWriteError(f"{target}: could not write the file ({reason}); check that "
                               "the folder is writable and the disk has space") from err
    except Exception as err:  # the encoder refused (EXIF too long, size limits, ...)
        raise OutputWriteError(f"{target}: could not encode the image ({err}); "
                               "try another output format") from err


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` as UTF-8; OSError propagates unchanged."""
    data = text.encode("utf-8")
    write_atomic(path, lambda fp: fp.write(data))


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` (creating its folder) so that ``dest`` is never seen half-copied."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as inp:
        write_atomic(dest, lambda out: shutil.copyfileobj(inp, out, CHUNK_SIZE))


def symlink_atomic(link: Path, points_to: str) -> None:
    """Make ``link`` a symlink to ``points_to``, replacing whatever was there in one rename."""
    tmp, _ = _claim_temp(link, TEMP_SUFFIX, lambda name: os.symlink(points_to, name))
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(link.parent)


def create_temp(target: Path, suffix: str = TEMP_SUFFIX) -> tuple[Path, int]:
    """A new hidden file beside the target; os.open applies the user's umask to 0o666."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return _claim_temp(target, suffix, lambda name: os.open(name, flags, 0o666))


def _claim_temp(target: Path, suffix: str, make: Callable[[Path], T]) -> tuple[Path, T]:
    # Same folder, so os.replace is an atomic rename; ``make`` must fail if the name exists.
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return tmp, make(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def temp_target(name: str) -> str | None:
    """The NAME a temp file of ``create_temp``'s naming was being written for, else None."""
    found = _TEMP_NAME.fullmatch(name)
    return found.group(1) if found else None


def sync_folder(folder: Path) -> None:
    """Make the rename durable; some systems cannot fsync folders, and the file is in place."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so large checkpoints need no RAM."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["CHUNK_SIZE", "copy_atomic", "create_temp", "sha256_file", "symlink_atomic", "sync_folder",
           "write_atomic", "write_file", "write_text_atomic"]
