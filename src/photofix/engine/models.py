"""Turn a checkpoint into a ready-to-run model.

Checkpoints are read without executing anything: ``torch.load(weights_only=True)``,
safetensors, or the tensors of a TorchScript archive read as data (``script_archive``; its
code is never run, so ``torch.jit.load`` is never called). They are unwrapped
by spandrel's canonicaliser plus the wrappers it does not know, and detected by the
registry in ``archs``. When a manifest entry says which architecture to expect, a
different detection is an error: mislabelled files exist on the Hub.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from photofix import settings
from photofix.archs import NoiseLevelCall, registry, traits_of
from photofix.engine.cpu_features import cpu_capabilities
from photofix.engine.cpu_rewrite import rewrite_for_cpu
from photofix.errors import ArchitectureMismatch, DeviceError, ModelLoadError, NonFiniteOutput

if TYPE_CHECKING:
    from spandrel import ImageModelDescriptor, MaskedImageModelDescriptor

    from photofix.store.manifest import ModelEntry

# Wrappers seen in restoration checkpoints that spandrel's canonicaliser does not unwrap.
_EXTRA_WRAPPERS = ("model_state",)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint's tensors without running arbitrary pickled code."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: weights file not found; check the path given to --weights")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = _load_pickle_or_script(path)
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - every reader failure means the same to the user
        raise ModelLoadError(
            f"{path}: not a readable PyTorch/safetensors checkpoint ({_reason(error)}); "
            "re-download it or check that it is a model file"
        ) from error
    return _canonicalize(raw, path)


def _load_pickle_or_script(path: Path) -> Any:
    """Tensors only: a TorchScript archive is read without running it, never ``jit.load``-ed."""
    from photofix.store.script_archive import UnsafeArchive, is_torchscript_archive, read_script_tensors

    try:
        if is_torchscript_archive(str(path)):
            return read_script_tensors(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except UnsafeArchive as error:
        raise _refused(path, str(error)) from None
    except pickle.UnpicklingError as error:
        # torch's message advises turning weights_only off: exactly what must not happen here.
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:
            raise  # not a pickle of objects at all: a damaged or foreign file
        raise _refused(path, f"it refers to {found.group(1)}") from None


def _refused(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: refused: a weights file may hold only tensors, and this one holds code or Python objects "
        f"({why}); photofix never runs code from a weights file. Use a plain state dict or .safetensors file."
    )


def _reason(error: BaseException) -> str:
    """What the loader found, leaving out torch's advice to load with weights_only off."""
    text = str(error).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def _canonicalize(raw: Any, path: Path) -> dict[str, Any]:
    from spandrel import canonicalize_state_dict

    from photofix.archs.keymaps import to_canonical_layout

    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path}: checkpoint holds a {type(raw).__name__}, not a state dict")
    for key in _EXTRA_WRAPPERS:
        if isinstance(raw.get(key), dict):
            raw = raw[key]
    state_dict = to_canonical_layout(canonicalize_state_dict(raw))  # e.g. deepinv-saved Restormer
    if not any(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ModelLoadError(f"{path}: checkpoint holds no tensors; is it a model file?")
    return state_dict


def resolve_device(preference: str | None = None) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit choice must exist."""
    choice = settings.device_preference(preference)
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as error:
        raise DeviceError(f"unknown device {choice!r}; use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA GPU is usable here; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"{choice} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("MPS was requested but is not available; use --device cpu or auto")
    return device


def resolve_dtype(precision: str, device: torch.device, supports_half: bool, supports_bf16: bool) -> torch.dtype:
    """``auto``: fp16 on CUDA where the model supports it, fp32 elsewhere (CPUs gain nothing from fp16).

    On a CPU with native bf16, ``auto`` still loads in fp32; ``precision_gate`` may switch the
    model to bf16 autocast at its first image (``LoadedModel.gate_pending``).
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float16 if device.type == "cuda" and supports_half else torch.float32
    dtype = _DTYPES[precision]
    if dtype is torch.float16 and not supports_half:
        raise DeviceError("this model does not support fp16; use --precision fp32 (or auto)")
    if dtype is torch.bfloat16 and not supports_bf16:
        raise DeviceError("this model does not support bf16; use --precision fp32 (or auto)")
    if dtype is torch.float16 and device.type == "cpu":
        raise DeviceError("fp16 is not supported on CPU; use --precision fp32 or bf16")
    return dtype


@dataclass(frozen=True)
class ModelTraits:
    """What the engine honours about a loaded model: spandrel's descriptor plus the architecture's traits."""

    arch: str
    scale: int
    in_channels: int
    out_channels: int
    multiple_of: int  # inputs are padded to this
    minimum_size: int
    tiling_discouraged: bool
    supports_half: bool
    supports_bf16: bool
    tile_grid: int  # tiles start on multiples of this (the model's internal grid)
    noise_level: NoiseLevelCall | None  # non-blind denoisers: how the level is passed


@contextlib.contextmanager
def _set_within(owner: Any, name: str, value: Any) -> Iterator[None]:
    """``owner.name`` is ``value`` inside the block, and what it was after."""
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


@dataclass(frozen=True)
class WeightsOrigin:
    """Where a model's weights came from, fixed when it is loaded."""

    source: str  # file name, for messages
    model_id: str | None = None  # manifest id, when it came from the store
    sha256: str | None = None  # of the weights file that was loaded
    hash_recorded_now: bool = False  # trust on first use: its hash was just recorded


class _Loaded:
    """What every loaded model shares: frozen traits and origin, a device, a precision.

    The one thing that changes after load is the precision: by ``use_float32`` (half precision
    overflowed: the engine then redoes the image), or once by ``settle_precision`` (the bf16 gate
    of ``--precision auto`` on a CPU with native bf16, at the first image).
    """

    backend = "torch"  # what runs the network (reported with the precision)

    def __init__(self, descriptor: Any, traits: ModelTraits, origin: WeightsOrigin,
                 device: torch.device, dtype: torch.dtype, requested: str = "fp32") -> None:
        self.descriptor = descriptor
        self.traits = traits
        self.origin = origin
        self.device = device
        self._dtype = dtype
        self._mixed_bf16 = False  # fp32 weights, bf16 autocast: set by the gate only
        # ``auto`` on a CPU that computes bf16 natively: the gate decides at the first image.
        self.gate_pending = (requested == "auto" and device.type == "cpu" and dtype == torch.float32
                             and traits.supports_bf16 and cpu_capabilities().native_bf16)
        self.gate_verdict: Any = None  # precision_gate.GateVerdict once decided

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights and of the tensors the model takes and returns."""
        return self._dtype

    @property
    def precision(self) -> str:
        if self._mixed_bf16:
            return "bf16-mixed"
        return next(name for name, dtype in _DTYPES.items() if dtype == self._dtype)

    def mixed_bf16(self) -> contextlib.AbstractContextManager[None]:
        """Run calls inside the block under CPU bf16 autocast (the gate's candidate)."""
        return _set_within(self, "_mixed_bf16", True)

    def settle_precision(self, verdict: Any) -> None:
        """Keep the gate's choice for good: bf16 autocast if ``verdict.accepted``, else fp32 as loaded."""
        self._mixed_bf16 = bool(verdict.accepted)
        self.gate_verdict = verdict
        self.gate_pending = False

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self._mixed_bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # The traits and origin, by their short names (tests, benchmarks and processors read these).
    arch = property(lambda self: self.traits.arch)
    scale = property(lambda self: self.traits.scale)
    in_channels = property(lambda self: self.traits.in_channels)
    out_channels = property(lambda self: self.traits.out_channels)
    multiple_of = property(lambda self: self.traits.multiple_of)
    minimum_size = property(lambda self: self.traits.minimum_size)
    tile_grid = property(lambda self: self.traits.tile_grid)
    tiling_discouraged = property(lambda self: self.traits.tiling_discouraged)
    takes_noise_level = property(lambda self: self.traits.noise_level is not None)
    source = property(lambda self: self.origin.source)
    model_id = property(lambda self: self.origin.model_id)
    sha256 = property(lambda self: self.origin.sha256)
    hash_recorded_now = property(lambda self: self.origin.hash_recorded_now)

    @property
    def network(self) -> torch.nn.Module:
        return self.descriptor.model

    def use_float32(self) -> None:
        """Switch to fp32 for good (after half precision produced NaN/inf)."""
        self.descriptor.model.to(torch.float32)
        self._dtype = torch.float32
        self._mixed_bf16 = False

    def _check_finite(self, out: torch.Tensor, what: str) -> None:
        if not torch.isfinite(out).all():
            advice = (
                "this image cannot be restored with this model" if self.dtype == torch.float32
                else "run again with --precision fp32"
            )
            raise NonFiniteOutput(f"{self.source}: the {what} produced NaN/inf values at {self.precision}; {advice}")


class LoadedModel(_Loaded):
    """An image-to-image model on its device, with what the engine needs to know to run it."""

    def __init__(self, descriptor: ImageModelDescriptor, traits: ModelTraits, origin: WeightsOrigin,
                 device: torch.device, dtype: torch.dtype, channels_last: bool = False, requested: str = "fp32",
                 openvino: Any = None, backend_note: str | None = None) -> None:
        super().__init__(descriptor, traits, origin, device, dtype, requested)
        self.channels_last = channels_last
        self._openvino = openvino  # openvino_backend.OpenVinoNetwork, or None: torch runs the network
        self.backend_note = backend_note  # why OpenVINO was asked for but torch runs

    @property
    def backend(self) -> str:  # type: ignore[override]
        return "openvino" if self._openvino is not None else "torch"

    def _run_openvino(self, x: torch.Tensor) -> torch.Tensor | None:
        """OpenVINO's output (blind models: padded above, clamped by the caller), or None after it
        failed: torch then runs this and every later call, and ``backend_note`` says why."""
        try:
            return self._openvino(x)
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else type(error).__name__
            self._openvino = None
            self.backend_note = f"OpenVINO failed at {tuple(x.shape[-2:])} px ({reason}); running with torch"
            return None

    def running_torch(self) -> contextlib.AbstractContextManager[None]:
        """Calls inside the block run the torch network (to count its memory per pixel)."""
        return _set_within(self, "_openvino", None)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """(1, C, h, w) in [0, 1] → (1, C', h·s, w·s) in [0, 1]; any h, w.

        ``sigma`` is the noise level on the 0–255 scale for non-blind denoisers.
        """
        h, w = x.shape[-2:]
        x = _pad_to(x, self.multiple_of, self.minimum_size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = self._run_openvino(x) if self._openvino is not None else None
            if out is None and self.traits.noise_level is not None:
                level = (25.0 if sigma is None else sigma) / 255.0
                out = self.traits.noise_level(self.descriptor.model, x, level)
            elif out is None:
                # spandrel's call applies the architecture's own call convention (call_fn)
                out = self.descriptor(x)
        out = out.to(self._dtype)  # autocast may hand back bf16: callers get the model's dtype
        self._check_finite(out, "model")
        return out.clamp_(0, 1)[..., : h * self.scale, : w * self.scale]


def _pad_to(x: torch.Tensor, multiple_of: int, minimum: int) -> torch.Tensor:
    """Pad bottom/right by reflection (replicate beyond what reflection allows)."""
    h, w = x.shape[-2:]
    target_h = max(minimum, -(-h // multiple_of) * multiple_of)
    target_w = max(minimum, -(-w // multiple_of) * multiple_of)
    pad_h, pad_w = target_h - h, target_w - w
    if not (pad_h or pad_w):
        return x
    reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
    x = F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect")
    if pad_h > reflect_h or pad_w > reflect_w:
        x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
    return x


def _load(
    path: Path,
    state_dict: dict[str, Any],
    expected_arch: str | None,
    device: str | torch.device | None,
    precision: str,
    kind: type,
) -> tuple[Any, ModelTraits, torch.device, torch.dtype]:
    """Detect, check the kind, place on a device at a precision, and read the traits: once, for every kind."""
    from spandrel import ModelTiling

    descriptor = _detect_architecture(state_dict, path, expected_arch)
    arch = str(descriptor.architecture.id)
    if not isinstance(descriptor, kind):
        what = "an inpainting model; give an inpainting checkpoint such as big-LaMa" if kind.__name__.startswith("Masked") \
            else "an image-to-image model photofix can run"
        raise (ArchitectureMismatch if expected_arch else ModelLoadError)(f"{path}: {arch} is not {what}")
    declared = traits_of(arch)
    half = descriptor.supports_half if declared.half is None else declared.half
    bf16 = descriptor.supports_bfloat16 if declared.bf16 is None else declared.bf16
    torch_device, dtype = _place_for_inference(descriptor, device, precision, half, bf16)
    req = descriptor.size_requirements
    traits = ModelTraits(
        arch=arch,
        scale=descriptor.scale,
        in_channels=descriptor.input_channels,
        out_channels=descriptor.output_channels,
        multiple_of=req.multiple_of,
        minimum_size=req.minimum,
        tiling_discouraged=descriptor.tiling is not ModelTiling.SUPPORTED,
        supports_half=half,
        supports_bf16=bf16,
        tile_grid=math.lcm(req.multiple_of, declared.grid),
        noise_level=declared.noise_level,
    )
    return descriptor, traits, torch_device, dtype


def load_model(
    weights: str | os.PathLike,
    *,
    expected_arch: str | None = None,
    model_id: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    cpu_rewrites: bool = True,
    sha256: str | None = None,
    hash_recorded_now: bool = False,
    backend: str = "auto",
) -> LoadedModel:
    """Load a checkpoint file, check its architecture, and place it on a device.

    On CPU, architectures whose traits say so get the measured CPU rewrites (same results
    within 1e-4); ``cpu_rewrites=False`` keeps the eager model. ``sha256`` is the verified
    hash of the file, when the caller (the store) has it.

    ``backend``: ``torch``; ``openvino`` (the optional extra) for a blind model on a CPU; ``auto``
    picks OpenVINO where it is installed and the architecture's traits say it measured faster,
    on a CPU in fp32. An OpenVINO export that fails falls back to torch, saying why
    (``backend_note``).
    """
    from spandrel import ImageModelDescriptor

    from photofix.engine.openvino_backend import check_backend

    check_backend(backend)
    path = Path(weights)
    origin = WeightsOrigin(path.name, model_id, sha256, hash_recorded_now)
    descriptor, traits, torch_device, dtype = _load(path, read_state_dict(path), expected_arch, device, precision,
                                                     ImageModelDescriptor)
    rewritten = cpu_rewrites and torch_device.type == "cpu" and traits_of(traits.arch).cpu_rewrites
    if rewritten:
        rewrite_for_cpu(descriptor.model)
    model = LoadedModel(descriptor, traits, origin, torch_device, dtype, channels_last=rewritten, requested=precision)
    if _wants_openvino(model, backend):
        model._openvino, model.backend_note = _export_openvino(model)
    elif backend == "openvino":
        model.backend_note = (f"OpenVINO runs blind models on a CPU in fp32; {model.arch} on {torch_device} at "
                              f"{model.precision} runs with torch")
    return model


def _wants_openvino(model: LoadedModel, backend: str) -> bool:
    from photofix.engine.openvino_backend import runtime_version

    if backend == "torch" or model.device.type != "cpu" or model.dtype != torch.float32 or model.gate_pending:
        return False
    if backend == "openvino":
        return model.traits.noise_level is None
    return traits_of(model.arch).openvino and runtime_version() is not None


def _export_openvino(model: LoadedModel) -> tuple[Any, str | None]:
    """(the OpenVINO network, None), or (None, why not) when export or compilation fails."""
    from photofix.engine.openvino_backend import export

    try:
        return export(model.network, model.in_channels, model.sha256, torch.get_num_threads(), model.multiple_of), None
    except Exception as error:  # noqa: BLE001 - any export failure means the same: torch runs it
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        return None, f"OpenVINO could not export {model.arch} ({type(error).__name__}: {reason}); running with torch"


def load_entry(
    entry: ModelEntry,
    *,
    offline: bool | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    loader: Any = None,
    fetched: Any = None,
    backend: str = "auto",
) -> Any:
    """Fetch (or find cached) the weights of a manifest entry and load them with ``loader`` (``load_model``).

    Loading checks the architecture, so a first-use hash of the wrong model is dropped here.
    ``fetched`` is the entry's weights when the caller already fetched them; ``backend`` goes to
    ``load_model`` (other loaders run torch).
    """
    from photofix.store.weights import fetch

    fetched = fetched or fetch(entry, offline=offline)
    try:
        extra = {"backend": backend} if loader is None else {}
        return (loader or load_model)(fetched.path, expected_arch=entry.arch, model_id=entry.id, device=device,
                                      precision=precision, sha256=fetched.sha256, hash_recorded_now=fetched.first_use_hash,
                                      **extra)
    except ModelLoadError:
        _untrust_if_new(entry, fetched)
        raise


def check_weights_file(path: str | os.PathLike, expected_arch: str) -> str:
    """Read ``path`` as data only and detect its architecture; raise unless it is ``expected_arch``."""
    path = Path(path)
    state_dict = _without_traced_wrapper(read_state_dict(path))
    return str(_detect_architecture(state_dict, path, expected_arch).architecture.id)


def fetch_checked(entry: ModelEntry, *, offline: bool | None = None) -> Any:
    """``weights.fetch``, but a hash recorded on first use is kept only for a file of the right architecture."""
    from photofix.store.weights import fetch

    fetched = fetch(entry, offline=offline)
    if fetched.first_use_hash:
        try:
            check_weights_file(fetched.path, entry.arch)
        except ModelLoadError:
            _untrust_if_new(entry, fetched)
            raise
    return fetched


def import_weights(entry: ModelEntry, file: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """``models import``: place ``file`` for ``entry`` once it is known to be that model.

    An entry without a published hash trusts the first file it is given, so that file must
    first load safely as the entry's architecture; a pinned hash already says which file it is.
    """
    from photofix.store.weights import import_file

    if not entry.verified:
        try:
            check_weights_file(file, entry.arch)
        except ModelLoadError as error:
            raise type(error)(
                f"{error} Nothing was imported: {entry.id!r} expects {entry.source.filename} from {entry.source}."
            ) from None
    return import_file(entry, file, cache_dir)


def _untrust_if_new(entry: ModelEntry, fetched: Any) -> None:
    """A first-use hash must not pin a file that turned out to be the wrong model."""
    if fetched.first_use_hash:
        from photofix.store.weights import forget

        forget(entry)


# --- inpainting models -----------------------------------------------------

# LaMa's own TorchScript export (bin/to_jit.py) traces a wrapper whose ``model`` is the whole
# training module, so big-lama.pt names its weights "model.generator.model.*" (a published
# traceback of the file shows the same nesting); spandrel detects only the training
# checkpoint's "generator.model.*" and its own "model.model.*".
_TRACED_TRAINING_MODULE = "model.generator."


class LoadedMaskedModel(_Loaded):
    """An inpainting model on its device: an image and a mask in, the filled image out."""

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w) in [0, 1] and a (1, 1, h, w) mask (1 = fill) → (1, C, h, w) in [0, 1]; any h, w.

        Both are padded by reflection to the model's size multiple here and cropped back, so
        the model never sees a hole cut off at a padded border.
        """
        h, w = image.shape[-2:]
        image = _pad_to(image.to(self.device, self.dtype), self.multiple_of, self.minimum_size)
        hole = _pad_to((mask > 0.5).to(self.device, self.dtype), self.multiple_of, self.minimum_size)
        out = self.descriptor(image, hole)
        self._check_finite(out, "inpainting model")
        return out[..., :h, :w]


def load_masked_model(
    weights: str | os.PathLike,
    *,
    expected_arch: str | None = None,
    model_id: str | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    sha256: str | None = None,
    hash_recorded_now: bool = False,
) -> LoadedMaskedModel:
    """Load an inpainting checkpoint (e.g. big-LaMa, ``.pt`` TorchScript or state dict) onto a device."""
    from spandrel import MaskedImageModelDescriptor

    path = Path(weights)
    origin = WeightsOrigin(path.name, model_id, sha256, hash_recorded_now)
    state_dict = _without_traced_wrapper(read_state_dict(path))
    descriptor, traits, torch_device, dtype = _load(path, state_dict, expected_arch, device, precision,
                                                     MaskedImageModelDescriptor)
    return LoadedMaskedModel(descriptor, traits, origin, torch_device, dtype)


def _place_for_inference(descriptor: Any, device: str | torch.device | None, precision: str,
                         supports_half: bool, supports_bf16: bool) -> tuple[torch.device, torch.dtype]:
    """Move a spandrel descriptor's model to the resolved device and precision, in eval mode."""
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    dtype = resolve_dtype(precision, torch_device, supports_half, supports_bf16)
    descriptor.to(torch_device)
    descriptor.model.to(dtype)
    descriptor.model.eval()
    return torch_device, dtype


def _without_traced_wrapper(state_dict: dict[str, Any]) -> dict[str, Any]:
    if state_dict and all(key.startswith(_TRACED_TRAINING_MODULE) for key in state_dict):
        return {key.removeprefix("model."): value for key, value in state_dict.items()}
    return state_dict


def _holds_non_finite(value: Any) -> bool:
    # A float32 sum is NaN/inf whenever an element is (10x cheaper than isfinite on every
    # element: 0.03 s against 0.32 s for 464 MB); only a tensor it flags is checked exactly,
    # since a sum of huge finite weights could overflow.
    if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
        return False
    return not torch.isfinite(value.sum()) and not torch.isfinite(value).all()


def _detect_architecture(state_dict: dict[str, Any], path: Path, expected_arch: str | None) -> Any:
    """The registry's descriptor for ``state_dict``, checked against ``expected_arch``; typed errors.

    """
    from spandrel import UnsupportedModelError

    broken = [key for key, value in state_dict.items() if _holds_non_finite(value)]
    if broken:
        # Every image would come out NaN: a whole-run weights error, not one failure per file.
        raise ModelLoadError(
            f"{path}: the weights hold NaN/inf values ({len(broken)} tensors, e.g. {broken[0]}); "
            "the file is damaged or was saved from a diverged training run — get a good copy"
        )
    try:
        with warnings.catch_warnings():
            # DAT's constructor calls torch.meshgrid without indexing=: torch warns on every load, nothing to act on
            warnings.filterwarnings("ignore", message="torch.meshgrid", category=UserWarning)
            descriptor = registry().load(state_dict)
    except UnsupportedModelError as error:
        raise ModelLoadError(
            f"{path}: unknown model architecture; photofix loads the architectures spandrel "
            "supports plus its own — check that this is a restoration model checkpoint"
        ) from error
    except Exception as error:  # noqa: BLE001 - arch code raises anything on odd shapes
        raise ModelLoadError(f"{path}: the checkpoint does not load ({type(error).__name__}: {error})") from error
    found = str(descriptor.architecture.id)
    if expected_arch is not None and found != expected_arch:
        raise ArchitectureMismatch(
            f"{path}: expected a {expected_arch} model but the file holds {found}; "
            "the file may be mislabelled — remove it and download again"
        )
    return descriptor


__all__ = [
    "LoadedMaskedModel",
    "LoadedModel",
    "ModelTraits",
    "PRECISIONS",
    "WeightsOrigin",
    "check_weights_file",
    "fetch_checked",
    "import_weights",
    "load_entry",
    "load_masked_model",
    "load_model",
    "read_state_dict",
    "resolve_device",
    "resolve_dtype",
]
