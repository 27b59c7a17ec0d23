"""Every task in one table, each defined once in its own module.

Adding a task: a module here with an options dataclass (``spec.option`` fields), a ``plan``
function returning a ``PlannedStep``, and a ``SPEC``; its entry in ``TASKS`` below; its
models in ``weights_manifest.toml``; tests. The command line, ``--steps`` and
``make_processor`` pick it up from the spec.
"""

from __future__ import annotations

from photofix.errors import UsageError
from photofix.tasks import colorize, deblur, denoise, derain, deshadow, faces, scratch_repair, upscale
from photofix.tasks import spec
from photofix.tasks.spec import *  # noqa: F403 - the spec's whole public surface, re-exported
from photofix.tasks.steps import PRESETS, StepRequest, parse_steps, preset_steps

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (denoise.SPEC, deblur.SPEC, derain.SPEC, upscale.SPEC, colorize.SPEC, scratch_repair.SPEC, deshadow.SPEC, faces.SPEC)
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


__all__ = ["PRESETS", "TASKS", "StepRequest", "get_task", "parse_steps", "preset_steps", *spec.__all__]
