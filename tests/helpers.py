"""Helpers shared by the tests: image metrics, synthetic degradations, checkpoints in real layouts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REV = "0123456789abcdef0123456789abcdef01234567"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two arrays on the same scale."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(peak**2 / mse))


def add_noise(image_u8: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Seeded Gaussian noise on the 0–255 scale, clipped and quantised to 8 bits."""
    rng = np.random.default_rng(seed)
    noisy = image_u8.astype(np.float64) + rng.normal(0.0, sigma, image_u8.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def kair_ffdnet_state_dict(channels: int = 3, features: int = 96, layers: int = 12, identity: bool = False) -> dict[str, torch.Tensor]:
    """A state dict in KAIR's released layout (``model.N`` keys, biases, no batch norm).

    With ``identity`` the weights make the network return its input exactly:
    the first conv copies the 4·C folded channels (the noise plane is last and
    ignored), the middle convs pass them on, the last conv copies them back. Any
    error in fold order or noise-plane position breaks that.
    """
    torch.manual_seed(0)
    folded = 4 * channels
    state: dict[str, torch.Tensor] = {}
    shapes = [(features, folded + 1)] + [(features, features)] * (layers - 2) + [(folded, features)]
    for i, (out_c, in_c) in enumerate(shapes):
        if identity:
            weight = torch.zeros(out_c, in_c, 3, 3)
            for k in range(min(out_c, in_c, folded)):
                weight[k, k, 1, 1] = 1.0
        else:
            weight = torch.randn(out_c, in_c, 3, 3) * (1.0 / (in_c * 9)) ** 0.5
        state[f"model.{2 * i}.weight"] = weight
        state[f"model.{2 * i}.bias"] = torch.zeros(out_c)
    return state


class FakeHub:
    """Stands in for hf_hub_download: local 'upstream' folder in, real HF cache layout out."""

    def __init__(self, upstream: Path) -> None:
        self.upstream = upstream
        self.calls: list[dict] = []
        self.error: BaseException | None = None

    def publish(self, repo: str, filename: str, data: bytes, revision: str = REV) -> None:
        path = self.upstream / repo / revision / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def __call__(self, repo_id, filename, *, revision, repo_type, cache_dir, local_files_only):
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        self.calls.append(
            dict(repo_id=repo_id, filename=filename, revision=revision, repo_type=repo_type,
                 cache_dir=cache_dir, local_files_only=local_files_only)
        )
        root = Path(cache_dir) / f"{repo_type}s--{repo_id.replace('/', '--')}"
        pointer = root / "snapshots" / revision / filename
        if pointer.exists():
            return str(pointer)
        if local_files_only:
            raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
        if self.error is not None:
            raise self.error
        src = self.upstream / repo_id / revision / filename
        if not src.exists():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        data = src.read_bytes()
        blob = root / "blobs" / sha(data)  # LFS etag == sha256 of the content
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        return str(pointer)


def randomize_batch_norm(net: torch.nn.Module) -> torch.nn.Module:
    """Random batch-norm statistics, so that BN is not a no-op in a test; ``net`` in eval mode."""
    for name, buffer in net.named_buffers():
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
    return net.eval()


def assert_stray_and_missing_keys_refused(state: dict, wrapper: str, stray: str, missing: str, folder: Path) -> None:
    """The loader is strict: ``state`` (saved under ``wrapper``) with one key more, or one fewer, does not load."""
    from photofix.engine.models import load_model
    from photofix.errors import ModelLoadError

    assert stray not in state and missing in state
    for name, changed in (("extra", {**state, stray: torch.zeros(1)}), ("missing", {k: v for k, v in state.items() if k != missing})):
        torch.save({wrapper: changed}, folder / f"{name}.pt")
        with pytest.raises(ModelLoadError, match="does not load"):
            load_model(folder / f"{name}.pt", device="cpu")
