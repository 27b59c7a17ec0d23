"""The tile planner, the blending windows, and tiled-equals-whole for convolutional models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photofix.errors import TileOutOfMemory
from photofix.engine.tiling import axis_windows, plan_spans, plan_tiles, run_tiled


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
    assert reports == [(i, total) for i in range(0, total + 1)]  # (0, n) first: the bar shows before tile 1 ends


def test_measured_memory_sees_internal_allocations_and_repeats_exactly() -> None:
    from photofix.engine.tiling import measure_bytes_per_pixel

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
    from photofix.engine.tiling import auto_tile_size

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


# --- blending in bands: the result as one float canvas gave it, without holding that canvas ---------


def _wavy(scale: int):
    """A per-pixel nonlinear stand-in model (negative values included), enlarging by ``scale``."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        y = torch.sin(x * 7.0) - 0.05
        return torch.nn.functional.interpolate(y, scale_factor=scale, mode="nearest") if scale > 1 else y

    return fn


def _whole_canvas(fn, image: np.ndarray, plan, scale: int) -> np.ndarray:
    """The blending as it was before: one zeroed float32 canvas the size of the output, every tile added in."""
    canvas = None
    for (y0, y1), wy in zip(plan.ys, axis_windows(plan.ys, scale)):
        for (x0, x1), wx in zip(plan.xs, axis_windows(plan.xs, scale)):
            tile = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1].transpose(2, 0, 1)))[None]
            out = fn(tile)[0].numpy().transpose(1, 2, 0)
            if canvas is None:
                canvas = np.zeros((image.shape[0] * scale, image.shape[1] * scale, out.shape[2]), np.float32)
            canvas[y0 * scale : y1 * scale, x0 * scale : x1 * scale] += out * (wy[:, None, None] * wx[None, :, None])
    assert canvas is not None
    return canvas


@pytest.mark.parametrize(
    ("height", "width", "channels", "scale", "tile", "overlap", "align", "least"),
    [
        (130, 170, 3, 4, 48, 16, 1, 0),  # several tile rows and columns
        (97, 61, 1, 2, 32, 8, 4, 0),  # grey, aligned starts, longer last span
        (151, 151, 3, 1, 100, 60, 1, 100),  # spans 0 and 2 overlap too (least side forces big tiles)
        (130, 90, 3, 2, 128, 8, 4, 128),  # two tile rows starting at the same row
        (80, 30, 1, 1, 32, 8, 1, 0),  # one full-width column: the model's input may be a view of the image
    ],
)
@pytest.mark.parametrize("finished", [False, True])
def test_banded_blending_equals_one_float_canvas_bit_for_bit(
    height: int, width: int, channels: int, scale: int, tile: int, overlap: int, align: int, least: int, finished: bool,
) -> None:
    from photofix.imageio.encode import quantize

    image = np.random.default_rng(height).random((height, width, channels), dtype=np.float32)
    original = image.copy()
    fn = _wavy(scale)
    plan = plan_tiles(height, width, tile, overlap, align, least)
    assert plan.count > 1
    expected = _whole_canvas(fn, image, plan, scale)
    finish = (lambda block: quantize(block, np.uint8)) if finished else None
    got = run_tiled(fn, image, scale=scale, tile=tile, overlap=overlap, multiple_of=align, least_side=least, finish=finish)
    if finished:
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, quantize(expected, np.uint8))
    else:
        assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()  # same bits, signed zeros included
    np.testing.assert_array_equal(image, original)  # the caller's image is never written to


def test_float_memory_is_one_tile_and_the_overlap_rows_not_a_canvas() -> None:
    """Beside the uint8 result, the tiler holds float32 for about one tile and the rows shared with the next tile row."""
    import tracemalloc

    from photofix.imageio.encode import quantize

    height, width, scale, tile, overlap = 256, 192, 4, 48, 8
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    plan = plan_tiles(height, width, tile, overlap)
    tile_bytes = max(b - a for a, b in plan.ys) * max(b - a for a, b in plan.xs) * scale**2 * 3 * 4
    shared_rows = max(a[1] - b[0] for a, b in zip(plan.ys, plan.ys[1:])) * scale
    band_bytes = shared_rows * width * scale * 3 * 4
    canvas_bytes = height * width * scale**2 * 3 * 4

    tracemalloc.start()  # sees numpy's allocations, not torch's (the model's own output)
    try:
        result = run_tiled(_wavy(scale), image, scale=scale, tile=tile, overlap=overlap,
                           finish=lambda block: quantize(block, np.uint8))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.dtype == np.uint8 and result.shape == (height * scale, width * scale, 3)
    beside = peak - result.nbytes
    # the tile, the finisher's copy of part of it, small temporaries; the rows shared with the row above and below
    bound = 4 * tile_bytes + 2 * band_bytes
    assert beside < bound
    assert bound < canvas_bytes / 2  # a float canvas could not pass


def test_integer_pixels_are_refused() -> None:
    with pytest.raises(ValueError, match="float pixels"):
        run_tiled(lambda x: x, np.zeros((8, 8, 3), np.uint8))


# --- an upscale hands back finished uint8 pixels that encode to the same bytes -------------------


@pytest.fixture(scope="module")
def compact_x4(tmp_path_factory):
    """A small random Compact x4 (SRVGG) in Real-ESRGAN's released ``params`` layout, loaded."""
    from spandrel.architectures.Compact import Compact

    from photofix.engine.models import load_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("compact") / "compact_x4.pth"
    torch.save({"params": Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4).state_dict()}, path)
    return load_model(path, device="cpu")


def _photo(astronaut: np.ndarray, *, grey: bool = False, alpha: bool = False, bit_depth: int = 8):
    from photofix.imageio import Image, ImageMeta

    rgb = astronaut[100:140, 180:230].astype(np.float32) / 255
    pixels = rgb.mean(axis=2, keepdims=True) if grey else rgb
    meta = ImageMeta(format="PNG", mode="L" if grey else "RGB", bit_depth=bit_depth, grayscale=grey)
    ramp = np.tile(np.linspace(0, 1, pixels.shape[1], dtype=np.float32), (pixels.shape[0], 1))
    return Image(pixels=pixels, alpha=ramp if alpha else None, meta=meta)


def _as_before(restorer):
    """The same restorer with float output: the whole float canvas path this change replaced."""
    from photofix.tasks.restore import Restorer

    before = Restorer("upscale", restorer.model, params=restorer.params, tile=restorer.tile,
                      tile_overlap=restorer.tile_overlap)
    before.finished_output = False
    return before


@pytest.mark.parametrize(("grey", "alpha"), [(False, False), (True, False), (False, True)])
def test_upscaled_8bit_photo_is_uint8_and_encodes_to_the_same_bytes(compact_x4, astronaut, grey: bool, alpha: bool) -> None:
    from photofix.review.compare import to_rgb8
    from photofix.imageio import encode_image
    from photofix.tasks.restore import Restorer

    image = _photo(astronaut, grey=grey, alpha=alpha)
    restorer = Restorer("upscale", compact_x4, tile=16, tile_overlap=8)  # 4 x 5 tiles
    after, details = restorer.restore(image)
    before, _ = _as_before(restorer).restore(image)
    assert after.pixels.dtype == np.uint8 and before.pixels.dtype == np.float32
    assert after.pixels.shape == before.pixels.shape == (160, 200, 1 if grey else 3)
    assert details["scale"] == 4
    for fmt in ("PNG", "JPEG", "WEBP"):
        assert encode_image(after, format=fmt) == encode_image(before, format=fmt)
    np.testing.assert_array_equal(to_rgb8(after), to_rgb8(before))  # --preview sees the same picture


@pytest.mark.parametrize("case", ["resampled", "sixteen_bit", "chain_middle"])
def test_upscale_stays_float_while_floats_are_still_needed(compact_x4, astronaut, case: str) -> None:
    from photofix.imageio import encode_image
    from photofix.tasks.restore import Chain, Restorer, TaskParams

    image = _photo(astronaut, bit_depth=16 if case == "sixteen_bit" else 8)
    params = TaskParams(scale=2) if case == "resampled" else None  # a 4x model resampled to 2x needs floats
    restorer = Restorer("upscale", compact_x4, params=params, tile=16, tile_overlap=8)
    if case == "chain_middle":
        last = Restorer("upscale", compact_x4, tile=16, tile_overlap=8)
        chained, _ = Chain([("upscale", restorer), ("upscale", last)]).restore(image)
        middle, _ = restorer.restore(image)
        assert middle.pixels.dtype == np.float32  # what the next step computes on
        assert chained.pixels.dtype == np.uint8
        expected, _ = _as_before(last).restore(middle)
        assert encode_image(chained, format="PNG") == encode_image(expected, format="PNG")
        return
    after, _ = restorer.restore(image)
    assert after.pixels.dtype == np.float32
    before, _ = _as_before(restorer).restore(image)
    assert after.pixels.tobytes() == before.pixels.tobytes()


def test_auto_tile_counts_a_model_once_per_home_and_reuses_the_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 16 item 6: the counting probe (and the torch._dynamo import it brings) cost every one-file run ~1.5 s
    from types import SimpleNamespace

    from photofix.engine import tiling

    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    counted: list[int] = []
    real = tiling.measure_bytes_per_pixel

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tiling, "measure_bytes_per_pixel", counting)

    def model(sha256: str | None, dtype: torch.dtype = torch.float32) -> SimpleNamespace:
        return SimpleNamespace(device=torch.device("cpu"), tile_grid=1, tiling_discouraged=False, sha256=sha256,
                               arch="Fake", dtype=dtype)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, torch.ones(16, 3, 3, 3), padding=1).mean(1, keepdim=True).expand(-1, 3, -1, -1)

    first = tiling.AutoTile(model("a" * 64)).side(fn, 3, 4000, 3000)
    again = tiling.AutoTile(model("a" * 64)).side(fn, 3, 4000, 3000)  # a later run: read back, not counted
    assert (first, again, len(counted)) == (again, first, 1)
    tiling.AutoTile(model("b" * 64)).side(fn, 3, 4000, 3000)  # other weights
    tiling.AutoTile(model("a" * 64, torch.bfloat16)).side(fn, 3, 4000, 3000)  # other precision
    tiling.AutoTile(model(None)).side(fn, 3, 4000, 3000)  # no hash known: counted, not kept
    tiling.AutoTile(model(None)).side(fn, 3, 4000, 3000)
    assert len(counted) == 5
    (tmp_path / "home" / "tile_memory.json").write_text("{not json")  # damaged: counted again, never fatal
    assert tiling.AutoTile(model("a" * 64)).side(fn, 3, 4000, 3000) == first and len(counted) == 6
