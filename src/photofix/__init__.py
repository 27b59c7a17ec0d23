"""photofix: restore photos with pretrained networks.

Importing the package is cheap; torch loads only when a model-related name is
first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "make_processor": "api",
    "restore_path": "api",
    "plan_steps": "api",
    "Processor": "api",
    "RayEngine": "api",
    "TASKS": "tasks",
    "get_task": "tasks",
    "parse_steps": "tasks",
    "StepRequest": "tasks",
    "RunSettings": "tasks",
    "Job": "run.jobs",
    "Image": "imageio",
    "ImageMeta": "imageio",
    "read_image": "imageio",
    "write_image": "imageio",
    "load_model": "engine.models",
    "load_entry": "engine.models",
    "LoadedModel": "engine.models",
    "load_manifest": "store.manifest",
    "Restorer": "tasks.restore",
    "TaskParams": "tasks.restore",
    "FileResult": "run.jobs",
    "plan_jobs": "run.jobs",
    "run_jobs": "run.batch",
    "FileOptions": "run.batch",
    "Chain": "tasks.restore",
    "restore_image": "tasks.restore",
    "run_tiled": "engine.tiling",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'photofix' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
