"""From a task and its options to a planned step: what will run, and how to build it.

Planning is cheap (the manifest, the cache, a device check) and happens before any
file is touched, so resume can compare each output's record with what *would* run
without loading a model, and a typo in a model id fails before the first file.
Building loads the weights; ``batch.run_jobs`` asks for it at the first file that
needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import UsageError
from ..provenance import Step
from .options import Common
from .render import Reporter

# Options that do not change the output's pixels, so they stay out of its record.
_NOT_IN_RECORD = frozenset({"mask_out"})


@dataclass
class PlannedStep:
    step: Step
    build: Callable[[], Any]


def plan_step(task: str, common: Common, options: dict[str, Any], reporter: Reporter) -> PlannedStep:
    """The step ``task`` with ``options`` (its own options; model/weights come from ``common``)."""
    planner = {
        "colorize": _plan_colorize,
        "scratch-repair": _plan_scratch,
        "deshadow": _plan_deshadow,
    }.get(task, _plan_network)
    return planner(task, common, options, reporter)


def _recorded(options: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in sorted(options.items()) if v is not None and k not in _NOT_IN_RECORD}


def _entry_hash(entry: Any) -> str | None:
    """The hash provenance records: of the cached file itself (verified now), else the expected one."""
    from ..weights import verified_sha256

    return verified_sha256(entry)


def _file_hash(path: Path) -> str:
    from ..weights import sha256_file

    return sha256_file(path)


def _device(common: Common) -> Any:
    from ..models import resolve_device

    return resolve_device(common.device)


def _tier(common: Common) -> str | None:
    return common.tier.value if common.tier else None


# --- one image-to-image network: denoise, deblur, derain, upscale ---------------------------


def _plan_network(task: str, common: Common, options: dict[str, Any], reporter: Reporter) -> PlannedStep:
    from ..manifest import load_manifest
    from ..pipeline import TaskParams, choose_entry

    params = TaskParams(sigma=options.get("sigma"), scale=options.get("scale"), kind=options.get("kind"))
    manifest = load_manifest()
    device = _device(common)
    if common.weights is not None:
        weights = common.weights
        step = Step(task, weights.name, _file_hash(weights), _recorded(options))
        entry = None
    else:
        entry = choose_entry(manifest, task, common.model, _tier(common), params.scale, params.kind, on_cpu=device.type == "cpu")
        step = Step(task, entry.id, _entry_hash(entry), _recorded(options))

    def build() -> Any:
        from ..models import load_entry, load_model
        from ..pipeline import Restorer, default_overlap

        set_threads(common.threads)
        if entry is None:
            model = load_model(weights, device=device, precision=common.precision.value)
            overlap, min_tile = default_overlap(manifest, model.arch)
            reporter.detail(f"loaded {weights} as {model.arch} ({model.scale}x)")
        else:
            offline = announce_entry(entry, common, reporter)
            model = load_entry(entry, offline=offline, device=device, precision=common.precision.value)
            announce_hash(entry, model.hash_recorded_now, model.sha256, reporter)
            overlap, min_tile = entry.tile_overlap, entry.min_tile
        if common.tile_overlap is not None:
            overlap = common.tile_overlap
        tile = None if common.tile == "auto" else int(common.tile)
        restorer = Restorer(task, model, params=params, tile=tile, tile_overlap=overlap, min_tile=min_tile)
        if tile and tile < min_tile:
            reporter.note(f"tiles under {min_tile} px change this model's result noticeably; --tile {tile} is used as asked")
        reporter.detail(
            f"{task}: device {model.device}, {str(model.dtype).replace('torch.', '')}, "
            f"tile {'auto' if tile is None else tile or 'whole image'}, overlap {overlap} px"
        )
        return restorer

    return PlannedStep(step, build)


def announce_entry(entry: Any, common: Common, reporter: Reporter) -> bool:
    """Licence note and download notice before a manifest model is fetched; returns offline."""
    from ..weights import cached_path

    offline = settings.offline(common.offline)
    if not entry.commercial_use:
        reporter.note(f"{entry.id} is licensed for non-commercial use only ({entry.license})")
    if not offline and cached_path(entry) is None:
        size = f" ({entry.size_bytes / 1e6:.0f} MB)" if entry.size_bytes else ""
        reporter.info(f"downloading {entry.id}{size}, once; later runs use the cached copy")
    reporter.detail(f"model {entry.id} ({entry.arch}, {entry.license})")
    return offline


def announce_hash(entry: Any, recorded_now: bool, sha256: str | None, reporter: Reporter) -> None:
    if recorded_now:
        reporter.note(f"{entry.id} has no published sha256; recorded {sha256} and will insist on it from now on")


def set_threads(threads: int | None) -> None:
    import torch

    count = settings.threads(threads)
    if count:
        torch.set_num_threads(count)


# --- colorize ---------------------------------------------------------------------------------


def _plan_colorize(task: str, common: Common, options: dict[str, Any], reporter: Reporter) -> PlannedStep:
    from ..manifest import load_manifest
    from ..pipeline import choose_entry

    render_size, saturation = options.get("render_size"), options.get("saturation", 1.0)
    device = _device(common)
    if common.weights is not None:
        entry, step = None, Step(task, common.weights.name, _file_hash(common.weights), _recorded(options))
    else:
        entry = choose_entry(load_manifest(), "colorize", common.model, _tier(common), on_cpu=device.type == "cpu")
        step = Step(task, entry.id, _entry_hash(entry), _recorded(options))

    def build() -> Any:
        from ..colorize import load_colorizer
        from ..models import fetch_checked as fetch
        from ..restorers import ColorizeProcessor

        set_threads(common.threads)
        if entry is None:
            colorizer = load_colorizer(common.weights, device, render_size)
        else:
            fetched = fetch(entry, offline=announce_entry(entry, common, reporter))
            announce_hash(entry, fetched.first_use_hash, fetched.sha256, reporter)
            colorizer = load_colorizer(fetched.path, device, render_size or entry.params.get("render_size"), model_id=entry.id)
        reporter.detail(f"colorize: device {colorizer.device}, chroma predicted at {colorizer.render_size} px, saturation {saturation}")
        return ColorizeProcessor(colorizer, saturation)

    return PlannedStep(step, build)


# --- scratch-repair -----------------------------------------------------------------------------


def _plan_scratch(task: str, common: Common, options: dict[str, Any], reporter: Reporter) -> PlannedStep:
    from ..inpaint import inpaint_classical
    from ..manifest import load_manifest
    from ..restorers import ScratchRepairProcessor
    from ..weights import cached_path

    if common.weights is not None:
        raise UsageError(
            "scratch-repair runs two models, so --weights cannot say which; add local files with "
            "'photofix models import bopb-scratch-detect FILE' or 'photofix models import big-lama FILE'"
        )
    mask = options.get("mask")
    user_mask, export = _mask_hooks(mask, options.get("mask_out"))

    def classical_processor() -> ScratchRepairProcessor:
        return ScratchRepairProcessor(
            inpaint_fn=partial(inpaint_classical, method="telea"),
            threshold=options.get("threshold"),
            dilate=options.get("dilate", 2),
            user_mask=user_mask,
            mask_out=export,
        )

    if common.model == "classical":
        def build_classical() -> Any:
            reporter.detail("scratch-repair: classical detector and OpenCV Telea inpainting (no download)")
            return classical_processor()

        return PlannedStep(Step(task, "classical", None, _recorded(options)), build_classical)

    manifest = load_manifest()
    chosen = manifest.get(common.model) if common.model else None
    if chosen is not None and chosen.task not in ("scratch-detect", "inpaint"):
        raise UsageError(f"model {chosen.id!r} is for {chosen.task}; scratch-repair takes a scratch-detect or inpaint model, or 'classical'")
    detect_entry = chosen if chosen and chosen.task == "scratch-detect" else manifest.default_for("scratch-detect")
    inpaint_entry = chosen if chosen and chosen.task == "inpaint" else manifest.default_for("inpaint")
    # A mask file for a single photo replaces detection: don't fetch a 450 MB detector for nothing.
    needed = [inpaint_entry] if mask is not None and mask.is_file() else [detect_entry, inpaint_entry]
    if settings.offline(common.offline) and any(cached_path(e) is None for e in needed):
        def build_fallback() -> Any:
            reporter.note("the learned scratch models are not cached and photofix is offline: using the classical "
                          "detector and OpenCV inpainting instead (--model classical says so explicitly)")
            return classical_processor()

        return PlannedStep(Step(task, "classical", None, _recorded(options)), build_fallback)

    step = Step(task, "+".join(e.id for e in needed), "+".join(_entry_hash(e) or "unverified" for e in needed), _recorded(options))

    def build() -> Any:
        from ..inpaint import load_lama
        from ..models import fetch_checked as fetch
        from ..models import load_model

        set_threads(common.threads)
        device = _device(common)
        processor = classical_processor()
        paths = {}
        for entry in needed:
            fetched = fetch(entry, offline=announce_entry(entry, common, reporter))
            announce_hash(entry, fetched.first_use_hash, fetched.sha256, reporter)
            paths[entry.task] = fetched.path
        processor.inpaint_fn = load_lama(paths["inpaint"], device)
        if "scratch-detect" in paths:
            processor.detector = load_model(paths["scratch-detect"], expected_arch=detect_entry.arch,
                                            model_id=detect_entry.id, device=device, precision="fp32")
        processor.labels = (detect_entry.id if processor.detector else "user mask", inpaint_entry.id)
        reporter.detail(f"scratch-repair: device {device}; detector {processor.labels[0]}, inpainting {inpaint_entry.id} in crops around the damage")
        return processor

    return PlannedStep(step, build)


def _mask_hooks(mask: Path | None, mask_out: Path | None) -> tuple[Callable[[Any], Any], Callable[[Any, Any], None]]:
    """``--mask`` (a file, or a folder matched by photo name) and ``--mask-out`` as per-image callbacks."""
    from ..masks import find_mask, load_mask, save_mask

    def user_mask(image: Any) -> Any:
        found = find_mask(mask, image.meta.source_name) if mask is not None else None
        return None if found is None else load_mask(found, image.pixels.shape)

    def export(image: Any, used: Any) -> None:
        if mask_out is not None:
            save_mask(used, mask_out, image.meta.source_name)

    return user_mask, export


# --- deshadow --------------------------------------------------------------------------------


def _plan_deshadow(task: str, common: Common, options: dict[str, Any], reporter: Reporter) -> PlannedStep:
    from ..manifest import load_manifest
    from ..restorers import DeshadowProcessor
    from ..weights import cached_path

    mask, mask_out = options.get("mask"), options.get("mask_out")

    def classical() -> DeshadowProcessor:
        return DeshadowProcessor(options.get("sensitivity", 1.0), options.get("match_texture", False), *_mask_hooks(mask, mask_out))

    if common.model == "classical":
        def build_classical() -> Any:
            reporter.detail("deshadow: classical; shadow mask from darkness and colour cues, relit by measured gains")
            return classical()

        return PlannedStep(Step(task, "classical", None, _recorded(options)), build_classical)

    if common.weights is not None:
        weights = common.weights

        def build_file() -> Any:
            from ..models import load_masked_model

            set_threads(common.threads)
            processor = classical()
            processor.model = load_masked_model(weights, expected_arch="ShadowFormer", device=_device(common), precision="fp32")
            processor.model_label = weights.name
            return processor

        return PlannedStep(Step(task, weights.name, _file_hash(weights), _recorded(options)), build_file)

    learned = load_manifest().for_task("deshadow")
    entry = next((e for e in learned if e.id == common.model), None) if common.model else learned[0] if learned else None
    if common.model and entry is None:
        raise UsageError(f"unknown deshadow model {common.model!r}; choose 'classical' or one of: {', '.join(e.id for e in learned)}")
    if entry is None or (not common.model and cached_path(entry) is None):
        # The learned model is the default only once it is cached: its weights live on Google
        # Drive, so photofix never starts a download nobody asked for.
        def build_default() -> Any:
            if entry is not None:
                reporter.note(f"using the classical deshadow method; for the learned one run 'photofix models download {entry.id}' once")
            return classical()

        return PlannedStep(Step(task, "classical", None, _recorded(options)), build_default)

    def build() -> Any:
        from ..models import fetch_checked as fetch
        from ..models import load_masked_model

        set_threads(common.threads)
        device = _device(common)
        processor = classical()
        fetched = fetch(entry, offline=announce_entry(entry, common, reporter))
        announce_hash(entry, fetched.first_use_hash, fetched.sha256, reporter)
        processor.model = load_masked_model(fetched.path, expected_arch=entry.arch, device=device, precision="fp32")
        processor.model_label = entry.id
        processor.overlap = entry.tile_overlap if common.tile_overlap is None else common.tile_overlap
        if common.tile != "auto":
            processor.tile = int(common.tile)
        reporter.detail(f"deshadow: model {entry.id} on {device}, mask from {'--mask' if mask else 'the classical detector'}")
        return processor

    return PlannedStep(Step(task, entry.id, _entry_hash(entry), _recorded(options)), build)
