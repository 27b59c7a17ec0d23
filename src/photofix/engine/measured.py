"""Measurements kept between runs: one JSON file of key → value under ``PHOTOFIX_HOME``.

A measurement that depends only on the weights, the machine and the code (the bf16 gate's
verdict, a model's activation memory per pixel) is taken once and read back by later runs,
so a shell loop over many files does not pay it per file. The caller's key must name
everything the value depends on. An unreadable file is measured over; one that cannot be
written costs a measurement per run, never the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from photofix import settings
from photofix._files import write_text_atomic

__all__ = ["MeasuredStore"]


class MeasuredStore:
    """``path``: absolute, or a file name under ``PHOTOFIX_HOME`` as it is at each use."""

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)

    @property
    def path(self) -> Path:
        return self._path if self._path.is_absolute() else settings.photofix_home() / self._path

    def _read(self) -> dict[str, Any]:
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def get(self, key: str) -> Any:
        return self._read().get(key)

    def put(self, key: str, value: Any) -> None:
        found = self._read()
        found[key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(found, indent=1, sort_keys=True, default=str))
        except OSError:
            pass
