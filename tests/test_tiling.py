"""The tile planner, the blending windows, and tiled-equals-whole for convolutional models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photofix.errors import TileOutOfMemory
from photofix.tiling import axis_windows, plan_spans, plan_tiles, run_tiled


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "align"),
    [(512, 128, 32, 1), (1000, 256, 64, 2), (999, 200, 48, 8), (4000, 512, 64, 16), (130, 64, 16, 1), (97, 32, 8, 4)],
)
def test_spans_cover_evenly_with_enough_overlap(length: int, tile: int, overlap: int, align: int) -> None:
    spans = plan_spans(length, tile, overlap, align)
    assert spans[0][0] == 0 and spans[-1][1] == length
    sizes = [stop - start for start, stop in spans]
    # one size for all but the last, which may be longer by less than the alignment: no slivers
    assert len(set(sizes[:-1])) <= 1
    assert 0 <= sizes[-1] - sizes[0] < align
    assert max(sizes[:-1] or sizes) <= tile
    for (a0, a1), (b0, _b1) in zip(spans, spans[1:]):
        assert a0 % align == 0 and b0 % align == 0
        assert a1 - b0 >= min(overlap, tile // 2)  # neighbours share at least the overlap


def test_small_image_or_zero_tile_is_one_piece() -> None:
    assert plan_spans(300, 512, 32) == ((0, 300),)
    assert plan_spans(300, 0, 32) == ((0, 300),)
    assert plan_tiles(300, 400, 0, 32).count == 1


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_windows_sum_to_one(scale: int) -> None:
    spans = plan_spans(777, 160, 48, 2)
    total = np.zeros(777 * scale)
    for (start, _), window in zip(spans, axis_windows(spans, scale)):
        total[start * scale : start * scale + len(window)] += window
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def _conv_stack(depth: int, seed: int = 0) -> torch.nn.Module:
    """A random 3x3 conv stack: receptive radius = depth px, no size requirements."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for i in range(depth):
        layers.append(torch.nn.Conv2d(3, 3, 3, padding=1))
        if i < depth - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers).eval()


def test_tiled_equals_whole_when_overlap_covers_receptive_field(astronaut: np.ndarray) -> None:
    net = _conv_stack(depth=10)  # receptive field 21 px, radius 10

    @torch.inference_mode()
    def fn(x: torch.Tensor) -> torch.Tensor:
        return net(x)

    image = astronaut[:300, :260].astype(np.float32) / 255
    whole = run_tiled(fn, image, tile=0)
    tiled = run_tiled(fn, image, tile=96, overlap=2 * 10 + 16)
    assert np.abs(tiled - whole).max() < 1e-4
    # and the test can fail: too little overlap shows the tile borders
    too_small = run_tiled(fn, image, tile=96, overlap=4)
    assert np.abs(too_small - whole).max() > 1e-3


def test_tiled_upscaling_model_keeps_scale(astronaut: np.ndarray) -> None:
    def nearest_x2(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    image = astronaut[:100, :90].astype(np.float32) / 255
    out = run_tiled(nearest_x2, image, scale=2, tile=40, overlap=16)
    assert out.shape == (200, 180, 3)
    np.testing.assert_allclose(out, image.repeat(2, 0).repeat(2, 1), atol=1e-6)


def test_out_of_memory_retries_with_smaller_tiles() -> None:
    seen: list[int] = []

    def picky(x: torch.Tensor) -> torch.Tensor:
        seen.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 64:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x * 0.5

    image = np.full((200, 200, 3), 0.8, dtype=np.float32)
    out = run_tiled(picky, image, tile=256, overlap=8)
    np.testing.assert_allclose(out, 0.4, atol=1e-6)
    assert seen[0] == 200 and max(seen[-4:]) <= 64  # whole image first, then halved until it fit


def test_out_of_memory_at_the_smallest_tile_is_a_typed_error() -> None:
    def never_fits(x: torch.Tensor) -> torch.Tensor:
        raise MemoryError

    with pytest.raises(TileOutOfMemory, match="out of memory"):
        run_tiled(never_fits, np.zeros((128, 128, 3), np.float32), tile=128, overlap=8)


def test_other_errors_are_not_retried() -> None:
    calls = 0

    def broken(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        raise ValueError("bad weights")

    with pytest.raises(ValueError, match="bad weights"):
        run_tiled(broken, np.zeros((64, 64, 3), np.float32), tile=32, overlap=8)
    assert calls == 1


def test_progress_reports_every_tile() -> None:
    reports: list[tuple[int, int]] = []
    run_tiled(lambda x: x, np.zeros((100, 100, 3), np.float32), tile=40, overlap=8, progress=lambda d, t: reports.append((d, t)))
    total = plan_tiles(100, 100, 40, 8).count
    assert reports == [(i, total) for i in range(1, total + 1)]


def test_measured_memory_sees_internal_allocations_and_repeats_exactly() -> None:
    from photofix.tiling import measure_bytes_per_pixel

    def hungry(x: torch.Tensor) -> torch.Tensor:
        scratch = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB that no module output would show
        return x + scratch[0] * 0

    first = measure_bytes_per_pixel(hungry, 3, "cpu", probe=64)
    assert first >= 64 * 1024 * 1024 / 64**2
    assert measure_bytes_per_pixel(hungry, 3, "cpu", probe=64) == first  # counted, not sampled

    def lean(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    assert measure_bytes_per_pixel(lean, 3, "cpu", probe=64) < first / 100


def test_auto_tile_shrinks_as_models_get_hungrier() -> None:
    from photofix.tiling import auto_tile_size

    light = auto_tile_size("cpu", 2_000, align=2)
    heavy = auto_tile_size("cpu", 200_000, align=2)
    assert 128 <= heavy < light <= 2048
    assert light % 2 == 0 and heavy % 8 == 0


@pytest.mark.parametrize("length", [520, 700, 768, 1100, 2000])
def test_spans_keep_the_least_side_where_the_image_allows(length: int) -> None:
    spans = plan_spans(length, 512, 64, 8, least=512)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(end - start >= 512 for start, end in spans)
    assert all(end - start <= 512 + 7 for start, end in spans)  # the cap still holds (last span may add < align)
    assert all(start % 8 == 0 for start, _ in spans)
    assert all(b[0] <= a[1] - 64 for a, b in zip(spans, spans[1:]))  # overlap never shrinks
    without = plan_spans(length, 512, 64, 8)
    assert len(spans) == len(without)  # same count: the spans only grow


def test_least_side_never_exceeds_the_image() -> None:
    assert plan_spans(300, 512, 64, 8, least=512) == ((0, 300),)
