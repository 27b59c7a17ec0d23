"""The faces step at work on one photo: detect, restore each face in its aligned crop, paste back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from photofix.errors import NonFiniteOutput
from photofix.imageio import Image
from photofix.methods.faces import FaceDetector, FaceRestoreFn, detect_faces, restore_faces
from photofix.run.jobs import TileProgress

if TYPE_CHECKING:
    from photofix.engine.models import LoadedModel


def model_face_fn(model: LoadedModel, fidelity: float) -> FaceRestoreFn:
    """A loaded face model as a function of one aligned 512-px RGB face, called as its traits declare."""
    import torch

    from photofix.archs import traits_of

    call = traits_of(model.arch).face_call
    if call is None:
        raise ValueError(f"{model.arch} is not a face restoration model")

    def restore(face: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(face.transpose(2, 0, 1)))[None].to(model.device, model.dtype)
        with torch.inference_mode():
            y = call(model.descriptor.model, x, fidelity)
        if not torch.isfinite(y).all():
            advice = "run again with --precision fp32" if model.dtype != torch.float32 else "this face cannot be restored with this model"
            raise NonFiniteOutput(f"{model.source}: the face model produced NaN/inf values; {advice}")
        return y[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()

    return restore


@dataclass
class FacesProcessor:
    """Restore the faces of each photo; every pixel outside the pasted faces is the input's own.

    Details: ``faces`` (how many were found and restored), ``boxes`` ([x, y, width, height] in the photo's
    pixels), ``detector``; a photo with no face is returned as it came, with a ``note``.
    """

    # A step before may hand over finished 8/16-bit pixels (an upscale's canvas): faces paste into them.
    accepts_finished = True

    detector: FaceDetector
    restore_fn: FaceRestoreFn
    model_label: str
    min_face: int = 0
    mask_out: Callable[[Image, np.ndarray], None] | None = None

    @property
    def label(self) -> str:
        return f"{self.model_label}+{self.detector.name}"

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        pixels = image.pixels  # float, or an earlier step's finished 8/16-bit pixels (kept so)
        faces = detect_faces(pixels, self.detector, min_face=self.min_face)
        details: dict[str, Any] = {"faces": len(faces), "boxes": [face.record() for face in faces], "detector": self.detector.name}
        if not faces:
            details["note"] = "no faces found: the photo is unchanged"
            if self.mask_out is not None:
                self.mask_out(image, np.zeros(pixels.shape[:2], dtype=np.float32))
            return image, details
        pasted = restore_faces(pixels, faces, self.restore_fn, on_face=on_tile)
        if pasted.skipped:
            details["faces_skipped"] = pasted.skipped  # found, but their landmarks gave no alignment
        if self.mask_out is not None:
            self.mask_out(image, pasted.mask(*pixels.shape[:2]))
        return replace(image, pixels=pasted.pixels), details


__all__ = ["FacesProcessor", "model_face_fn"]
