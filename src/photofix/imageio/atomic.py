"""Replace a file all at once: a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from photofix.errors import OutputWriteError


def write_file(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write via a temp file beside ``target``, fsync, rename; remove it on any failure."""
    tmp: Path | None = None
    try:
        tmp, fd = create_temp(target)
        with os.fdopen(fd, "wb") as fp:
            write(fp)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, target)
        tmp = None
    except BaseException as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            reason = err.strerror or err
            raise OutputWriteError(f"{target}: could not write the file ({reason}); check that "
                                   "the folder is writable and the disk has space") from err
        if isinstance(err, Exception):  # the encoder refused (EXIF too long, size limits, ...)
            raise OutputWriteError(f"{target}: could not encode the image ({err}); "
                                   "try another output format") from err
        raise  # KeyboardInterrupt and friends, after cleaning up
    sync_folder(target.parent)


def create_temp(target: Path) -> tuple[Path, int]:
    """A new hidden file beside the target; os.open applies the user's umask to 0o666."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


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
