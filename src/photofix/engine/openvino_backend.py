"""OpenVINO as an optional CPU backend (``pip install "photofix[openvino]"``).

Measured in ``benchmarks/PRECISION.md`` (``bench_openvino.py``, one run, fp32, same crops):
OpenVINO took 0.54x torch's CPU time for Compact x4 (outputs within 1.2e-7) and 0.50x for
DAT-light x4 at a fixed size, but DAT's trace freezes its window masks to the traced size, so it
would need one export per input shape; it was 0.80-0.97x for FFDNet, RRDB, Restormer and SCUNet
and 1.27x (slower) for NAFNet width 32 against photofix's rewritten torch path. So ``auto`` uses
it only where the traits say ``openvino=True`` (Compact), on a CPU, in fp32; ``openvino`` forces
it for any blind model whose export reproduces torch at another size.

A network is exported once per weights file and runtime version, with the batch and spatial
sizes left dynamic (one export serves every tile shape; a static export was no faster for
Compact), and saved under ``PHOTOFIX_HOME/openvino/<weights sha256>/<runtime version>/``. It is
kept there rather than beside the weights file: the Hub cache is huggingface_hub's
content-addressed store, and a ``--weights`` file may sit in a read-only folder. OpenVINO's own
compiled-blob cache (``CACHE_DIR``) lives in the same folder, so another weights file or
runtime release exports and compiles afresh.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import torch

from photofix import settings
from photofix.errors import DeviceError

BACKENDS = ("auto", "torch", "openvino")
EXPORT_SIDE = 64  # px of the example input traced at export (sizes stay dynamic)
# An export must reproduce torch at another size within this, or it is not used: a trace can
# freeze size-dependent constants (DAT's window masks made its export fail at other sizes).
EXPORT_TOLERANCE = 1e-4


def runtime_version() -> str | None:
    """The installed OpenVINO's version, or None when the ``openvino`` extra is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__)


def export_folder(weights_sha256: str, version: str) -> Path:
    """Where one weights file's export for one runtime version lives."""
    safe = re.sub(r"[^0-9A-Za-z._-]", "_", version)
    return settings.photofix_home() / "openvino" / weights_sha256 / safe


class OpenVinoNetwork:
    """A compiled OpenVINO model called like the torch network: (N, C, h, w) float32 in, out."""

    def __init__(self, compiled: object, folder: Path | None) -> None:
        self._request = compiled.create_infer_request()  # type: ignore[attr-defined]
        self.folder = folder

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._request.infer({0: x.detach().to(torch.float32).contiguous().numpy()})
        return torch.from_numpy(self._request.get_output_tensor(0).data.copy())


def _convert(network: torch.nn.Module, channels: int) -> object:
    import openvino as ov

    example = torch.rand(1, channels, EXPORT_SIDE, EXPORT_SIDE)
    with torch.inference_mode():
        return ov.convert_model(network, example_input=example, input=[ov.PartialShape([-1, channels, -1, -1])])


def _save(model: object, folder: Path) -> None:
    """Write the IR into ``folder`` all at once: exported into a temp folder, then renamed."""
    import openvino as ov

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        ov.save_model(model, str(staging / "network.xml"), compress_to_fp16=False)  # fp16 weights would change outputs
        staging.rename(folder)
    except OSError:
        if not (folder / "network.xml").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the rename: its export is the same


class ExportMismatch(RuntimeError):
    """The exported network does not reproduce torch's at a size other than the traced one."""


def _verified(compiled: OpenVinoNetwork, network: torch.nn.Module, channels: int, multiple_of: int) -> OpenVinoNetwork:
    step = max(multiple_of, 8)
    probe = torch.rand(1, channels, EXPORT_SIDE + step, EXPORT_SIDE + 2 * step, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = network(probe).float()
    found = compiled(probe)
    difference = float((found - expected).abs().max()) if found.shape == expected.shape else float("inf")
    if not difference <= EXPORT_TOLERANCE:
        raise ExportMismatch(f"at {tuple(probe.shape[-2:])} px its output differs from torch's by {difference:.1e}")
    return compiled


def export(network: torch.nn.Module, channels: int, weights_sha256: str | None, threads: int | None = None,
           multiple_of: int = 1) -> OpenVinoNetwork:
    """The network compiled by OpenVINO for the CPU in fp32, from the cached export when there is one.

    A new export is checked against torch at a size other than the traced one before it is saved.
    Raises whatever conversion, checking or compilation raises; the loader then falls back to torch.
    """
    import openvino as ov

    version = runtime_version() or "unknown"
    folder = export_folder(weights_sha256, version) if weights_sha256 else None
    core = ov.Core()
    # An explicit f32 hint: on a CPU with native bf16 OpenVINO would otherwise infer in bf16.
    config: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if folder is not None and (folder / "network.xml").is_file():
        core.set_property({"CACHE_DIR": str(folder / "compiled")})
        return OpenVinoNetwork(core.compile_model(core.read_model(str(folder / "network.xml")), "CPU", config), folder)
    model = _convert(network, channels)
    checked = _verified(OpenVinoNetwork(core.compile_model(model, "CPU", config), None), network, channels, multiple_of)
    if folder is not None:
        try:
            _save(model, folder)
            checked.folder = folder
        except OSError:
            pass  # a read-only home: export again next run, nothing else lost
    return checked


def check_backend(backend: str) -> None:
    """Refuse an unknown backend, or ``openvino`` when the extra is not installed, before any file."""
    if backend not in BACKENDS:
        raise DeviceError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "openvino" and runtime_version() is None:
        raise DeviceError('the OpenVINO backend is not installed; pip install "photofix[openvino]", or use --backend torch')


__all__ = ["BACKENDS", "EXPORT_SIDE", "EXPORT_TOLERANCE", "ExportMismatch", "OpenVinoNetwork", "check_backend", "export", "export_folder", "runtime_version"]
