"""The ``--steps`` language of ``photofix restore`` and its presets.

``"scratch-repair,denoise:model=scunet-real:sigma=15,upscale:scale=2"``: steps are
separated by commas, a step's options by colons, each option ``key=value``. The keys are
the task's own options as its spec declares them (``render-size`` and ``render_size`` both
work) plus ``model`` and ``weights``. Values are checked here, before anything loads, so a
typo in the fifth step fails at once with the step named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photofix.errors import UsageError
from photofix.tasks.spec import Option, OptionField

PRESETS: dict[str, str] = {
    # Damage first (inpainting works best on the original grain), then grain, then colour
    # on the clean photo, then enlarge the finished result once, then the faces at the final
    # size: an oracle face step gained 0.5-2.8 dB more in the faces there than before the 2x
    # step (benchmarks/FACES_EVAL.md).
    "old-photo": "scratch-repair,denoise,colorize,upscale:scale=2,faces",
    # Phone shots: sensor noise, then shake; denoising first keeps the deblurring
    # network from sharpening noise into texture.
    "phone": "denoise,deblur",
}


# model and weights, checked like any option of the task's own (a weights file must exist)
_WEIGHTS = OptionField("weights", Path, True, None, Option("a local checkpoint", must_exist=True))
_MODEL_OPTIONS: dict[str, Callable[[str], Any]] = {"model": str, "weights": _WEIGHTS.check}


def _step_options(task: str) -> dict[str, Callable[[str], Any]]:
    """The keys a step of ``task`` takes, each with its converter: model, weights and the task's own options."""
    from photofix.tasks import get_task

    return {**_MODEL_OPTIONS, **{f.name: f.check for f in get_task(task).option_fields()}}


@dataclass(frozen=True)
class StepRequest:
    """One step as the user wrote it, values converted: ``options`` holds only what was given."""

    task: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        return self.options.get("model")

    @property
    def weights(self) -> Path | None:
        return self.options.get("weights")

    @property
    def task_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in _MODEL_OPTIONS}


def parse_steps(text: str) -> list[StepRequest]:
    """Parse a ``--steps`` value; UsageError naming the step and what is allowed."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise UsageError(f"--steps {text!r}: give tasks separated by commas, e.g. 'denoise,upscale:scale=2'")
    return [_parse_step(part, number) for number, part in enumerate(parts, 1)]


def _parse_step(text: str, number: int) -> StepRequest:
    from photofix.tasks import TASKS

    task, *pairs = (p.strip() for p in text.split(":"))
    if task not in TASKS:
        raise UsageError(f"step {number} {task!r}: unknown task; choose from {', '.join(TASKS)}")
    allowed = _step_options(task)
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not value.strip():
            raise UsageError(f"step {number} ({task}): {pair!r} is not key=value, e.g. '{task}:model=ID'")
        if key not in allowed:
            keys = ", ".join(k.replace("_", "-") for k in allowed)
            raise UsageError(f"step {number} ({task}): unknown option {key.replace('_', '-')!r}; {task} takes {keys}")
        if key in options:
            raise UsageError(f"step {number} ({task}): {key.replace('_', '-')} is given twice")
        try:
            options[key] = allowed[key](value.strip())
        except ValueError as error:
            raise UsageError(f"step {number} ({task}): {key.replace('_', '-')}={value.strip()!r}: {error}") from None
    if "model" in options and "weights" in options:
        raise UsageError(f"step {number} ({task}): model and weights both choose the model; give one of them")
    return StepRequest(task, options)


def preset_steps(name: str) -> list[StepRequest]:
    try:
        return parse_steps(PRESETS[name])
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


__all__ = [
    "PRESETS",
    "StepRequest",
    "parse_steps",
    "preset_steps",
]
