"""CPU speed of photofix's heavy restoration models: eager vs channels_last vs other options.

For NAFNet-64 (GoPro layout), SCUNet, Restormer, DRUNet (and FFDNet as a cheap
baseline) this prints, per model and per variant:

* seconds per megapixel of input (best of N, the whole ``LoadedModel.__call__`` path:
  pad, model, NaN check, clamp, crop);
* achieved GFLOP/s (FLOPs counted once with ``torch.utils.flop_counter.FlopCounterMode``)
  as a fraction of this machine's measured fp32 ``torch.mm`` rate at the same thread count;
* speedup over the eager baseline, *measured in the same run*;
* max abs difference of the raw (pre-clamp) model output against the baseline; a variant
  is "equivalent" when it is <= 1e-4.

Models are randomly initialised in their real configurations (zero-initialised
parameters such as NAFNet's beta/gamma and FFDNet's batch-norm statistics are
randomised, or the equivalence check would compare identity blocks), saved as a
state dict to a temporary ``.pth`` and loaded with ``photofix.engine.models.load_model``,
exactly as photofix loads a downloaded checkpoint.

Variants (each one that changes the module runs on its own freshly loaded copy):

=================  ===========================================================================
eager              photofix today: NCHW fp32, ``m(x, sigma)`` (runs under inference_mode)
channels_last      ``model.to(memory_format=channels_last)`` and a channels_last input
fused_ln           NAFNet's ``LayerNorm2d`` / Restormer's WithBias ``LayerNorm`` (written out as
                   mean/var/sub/div) replaced by one ``F.layer_norm`` over the channel dim
bn_fold            FFDNet: each BatchNorm folded into the conv before it
optimised          channels_last + every rewrite above that applies to the model (just
                   channels_last for SCUNet/DRUNet: skipped then if channels_last also runs)
no_grad            LoadedModel's steps under ``torch.no_grad`` instead of ``inference_mode``
cl_weights         channels_last weights, input left NCHW
mkldnn_off         ``torch.backends.mkldnn.flags(enabled=False)`` (no oneDNN convolutions)
bf16_autocast      ``torch.autocast("cpu", torch.bfloat16)``; NOT numerically equivalent
jit                trace + freeze + optimize_for_inference (shape-specialised, slow set-up)
NAME@1t            NAME with ``torch.set_num_threads(1)`` around the call
=================  ===========================================================================

Default set: eager, channels_last, optimised, and eager / channels_last / fused_ln /
optimised / bf16_autocast at 1 thread. ``--quick``: eager, optimised, eager@1t and
optimised@1t at 128x128, best of 3. The others (no_grad, cl_weights, bn_fold, mkldnn_off,
jit) are opt-in with ``--variants``.

``torch.compile`` is not measured: on this 2-core machine it needed ~4 min to compile
NAFNet-64 at one input size and gave no speedup, and photofix's tile sizes vary.

Noise: the machine may be shared. The variants of a model are interleaved (round r
runs every variant once, starting at a rotating position), the first round is an
untimed warm-up that also yields the outputs for the equivalence check, and the best
(minimum) time over the timed rounds is kept. The number of timed rounds is
``--repeats`` at most, fewer when the warm-up round shows they would not fit the
``--budget`` (always at least one). A variant whose warm-up was already
>= 2.5x slower than eager's (and > 2 s) is not timed again; its warm-up is its sample.
The matmul rate is the best of several 2048x2048 ``torch.mm`` timings taken at the
start, between models and at the end. ``cpu/wall`` (process CPU time over wall time
of the kept call) shows contention: with 2 threads on a free 2-core CPU it is near 2;
well below that, other processes held the cores and the 2-thread figures (OpenMP
waits for its slowest thread at every op) are distorted far more than 1-thread ones.

Run from the repository root with photofix installed::

    python benchmarks/bench_cpu_speed.py --quick                 # ~2-3 min, 128x128, fewer variants
    python benchmarks/bench_cpu_speed.py --json cpu_speed.json   # ~15 min, 256x256
    python benchmarks/bench_cpu_speed.py --models restormer --variants eager,channels_last --size 384
    python benchmarks/bench_cpu_speed.py --render cpu_speed.json     # Markdown tables of a saved run

Results and the recommendation drawn from them: ``benchmarks/CPU_SPEED.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EQUIVALENCE_TOL = 1e-4
SLOW_FACTOR = 2.5  # a variant this much slower than eager at warm-up (and > SLOW_MIN_S) is not timed again
SLOW_MIN_S = 2.0
SIGMA = 25.0  # noise level (0-255) given to the non-blind models (FFDNet, DRUNet)
CL = torch.channels_last

# --------------------------------------------------------------------------------------
# Models: real configurations, random weights
# --------------------------------------------------------------------------------------


def _randomise(module: nn.Module, names: tuple[str, ...], std: float = 0.1) -> None:
    """Give zero-initialised parameters/buffers (by attribute name) random values."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for full_name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if full_name.rsplit(".", 1)[-1] in names and tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * std)


def _nafnet_gopro() -> dict[str, torch.Tensor]:
    from spandrel.architectures.NAFNet import NAFNet

    net = NAFNet(img_channel=3, width=64, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1])
    _randomise(net, ("beta", "gamma"))
    return net.state_dict()


def _nafnet_sidd() -> dict[str, torch.Tensor]:
    from spandrel.architectures.NAFNet import NAFNet

    net = NAFNet(img_channel=3, width=64, middle_blk_num=12, enc_blk_nums=[2, 2, 4, 8], dec_blk_nums=[2, 2, 2, 2])
    _randomise(net, ("beta", "gamma"))
    return net.state_dict()


def _scunet() -> dict[str, torch.Tensor]:
    from spandrel.architectures.SCUNet import SCUNet

    return SCUNet(in_nc=3, config=[4] * 7, dim=64).state_dict()


def _restormer(layer_norm: str) -> Callable[[], dict[str, torch.Tensor]]:
    def build() -> dict[str, torch.Tensor]:
        from spandrel_extra_arches.architectures.Restormer import Restormer

        net = Restormer(
            dim=48,
            num_blocks=[4, 6, 6, 8],
            num_refinement_blocks=4,
            heads=[1, 2, 4, 8],
            ffn_expansion_factor=2.66,
            bias=False,
            LayerNorm_type=layer_norm,
        )
        return net.state_dict()

    return build


def _drunet() -> dict[str, torch.Tensor]:
    from spandrel.architectures.DRUNet import DRUNet

    return DRUNet(in_nc=4, out_nc=3, nc=[64, 128, 256, 512], nb=4).state_dict()


def _ffdnet() -> dict[str, torch.Tensor]:
    from photofix.archs.ffdnet.network import FFDNet

    net = FFDNet(3, 96, 12, batch_norm=True, bias=False, noise_first=True, noise_planes=3, residual=True)
    _randomise(net, ("running_mean", "bias"), std=0.05)
    with torch.no_grad():
        for bn in net.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_var.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(2))
                bn.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(3))
    # The IPOL release's key layout, which photofix's FFDNet loader detects.
    return {"intermediate_dncnn.itermediate_dncnn." + k[len("layers.") :]: v for k, v in net.state_dict().items()}


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str
    arch: str
    build: Callable[[], dict[str, torch.Tensor]]
    sigma: float | None = None  # passed as m(x, sigma) to non-blind models


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec("ffdnet", "FFDNet colour (IPOL, 96f x 12)", "FFDNet", _ffdnet, SIGMA),
        ModelSpec("nafnet", "NAFNet-64 GoPro", "NAFNet", _nafnet_gopro),
        ModelSpec("nafnet_sidd", "NAFNet-64 SIDD", "NAFNet", _nafnet_sidd),
        ModelSpec("scunet", "SCUNet (dim 64, [4]*7)", "SCUNet", _scunet),
        ModelSpec("restormer", "Restormer (WithBias LN)", "Restormer", _restormer("WithBias")),
        ModelSpec("restormer_biasfree", "Restormer (BiasFree LN)", "Restormer", _restormer("BiasFree")),
        ModelSpec("drunet", "DRUNet colour", "DRUNet", _drunet, SIGMA),
    )
}
DEFAULT_MODELS = ("ffdnet", "nafnet", "scunet", "drunet", "restormer")

# --------------------------------------------------------------------------------------
# Module rewrites used by the variants (numerically equivalent up to float rounding)
# --------------------------------------------------------------------------------------


# The rewrites under test are photofix's own (``photofix.engine.cpu_rewrite``), which load_model
# applies on CPU; the variants below switch them on and off one at a time.
from photofix.engine.cpu_rewrite import fold_batch_norms  # noqa: E402
from photofix.engine.cpu_rewrite import fuse_channel_layer_norms as fuse_layer_norms  # noqa: E402


class _TracedAdapter(nn.Module):
    """Stands in for ``descriptor.model`` so ``LoadedModel.__call__`` runs a traced graph."""

    def __init__(self, traced: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.traced = traced

    def forward(self, x: torch.Tensor, *_ignored: Any) -> torch.Tensor:  # FFDNet passes sigma: fixed at trace time
        return self.traced(x)


class _FixedSigma(nn.Module):
    def __init__(self, net: nn.Module, level: float) -> None:
        super().__init__()
        self.net = net
        self.level = level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.level)


# --------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A ready variant: ``run(x)`` is what gets timed; ``module`` gets the output-capturing hook."""

    run: Callable[[torch.Tensor], torch.Tensor]
    module: nn.Module
    threads: int
    note: str = ""


@dataclass(frozen=True)
class Variant:
    """What a variant changes: module rewrites, memory format, how the call is made.

    A name suffixed ``@1t`` (e.g. ``eager@1t``) is the same variant run with
    ``torch.set_num_threads(1)`` around the call.
    """

    name: str
    channels_last: bool = False  # model weights to channels_last (and the input, unless weights_only)
    weights_only: bool = False
    fuse_ln: bool = False
    fold_bn: bool = False
    mode: str = "photofix"  # photofix | no_grad | mkldnn_off | bf16 | jit
    equivalent_expected: bool = True
    needs_rewrite: bool = False  # skip where none of its rewrites applies (it would repeat another variant)

    def rewrites(self) -> bool:
        return self.fuse_ln or self.fold_bn


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("eager"),
        Variant("no_grad", mode="no_grad"),
        Variant("channels_last", channels_last=True),
        Variant("cl_weights", channels_last=True, weights_only=True),
        Variant("fused_ln", fuse_ln=True, needs_rewrite=True),
        Variant("bn_fold", fold_bn=True, needs_rewrite=True),
        Variant("optimised", channels_last=True, fuse_ln=True, fold_bn=True, needs_rewrite=True),
        Variant("mkldnn_off", mode="mkldnn_off"),
        Variant("bf16_autocast", mode="bf16", equivalent_expected=False),
        Variant("jit", mode="jit"),
    )
}
DEFAULT_VARIANTS = (
    "eager",
    "channels_last",
    "optimised",
    "eager@1t",
    "channels_last@1t",
    "fused_ln@1t",
    "optimised@1t",
    "bf16_autocast@1t",
)
QUICK_VARIANTS = ("eager", "optimised", "eager@1t", "optimised@1t")
SUPPLEMENTARY_VARIANTS = ("no_grad", "cl_weights", "bn_fold", "mkldnn_off", "jit")


def parse_variant(name: str) -> tuple[Variant, bool]:
    """``name`` or ``name@1t`` -> (variant, single_thread)."""
    base, _, suffix = name.partition("@")
    if base not in VARIANTS or suffix not in ("", "1t"):
        raise KeyError(name)
    return VARIANTS[base], suffix == "1t"


def _call(m: Any, spec: ModelSpec, x: torch.Tensor) -> torch.Tensor:
    return m(x, spec.sigma)


def _no_grad_call(m: Any, spec: ModelSpec, x: torch.Tensor) -> torch.Tensor:
    """LoadedModel.__call__'s steps under no_grad (spandrel's descriptor call forces inference_mode)."""
    from photofix.archs import noise_level_call
    from photofix.engine.models import _pad_to

    net = m.descriptor.model
    noise_call = noise_level_call(m.arch)
    with torch.no_grad():
        h, w = x.shape[-2:]
        x = _pad_to(x, m.multiple_of, m.minimum_size)
        if noise_call is not None:
            out = noise_call(net, x, (SIGMA if spec.sigma is None else spec.sigma) / 255.0)
        else:
            out = net(x)  # spandrel's default call_fn for NAFNet, SCUNet, Restormer
        if not torch.isfinite(out).all():
            raise RuntimeError("non-finite output")
        return out.clamp_(0, 1)[..., :h, :w]


def _make_jit(m: Any, spec: ModelSpec, module_input: torch.Tensor) -> None:
    """Replace the model by a traced, frozen, optimize_for_inference graph (bench-only hack)."""
    net = m.descriptor.model
    if spec.arch == "FFDNet":
        net = _FixedSigma(net, (SIGMA if spec.sigma is None else spec.sigma) / 255.0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net.eval(), module_input, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    m.descriptor._model = _TracedAdapter(frozen)


def prepare_variant(
    name: str,
    shared: Any,
    load: Callable[[], Any],
    spec: ModelSpec,
    threads: int,
    module_input: torch.Tensor,
    requested: tuple[str, ...] = (),
) -> Prepared | str:
    """A runnable variant, or the reason it does not apply to this model.

    A variant made only of rewrites (fused_ln, bn_fold, optimised) is skipped where none of
    them applies; ``optimised`` then still runs as plain channels_last unless the matching
    channels_last variant is in ``requested`` too.
    """
    variant, single = parse_variant(name)
    notes = []
    changes_module = variant.channels_last or variant.rewrites() or variant.mode == "jit"
    m = load() if changes_module else shared  # a fresh copy for anything that rewrites the module
    if variant.fuse_ln:
        count = fuse_layer_norms(m.descriptor.model)
        if count:
            notes.append(f"{count} LayerNorms fused")
    if variant.fold_bn:
        count = fold_batch_norms(m.descriptor.model)
        if count:
            notes.append(f"{count} BatchNorms folded")
    if variant.needs_rewrite and not notes:
        twin = "channels_last" + ("@1t" if single else "")
        if not variant.channels_last:
            return "nothing to rewrite here"
        if twin in requested:
            return f"nothing to rewrite here (same as {twin})"
        notes.append("= channels_last here")
    if variant.channels_last:
        m.descriptor.model.to(memory_format=CL)
    if variant.mode == "jit":
        _make_jit(m, spec, module_input)
        notes.append("traced at this size")
    cl_input = variant.channels_last and not variant.weights_only

    def core(x: torch.Tensor) -> torch.Tensor:
        if cl_input:
            x = x.contiguous(memory_format=CL)
        if variant.mode == "no_grad":
            return _no_grad_call(m, spec, x)
        if variant.mode == "mkldnn_off":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "TF32 acceleration ... Intel GPUs"
                with torch.backends.mkldnn.flags(enabled=False):
                    return _call(m, spec, x)
        if variant.mode == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return _call(m, spec, x)
        return _call(m, spec, x)

    if not single:
        return Prepared(core, m.descriptor.model, threads, ", ".join(notes))

    def run(x: torch.Tensor) -> torch.Tensor:
        torch.set_num_threads(1)
        try:
            return core(x)
        finally:
            torch.set_num_threads(threads)

    return Prepared(run, m.descriptor.model, 1, ", ".join(notes))


# --------------------------------------------------------------------------------------
# Measurement helpers
# --------------------------------------------------------------------------------------


def astronaut_crop(size: int) -> torch.Tensor:
    """(1, 3, size, size) float32 in [0, 1]: the centre of skimage's astronaut (512 x 512)."""
    from skimage import data

    img = data.astronaut()
    if size > min(img.shape[:2]):
        raise SystemExit(f"--size {size}: the astronaut is only {img.shape[0]} px")
    top = (img.shape[0] - size) // 2
    left = (img.shape[1] - size) // 2
    crop = np.ascontiguousarray(img[top : top + size, left : left + size])
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float().div_(255.0).contiguous()


@dataclass
class MatmulRate:
    n: int = 2048
    best: dict[int, float] = field(default_factory=dict)  # threads -> best GFLOP/s seen

    def sample(self, threads: int, trials: int) -> None:
        a = torch.randn(self.n, self.n)
        b = torch.randn(self.n, self.n)
        flops = 2.0 * self.n**3
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.mm(a, b)  # warm-up
            for _ in range(trials):
                t0 = time.perf_counter()
                torch.mm(a, b)
                rate = flops / (time.perf_counter() - t0) / 1e9
                self.best[threads] = max(self.best.get(threads, 0.0), rate)
        finally:
            torch.set_num_threads(old)


def count_flops(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[float, torch.Tensor]:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = run(x)
    return float(counter.get_total_flops()), out


class OutputCapture:
    """Forward hook that keeps a copy of the module's raw output (before photofix's in-place clamp)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __call__(self, _module, _inputs, output) -> None:
        self.value = output.detach().float().clone()


class InputCapture:
    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __call__(self, _module, inputs) -> None:
        self.value = inputs[0].detach().clone().contiguous()


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: float | None, width: int = 0) -> str:
    return ("-" if value is None else f"{value:.2f}x").rjust(width)


# --------------------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------------------


def bench_model(
    spec: ModelSpec,
    variant_names: list[str],
    x: torch.Tensor,
    threads: int,
    repeats: int,
    budget_s: float,
    matmul: MatmulRate,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from photofix.engine.models import load_model

    path = workdir / f"{spec.key}.pth"
    torch.manual_seed(0)
    torch.save(spec.build(), path)

    def load():
        return load_model(path, device="cpu", precision="fp32", cpu_rewrites=False)  # variants add the rewrites

    shared = load()
    if shared.arch != spec.arch:
        raise SystemExit(f"{spec.key}: photofix detected {shared.arch}, expected {spec.arch}")
    n_params = sum(p.numel() for p in shared.descriptor.model.parameters())
    mp = x.shape[-2] * x.shape[-1] / 1e6
    started = time.perf_counter()

    # Baseline first: count FLOPs on its warm-up call and capture the module input (for jit).
    eager = prepare_variant("eager", shared, load, spec, threads, x)
    assert isinstance(eager, Prepared)
    out_cap, in_cap = OutputCapture(), InputCapture()
    h1 = eager.module.register_forward_hook(out_cap)
    h2 = eager.module.register_forward_pre_hook(in_cap)
    t0 = time.perf_counter()
    flops, ref_clamped = count_flops(eager.run, x)
    flop_call_s = time.perf_counter() - t0
    h1.remove()
    h2.remove()
    reference = out_cap.value
    assert reference is not None and in_cap.value is not None
    ref_clamped = ref_clamped.float().clone()
    log(
        f"  {spec.label}: {n_params / 1e6:.1f} M params, {flops / 1e9:.1f} GFLOP per call "
        f"({flops / 1e9 / mp:.0f} GFLOP/MP); FLOP-counting call {flop_call_s:.1f} s"
    )

    prepared: dict[str, Prepared] = {}
    skipped: dict[str, str] = {}
    for name in variant_names:
        t0 = time.perf_counter()
        try:
            p = (
                eager
                if name == "eager"
                else prepare_variant(name, shared, load, spec, threads, in_cap.value, tuple(variant_names))
            )
        except Exception as error:  # noqa: BLE001 - report and go on
            skipped[name] = f"could not be prepared: {type(error).__name__}: {error}"
            log(f"    {name}: {skipped[name]}")
            continue
        if isinstance(p, str):
            skipped[name] = p
            continue
        prepared[name] = p
        setup_s = time.perf_counter() - t0
        if setup_s > 5:
            log(f"    {name}: set-up {setup_s:.1f} s")

    results: dict[str, dict[str, Any]] = {
        name: {"times_s": [], "cpu_per_wall": [], "warmup_s": None, "note": p.note, "threads": p.threads} for name, p in prepared.items()
    }
    names = list(prepared)

    # Round 0: warm-up + outputs for the equivalence check (the FLOP-counting call was eager's).
    if "eager" in results:
        results["eager"].update(
            warmup_s=flop_call_s, max_abs_diff=0.0, max_abs_diff_clamped=0.0, output_dtype=str(ref_clamped.dtype)[6:]
        )
    for name in names:
        if name == "eager":
            continue
        p = prepared[name]
        cap = OutputCapture()
        handle = p.module.register_forward_hook(cap)
        c0 = time.process_time()
        t0 = time.perf_counter()
        try:
            out = p.run(x)
        except Exception as error:  # noqa: BLE001
            handle.remove()
            skipped[name] = f"{type(error).__name__}: {error}"
            log(f"    {name}: failed ({skipped[name]})")
            del results[name]
            continue
        results[name]["warmup_s"] = time.perf_counter() - t0
        results[name]["warmup_cpu_per_wall"] = (time.process_time() - c0) / results[name]["warmup_s"]
        handle.remove()
        raw = cap.value
        results[name]["max_abs_diff"] = max_abs_diff(raw, reference) if raw is not None else None
        results[name]["max_abs_diff_clamped"] = max_abs_diff(out, ref_clamped)
        results[name]["output_dtype"] = str(out.dtype).replace("torch.", "")
    names = [n for n in names if n in results]
    # Variants already >= SLOW_FACTOR x slower than eager at warm-up are not timed again:
    # their warm-up is their only sample (they lose either way; this keeps the budget).
    eager_warm = results["eager"]["warmup_s"] if "eager" in results else None
    for name in names:
        rec = results[name]
        rec["warmup_only"] = bool(
            eager_warm
            and name != "eager"
            and rec["warmup_s"] >= SLOW_MIN_S
            and rec["warmup_s"] >= SLOW_FACTOR * eager_warm
        )
        if rec["warmup_only"]:
            rec["times_s"].append(rec["warmup_s"])
            rec["cpu_per_wall"].append(rec["warmup_cpu_per_wall"])
    names = [n for n in names if not results[n]["warmup_only"]]
    round_cost = sum(results[n]["warmup_s"] for n in names)
    spent = time.perf_counter() - started
    affordable = int(max(0.0, budget_s - spent) // max(round_cost, 1e-9))
    rounds = max(1, min(repeats, affordable))
    log(
        f"    warm-up round {round_cost:.1f} s; {rounds} timed round(s) "
        f"(asked {repeats}, budget {budget_s:.0f} s, spent {spent:.0f} s)"
    )

    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            c0 = time.process_time()
            t0 = time.perf_counter()
            prepared[name].run(x)
            wall = time.perf_counter() - t0
            results[name]["times_s"].append(wall)
            results[name]["cpu_per_wall"].append((time.process_time() - c0) / wall)
        matmul.sample(threads, 2)  # a fresh chance at the machine's rate, between rounds

    base = min(results["eager"]["times_s"]) if "eager" in results else None
    same_base = {
        results[n]["threads"]: min(results[n]["times_s"]) for n in ("eager", "eager@1t") if n in results
    }
    for name in results:
        rec = results[name]
        best = min(rec["times_s"])
        rec["cpu_per_wall_at_best"] = rec["cpu_per_wall"][rec["times_s"].index(best)]
        rate = flops / best / 1e9
        mm = matmul.best.get(rec["threads"])
        rec.update(
            best_s=best,
            s_per_mp=best / mp,
            gflop_per_s=rate,
            matmul_gflop_per_s=mm,
            fraction_of_matmul=(rate / mm) if mm else None,
            speedup_vs_eager=(base / best) if base else None,
            speedup_vs_eager_same_threads=(same_base[rec["threads"]] / best) if rec["threads"] in same_base else None,
            equivalent=(
                rec["max_abs_diff"] is not None
                and rec["max_abs_diff"] <= EQUIVALENCE_TOL
                and parse_variant(name)[0].equivalent_expected
            ),
        )
    return {
        "label": spec.label,
        "arch": spec.arch,
        "params_million": n_params / 1e6,
        "input_hw": list(x.shape[-2:]),
        "megapixels": mp,
        "gflop_per_call": flops / 1e9,
        "gflop_per_mp": flops / 1e9 / mp,
        "reference_output_max_abs": float(reference.abs().max()),
        "rounds": rounds,
        "elapsed_s": time.perf_counter() - started,
        "variants": results,
        "skipped": skipped,
    }


def print_model_table(key: str, res: dict[str, Any]) -> None:
    print(
        f"\n{res['label']} [{key}]  {res['input_hw'][0]}x{res['input_hw'][1]}, "
        f"{res['gflop_per_mp']:.0f} GFLOP/MP, {res['params_million']:.1f} M params, "
        f"best of {res['rounds']} (+1 warm-up), |ref out| max {res['reference_output_max_abs']:.2f}"
    )
    header = (
        f"  {'variant':<17} {'thr':>3} {'best s':>8} {'s/MP':>8} {'GFLOP/s':>8} {'of mm':>6} "
        f"{'vs eager':>8} {'vs same-thr':>11} {'max|diff|':>9} {'equiv':>5} {'cpu/wall':>8}  note"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, rec in res["variants"].items():
        note = ", ".join(filter(None, [rec["note"], "warm-up only (slow)" if rec.get("warmup_only") else ""]))
        print(
            f"  {name:<17} {rec['threads']:>3} {rec['best_s']:>8.3f} {rec['s_per_mp']:>8.2f} "
            f"{rec['gflop_per_s']:>8.1f} {_fmt(rec['fraction_of_matmul'], '6.1%')} "
            f"{_ratio(rec['speedup_vs_eager'], 8)} {_ratio(rec['speedup_vs_eager_same_threads'], 11)} "
            f"{_fmt(rec['max_abs_diff'], '9.1e')} "
            f"{'yes' if rec['equivalent'] else 'NO':>5} {rec['cpu_per_wall_at_best']:>8.2f}  {note}"
        )
    for name, why in res["skipped"].items():
        print(f"  {name:<17} skipped: {why}")


def markdown_report(payload: dict[str, Any]) -> str:
    """The measurements of one run as Markdown tables (for benchmarks/CPU_SPEED.md)."""
    mm = payload["matmul_gflop_per_s"]
    lines = [
        f"Run {payload['date']}, torch {payload['torch']}, {payload['cpu_capability']}, "
        f"{payload['cpu_count']} CPUs, baseline {payload['threads']} threads, "
        f"{payload['size']}x{payload['size']} astronaut crop, took {payload['elapsed_s']:.0f} s; "
        f"load average {payload['load_average_start'][0]:.2f} at start, {payload['load_average_end'][0]:.2f} at end. "
        f"fp32 matmul ({payload['matmul_n']}^2, best seen): "
        + ", ".join(f"{t} thread(s) {v:.0f} GFLOP/s" for t, v in sorted(mm.items()))
        + ".",
        "",
    ]
    for key, res in payload["models"].items():
        lines += [
            f"**{res['label']}** (`{key}`): {res['gflop_per_mp']:.0f} GFLOP/MP, {res['params_million']:.1f} M params, "
            f"best of {res['rounds']} timed round(s) after a warm-up",
            "",
            "| variant | thr | best s | s/MP | GFLOP/s | of matmul | vs eager | vs eager, same thr "
            "| max abs diff | equiv. | cpu/wall | note |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|---|",
        ]
        for name, rec in res["variants"].items():
            note = ", ".join(filter(None, [rec["note"], "warm-up only (slow)" if rec.get("warmup_only") else ""]))
            lines.append(
                f"| {name} | {rec['threads']} | {rec['best_s']:.3f} | {rec['s_per_mp']:.1f} | {rec['gflop_per_s']:.1f} "
                f"| {_fmt(rec['fraction_of_matmul'], '.1%')} | {_ratio(rec['speedup_vs_eager'])} "
                f"| {_ratio(rec['speedup_vs_eager_same_threads'])} | {_fmt(rec['max_abs_diff'], '.1e')} "
                f"| {'yes' if rec['equivalent'] else 'NO'} | {rec['cpu_per_wall_at_best']:.2f} | {note} |"
            )
        if res["skipped"]:
            lines.append("")
            lines.append("Not run: " + "; ".join(f"{n} ({why})" for n, why in res["skipped"].items()) + ".")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128x128 input, 4 variants, best of 3 (~2-3 min)")
    parser.add_argument("--models", default=None, help=f"comma list from {','.join(MODELS)}")
    parser.add_argument(
        "--variants",
        default=None,
        help=f"comma list from {','.join(VARIANTS)}, each optionally suffixed @1t (1 thread); "
        f"default {','.join(DEFAULT_VARIANTS)}; opt-in extras {','.join(SUPPLEMENTARY_VARIANTS)}",
    )
    parser.add_argument("--size", type=int, default=None, help="square crop size (default 256; quick 128)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per model, at most (default 3)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 840; quick 150)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the baseline (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="write all measurements to this file")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables as Markdown to this file")
    parser.add_argument("--render", type=Path, default=None, help="only print the Markdown tables of a --json file")
    args = parser.parse_args(argv)
    if args.render:
        print(markdown_report(json.loads(args.render.read_text())))
        return 0

    models = _split(args.models) if args.models else list(DEFAULT_MODELS)
    variants = _split(args.variants) if args.variants else list(QUICK_VARIANTS if args.quick else DEFAULT_VARIANTS)
    for name in models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}")
    for name in variants:
        try:
            parse_variant(name)
        except KeyError:
            parser.error(f"unknown variant {name!r}")
    if "eager" not in variants:
        variants.insert(0, "eager")
    size = args.size or (128 if args.quick else 256)
    repeats = args.repeats or 3
    budget = args.budget or (150.0 if args.quick else 840.0)

    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(args.threads)
    run_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - run_start:6.0f}s] {msg}", flush=True)

    load_start = os.getloadavg()
    log(
        f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, threads {args.threads}, "
        f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}; load average {load_start[0]:.2f}"
    )
    matmul = MatmulRate()
    thread_counts = sorted({args.threads, 1} if any(v.endswith("@1t") for v in variants) else {args.threads})
    for t in thread_counts:
        matmul.sample(t, 6)
    log("matmul 2048^2 fp32: " + ", ".join(f"{t} thr {matmul.best[t]:.0f} GFLOP/s" for t in thread_counts))

    x = astronaut_crop(size)
    # Budget shares by expected cost (Restormer is by far the slowest per pixel).
    weight = {
        "ffdnet": 0.3,
        "nafnet": 1.0,
        "nafnet_sidd": 1.0,
        "scunet": 1.0,
        "drunet": 0.7,
        "restormer": 2.5,
        "restormer_biasfree": 2.5,
    }
    total_weight = sum(weight[k] for k in models)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="photofix-cpu-speed-") as tmp:
        for key in models:
            remaining = budget - (time.perf_counter() - run_start)
            share = max(0.0, remaining) * weight[key] / total_weight
            total_weight -= weight[key]
            log(f"{key}: budget {share:.0f} s")
            res = bench_model(MODELS[key], variants, x, args.threads, repeats, share, matmul, Path(tmp), log)
            results[key] = res
            for t in thread_counts:
                matmul.sample(t, 2)
    for t in thread_counts:
        matmul.sample(t, 4)
    # Fractions use the best matmul rate seen over the whole run.
    for res in results.values():
        for rec in res["variants"].values():
            mm = matmul.best.get(rec["threads"])
            rec["matmul_gflop_per_s"] = mm
            rec["fraction_of_matmul"] = rec["gflop_per_s"] / mm if mm else None

    elapsed = time.perf_counter() - run_start
    load_end = os.getloadavg()
    print(
        f"\n== photofix CPU speed, {x.shape[-2]}x{x.shape[-1]} astronaut crop, torch {torch.__version__}, "
        f"{args.threads} threads; matmul " + ", ".join(f"{t} thr {matmul.best[t]:.0f}" for t in thread_counts)
        + " GFLOP/s (best seen) =="
    )
    print(
        "   'of mm' = achieved GFLOP/s / matmul GFLOP/s at the variant's thread count; 'vs eager' = speedup over\n"
        f"   eager ({args.threads} threads), 'vs same-thr' = over eager at the variant's thread count, both same run;\n"
        f"   max|diff| = raw (pre-clamp) model output vs eager, equivalent if <= {EQUIVALENCE_TOL:g};\n"
        "   cpu/wall = process CPU time / wall time of the best call (about the threads used if the CPU is free)"
    )
    for key, res in results.items():
        print_model_table(key, res)
    print(f"\nrun took {elapsed:.0f} s; load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")

    if args.json or args.markdown:
        payload = {
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "argv": sys.argv[1:] if argv is None else argv,
            "variants_requested": variants,
            "size": size,
            "quick": args.quick,
            "repeats_max": repeats,
            "budget_s": budget,
            "elapsed_s": elapsed,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "matmul_n": matmul.n,
            "matmul_gflop_per_s": {str(k): v for k, v in matmul.best.items()},
            "equivalence_tol": EQUIVALENCE_TOL,
            "models": results,
        }
        if args.json:
            args.json.write_text(json.dumps(payload, indent=2))
            print(f"wrote {args.json}")
        if args.markdown:
            args.markdown.write_text(markdown_report(payload) + "\n")
            print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
