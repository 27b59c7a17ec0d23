"""deblur: remove motion blur, or defocus blur with kind=defocus."""

from __future__ import annotations

from dataclasses import dataclass

from photofix.tasks._network import plan_network
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec, option


@dataclass(frozen=True)
class DeblurOptions:
    kind: str = option(
        "motion", "motion (shake, moving subjects) or defocus (missed focus; non-commercial model only).",
        choices=("motion", "defocus"),
    )


def plan(run: RunSettings, options: DeblurOptions, notify: Notify) -> PlannedStep:
    from photofix.tasks.restore import TaskParams

    return plan_network("deblur", run, TaskParams(kind=options.kind), SPEC.recorded(options), notify)


SPEC = TaskSpec(
    name="deblur",
    summary="Remove motion blur (NAFNet, GoPro-trained) or, with --kind defocus, missed focus.",
    description="""Remove motion blur, or defocus blur with --kind defocus.

    Examples: photofix deblur shaky.jpg sharp.jpg   ·   photofix deblur -r trip/ sharp/ --tier fast""",
    options=DeblurOptions,
    plan=plan,
)

__all__ = ["SPEC", "DeblurOptions"]
