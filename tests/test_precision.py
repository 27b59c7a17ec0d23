"""``--precision auto`` on CPUs: capability detection, the measured bf16 gate, its cache.

The machine running the tests is never trusted for its capabilities: every test that depends
on native bf16 replaces the detector, both ways.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from photofix.engine import cpu_features, models, precision_gate
from photofix.engine.cpu_features import CpuCapabilities
from photofix.engine.models import load_model
from photofix.engine.precision_gate import GateVerdict, VerdictCache, agreement_bound_db, measure_gate
from photofix.imageio import Image, ImageMeta
from photofix.tasks.restore import Restorer, TaskParams
from tests.helpers import add_noise, kair_ffdnet_state_dict

WITH_BF16 = CpuCapabilities("Test CPU with AMX", "x86_64", "AVX512", ("avx512f", "amx_bf16"), True)
WITHOUT_BF16 = CpuCapabilities("Test CPU", "x86_64", "AVX2", ("avx2",), False)


def _cpu(monkeypatch: pytest.MonkeyPatch, caps: CpuCapabilities) -> None:
    for module in (models, precision_gate):
        monkeypatch.setattr(module, "cpu_capabilities", lambda: caps)


def _image(pixels_u8: np.ndarray) -> Image:
    meta = ImageMeta(format="PNG", mode="RGB", bit_depth=8, grayscale=False, source_name="test.png")
    return Image(pixels=(pixels_u8 / 255.0).astype(np.float32), alpha=None, meta=meta)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PHOTOFIX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# --- detection -------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "native"), [
    ("fpu sse2 avx2 fma", False),
    ("fpu avx2 avx512f avx512_vnni", False),  # AVX-512 without its bf16 extension: emulated
    ("fpu avx2 avx512f avx512_bf16", True),
    ("fpu avx2 amx_tile amx_bf16", True),
])
def test_x86_bf16_comes_from_the_cpu_flags(flags: str, native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_features, "_torch_probe", lambda: ("AVX2", set()))
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: "x86_64")
    caps = cpu_features.detect(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert caps.native_bf16 is native
    assert caps.name == "Some CPU"
    assert ("native bf16" if native else "no native bf16") in caps.summary()


def test_arm_bf16_comes_from_the_features_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_features, "_torch_probe", lambda: ("DEFAULT", set()))
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(cpu_features.platform, "system", lambda: "Linux")
    assert cpu_features.detect("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n").native_bf16
    assert not cpu_features.detect("processor\t: 0\nFeatures\t: fp asimd sve\n").native_bf16


def test_torch_probe_counts_where_the_kernel_lists_no_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_features, "_torch_probe", lambda: ("AVX512", {"avx512_bf16"}))
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: "AMD64")
    assert cpu_features.detect("").native_bf16


def test_capabilities_key_tells_cpus_apart() -> None:
    assert WITH_BF16.key != WITHOUT_BF16.key


# --- the gate's measurement ------------------------------------------------------------


class _Timed:
    """A run that advances a fake clock by ``seconds`` and returns ``output``."""

    now = 0.0

    def __init__(self, output: torch.Tensor, seconds: float) -> None:
        self.output, self.seconds, self.calls = output, seconds, 0

    def __call__(self) -> torch.Tensor:
        _Timed.now += self.seconds
        self.calls += 1
        return self.output


def _clock() -> float:
    return _Timed.now


def test_bound_follows_from_a_005_db_drop_against_the_truth() -> None:
    # PSNR(candidate vs fp32) = P + margin gives a drop of exactly 0.05 dB for uncorrelated errors.
    truth = 35.0
    fp32_mse = 10 ** (-truth / 10)
    deviation_mse = 10 ** (-agreement_bound_db(truth) / 10)
    assert 10 * math.log10((fp32_mse + deviation_mse) / fp32_mse) == pytest.approx(0.05, abs=1e-9)


def test_gate_refuses_a_lossy_path_without_timing_it() -> None:
    torch.manual_seed(0)
    exact = torch.rand(1, 3, 32, 32)
    lossy = (exact + torch.randn_like(exact) * 1e-2).clamp(0, 1)  # ~40 dB
    reference, candidate = _Timed(exact, 1.0), _Timed(lossy, 0.1)
    verdict = measure_gate(reference, candidate, agreement_bound_db(), clock=_clock)
    assert not verdict.accepted and verdict.time_ratio is None
    assert 35 < verdict.psnr_db < 45 and candidate.calls == 1
    assert "refused" in verdict.describe()


def test_gate_accepts_an_exact_and_faster_path() -> None:
    output = torch.rand(1, 3, 32, 32)
    verdict = measure_gate(_Timed(output, 1.0), _Timed(output.clone(), 0.5), agreement_bound_db(), clock=_clock)
    assert verdict.accepted and verdict.psnr_db == math.inf
    assert verdict.time_ratio == pytest.approx(0.5)


def test_gate_refuses_an_exact_path_that_is_not_faster() -> None:
    output = torch.rand(1, 3, 32, 32)
    verdict = measure_gate(_Timed(output, 1.0), _Timed(output.clone(), 0.95), agreement_bound_db(), clock=_clock)
    assert not verdict.accepted and verdict.time_ratio == pytest.approx(0.95)


# --- the verdict cache -----------------------------------------------------------------


class _FakeModel:
    """What settle_cpu_precision needs of a loaded model."""

    def __init__(self, sha256: str | None) -> None:
        self.sha256 = sha256
        self.settled: GateVerdict | None = None
        self.mixed = False

    def mixed_bf16(self):  # noqa: ANN201
        import contextlib

        @contextlib.contextmanager
        def block():
            self.mixed = True
            yield
            self.mixed = False

        return block()

    def settle_precision(self, verdict: GateVerdict) -> None:
        self.settled = verdict


def _settle(model: _FakeModel, cache: VerdictCache) -> int:
    """Settle ``model`` and return how many crops were run (0: the verdict came from the cache)."""
    calls = []

    def run(crop: torch.Tensor) -> torch.Tensor:
        calls.append(model.mixed)
        return crop if not model.mixed else (crop + 0.2).clamp(0, 1)  # lossy: refused quickly

    precision_gate.settle_cpu_precision(model, run, torch.rand(1, 3, 16, 16), cache=cache)
    assert model.settled is not None and not model.settled.accepted
    return len(calls)


def test_verdict_is_cached_and_measured_again_when_weights_cpu_or_runtime_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, WITH_BF16)
    cache = VerdictCache(tmp_path / "gate.json")
    assert _settle(_FakeModel("a" * 64), cache) == 2  # measured: fp32 and bf16 once each
    assert _settle(_FakeModel("a" * 64), cache) == 0  # remembered
    assert _settle(_FakeModel("b" * 64), cache) == 2  # other weights
    _cpu(monkeypatch, CpuCapabilities("Other CPU", "x86_64", "AVX512", ("amx_bf16",), True))
    assert _settle(_FakeModel("a" * 64), cache) == 2  # other CPU
    monkeypatch.setattr(torch, "__version__", "99.0.0")
    assert _settle(_FakeModel("a" * 64), cache) == 2  # other torch
    assert _settle(_FakeModel("a" * 64), cache) == 0
    assert _settle(_FakeModel(None), cache) == 2 and _settle(_FakeModel(None), cache) == 2  # no hash: never cached


def test_a_damaged_cache_file_is_measured_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, WITH_BF16)
    path = tmp_path / "gate.json"
    path.write_bytes(b"\x00not json")
    assert _settle(_FakeModel("c" * 64), VerdictCache(path)) == 2
    assert _settle(_FakeModel("c" * 64), VerdictCache(path)) == 0


# --- through the Restorer --------------------------------------------------------------


def _identity_ffdnet(folder: Path) -> Path:
    path = folder / "identity_ffdnet.pth"
    torch.save(kair_ffdnet_state_dict(features=16, layers=3, identity=True), path)
    return path


def test_auto_without_native_bf16_is_exactly_the_fp32_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             astronaut: np.ndarray, home: Path) -> None:
    _cpu(monkeypatch, WITHOUT_BF16)
    torch.manual_seed(1)
    path = tmp_path / "ffdnet.pth"
    torch.save(kair_ffdnet_state_dict(features=16, layers=4), path)
    image = _image(add_noise(astronaut[:72, :80], 15))
    outputs = {}
    for precision in ("auto", "fp32"):
        model = load_model(path, device="cpu", precision=precision, sha256="d" * 64)
        assert not model.gate_pending
        restored, details = Restorer("denoise", model, params=TaskParams(sigma=15), tile=48).restore(image)
        assert details["precision"] == "fp32" and details["backend"] == "torch" and "precision_gate" not in details
        outputs[precision] = restored.pixels
    np.testing.assert_array_equal(outputs["auto"], outputs["fp32"])
    assert not (home / precision_gate.CACHE_FILE).exists()


def test_explicit_precision_never_runs_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, WITH_BF16)
    path = _identity_ffdnet(tmp_path)
    assert not load_model(path, device="cpu", precision="fp32").gate_pending
    assert load_model(path, device="cpu", precision="bf16").precision == "bf16"
    assert load_model(path, device="cpu", precision="auto").gate_pending


def test_gate_accepts_an_exact_bf16_path_and_remembers_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          home: Path) -> None:
    # An identity network on black-and-white pixels: 0 and 1 are exact in bf16, so its bf16 output
    # equals fp32's bit for bit. Emulated bf16 is slower here, so the speed condition is lifted.
    _cpu(monkeypatch, WITH_BF16)
    monkeypatch.setattr(precision_gate, "SPEED_MARGIN", math.inf)
    path = _identity_ffdnet(tmp_path)
    checker = (np.indices((40, 48)).sum(axis=0) // 4 % 2 * 255).astype(np.uint8)
    image = _image(np.repeat(checker[..., None], 3, axis=2))
    model = load_model(path, device="cpu", precision="auto", sha256="e" * 64)
    restored, details = Restorer("denoise", model, params=TaskParams(sigma=10), tile=0).restore(image)
    assert details["precision"] == "bf16-mixed" and "accepted" in details["precision_gate"]
    np.testing.assert_array_equal(restored.pixels, image.pixels)
    assert (home / precision_gate.CACHE_FILE).is_file()

    def no_measuring(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the cached verdict should have been used")

    monkeypatch.setattr(precision_gate, "measure_gate", no_measuring)
    again = load_model(path, device="cpu", precision="auto", sha256="e" * 64)
    _, details = Restorer("denoise", again, params=TaskParams(sigma=10), tile=0).restore(image)
    assert details["precision"] == "bf16-mixed"


def test_gate_refuses_bf16_for_real_ffdnet_weights(ffdnet_weights, monkeypatch: pytest.MonkeyPatch,
                                                   astronaut: np.ndarray, home: Path) -> None:
    # The issue measured FFDNet under bf16 autocast 1.78 levels RMS off fp32 (~43 dB): too lossy.
    _cpu(monkeypatch, WITH_BF16)
    monkeypatch.setattr(precision_gate, "SPEED_MARGIN", math.inf)  # refused on quality, whatever the speed
    image = _image(add_noise(astronaut[200:264, 200:264], 25))
    fp32, _ = Restorer("denoise", load_model(ffdnet_weights["rgb"], device="cpu", precision="fp32"),
                       params=TaskParams(sigma=25), tile=0).restore(image)
    model = load_model(ffdnet_weights["rgb"], device="cpu", precision="auto", sha256="f" * 64)
    restored, details = Restorer("denoise", model, params=TaskParams(sigma=25), tile=0).restore(image)
    verdict = model.gate_verdict
    assert not verdict.accepted and verdict.psnr_db < verdict.bound_db
    assert details["precision"] == "fp32" and "refused" in details["precision_gate"]
    np.testing.assert_array_equal(restored.pixels, fp32.pixels)  # refused: exactly the fp32 path
