"""Scratch round 8's experiment (not shipped): a small convolutional pixel classifier of damage.

Seven 3 x 3 convolutions, the middle ones dilated (1, 2, 4, 8) so each output pixel sees
a 37-px square around it; 14,385 weights. ``train_scratch_net.py`` fits it on the tuning
generators drawn on photos outside the evaluation's; ``bench_scratch_eval.py`` runs it as the
``net...`` detectors (``--net-weights``). On the tuning sets it beat the shipped detector; on
the held-out generator it lost to it (SCRATCH_EVAL.md, round 8), so photofix does not use it.

Weights are a plain ``.npz`` of float32 arrays, read with pickling disabled.
Images are float32 H x W x C in [0, 1] (C = 1 or 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photofix.errors import UsageError

WIDTH = 16  # feature channels
DILATIONS = (1, 1, 2, 4, 8, 1)  # of the 3 x 3 convolutions after the first
DEFAULT_THRESHOLD = 0.7

_TILE = 512  # px: images are run in tiles this size (plus the receptive field's margin)
_MARGIN = 1 + sum(DILATIONS) + 2  # px of context each side of a tile


def build_net():
    """The network, with freshly initialised weights (torch.nn.Module)."""
    from torch import nn

    layers: list = [nn.Conv2d(3, WIDTH, 3, padding=1), nn.ReLU(inplace=True)]
    for d in DILATIONS:
        layers += [nn.Conv2d(WIDTH, WIDTH, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(WIDTH, 1, 1))
    return nn.Sequential(*layers)


def net_input(pixels: np.ndarray) -> np.ndarray:
    """3 x H x W float32 the network reads: RGB (grey repeated) centred on zero."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise UsageError(f"expected an H x W x C image with C = 1 or 3, got shape {pixels.shape}")
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)) - 0.5


def save_weights(net, path: Path) -> None:
    """Write the network's weights as a plain .npz (float32 arrays, no pickled objects)."""
    arrays = {name.replace(".", "_"): t.detach().cpu().numpy().astype(np.float32) for name, t in net.state_dict().items()}
    np.savez(path, **arrays)


def load_net(path: Path):
    """The network with the weights at ``path``, in eval mode."""
    import torch

    net = build_net()
    arrays = dict(np.load(path, allow_pickle=False))
    state = {name: torch.from_numpy(arrays[name.replace(".", "_")]) for name in net.state_dict()}
    net.load_state_dict(state)
    return net.eval()


def damage_probability(pixels: np.ndarray, *, net) -> np.ndarray:
    """H x W float32: each pixel's probability of being visible damage.

    Run tile by tile with a margin of context, so memory stays bounded on large scans and
    the result does not depend on where the tiles fall.
    """
    import torch

    x = net_input(pixels)
    _, h, w = x.shape
    out = np.empty((h, w), np.float32)
    with torch.inference_mode():
        for top in range(0, h, _TILE):
            for left in range(0, w, _TILE):
                t0, l0 = max(top - _MARGIN, 0), max(left - _MARGIN, 0)
                t1, l1 = min(top + _TILE + _MARGIN, h), min(left + _TILE + _MARGIN, w)
                tile = torch.from_numpy(np.ascontiguousarray(x[:, t0:t1, l0:l1]))[None]
                prob = torch.sigmoid(net(tile))[0, 0].numpy()
                bottom, right = min(top + _TILE, h), min(left + _TILE, w)
                out[top:bottom, left:right] = prob[top - t0:bottom - t0, left - l0:right - l0]
    return out


def detect_scratches_learned(pixels: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
                             confident: float | None = None, min_area: int = 3, net=None,
                             probability: np.ndarray | None = None) -> np.ndarray:
    """Bool H x W mask of damage: pixels whose probability reaches ``threshold`` in connected
    pieces that reach ``confident`` somewhere (hysteresis, as Canny's: a scratch is kept whole
    along its faint stretches, faint texture alone is not) and hold ``min_area`` px.

    ``confident=None`` cuts at ``threshold`` alone. ``probability`` reuses a map already computed.
    """
    import cv2

    if not 0.0 < threshold < 1.0:
        raise UsageError(f"threshold must be between 0 and 1, not {threshold}")
    high = threshold if confident is None else max(confident, threshold)
    if probability is None and net is None:
        raise UsageError("give the network or its probability map")
    prob = damage_probability(pixels, net=net) if probability is None else probability
    mask = (prob >= threshold).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    keep = np.zeros(count, bool)
    keep[labels[prob >= high]] = True
    keep &= stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def detect_damage(pixels: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD, confident: float | None = None,
                  net) -> np.ndarray:
    """Bool H x W mask: the network's damage at ``threshold`` (with hysteresis to ``confident``,
    as ``detect_scratches_learned``), and the morphological detector's
    pieces (``scratch.detect_scratches``) that the network's probability reaches ``threshold``
    somewhere.

    The two see damage differently: the network judges a stroke in its context and leaves the
    scene's thin detail alone, but on real scans it misses long faint cracks that the
    morphological detector follows whole; a piece of those that the network also finds in part
    is kept whole. ``threshold`` 0.7 was chosen on the tuning generators (round 8).
    """
    import cv2

    from photofix.methods.scratch import detect_scratches

    prob = damage_probability(pixels, net=net)
    mask = detect_scratches_learned(pixels, threshold=threshold, confident=confident, probability=prob)
    count, labels = cv2.connectedComponents(detect_scratches(pixels).view(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[labels[prob >= threshold]] = True
    keep[0] = False
    return mask | keep[labels]


__all__ = ["DEFAULT_THRESHOLD", "detect_damage", "build_net", "damage_probability", "detect_scratches_learned", "load_net",
           "net_input", "save_weights"]
