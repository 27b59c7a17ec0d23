"""One exception tree for photofix.

Every error subclasses a stdlib type, so callers can catch what they know
(``FileNotFoundError``, ``ValueError``…), and every message ends with what the
user should do next. ``exit_code`` is what the CLI exits with when the error
ends a run (see ARCHITECTURE.md: 1 file failed, 2 usage, 3 weights/model).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_WEIGHTS = 3
EXIT_INTERRUPTED = 130


class PhotofixError(Exception):
    """Base of every error photofix raises on purpose."""

    exit_code = EXIT_SOME_FAILED


# --- usage -----------------------------------------------------------------


class UsageError(PhotofixError, ValueError):
    """The command line or call asks for something that cannot be done."""

    exit_code = EXIT_USAGE


class UnknownModel(UsageError, LookupError):
    """A model id that the manifest does not list."""


# --- images ----------------------------------------------------------------


class ImageError(PhotofixError, ValueError):
    """This image cannot be processed as asked (its mask, its content): that file fails alone.

    Algorithms raise it for bad per-image data; UsageError is for the command or call itself,
    which would fail for every file and so ends the run before the first one.
    """


class UnsupportedImage(ImageError):
    """An input file that cannot be read as an image (corrupt, truncated, not an image)."""


class ImageTooLarge(UnsupportedImage):
    """An image over the decompression-bomb limit."""


class NotEnoughMemory(ImageTooLarge):
    """An image whose restoration would not fit in the memory available, or ran out of it."""


class OutputWriteError(PhotofixError, OSError):
    """An output could not be written; nothing partial is left behind."""


# --- weights and models ----------------------------------------------------


class WeightsError(PhotofixError):
    """Anything that keeps a model's weights from being used."""

    exit_code = EXIT_WEIGHTS


class ManifestError(WeightsError, ValueError):
    """weights_manifest.toml is malformed or an entry is inconsistent."""


class WeightsNotCached(WeightsError, FileNotFoundError):
    """Weights are needed but not in the cache and may not be downloaded (offline)."""


class WeightsDownloadFailed(WeightsError, ConnectionError):
    """The download did not complete (network, server, disk)."""


class ChecksumMismatch(WeightsError, ValueError):
    """A weights file's sha256 differs from the manifest's."""


class ModelLoadError(WeightsError, ValueError):
    """A checkpoint could not be turned into a model (unknown layout, corrupt file)."""


class ArchitectureMismatch(ModelLoadError):
    """The detected architecture is not the one the manifest promises."""


# --- running ---------------------------------------------------------------


class DeviceError(UsageError):
    """The requested device or precision is not available on this machine."""


class TileOutOfMemory(PhotofixError, MemoryError):
    """A tile did not fit in device memory even at the smallest tile size."""


class NonFiniteOutput(PhotofixError, ArithmeticError):
    """A model produced NaN or infinite values (typically half precision overflow)."""


__all__ = [
    "ArchitectureMismatch",
    "ChecksumMismatch",
    "DeviceError",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "EXIT_WEIGHTS",
    "ImageError",
    "ImageTooLarge",
    "ManifestError",
    "ModelLoadError",
    "NonFiniteOutput",
    "NotEnoughMemory",
    "OutputWriteError",
    "PhotofixError",
    "TileOutOfMemory",
    "UnknownModel",
    "UnsupportedImage",
    "UsageError",
    "WeightsDownloadFailed",
    "WeightsError",
    "WeightsNotCached",
]
