"""Image processors for the tasks that are not one image-to-image network.

``pipeline.Restorer`` runs one network tile by tile. Colorize predicts chroma at a
small working size and keeps the full-resolution luminance; scratch-repair detects
damage and inpaints only around it. Both plug into ``pipeline.run_jobs`` through the
same ``label`` / ``restore(image, on_tile)`` shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .colorize import Colorizer, colorize_image
from .imageio import Image
from .pipeline import TileProgress


@dataclass
class ColorizeProcessor:
    """Colour each image with one loaded DDColor network."""

    colorizer: Colorizer
    saturation: float = 1.0

    @property
    def label(self) -> str:
        return self.colorizer.model_id or self.colorizer.source

    def restore(self, image: Image, on_tile: TileProgress | None = None) -> tuple[Image, dict[str, Any]]:
        result, details = colorize_image(image, self.colorizer, self.saturation)
        if on_tile is not None:
            on_tile(1, 1)  # one pass at the render size: report it as one tile
        return result, details


__all__ = ["ColorizeProcessor"]
