"""scratch-repair: find scratches, dust and spots, then inpaint only there."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Optional

from photofix import settings
from photofix.errors import UsageError
from photofix.run.provenance import Step
from photofix.tasks._shared import device, entry_hash, fetch_announced, mask_hooks, set_threads
from photofix.tasks.spec import Notify, PlannedStep, RunSettings, TaskSpec, option


# Mask growth by default: the learned detector's mask sits inside the scratch's rim; the
# classical one's already covers it (0 px gained +3.64 dB against +2.29 dB at 2 px on the
# held-out generator of benchmarks/SCRATCH_EVAL.md, worst photo -4.1 dB against -8.2 dB).
LEARNED_DILATE = 2
CLASSICAL_DILATE = 0
# The classical fill: biharmonic beat OpenCV's Telea on the held-out generator of
# benchmarks/SCRATCH_EVAL.md round 10 (-1.29 -> -0.99 dB, worst photo -8.51 -> -6.41 dB) and
# on 12 of 13 seen ones, leaving as little of real scans' cracks (within 8 points).
CLASSICAL_FILL = "biharmonic"


@dataclass(frozen=True)
class ScratchRepairOptions:
    mask: Optional[Path] = option(
        None, "Your own damage mask (white = repair) instead of detection: one image file, or a folder of masks "
        "named like the photos (photo.png or photo_mask.png).", must_exist=True,
    )
    mask_out: Optional[Path] = option(
        None, "Also write each mask used to this folder as NAME_mask.png, to check or retouch it.", folder=True, in_record=False,
    )
    threshold: Optional[float] = option(
        None, "Detection cut: the learned detector's scratch probability (default 0.4; lower finds more), or for "
        "--model classical the least local contrast of a scratch (default: adapted to each photo).", low=0.001, high=1.0,
    )
    dilate: Optional[int] = option(
        None, "Grow the mask by N px so scratch rims are repaired too. Default: 2 with the learned detector, 0 with "
        "--model classical (its mask already covers the rims: growing it cost 1.3 dB on damage it was not tuned on).",
        low=0, high=50,
    )
    blend_faint: bool = option(
        False, "--model classical: a faint detection takes only part of the fill (30 % at the threshold, all of it "
        "from 4x), since it may be the photo's own detail. Spares lightly damaged photos of fine texture (a false "
        "alarm costs little) but leaves faint traces of real cracks: off by default.",
    )


def plan(run: RunSettings, options: ScratchRepairOptions, notify: Notify) -> PlannedStep:
    from photofix.methods.inpaint import inpaint_classical
    from photofix.store.manifest import load_manifest
    from photofix.tasks.processors import ScratchRepairProcessor
    from photofix.store.weights import cached_path, reachable

    if run.weights is not None:
        raise UsageError(
            "scratch-repair runs two models, so --weights cannot say which; add local files with "
            "'photofix models import bopb-scratch-detect FILE' or 'photofix models import big-lama FILE'"
        )
    user_mask, export = mask_hooks(options.mask, options.mask_out)

    def resolved(dilate: int) -> ScratchRepairOptions:
        return options if options.dilate is not None else replace(options, dilate=dilate)

    def processor(chosen: ScratchRepairOptions, **learned: Any) -> ScratchRepairProcessor:
        return ScratchRepairProcessor(
            inpaint_fn=learned.pop("inpaint_fn", partial(inpaint_classical, method=CLASSICAL_FILL)),
            threshold=chosen.threshold, dilate=chosen.dilate, user_mask=user_mask, mask_out=export, **learned,
        )

    def classical(why: str | None) -> PlannedStep:
        # benchmarks/SCRATCH_EVAL.md: no growth gained most on every generator, held-out included
        chosen = resolved(CLASSICAL_DILATE)
        yunet = _cached_yunet()  # decided now and recorded: which detector protects faces changes the mask

        def build() -> Any:
            if why:
                notify("note", why)
            if chosen.blend_faint and options.mask is not None:
                notify("note", "--blend-faint: a photo with your mask has it filled outright (a given mask says nothing of "
                               "how faint each pixel is); photos without one are detected and blended")
            faces = _face_detector(yunet, notify)
            shield = f"; faces' eyes, brows, nose and mouth kept out of the mask ({faces.name} face detector)" if faces else ""
            blend = "; faint detections take part of the fill" if chosen.blend_faint else ""
            notify("detail", f"scratch-repair: classical detector and {CLASSICAL_FILL} inpainting (no download){shield}{blend}")
            return processor(chosen, face_detector=faces, blend=chosen.blend_faint)

        # the detector protecting faces and the fill both change the output: recorded, so a resumed run redoes older outputs
        recorded = {**SPEC.recorded(chosen), "face_detector": "yunet" if yunet is not None else "builtin",
                    "fill": CLASSICAL_FILL}
        return PlannedStep(Step("scratch-repair", "classical", None, recorded), build)

    if run.model == "classical":
        return classical(None)
    manifest = load_manifest()
    chosen = manifest.get(run.model) if run.model else None
    if chosen is not None and chosen.task not in ("scratch-detect", "inpaint"):
        raise UsageError(f"model {chosen.id!r} is for {chosen.task}; scratch-repair takes a scratch-detect or inpaint model, or 'classical'")
    detect_entry = chosen if chosen and chosen.task == "scratch-detect" else manifest.default_for("scratch-detect")
    inpaint_entry = chosen if chosen and chosen.task == "inpaint" else manifest.default_for("inpaint")
    # A mask file for a single photo replaces detection: don't fetch a 450 MB detector for nothing.
    needed = [inpaint_entry] if options.mask is not None and options.mask.is_file() else [detect_entry, inpaint_entry]
    missing = [e for e in needed if cached_path(e) is None]
    if missing and settings.offline(run.offline):
        return classical("the learned scratch models are not cached and photofix is offline: using the classical "
                         "detector and biharmonic inpainting instead (--model classical says so explicitly)")
    # Network down and no model named: the method that needs no download, said once per run (issue 16).
    if missing and run.model is None and not all(reachable(e) for e in missing):
        return classical("the learned scratch models are not cached and their server cannot be reached: using the "
                         "classical detector and biharmonic inpainting instead (--model classical says so explicitly)")

    chosen = resolved(LEARNED_DILATE)
    step = Step("scratch-repair", "+".join(e.id for e in needed), "+".join(entry_hash(e) or "unverified" for e in needed),
                SPEC.recorded(chosen))

    def build() -> Any:
        from photofix.engine.models import load_entry
        from photofix.methods.inpaint import load_lama

        set_threads(run.threads)
        where = device(run)
        fetched = {entry.task: fetch_announced(entry, run, notify) for entry in needed}  # every download before any load
        detector = None
        if "scratch-detect" in fetched:
            detector = load_entry(detect_entry, fetched=fetched["scratch-detect"], device=where, precision=run.precision)
        inpaint = load_entry(inpaint_entry, fetched=fetched["inpaint"], device=where, precision=run.precision, loader=load_lama)
        labels = (detect_entry.id if detector else "user mask", inpaint_entry.id)
        if chosen.blend_faint:
            notify("note", "--blend-faint acts on --model classical only: the learned detector's mask is filled outright")
        notify("detail", f"scratch-repair: device {where}; detector {labels[0]}, inpainting {inpaint_entry.id} in crops around the damage")
        return processor(chosen, inpaint_fn=inpaint, detector=detector, labels=labels)

    return PlannedStep(step, build)


def _cached_yunet() -> Any:
    """The cached YuNet file, or None (the built-in cascade then finds faces); never downloads."""
    from photofix.store.manifest import load_manifest
    from photofix.store.weights import cached_path

    return cached_path(load_manifest().default_for("face-detect"))


def _face_detector(yunet: Any, notify: Notify) -> Any:
    """YuNet when its weights are cached, else the built-in cascade (no download either way); None if neither loads.

    The classical detector flags eyes, brows and nostrils as thin damage; the faces found keep
    them out of its mask (methods.scratch_faces, benchmarks/SCRATCH_EVAL.md).
    """
    from photofix.errors import ModelLoadError
    from photofix.methods.faces import CascadeDetector, YuNetDetector

    try:
        return YuNetDetector(yunet) if yunet is not None else CascadeDetector()
    except ModelLoadError as error:
        notify("note", f"scratch-repair: no face detector ({error}); faces are not protected from the mask")
        return None


SPEC = TaskSpec(
    name="scratch-repair",
    summary="Find scratches, dust and spots on old prints, then fill them in (LaMa), touching nothing else.",
    description="""Repair scratches, dust and spots: detect them, then inpaint only there.

    The learned path (scratch UNet of "Bringing Old Photos Back to Life" + big-LaMa) downloads
    about 660 MB once; --model classical (a line/spot detector and biharmonic inpainting) needs no
    download and is used automatically when offline without cached weights. Pixels outside the
    mask are never changed.

    Examples: photofix scratch-repair scan.tif fixed.tif --mask-out masks/   ·   photofix scratch-repair -r box/ fixed/ --model classical""",
    options=ScratchRepairOptions,
    plan=plan,
)

__all__ = ["SPEC", "ScratchRepairOptions"]
