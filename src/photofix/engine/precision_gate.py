"""``--precision auto`` on a CPU with native bf16: use it only where it measurably keeps quality and saves time.

The gate runs once per weights file, CPU and torch release, on the user's machine with the
user's weights: at the first image, a centre crop goes through the model in fp32 and under
bf16 autocast. bf16 is accepted only if its output agrees with fp32's within the bound below
*and* it took at most ``SPEED_MARGIN`` of fp32's time; otherwise the model stays exactly on its
fp32 path. The verdict is kept in ``PHOTOFIX_HOME/precision_gate.json``, keyed by weights
sha256, CPU, torch version, candidate and bound, so another file, CPU or runtime measures anew.

The bound, from the issue's promise that PSNR against the truth drops by at most 0.05 dB:
if fp32's output is off the truth by mean square m (PSNR P) and bf16 adds a deviation of mean
square d that is uncorrelated with that error (rounding noise is), bf16's error is m + d, a drop
of 10·log10(1 + d/m) dB. At most 0.05 dB means d/m <= 10^0.005 - 1 = 0.0116, that is
PSNR(bf16 vs fp32) >= P + 19.4 dB. P is the best PSNR against the truth the task's models
reach (the caller says; 40.3 dB, NAFNet SIDD, when it does not): 59.7 dB for denoising.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from photofix.engine.cpu_features import cpu_capabilities
from photofix.engine.measured import MeasuredStore

TRUTH_DROP_DB = 0.05
# PSNR(candidate vs fp32) must exceed the fp32 path's own PSNR against the truth by this much.
MARGIN_DB = -10 * math.log10(10 ** (TRUTH_DROP_DB / 10) - 1)  # 19.36 dB
DEFAULT_TRUTH_PSNR_DB = 40.3  # the highest of photofix's models (NAFNet SIDD width 64, README)
SPEED_MARGIN = 0.9  # bf16 must take at most this share of fp32's time on the crop to be worth it
CANDIDATE = "bf16-mixed"  # torch CPU autocast in bf16: matmuls and convs in bf16, norms and sums in fp32
CACHE_FILE = "precision_gate.json"


@dataclass(frozen=True)
class GateVerdict:
    """What the gate measured for one candidate precision, and whether it was accepted."""

    candidate: str
    accepted: bool
    psnr_db: float  # candidate's output against fp32's, 8-bit scale (inf: identical)
    bound_db: float
    time_ratio: float | None  # candidate time / fp32 time on the crop (None: not timed, quality failed)

    def describe(self) -> str:
        agreement = f"{self.psnr_db:.1f} dB vs fp32 (needs >= {self.bound_db:.1f})"
        speed = "" if self.time_ratio is None else f", {self.time_ratio:.2f}x fp32's time (needs <= {SPEED_MARGIN})"
        return f"{self.candidate} {'accepted' if self.accepted else 'refused'}: {agreement}{speed}"


def agreement_bound_db(truth_psnr_db: float = DEFAULT_TRUTH_PSNR_DB) -> float:
    """Least PSNR(candidate vs fp32) that keeps the truth PSNR's drop within TRUTH_DROP_DB."""
    return truth_psnr_db + MARGIN_DB


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two [0, 1] images on the 8-bit scale (the same number as on [0, 1] with peak 1)."""
    mse = float((a.double() - b.double()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def measure_gate(reference: Callable[[], torch.Tensor], candidate: Callable[[], torch.Tensor], bound_db: float, *,
                 repeats: int = 2, clock: Callable[[], float] = time.perf_counter) -> GateVerdict:
    """Compare ``candidate()`` with ``reference()`` (fp32) for quality, then, if it passes, for time.

    The first call of each is also its warm-up; timed calls alternate so both see the same load.
    """
    agreement = psnr_db(reference().float(), candidate().float())
    if agreement < bound_db:
        return GateVerdict(CANDIDATE, False, agreement, bound_db, None)
    best = {reference: math.inf, candidate: math.inf}
    for _ in range(repeats):
        for run in (reference, candidate):
            started = clock()
            run()
            best[run] = min(best[run], clock() - started)
    ratio = best[candidate] / max(best[reference], 1e-9)
    return GateVerdict(CANDIDATE, ratio <= SPEED_MARGIN, agreement, bound_db, ratio)


def gate_key(weights_sha256: str, bound_db: float) -> str:
    """Weights, CPU, runtime, candidate and bound: a change in any of them measures again."""
    return "|".join((weights_sha256, cpu_capabilities().key, f"torch {torch.__version__}", CANDIDATE,
                     f"{bound_db:.2f}"))


class VerdictCache:
    """Verdicts by ``gate_key`` in ``precision_gate.json``; see ``engine.measured``."""

    def __init__(self, path: Path | None = None) -> None:
        self._store = MeasuredStore(path or CACHE_FILE)

    @property
    def path(self) -> Path:
        return self._store.path

    def get(self, key: str) -> GateVerdict | None:
        raw = self._store.get(key)
        try:
            return GateVerdict(**raw) if isinstance(raw, dict) else None
        except TypeError:  # written by another release with other fields
            return None

    def put(self, key: str, verdict: GateVerdict) -> None:
        self._store.put(key, asdict(verdict))


def settle_cpu_precision(model: Any, run: Callable[[torch.Tensor], torch.Tensor], crop: torch.Tensor,
                         truth_psnr_db: float = DEFAULT_TRUTH_PSNR_DB, cache: VerdictCache | None = None) -> GateVerdict:
    """Decide, once, whether ``model`` (loaded at ``auto`` on a CPU with native bf16) runs in bf16.

    ``run`` is how the caller runs a (1, C, h, w) crop through the model (tiles, noise level,
    channel split), so the gate measures exactly what the images will get. The model is left
    at the chosen precision.
    """
    bound = agreement_bound_db(truth_psnr_db)
    cache = cache or VerdictCache()
    key = gate_key(model.sha256, bound) if model.sha256 else None
    verdict = cache.get(key) if key else None
    if verdict is None:
        def candidate() -> torch.Tensor:
            with model.mixed_bf16():
                return run(crop)

        verdict = measure_gate(lambda: run(crop), candidate, bound)
        if key:
            cache.put(key, verdict)
    model.settle_precision(verdict)
    return verdict


__all__ = [
    "CACHE_FILE",
    "CANDIDATE",
    "DEFAULT_TRUTH_PSNR_DB",
    "GateVerdict",
    "MARGIN_DB",
    "SPEED_MARGIN",
    "TRUTH_DROP_DB",
    "VerdictCache",
    "agreement_bound_db",
    "gate_key",
    "measure_gate",
    "psnr_db",
    "settle_cpu_precision",
]
