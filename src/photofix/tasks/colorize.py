"""colorize: colour black-and-white photos with DDColor, keeping the original's detail."""

from __future__ import annotations

from functools import partial

from dataclasses import dataclass
from typing import Any, Optional

from photofix.run.provenance import Step
from photofix.tasks._shared import device, entry_hash, file_hash, load_announced, set_threads
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec, option


@dataclass(frozen=True)
class ColorizeOptions:
    render_size: Optional[int] = option(
        None, "Square size the model sees the photo at (a multiple of 32). Default: the model's training size "
        "(256). Larger can give finer colour regions, at 4x the time per doubling; detail always comes from the original.",
        low=32, high=2048,
    )
    saturation: float = option(1.0, "Scale the predicted colour (1.0 = the model's, 0 = grey, 1.2 = livelier).", low=0.0, high=3.0)


def plan(run: RunSettings, options: ColorizeOptions, notify: Notify) -> PlannedStep:
    from photofix.store.choice import choose_entry
    from photofix.store.manifest import load_manifest

    where = device(run)
    recorded = SPEC.recorded(options)
    if run.weights is not None:
        entry, step = None, Step("colorize", run.weights.name, file_hash(run.weights), recorded)
    else:
        entry = choose_entry(load_manifest(), "colorize", run.model, run.tier, on_cpu=where.type == "cpu")
        step = Step("colorize", entry.id, entry_hash(entry), recorded)

    def build() -> Any:
        from photofix.methods.colorize import load_colorizer
        from photofix.tasks.processors import ColorizeProcessor

        set_threads(run.threads)
        if entry is None:
            colorizer = load_colorizer(run.weights, where, options.render_size, precision=run.precision)
        else:
            colorizer = load_announced(entry, run, notify, partial(load_colorizer, render_size=options.render_size or entry.params.get("render_size")))
        notify("detail", f"colorize: device {colorizer.device}, {colorizer.model.precision}, chroma predicted at {colorizer.render_size} px, "
                         f"saturation {options.saturation}")
        return ColorizeProcessor(colorizer, options.saturation)

    return PlannedStep(step, build)


SPEC = TaskSpec(
    name="colorize",
    summary="Colour black-and-white photos with DDColor, keeping the original's full-resolution detail.",
    description="""Colour black-and-white (or faded) photos; colour inputs are made grey first.

    Chroma is predicted at --render-size and laid under the original luminance, so the
    output has the input's full resolution and tonal detail (16-bit stays 16-bit).

    Examples: photofix colorize grandma.tif grandma_colour.tif   ·   photofix colorize -r scans/ colour/ --saturation 1.2""",
    options=ColorizeOptions,
    plan=plan,
)

__all__ = ["SPEC", "ColorizeOptions"]
