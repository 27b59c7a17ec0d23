"""Tile batches (several tiles per forward, for GPUs) and the GPU benchmark's CPU dry run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from photofix.engine.tiling import auto_tile_batch, run_tiled
from photofix.imageio import Image, ImageMeta
from photofix.tasks.restore import Restorer
from tests.test_model_lineup import BUILDERS

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def _per_sample(net: torch.nn.Module, seen: list[int]):  # noqa: ANN202
    """A model function that runs each tile of a batch alone: its batched results are the lone ones, bit for bit."""

    @torch.inference_mode()
    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return torch.cat([net(x[k : k + 1]) for k in range(x.shape[0])])

    return fn


@pytest.mark.parametrize("batch", [2, 3, 16])
def test_batched_tiles_blend_exactly_as_one_at_a_time(batch: int) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    image = np.random.default_rng(0).random((100, 90, 3), dtype=np.float32)
    alone, batched = [], []
    expected = run_tiled(_per_sample(net.eval(), alone), image, tile=32, overlap=8)
    got = run_tiled(_per_sample(net, batched), image, tile=32, overlap=8, batch=batch)
    np.testing.assert_array_equal(got, expected)
    assert set(alone) == {1} and sum(batched) == len(alone)
    assert max(batched) == min(batch, max(batched)) and max(batched) > 1
    # Only tiles of one shape share a forward: the last row and column may be larger.
    assert len(batched) < len(alone)


def test_a_batch_through_a_real_model_differs_only_by_kernel_rounding(tmp_path: Path) -> None:
    from photofix.engine.models import load_model

    torch.manual_seed(0)
    path = tmp_path / "nafnet.pth"
    torch.save(BUILDERS["NAFNet"](), path)
    model = load_model(path, device="cpu")
    meta = ImageMeta(format="PNG", mode="RGB", bit_depth=8, grayscale=False)
    image = Image(np.random.default_rng(1).random((96, 112, 3), dtype=np.float32), None, meta)
    one, _ = Restorer("denoise", model, tile=48, tile_overlap=16).restore(image)
    four, _ = Restorer("denoise", model, tile=48, tile_overlap=16, tile_batch=4).restore(image)
    assert np.abs(one.pixels - four.pixels).max() < 1e-5


def test_a_cpu_gets_one_tile_per_forward() -> None:
    assert auto_tile_batch("cpu", bytes_per_pixel=100.0, tile=256) == 1


def test_gpu_benchmark_dry_run_measures_every_model_precision_and_batch(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu.json"
    assert bench.main(["--dry-run", "--precisions", "fp32", "bf16", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    measured = {(r["config"], r["precision"], r["batch"]) for r in rows if "skipped" not in r}
    assert measured == {(name, p, b) for name in bench.TINY for p in ("fp32", "bf16") for b in (1, 2)}
    for row in rows:
        assert row["s_per_mp"] > 0 and row["max_diff_vs_batch_1"] < 1e-5
