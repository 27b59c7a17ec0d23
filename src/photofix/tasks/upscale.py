"""upscale: enlarge with a super-resolution network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from photofix.tasks._network import plan_network
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec, option


@dataclass(frozen=True)
class UpscaleOptions:
    scale: Optional[float] = option(
        None, "Final scale factor. The model's own factor is used, then resampled to this one if it differs.",
        low=1.0, high=16.0,
    )


def plan(run: RunSettings, options: UpscaleOptions, notify: Notify) -> PlannedStep:
    from photofix.tasks.restore import TaskParams

    return plan_network("upscale", run, TaskParams(scale=options.scale), SPEC.recorded(options), notify)


SPEC = TaskSpec(
    name="upscale",
    summary="Enlarge with a super-resolution network (4x by default).",
    description="""Enlarge photos with a super-resolution model.

    Examples: photofix upscale small.png big.png   ·   photofix upscale photos/ big/ --scale 2 --tier fast""",
    options=UpscaleOptions,
    plan=plan,
)

__all__ = ["SPEC", "UpscaleOptions"]
