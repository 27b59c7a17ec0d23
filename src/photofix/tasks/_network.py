"""Planning the tasks one image-to-image network runs: denoise, deblur, derain, upscale."""

from __future__ import annotations

from typing import Any

from photofix.run.provenance import Step
from photofix.tasks._shared import announce_hash, announce_entry, device, entry_hash, file_hash, set_threads
from photofix.tasks.spec import Notify, PlannedStep, RunSettings


def plan_network(task: str, run: RunSettings, params: Any, recorded: dict[str, Any], notify: Notify) -> PlannedStep:
    """Choose the model (manifest entry or a weights file) now; load it and build a Restorer in ``build``."""
    from photofix.store.choice import choose_entry
    from photofix.store.manifest import load_manifest

    manifest = load_manifest()
    where = device(run)
    if run.weights is not None:
        weights = run.weights
        step = Step(task, weights.name, file_hash(weights), recorded)
        entry = None
    else:
        entry = choose_entry(manifest, task, run.model, run.tier, params.scale, params.kind, on_cpu=where.type == "cpu")
        step = Step(task, entry.id, entry_hash(entry), recorded)

    def build() -> Any:
        from photofix.store.choice import default_overlap
        from photofix.engine.models import load_entry, load_model
        from photofix.tasks.restore import Restorer

        set_threads(run.threads)
        if entry is None:
            model = load_model(weights, device=where, precision=run.precision)
            overlap, min_tile = default_overlap(manifest, model.arch)
            notify("detail", f"loaded {weights} as {model.arch} ({model.scale}x)")
        else:
            offline = announce_entry(entry, run, notify)
            model = load_entry(entry, offline=offline, device=where, precision=run.precision)
            announce_hash(entry, model.hash_recorded_now, model.sha256, notify)
            overlap, min_tile = entry.tile_overlap, entry.min_tile
        if run.tile_overlap is not None:
            overlap = run.tile_overlap
        tile = run.tile_side
        restorer = Restorer(task, model, params=params, tile=tile, tile_overlap=overlap, min_tile=min_tile)
        if tile and tile < min_tile:
            notify("note", f"tiles under {min_tile} px change this model's result noticeably; --tile {tile} is used as asked")
        notify(
            "detail",
            f"{task}: device {model.device}, {str(model.dtype).replace('torch.', '')}, "
            f"tile {'auto' if tile is None else tile or 'whole image'}, overlap {overlap} px",
        )
        return restorer

    return PlannedStep(step, build)
