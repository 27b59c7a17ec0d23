"""deshadow: lighten cast shadows, found automatically (or from a mask) and relit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from photofix.errors import UsageError
from photofix.run.provenance import Step
from photofix.tasks._shared import device, entry_hash, file_hash, load_announced, mask_hooks, note_once, set_threads
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec, option


@dataclass(frozen=True)
class DeshadowOptions:
    mask: Optional[Path] = option(
        None, "Your own shadow mask (white = shadow, grey = penumbra): one image file, or a folder of masks named "
        "like the photos (photo.png or photo_mask.png).", must_exist=True,
    )
    mask_out: Optional[Path] = option(
        None, "Also write each shadow mask used to this folder as NAME_mask.png.", folder=True, in_record=False,
    )
    sensitivity: float = option(
        1.0, "Detection sensitivity: above 1 finds fainter shadows (and more dark objects), below 1 only clear ones.",
        low=0.1, high=10.0,
    )
    match_texture: bool = option(False, "Also match the relit area's noise to the lit side's (less amplified grain).")


def plan(run: RunSettings, options: DeshadowOptions, notify: Notify) -> PlannedStep:
    from photofix.store.manifest import load_manifest
    from photofix.tasks.processors import DeshadowProcessor
    from photofix.store.weights import cached_path

    recorded = SPEC.recorded(options)
    hooks = mask_hooks(options.mask, options.mask_out)
    detector = _cached_detector(options)  # decided now and recorded: it changes every mask
    if detector is not None:
        recorded = {**recorded, "shadow_detector": detector.id}
    mask_from = "--mask" if options.mask else f"the {detector.id} detector" if detector else "the classical detector"

    def processor(**learned: Any) -> DeshadowProcessor:
        if detector is not None:
            set_threads(run.threads)
            learned["detector"] = load_announced(detector, run, notify)
        return DeshadowProcessor(options.sensitivity, options.match_texture, *hooks, **learned)

    def classical(note: str | None = None) -> PlannedStep:
        def build() -> Any:
            if note:
                note_once("deshadow-classical-default", note, notify)  # every run repeated it (issue 16)
            cues = "darkness and colour cues" if detector is None else detector.id
            notify("detail", f"deshadow: classical; shadow mask from {cues}, relit by measured gains")
            return processor()

        return PlannedStep(Step("deshadow", "classical", None, recorded), build)

    if run.model == "classical":
        return classical()
    if run.weights is not None:
        weights = run.weights

        def build_file() -> Any:
            from photofix.engine.models import load_masked_model

            set_threads(run.threads)
            model = load_masked_model(weights, expected_arch="ShadowFormer", device=device(run), precision=run.precision)
            return processor(model=model, model_label=weights.name, tile=run.tile_side)

        return PlannedStep(Step("deshadow", weights.name, file_hash(weights), recorded), build_file)

    learned = load_manifest().for_task("deshadow")
    entry = next((e for e in learned if e.id == run.model), None) if run.model else learned[0] if learned else None
    if run.model and entry is None:
        raise UsageError(f"unknown deshadow model {run.model!r}; choose 'classical' or one of: {', '.join(e.id for e in learned)}")
    if entry is None or (not run.model and cached_path(entry) is None):
        # The learned model is the default only once it is cached: its weights live on Google
        # Drive, so photofix never starts a download nobody asked for.
        return classical(None if entry is None else
                         f"using the classical deshadow method; for the learned one run 'photofix models download {entry.id}' once")

    def build() -> Any:
        from photofix.engine.models import load_masked_model

        set_threads(run.threads)
        model = load_announced(entry, run, notify, load_masked_model)
        notify("detail", f"deshadow: model {entry.id} on {model.device}, {model.precision}, mask from {mask_from}")
        overlap = entry.tile_overlap if run.tile_overlap is None else run.tile_overlap
        return processor(model=model, model_label=entry.id, overlap=overlap, tile=run.tile_side)

    return PlannedStep(Step("deshadow", entry.id, entry_hash(entry), recorded), build)


def _cached_detector(options: DeshadowOptions) -> Any:
    """The learned shadow detector's manifest entry when its weights are cached, else None.

    Never downloaded by a run (``photofix models download fdrnet-sbu`` fetches it); not loaded
    when one mask file is given for the photo, since nothing is left to detect.
    """
    from photofix.store.manifest import load_manifest
    from photofix.store.weights import cached_path

    if options.mask is not None and options.mask.is_file():
        return None
    return next((e for e in load_manifest().for_task("shadow-detect") if cached_path(e) is not None), None)


SPEC = TaskSpec(
    name="deshadow",
    summary="Lighten cast shadows: found automatically (or from --mask) and relit by the light measured across their edge.",
    description="""Remove cast shadows from photos of surfaces, documents and scenes lit by sun or lamps.

    Classical by default (no download). Once 'photofix models download shadowformer-istd-plus'
    has fetched it, the ShadowFormer network (MIT) relights the masked shadows instead;
    --model classical keeps the classical method. Once 'photofix models download fdrnet-sbu'
    has fetched it, the FDRNet shadow detector (MIT) finds the shadow mask for either method.

    Works best on shadows falling on fairly uniform surfaces (walls, paper, ground, skin);
    it cannot tell a shadow from a dark object of the same colour, and it does not help at
    night. Give --mask for exact control; check --mask-out on photos that matter.

    Examples: photofix deshadow doc.jpg clean.jpg   ·   photofix deshadow photo.jpg out.jpg --mask shadow.png""",
    options=DeshadowOptions,
    plan=plan,
)

__all__ = ["SPEC", "DeshadowOptions"]
