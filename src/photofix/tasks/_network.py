"""Planning the tasks one image-to-image network runs: denoise, deblur, derain, upscale."""

from __future__ import annotations

from typing import Any

from photofix.run.provenance import Step
from photofix.tasks._shared import device, entry_hash, file_hash, load_announced, set_threads
from photofix.tasks.spec import Notify, PlannedStep, RunSettings


def plan_network(task: str, run: RunSettings, params: Any, recorded: dict[str, Any], notify: Notify) -> PlannedStep:
    """Choose the model (manifest entry or a weights file) now; load it and build a Restorer in ``build``."""
    from photofix.store.choice import choose_entry
    from photofix.store.manifest import load_manifest

    manifest = load_manifest()
    where = device(run)
    if run.weights is not None:
        weights = run.weights
        weights_sha256 = file_hash(weights)
        step = Step(task, weights.name, weights_sha256, recorded)
        entry = grey = None
    else:
        entry = choose_entry(manifest, task, run.model, run.tier, params.scale, params.kind, on_cpu=where.type == "cpu")
        # Grey photos get the task's one-channel model when none is named (issue 16: +6 dB on grey scans).
        grey_id = manifest.grey_defaults.get(task) if run.model is None else None
        grey = manifest.get(grey_id) if grey_id and grey_id != entry.id else None
        step = Step(task, entry.id, entry_hash(entry), recorded if grey is None else {**recorded, "grey_photos": grey.id})

    def build() -> Any:
        from photofix.store.choice import default_overlap
        from photofix.engine.models import load_model
        from photofix.tasks.restore import GreyAware, Restorer

        set_threads(run.threads)
        if entry is None:
            model = load_model(weights, device=where, precision=run.precision, sha256=weights_sha256,
                               backend=getattr(run, "backend", "auto"))
            overlap, min_tile = default_overlap(manifest, model.arch)
            notify("detail", f"loaded {weights} as {model.arch} ({model.scale}x)")
        else:
            model = load_announced(entry, run, notify)
            overlap, min_tile = entry.tile_overlap, entry.min_tile
        if run.tile_overlap is not None:
            overlap = run.tile_overlap
        tile = run.tile_side
        restorer = Restorer(task, model, params=params, tile=tile, tile_overlap=overlap, min_tile=min_tile)
        if getattr(model, "backend_note", None):
            notify("note", model.backend_note)
        if tile and tile < min_tile:
            notify("note", f"tiles under {min_tile} px change this model's result noticeably; --tile {tile} is used as asked")
        notify(
            "detail",
            f"{task}: device {model.device}, {_precision_text(model)}, backend {model.backend}, "
            f"tile {'auto (chosen per photo from free memory; shown per file)' if tile is None else tile or 'whole image'}, "
            f"overlap {overlap} px",
        )
        if grey is None:
            return restorer
        return GreyAware(restorer, lambda: _grey_restorer(task, grey, run, params, notify),
                         lambda error: notify("note", f"grey photos use {entry.id}: {grey.id} is unavailable ({error})"))

    return PlannedStep(step, build)


def _precision_text(model: Any) -> str:
    if model.gate_pending:  # engine/precision_gate.py: measured at the first photo, then remembered
        return f"{model.precision} (bf16 if it keeps quality and saves time on the first photo; checked once per model and CPU)"
    return model.precision


def _grey_restorer(task: str, entry: Any, run: RunSettings, params: Any, notify: Notify) -> Any:
    from photofix.tasks.restore import Restorer

    model = load_announced(entry, run, notify)
    notify("detail", f"{task}: grey photos with {entry.id}")
    overlap = entry.tile_overlap if run.tile_overlap is None else run.tile_overlap
    return Restorer(task, model, params=params, tile=run.tile_side, tile_overlap=overlap, min_tile=entry.min_tile)
