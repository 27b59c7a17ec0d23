"""Import spandrel without importing torchvision until an architecture really calls it.

spandrel imports every architecture when it is imported; two of them (LaMa, RestoreFormer)
take a function or an enum from ``torchvision.transforms.functional``, and importing
torchvision imports ``torch._dynamo`` (through ``torchvision.ops``): about 1.5 s on a quiet
2-core machine, 3 s under load, paid by every one-file run although no photofix model calls
torchvision at import. While spandrel is imported, that one module is served by a stand-in
whose attributes are placeholders; a placeholder imports the real torchvision the first time
it is called or looked into, which for those two architectures is inside ``forward``.

Anything unexpected (spandrel asking torchvision for something else, a spandrel version that
uses an attribute at import) falls back to the plain import, so the stand-in can cost time
but never correctness.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["import_spandrel"]

_DEFERRED_MODULE = "torchvision.transforms.functional"
_STAND_INS = ("torchvision", "torchvision.transforms", _DEFERRED_MODULE)


class _Deferred:
    """Stands for ``module.name`` and becomes it at first use."""

    __slots__ = ("_module", "_name")

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name

    def _target(self) -> Any:
        return getattr(importlib.import_module(self._module), self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._target(), item)

    def __repr__(self) -> str:
        return f"<deferred {self._module}.{self._name}>"


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # import machinery probing (__path__, __spec__, ...)
            raise AttributeError(name)
        return _Deferred(_DEFERRED_MODULE, name)


def import_spandrel() -> types.ModuleType:
    """``import spandrel``, torchvision deferred when it is not loaded yet."""
    if "spandrel" in sys.modules or "torchvision" in sys.modules:
        return importlib.import_module("spandrel")
    importlib.import_module("torch")  # first, alone: its own import walks sys.modules, stand-ins included
    stand_ins = {name: _StandInModule(name) for name in _STAND_INS}
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("spandrel")
    except Exception:
        _forget("spandrel")
        _remove(stand_ins)
        return importlib.import_module("spandrel")
    finally:
        _remove(stand_ins)


def _remove(stand_ins: dict[str, types.ModuleType]) -> None:
    for name, module in stand_ins.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]


def _forget(package: str) -> None:
    """Drop a half-done import of ``package`` so the plain import starts afresh."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
