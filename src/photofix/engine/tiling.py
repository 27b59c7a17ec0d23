"""Tiled inference with bounded memory and seam-free blending.

The whole image and the result live in host memory; only one tile at a time
goes to the device. Tiles along each axis have one size (no thin slivers at
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

Tiles are blended in row-major order, and each output pixel is finished (optionally
to an integer type, see ``run_tiled``) as soon as no later tile covers it: float
sums are held for one tile and the rows it shares with the next tile row, never
for a whole float canvas, which for an x4 upscale is 4x the 8-bit output.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from photofix.engine.measured import MeasuredStore
from photofix.errors import TileOutOfMemory

ModelFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]
Finish = Callable[[np.ndarray], np.ndarray]

MIN_TILE = 32
BLEND_BAND = 16
ROW_CHUNK = 256  # output rows weighted or finished per numpy call: bounds their temporaries


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


def _tiles_in(image: np.ndarray, spans: list[tuple[int, int, int, int]], device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
    """The crops of ``spans`` (all one size) as one (N, C, h, w) batch on ``device``.

    On CUDA the batch goes through pinned host memory with a non-blocking copy, so the copy
    overlaps what the GPU is still doing; the result's copy back waits for it anyway.
    """
    crops = np.stack([image[y0:y1, x0:x1].transpose(2, 0, 1) for y0, y1, x0, x1 in spans])
    batch = torch.from_numpy(crops)
    if device.type == "cuda":
        return batch.pin_memory().to(device=device, dtype=dtype, non_blocking=True)
    return batch.to(device=device, dtype=dtype)


def _weighted(out: torch.Tensor, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """One tile's model output (C, H, W) times its blending window: a new H x W x C float32 array."""
    raw = out.float().cpu().numpy().transpose(1, 2, 0)
    tile = np.empty(raw.shape, dtype=np.float32)
    for r in range(0, len(tile), ROW_CHUNK):  # in row chunks: no tile-sized weight or product temporaries
        rows = tile[r : r + ROW_CHUNK]
        np.multiply(raw[r : r + ROW_CHUNK], wy[r : r + ROW_CHUNK, None, None] * wx[None, :, None], out=rows)
        rows += 0.0  # -0.0 to 0.0, as adding to a zeroed canvas did: the sums stay bit-identical to that
    return tile


class _Blender:
    """Blends weighted tiles arriving in row-major order, holding floats only where blending is unfinished.

    A tile first takes the running sums earlier tiles left in its area: ``left``, the previous
    tile's right overlap (which already includes the row above), and ``above``, the previous tile
    row's bottom overlap (full width). It then hands its own right overlap on as ``left`` and its
    bottom overlap on to ``below`` (the next row's ``above``); the rest no later tile touches, so it
    is finished into ``out``. Float addition is commutative, so every pixel's sum equals, bit for
    bit, what one zeroed float32 canvas accumulating the tiles in the same order would hold.
    """

    def __init__(self, plan: TilePlan, scale: int, finish: Finish | None) -> None:
        self.ys = [(a * scale, b * scale) for a, b in plan.ys]
        self.xs = [(a * scale, b * scale) for a, b in plan.xs]
        self.finish = finish
        self.out: np.ndarray | None = None
        self.above: np.ndarray | None = None
        self.below: np.ndarray | None = None
        self.left: np.ndarray | None = None

    def add(self, i: int, j: int, tile: np.ndarray) -> None:
        """Fold in tile (i, j), already weighted; ``tile`` is used as scratch space."""
        (top, bottom), (start, stop) = self.ys[i], self.xs[j]
        keep_rows = self.ys[i + 1][0] if i + 1 < len(self.ys) else bottom  # from here down the next tile row adds
        keep_cols = self.xs[j + 1][0] if j + 1 < len(self.xs) else stop  # from here right the next tile adds
        if self.out is None:
            self.out = self._allocate(tile.shape[2])
        if j == 0:
            self.left = None
            self.below = np.empty((bottom - keep_rows, self.xs[-1][1], tile.shape[2]), dtype=np.float32)
        seen = 0 if self.left is None else self.left.shape[1]
        if self.left is not None:
            tile[:, :seen] += self.left
        if self.above is not None:
            tile[: len(self.above), seen:] += self.above[:, start + seen : stop]
        self.left = tile[:, keep_cols - start :].copy() if keep_cols < stop else None
        assert self.below is not None
        self.below[:, start:keep_cols] = tile[keep_rows - top :, : keep_cols - start]
        self._emit(tile[: keep_rows - top, : keep_cols - start], top, start)
        if j == len(self.xs) - 1:
            self.above, self.below = self.below, None

    def _allocate(self, channels: int) -> np.ndarray:
        size = (self.ys[-1][1], self.xs[-1][1])
        if self.finish is None:
            return np.empty((*size, channels), dtype=np.float32)
        probe = self.finish(np.zeros((1, 1, channels), dtype=np.float32))  # the finished type and channels
        return np.empty((*size, probe.shape[2]), dtype=probe.dtype)

    def _emit(self, block: np.ndarray, top: int, left: int) -> None:
        assert self.out is not None
        for r in range(0, len(block), ROW_CHUNK):
            rows = block[r : r + ROW_CHUNK]
            target = self.out[top + r : top + r + len(rows), left : left + rows.shape[1]]
            target[...] = rows if self.finish is None else self.finish(rows)


def _batches(plan: TilePlan, batch: int) -> list[list[tuple[int, int]]]:
    """Tile indices in row-major order, cut into runs of at most ``batch`` tiles of one shape."""
    runs: list[list[tuple[int, int]]] = []
    shape = None
    for i, (y0, y1) in enumerate(plan.ys):
        for j, (x0, x1) in enumerate(plan.xs):
            if runs and len(runs[-1]) < batch and (y1 - y0, x1 - x0) == shape:
                runs[-1].append((i, j))
            else:
                runs.append([(i, j)])
            shape = (y1 - y0, x1 - x0)
    return runs


def _run_plan(
    fn: ModelFn,
    image: np.ndarray,
    plan: TilePlan,
    scale: int,
    device: torch.device,
    dtype: torch.dtype,
    progress: ProgressFn | None,
    finish: Finish | None,
    batch: int = 1,
) -> np.ndarray:
    wys, wxs = axis_windows(plan.ys, scale), axis_windows(plan.xs, scale)
    blender = _Blender(plan, scale, finish)
    done = 0
    if progress is not None:  # a first tile can take tens of seconds on a CPU: say the count now
        progress(0, plan.count)
    for run in _batches(plan, batch):
        spans = [(*plan.ys[i], *plan.xs[j]) for i, j in run]
        tiles_in = _tiles_in(image, spans, device, dtype)
        out = fn(tiles_in)
        del tiles_in
        for k, (i, j) in enumerate(run):  # blended in row-major order, as one at a time would be
            blender.add(i, j, _weighted(out[k], wys[i], wxs[j]))
            done += 1
            if progress is not None:
                progress(done, plan.count)
        del out
    assert blender.out is not None
    return blender.out


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
    finish: Finish | None = None,
    batch: int = 1,
) -> np.ndarray:
    """Run ``fn`` over ``image`` (H x W x C float32) tile by tile; return the H·s x W·s x C' result.

    ``fn`` takes and returns a (1, C, h, w) tensor on ``device``; it must handle
    any tile size itself (padding to the model's requirements); ``multiple_of``
    aligns tile origins to the model's grid. ``tile`` 0 means
    the whole image in one piece. On out-of-memory the tile side is halved and
    the run restarts, down to ``min_tile``; below that TileOutOfMemory is raised.
    ``least_side`` keeps tiles at least that long where the image allows (see plan_spans).

    The result is float32 as blended, unless ``finish`` is given: it receives every part of
    the blended result once, as float32 blocks (h x w x C', a few rows and columns of it, in
    no promised order), and returns what to store for that block, which sets the result's
    dtype and channel count (e.g. quantized uint8, to hold an x4 upscale in a quarter of the
    memory). It must therefore work pixel by pixel. Either way the float32 kept beside the
    result is one tile plus the overlap rows shared with the next tile row.

    ``batch`` > 1 hands ``fn`` up to that many tiles of one shape per call, (N, C, h, w) → (N, C',
    h·s, w·s) (a GPU runs them in one pass); each tile's result is blended exactly as if it came
    alone. Memory on the device grows with the batch; out-of-memory halves the tile as before.
    """
    if image.ndim != 3:
        raise ValueError(f"expected an H x W x C array, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):  # e.g. finished uint8 pixels, which end a pipeline
        raise ValueError(f"expected float pixels in [0, 1], got {image.dtype}")
    device = torch.device(device)
    height, width = image.shape[:2]
    current = tile if tile > 0 else max(height, width)
    while True:
        plan = plan_tiles(height, width, current, overlap, multiple_of, min(least_side, current))
        try:
            return _run_plan(fn, image, plan, scale, device, dtype, progress, finish, max(1, batch))
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
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            # torch wraps a mode's dispatch in "disable dynamo", which imports torch._dynamo (~1.5 s
            # of a one-file run); this mode never runs under torch.compile, so nothing is to disable
            return False

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


# Activations of one tile on CPU. 512 MiB keeps a 2400x1600 -> x4 upscale (Compact) at 1.42 GiB
# peak RSS (1024-px tiles) where 1 GiB gave 1.65 GiB (1408-px tiles), in the same time within
# this shared machine's noise (151-234 s against 225 s): benchmarks/bench_upscale_memory.py.
CPU_TILE_BUDGET = 512 * 1024**2
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

    Budget: 512 MiB of activations on CPU (a quarter of available RAM on machines
    with less than 2 GiB free), 40% of free memory on a GPU. The side is rounded
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


MAX_TILE_BATCH = 8


def auto_tile_batch(device: torch.device | str, bytes_per_pixel: float, tile: int, maximum: int = MAX_TILE_BATCH) -> int:
    """Tiles per forward: on a GPU as many ``tile``-px tiles as fit 40% of free memory (at most
    ``maximum``); one on other devices, where a batch was not measured to help and would only
    multiply the CPU's 512 MiB tile budget."""
    device = torch.device(device)
    if device.type != "cuda" or tile <= 0:
        return 1
    free, _total = torch.cuda.mem_get_info(device)
    return max(1, min(maximum, int(free * 0.4 // max(bytes_per_pixel * tile * tile, 1.0))))


_MEASURED = MeasuredStore("tile_memory.json")


class AutoTile:
    """``--tile auto`` for one loaded model: memory per pixel counted once, a side chosen per image.

    A model whose architecture advises against tiling (global attention or statistics:
    spandrel's ``ModelTiling.DISCOURAGED``) runs each image whole when the whole image fits
    the same memory budget, and is tiled only beyond it; other models keep the 2048-px cap.
    """

    def __init__(self, model: Any, minimum: int = 0) -> None:
        self.model = model
        self.minimum = minimum
        self._per_pixel: float | None = None

    def _measure(self, fn: ModelFn, channels: int) -> float:
        # The count is exact, so a later run may reuse it: it spares that run the probe and the
        # torch._dynamo import the counting mode brings (~1.5 s of every one-file run).
        key = self._key(channels)
        kept = _MEASURED.get(key) if key else None
        if isinstance(kept, (int, float)) and kept > 0:
            return float(kept)
        # Counted on torch's network: an OpenVINO run allocates outside torch, where nothing counts it.
        with getattr(self.model, "running_torch", contextlib.nullcontext)():
            per_pixel = measure_bytes_per_pixel(fn, channels, self.model.device)
        if key:
            _MEASURED.put(key, per_pixel)
        return per_pixel

    def _key(self, channels: int) -> str | None:
        """Everything the count depends on: the network (its weights' hash), channels, device, dtype, code."""
        sha256 = getattr(self.model, "sha256", None)
        if not sha256:
            return None
        from photofix import __version__

        parts = (sha256, getattr(self.model, "arch", "?"), f"{channels}ch", torch.device(self.model.device).type,
                 str(getattr(self.model, "dtype", "?")), f"torch {torch.__version__}", f"photofix {__version__}")
        return "|".join(parts)

    def side(self, fn: ModelFn, channels: int, height: int, width: int) -> int:
        if self._per_pixel is None:
            self._per_pixel = self._measure(fn, channels)
        grid = self.model.tile_grid
        maximum = 2048
        if self.model.tiling_discouraged:
            longest = max(height, width)
            maximum = max(maximum, -(-longest // grid) * grid)  # one tile covers the image when it fits
        return max(auto_tile_size(self.model.device, self._per_pixel, align=grid, maximum=maximum), self.minimum)

    def batch(self, fn: ModelFn, channels: int, tile: int) -> int:
        """Tiles of side ``tile`` per forward (``auto_tile_batch``); memory per pixel counted once."""
        if torch.device(self.model.device).type != "cuda":
            return 1
        if self._per_pixel is None:
            self._per_pixel = self._measure(fn, channels)
        return auto_tile_batch(self.model.device, self._per_pixel, tile)


__all__ = [
    "AutoTile",
    "BLEND_BAND",
    "CPU_TILE_BUDGET",
    "MAX_TILE_BATCH",
    "Finish",
    "MIN_TILE",
    "ModelFn",
    "ProgressFn",
    "ROW_CHUNK",
    "TILE_STEP",
    "TilePlan",
    "auto_tile_batch",
    "auto_tile_size",
    "axis_windows",
    "measure_bytes_per_pixel",
    "plan_spans",
    "plan_tiles",
    "run_tiled",
]
