"""Helpers shared by the tests: image metrics, synthetic degradations, checkpoints in real layouts."""

from __future__ import annotations

import numpy as np
import torch


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
