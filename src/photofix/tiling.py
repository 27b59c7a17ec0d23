"""Tiled inference with bounded memory and seam-free blending.

The whole image and the output canvas live in host memory; only one tile at a
time goes to the device. Tiles along each axis have one size (no thin slivers at
the border) and overlap by at least the requested amount. Each tile's output is
weighted by a separable window that is flat inside the tile and crosses over
with a raised cosine in a band of at most 16 px at the *middle* of every overlap;
the overlap on either side of that band is context only, so a tile's outputs
next to its artificial border carry no weight. The windows are normalised per
axis, so they sum to exactly one everywhere and no per-pixel weight canvas is
needed. For a convolutional model whose receptive radius r satisfies
overlap ≥ 2·r + 16 (roughly: overlap ≥ receptive field + 16), the tiled output
equals the whole-image output up to float rounding; for attention models the
band hides what differences remain.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .errors import TileOutOfMemory

ModelFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]

MIN_TILE = 32
BLEND_BAND = 16


@dataclass(frozen=True)
class TilePlan:
    """Tile spans along each axis, in input pixels; tiles are their product."""

    ys: tuple[tuple[int, int], ...]
    xs: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)


def plan_spans(length: int, tile: int, overlap: int, align: int = 1, least: int = 0) -> tuple[tuple[int, int], ...]:
    """Even spans covering ``range(length)``, at most ``tile`` long, overlapping by ≥ ``overlap``.

    Spans are at least ``least`` long (capped by ``tile`` and ``length``): an image just
    over one tile would otherwise be cut into two spans of about half a tile, too small
    for models whose result depends on seeing a large area; they overlap more instead.

    Starts and sizes are multiples of ``align``: models that fold or downsample
    by that factor see the same pixel grid in every tile as in the whole image,
    which is what makes tiled and whole-image results agree. The last span ends
    at ``length`` and may be up to ``align - 1`` longer than the others.
    """
    align = max(1, align)
    tile = max(align, tile - tile % align) if tile > 0 else 0
    if tile <= 0 or tile >= length:
        return ((0, length),)
    overlap = max(0, min(overlap + align - 1, tile // 2))
    step = tile - overlap
    count = math.ceil((length - overlap) / step)
    size = math.ceil((length + (count - 1) * overlap) / count)
    size = min(tile, -(-size // align) * align)
    size = max(size, min(-(-least // align) * align, tile, length))
    starts = [round(i * (length - size) / (count - 1)) // align * align for i in range(count)]
    spans = [(s, s + size) for s in starts[:-1]]
    spans.append((starts[-1], length))
    return tuple(spans)


def plan_tiles(height: int, width: int, tile: int, overlap: int, align: int = 1, least: int = 0) -> TilePlan:
    """Plan tiles of at most ``tile`` px (0 = whole image), aligned to ``align``, sides ≥ ``least`` (see plan_spans)."""
    return TilePlan(plan_spans(height, tile, overlap, align, least), plan_spans(width, tile, overlap, align, least))


def _ramp(length: int, scale: int) -> np.ndarray:
    """Rising weights across an overlap of ``length`` output px: 0, raised cosine in the middle, 1.

    The cosine band is at most BLEND_BAND input px wide; the rest of the overlap
    is context on either side, where only the tile that sees it well counts.
    """
    ramp = np.zeros(length, dtype=np.float64)
    width = min(BLEND_BAND * scale, length // 2)
    margin = (length - width) // 2
    if width > 0:
        t = (np.arange(width) + 0.5) / width
        ramp[margin : margin + width] = 0.5 - 0.5 * np.cos(np.pi * t)
    ramp[margin + width :] = 1.0
    return ramp


def axis_windows(spans: tuple[tuple[int, int], ...], scale: int) -> list[np.ndarray]:
    """One weight vector per span (at output scale) that together sum to one at every pixel."""
    length = spans[-1][1] * scale
    windows = []
    for i, (start, stop) in enumerate(spans):
        w = np.ones((stop - start) * scale, dtype=np.float64)
        if i > 0:
            shared = (spans[i - 1][1] - start) * scale
            w[:shared] *= _ramp(shared, scale)
        if i < len(spans) - 1:
            shared = (stop - spans[i + 1][0]) * scale
            w[len(w) - shared :] *= _ramp(shared, scale)[::-1]
        windows.append(w)
    total = np.zeros(length, dtype=np.float64)
    for (start, _), w in zip(spans, windows):
        total[start * scale : start * scale + len(w)] += w
    total = np.maximum(total, 1e-12)
    return [
        (w / total[start * scale : start * scale + len(w)]).astype(np.float32)
        for (start, _), w in zip(spans, windows)
    ]


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
    )


def _run_plan(
    fn: ModelFn,
    image: np.ndarray,
    plan: TilePlan,
    scale: int,
    device: torch.device,
    dtype: torch.dtype,
    progress: ProgressFn | None,
) -> np.ndarray:
    height, width, channels = image.shape
    canvas: np.ndarray | None = None
    wys, wxs = axis_windows(plan.ys, scale), axis_windows(plan.xs, scale)
    done = 0
    for (y0, y1), wy in zip(plan.ys, wys):
        for (x0, x1), wx in zip(plan.xs, wxs):
            crop = np.ascontiguousarray(image[y0:y1, x0:x1].transpose(2, 0, 1))
            tile_in = torch.from_numpy(crop).unsqueeze(0).to(device=device, dtype=dtype)
            out = fn(tile_in)
            out_np = out[0].float().cpu().numpy().transpose(1, 2, 0)
            del tile_in, out
            if canvas is None:  # output channels are known only after the first tile
                canvas = np.zeros((height * scale, width * scale, out_np.shape[2]), dtype=np.float32)
            region = canvas[y0 * scale : y1 * scale, x0 * scale : x1 * scale]
            region += out_np * (wy[:, None, None] * wx[None, :, None])
            done += 1
            if progress is not None:
                progress(done, plan.count)
    assert canvas is not None
    return canvas


def run_tiled(
    fn: ModelFn,
    image: np.ndarray,
    *,
    scale: int = 1,
    tile: int = 0,
    overlap: int = 32,
    multiple_of: int = 1,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: ProgressFn | None = None,
    min_tile: int = MIN_TILE,
    least_side: int = 0,
) -> np.ndarray:
    """Run ``fn`` over ``image`` (H x W x C float32) tile by tile; return the H·s x W·s x C' result.

    ``fn`` takes and returns a (1, C, h, w) tensor on ``device``; it must handle
    any tile size itself (padding to the model's requirements); ``multiple_of``
    aligns tile origins to the model's grid. ``tile`` 0 means
    the whole image in one piece. On out-of-memory the tile side is halved and
    the run restarts, down to ``min_tile``; below that TileOutOfMemory is raised.
    ``least_side`` keeps tiles at least that long where the image allows (see plan_spans).
    """
    if image.ndim != 3:
        raise ValueError(f"expected an H x W x C array, got shape {image.shape}")
    device = torch.device(device)
    height, width = image.shape[:2]
    current = tile if tile > 0 else max(height, width)
    while True:
        plan = plan_tiles(height, width, current, overlap, multiple_of, min(least_side, current))
        try:
            return _run_plan(fn, image, plan, scale, device, dtype, progress)
        except Exception as error:  # noqa: BLE001 - only out-of-memory is retried
            if not _is_out_of_memory(error):
                raise
            _release_device_memory(device)
            largest = max(plan.ys[0][1] - plan.ys[0][0], plan.xs[0][1] - plan.xs[0][0])
            current = largest // 2
            if current < min_tile:
                raise TileOutOfMemory(
                    f"out of memory even with {largest}px tiles on {device}; "
                    "close other programs, use --device cpu, or --precision fp16 on a GPU"
                ) from error


def _release_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


class _LiveBytes:
    """Peak bytes held by tensors that torch ops create, tracked exactly and repeatably.

    A dispatch mode sees every op's outputs (attention matrices included, which
    module outputs alone would miss); each output counts until it is freed.
    """

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self._seen or storage.nbytes() == 0:
            return  # a view of storage already counted
        self._seen.add(key)
        size = storage.nbytes()
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._release, key, size)

    def _release(self, key: int, size: int) -> None:
        self._seen.discard(key)
        self.live -= size


def measure_bytes_per_pixel(fn: ModelFn, channels: int, device: torch.device | str, probe: int = 64) -> float:
    """Peak activation memory the model needs per input pixel, from one ``probe`` x ``probe`` tile.

    Counted, not sampled, so the same model always gets the same answer (and so
    the same auto tile size and the same output). Weights are not included: they
    are resident anyway.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    counter = _LiveBytes()

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            for item in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(item, torch.Tensor):
                    counter.add(item)
            return out

    x = torch.rand(1, channels, probe, probe, device=torch.device(device))
    with Count():
        result = fn(x)
    del result
    return max(counter.peak, 1) / probe**2


CPU_TILE_BUDGET = 1024**3
TILE_STEP = 64


def auto_tile_size(
    device: torch.device | str,
    bytes_per_pixel: float,
    *,
    align: int = 1,
    minimum: int = 128,
    maximum: int = 2048,
) -> int:
    """Tile side for ``--tile auto``: the largest square tile whose activations fit the budget.

    Budget: 1 GiB of activations on CPU (a quarter of available RAM on machines
    with less than 4 GiB free), 40% of free memory on a GPU. The side is rounded
    down to a multiple of 64 px so small measurement differences never change it.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        budget = free * 0.4
    else:
        import psutil

        budget = min(CPU_TILE_BUDGET, psutil.virtual_memory().available / 4)
    side = int(math.sqrt(budget / max(bytes_per_pixel, 1.0)))
    side = max(minimum, min(maximum, side - side % TILE_STEP))
    step = max(align, 1)
    return max(step, side - side % step)
