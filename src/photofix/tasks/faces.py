"""faces: find the faces, restore each in the 512-px frame its model was trained on, paste them back."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from photofix import settings
from photofix.errors import UsageError, WeightsError
from photofix.run.provenance import Step
from photofix.tasks._shared import device, entry_hash, fetch_announced, file_hash, load_announced, mask_hooks, set_threads
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec, option

DETECTORS = ("auto", "yunet", "builtin")
# CodeFormer's own default weight (its inference script's), between its most restored face (0) and the input (1).
CODEFORMER_FIDELITY = 0.5


@dataclass(frozen=True)
class FacesOptions:
    min_face: int = option(
        24, "Restore only faces at least this many pixels across (the detector's box side); smaller ones hold too "
        "little for a face model, which would invent a face rather than restore it.", low=8, high=8192,
    )
    fidelity: Optional[float] = option(
        None, "CodeFormer's weight (--model codeformer only): 0 = most restored, 1 = closest to the photo; default 0.5.",
        low=0.0, high=1.0,
    )
    detector: str = option(
        "auto", "Face detector: yunet (OpenCV's YuNet, 232 KB download, five landmarks, any pose), builtin (a frontal "
        "cascade shipped with scikit-image: no download, fewer faces found), or auto (YuNet when it is cached or can "
        "be downloaded).", choices=DETECTORS,
    )
    mask_out: Optional[Path] = option(
        None, "Also write where each photo changed (the pasted face ovals) to this folder as NAME_mask.png.",
        folder=True, in_record=False,
    )


def _detector_entry(run: RunSettings, choice: str, notify: Notify) -> Any:
    """The YuNet manifest entry to use, or None for the built-in cascade. Decided now, so it is recorded."""
    from photofix.store.manifest import load_manifest
    from photofix.store.weights import cached_path, fetch

    if choice == "builtin":
        return None
    entry = load_manifest().default_for("face-detect")
    if choice == "yunet" or cached_path(entry) is not None:
        return entry
    if settings.offline(run.offline):
        notify("note", f"{entry.id} is not cached and photofix is offline: finding faces with the built-in cascade, "
                       "which misses more faces (--detector builtin says so explicitly)")
        return None
    if run.dry_run:  # a dry run downloads nothing; the real run fetches it here (or falls back, and says so)
        notify("detail", f"{entry.id} is not cached: the run will download it (0.2 MB)")
        return entry
    try:  # 232 KB: fetched while planning, so the record names the detector that really runs
        notify("info", f"downloading {entry.id} (0.2 MB), once; later runs use the cached copy")
        fetch(entry, offline=False)
    except WeightsError as error:
        notify("note", f"{entry.id} could not be downloaded ({error}); finding faces with the built-in cascade instead")
        return None
    return entry


def plan(run: RunSettings, options: FacesOptions, notify: Notify) -> PlannedStep:
    from photofix.store.choice import choose_entry
    from photofix.store.manifest import load_manifest

    where = device(run)
    if run.weights is not None:
        entry, model_id, model_hash = None, run.weights.name, file_hash(run.weights)
    else:
        entry = choose_entry(load_manifest(), "faces", run.model, run.tier, on_cpu=where.type == "cpu")
        model_id, model_hash = entry.id, entry_hash(entry)
        if options.fidelity is not None and entry.arch != "CodeFormer":
            raise UsageError(f"--fidelity is CodeFormer's weight; {entry.id} ({entry.arch}) has none: add --model codeformer or drop --fidelity")
    detector_entry = _detector_entry(run, options.detector, notify)
    detector_id = detector_entry.id if detector_entry is not None else "builtin"
    chosen = replace(options, detector=detector_id)
    hashes = [model_hash or "unverified"] + ([entry_hash(detector_entry) or "unverified"] if detector_entry else [])
    step = Step("faces", f"{model_id}+{detector_id}", "+".join(hashes), SPEC.recorded(chosen))
    _, export = mask_hooks(None, options.mask_out)

    def build() -> Any:
        from photofix.engine.models import load_model
        from photofix.methods.faces import CascadeDetector, YuNetDetector
        from photofix.tasks.face_processor import FacesProcessor, model_face_fn

        set_threads(run.threads)
        if detector_entry is None:
            detector: Any = CascadeDetector()
        else:
            detector = YuNetDetector(fetch_announced(detector_entry, run, notify).path)
        if entry is None:
            model = load_model(run.weights, device=where, precision=run.precision)
        else:
            # load_model as the loader: face models are called on their torch network (traits' face_call)
            model = load_announced(entry, run, notify, load_model)
        if model.arch not in ("GFPGAN", "CodeFormer", "RestoreFormer"):
            raise UsageError(f"{model.source} holds a {model.arch} model; faces takes GFPGAN, CodeFormer or RestoreFormer weights")
        if options.fidelity is not None and model.arch != "CodeFormer":
            raise UsageError(f"--fidelity is CodeFormer's weight; {model.source} ({model.arch}) has none")
        fidelity = CODEFORMER_FIDELITY if options.fidelity is None else options.fidelity
        notify("detail", f"faces: device {model.device}; detector {detector.name}, restorer {model_id} ({model.arch}) "
                         f"on 512-px aligned faces of at least {options.min_face} px")
        return FacesProcessor(detector, model_face_fn(model, fidelity), model_id, options.min_face,
                              export if options.mask_out is not None else None)

    return PlannedStep(step, build)


SPEC = TaskSpec(
    name="faces",
    summary="Find the faces and restore them (GFPGAN), pasting them back so nothing else in the photo changes.",
    description="""Restore faces: find them, restore each one, paste it back.

    Each face found (YuNet, or a built-in cascade with no download) is aligned to the 512-px
    frame the face models were trained on, restored there (GFPGAN v1.4 by default; --model
    codeformer or restoreformer, both non-commercial) and pasted back through a feathered
    oval, with the photo's own colour and shading. Every pixel outside the ovals is the
    input's, bit for bit; grey stays grey, 16-bit and alpha are kept. --json lists each
    photo's faces and boxes; --mask-out writes where it changed.

    Examples: photofix faces family.jpg family_faces.jpg   ·   photofix faces -r scans/ fixed/ --model codeformer --fidelity 0.7""",
    options=FacesOptions,
    plan=plan,
)

__all__ = ["SPEC", "FacesOptions"]
