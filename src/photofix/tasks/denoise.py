"""denoise: remove sensor noise and film grain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from photofix.tasks._network import plan_network
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec, option


@dataclass(frozen=True)
class DenoiseOptions:
    sigma: Optional[float] = option(
        None, "Noise level (std. dev. on the 0-255 scale) for non-blind models. Default: estimated per image and reported.",
        low=0.0, high=255.0,
    )


def plan(run: RunSettings, options: DenoiseOptions, notify: Notify) -> PlannedStep:
    from photofix.tasks.restore import TaskParams

    return plan_network("denoise", run, TaskParams(sigma=options.sigma), SPEC.recorded(options), notify)


SPEC = TaskSpec(
    name="denoise",
    summary="Remove noise and grain. Non-blind models (FFDNet, DRUNet) use --sigma, estimated from the image when not given.",
    description="""Remove sensor noise and film grain.

    Examples: photofix denoise noisy.jpg clean.jpg   ·   photofix denoise -r scans/ clean/ --sigma 15""",
    options=DenoiseOptions,
    plan=plan,
)

__all__ = ["SPEC", "DenoiseOptions"]
