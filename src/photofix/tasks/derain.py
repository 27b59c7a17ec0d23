"""derain: remove rain streaks."""

from __future__ import annotations

from dataclasses import dataclass

from photofix.tasks._network import plan_network
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec


@dataclass(frozen=True)
class DerainOptions:
    """derain has no options of its own."""


def plan(run: RunSettings, options: DerainOptions, notify: Notify) -> PlannedStep:
    from photofix.tasks.restore import TaskParams

    return plan_network("derain", run, TaskParams(), SPEC.recorded(options), notify)


SPEC = TaskSpec(
    name="derain",
    summary="Remove rain streaks. Its only model is non-commercial: opt in with --model restormer-derain.",
    description="""Remove rain streaks.

    Example: photofix derain street.jpg clear.jpg --model restormer-derain""",
    options=DerainOptions,
    plan=plan,
)

__all__ = ["SPEC", "DerainOptions"]
