"""Read the tensors of a TorchScript archive without running any of it.

``torch.jit.load`` executes the archive's code (a scripted ``__setstate__`` runs on load, and
TorchScript can create or overwrite files), so photofix never calls it. A TorchScript archive
is a zip: ``<root>/data.pkl`` pickles the module tree, each module an object of a
``__torch__.*`` class whose state is a dict of attributes (sub-modules, parameters, buffers),
and each tensor's bytes sit in ``<root>/data/<key>``. This module unpickles ``data.pkl`` with
an allow-list that turns script classes into inert nodes and tensors into references, so no
callable outside this file runs, then builds the tensors from the raw bytes with bounds
checks. Whatever the scripted code would have done on load is simply never run.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import sys
import zipfile
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["UnsafeArchive", "is_torchscript_archive", "read_script_tensors"]

# torch's legacy storage classes name the element type of each tensor's bytes.
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class UnsafeArchive(ValueError):
    """The archive asks for something other than plain tensors and script-module nodes."""


def is_torchscript_archive(path: str) -> bool:
    """A zip whose layout is TorchScript's (code/ and constants.pkl beside data.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names)


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _ScriptNode:
    """Stands in for an object of a ``__torch__`` class: keeps its state, runs nothing."""

    state: Any = None  # NEWOBJ skips __init__; BUILD sets this

    def __init__(self, *_: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


def _tensor_ref(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise UnsafeArchive("a tensor without stored bytes")
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _parameter(data: Any, *_: Any) -> Any:
    return data


def _same(value: Any, *_: Any) -> Any:
    return value


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _tensor_ref,
    ("torch._utils", "_rebuild_tensor"): _tensor_ref,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # TorchScript's typed containers: the value itself is what matters.
    ("torch.jit._pickle", "build_intlist"): list,
    ("torch.jit._pickle", "build_doublelist"): list,
    ("torch.jit._pickle", "build_boollist"): list,
    ("torch.jit._pickle", "build_tensorlist"): list,
    ("torch.jit._pickle", "build_genericlist"): list,
    ("torch.jit._pickle", "restore_type_tag"): _same,
}


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptNode
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise UnsafeArchive(f"it refers to {module}.{name}, which is not part of a weights file")
        return allowed

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeArchive("an unknown kind of stored object")
        return _Storage(str(pid[2]), pid[1].dtype, int(pid[4]))


def read_script_tensors(path: str) -> dict[str, torch.Tensor]:
    """The module tree's tensors by dotted attribute path, as ``state_dict()`` would name them.

    Raises UnsafeArchive for anything but tensors and module nodes, ValueError/zipfile errors
    for a damaged archive.
    """
    with zipfile.ZipFile(path) as archive:
        data_pkl = _single(name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1)
        root = data_pkl.split("/", 1)[0]
        if root + "/byteorder" in archive.namelist() and archive.read(root + "/byteorder").strip() != sys.byteorder.encode():
            raise UnsafeArchive("its tensors were saved with another byte order")
        tree = _InertUnpickler(io.BytesIO(archive.read(data_pkl))).load()
        refs: dict[str, _TensorRef] = {}
        _collect(tree, "", refs, set())
        storages: dict[str, torch.Tensor] = {}
        tensors = {}
        for name, ref in refs.items():
            if ref.storage.key not in storages:
                storages[ref.storage.key] = _read_storage(archive, f"{root}/data/{ref.storage.key}", ref.storage)
            tensors[name] = _view(storages[ref.storage.key], ref)
    return tensors


def _single(names: Any) -> str:
    found = list(names)
    if len(found) != 1:
        raise ValueError("not a TorchScript archive (no single data.pkl)")
    return found[0]


def _collect(node: Any, prefix: str, out: dict[str, _TensorRef], seen: set[int]) -> None:
    """Walk module nodes depth first; a tensor attribute becomes ``prefix + name``."""
    if not isinstance(node, _ScriptNode) or id(node) in seen:
        return
    if not isinstance(node.state, dict):
        # Only a scripted __setstate__ gives a module a non-dict state: code meant to run on load.
        raise UnsafeArchive("a module carries its own loading code (a scripted __setstate__)")
    seen.add(id(node))
    for name, value in node.state.items():
        if not isinstance(name, str):
            continue
        if isinstance(value, _TensorRef):
            out[prefix + name] = value
        elif isinstance(value, _ScriptNode):
            _collect(value, f"{prefix}{name}.", out, seen)


def _read_storage(archive: zipfile.ZipFile, member: str, storage: _Storage) -> torch.Tensor:
    itemsize = torch.empty((), dtype=storage.dtype).element_size()
    if archive.getinfo(member).file_size != storage.numel * itemsize:  # checked before reading
        raise ValueError(f"{member} does not hold the {storage.numel * itemsize} bytes its tensor needs")
    raw = archive.read(member)
    return torch.frombuffer(bytearray(raw), dtype=storage.dtype) if raw else torch.empty(0, dtype=storage.dtype)


def _view(flat: torch.Tensor, ref: _TensorRef) -> torch.Tensor:
    if len(ref.size) != len(ref.stride) or ref.offset < 0 or any(n < 0 for n in ref.size) or any(s < 0 for s in ref.stride):
        raise ValueError("a tensor with an invalid shape")
    if math.prod(ref.size) and ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) >= flat.numel():
        raise ValueError("a tensor reaching past its stored bytes")
    return flat.as_strided(ref.size, ref.stride, ref.offset)
