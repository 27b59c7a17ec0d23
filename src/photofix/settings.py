"""Settings resolved at call time: explicit argument > environment variable > default.

Nothing here is read at import time, so a test or a long-lived process can change
the environment and be obeyed on the next call.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "PHOTOFIX_HOME"
ENV_OFFLINE = "PHOTOFIX_OFFLINE"
ENV_DEVICE = "PHOTOFIX_DEVICE"
ENV_THREADS = "PHOTOFIX_THREADS"
ENV_DEBUG = "PHOTOFIX_DEBUG"
ENV_MANIFEST = "PHOTOFIX_MANIFEST"

_TRUE = {"1", "true", "yes", "on"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def photofix_home(explicit: str | os.PathLike | None = None) -> Path:
    """Folder for photofix's own state (URL downloads, trust-on-first-use hashes).

    ``PHOTOFIX_HOME`` > ``$XDG_CACHE_HOME/photofix`` > ``~/.cache/photofix``.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "photofix"


def hub_cache_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Hugging Face cache folder to use, or None to let huggingface_hub decide.

    With ``PHOTOFIX_HOME`` set, weights live under it (self-contained installs);
    otherwise the standard HF cache (``HF_HUB_CACHE`` / ``HF_HOME``) is shared
    with other tools so a model is never downloaded twice.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_HOME):
        return photofix_home() / "hub"
    return None


def hub_cache_path(explicit: str | os.PathLike | None = None) -> Path:
    """Concrete Hugging Face cache folder: ``hub_cache_dir()``, else huggingface_hub's default.

    The default follows huggingface_hub's own rules (``HF_HUB_CACHE`` > ``HF_HOME/hub`` >
    ``$XDG_CACHE_HOME/huggingface/hub``) but read now, not when huggingface_hub was imported,
    so offline cache look-ups and imports need not import it.
    """
    chosen = hub_cache_dir(explicit)
    if chosen is not None:
        return chosen
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    hf_home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(hf_home)).expanduser() / "hub"


def offline(explicit: bool | None = None) -> bool:
    """True when no download may be attempted: ``explicit`` when given (True or False), else
    ``PHOTOFIX_OFFLINE`` / ``HF_HUB_OFFLINE``."""
    if explicit is not None:
        return explicit
    return _env_flag(ENV_OFFLINE) or _env_flag("HF_HUB_OFFLINE")


def device_preference(explicit: str | None = None) -> str:
    """Requested device string: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if explicit and explicit != "auto":
        return explicit
    return os.environ.get(ENV_DEVICE, "auto") or "auto"


def threads(explicit: int | None = None) -> int | None:
    """CPU threads for torch, or None to keep torch's default."""
    if explicit:
        return explicit
    raw = os.environ.get(ENV_THREADS)
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else None


def manifest_path() -> Path | None:
    """A weights manifest of the user's own (``PHOTOFIX_MANIFEST``), or None for the packaged one."""
    raw = os.environ.get(ENV_MANIFEST)
    return Path(raw).expanduser() if raw else None


def debug() -> bool:
    """``PHOTOFIX_DEBUG=1`` shows full tracebacks in the CLI."""
    return _env_flag(ENV_DEBUG)


__all__ = [
    "ENV_DEBUG",
    "ENV_DEVICE",
    "ENV_HOME",
    "ENV_MANIFEST",
    "ENV_OFFLINE",
    "ENV_THREADS",
    "debug",
    "device_preference",
    "hub_cache_dir",
    "hub_cache_path",
    "manifest_path",
    "offline",
    "photofix_home",
    "threads",
]
